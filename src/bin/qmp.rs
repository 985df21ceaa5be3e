//! `qmp`: talk to QEMU's QMP monitor from the command line.
//!
//! ```text
//! qmp [--socket PATH | --tcp HOST:PORT] call COMMAND [JSON-ARGS]   # prints the reply
//! qmp [--socket PATH | --tcp HOST:PORT] events [--count N]         # JSON lines
//! qmp [--socket PATH | --tcp HOST:PORT] schema                     # query-qmp-schema
//! qmp [--socket PATH | --tcp HOST:PORT] compat [--require CMD,…]   # bindings vs peer
//! qmp [--socket PATH | --tcp HOST:PORT] shell [--hmp] [--compact]  # interactive
//! qmp (--socket PATH | --tcp HOST:PORT) serve [--replay FILE]       # a test server
//! qmp (--socket PATH | --tcp HOST:PORT) proxy --listen PATH [--read-only-listen PATH]
//!                                                                 # share the monitor
//! qmp --ga --socket PATH call COMMAND [JSON-ARGS]    # a guest agent's command
//! qmp --ga --socket PATH exec [--timeout S] -- PROGRAM [ARGS…]   # run it in the guest
//! qmp --ga (--socket PATH | --tcp HOST:PORT) serve [--replay FILE] # a test agent
//! ```
//!
//! `--record FILE` records the session's traffic as a transcript (JSON lines);
//! `qmp serve --replay FILE` serves such a transcript back, to every connection from
//! its start (see `qmp::server::replay`).
//!
//! Without `--socket`/`--tcp`, it starts a private QEMU with a QMP monitor on a socket
//! in a temporary directory, says on stderr which one (and its version), and stops it
//! on exit (also on error and on Ctrl-C or SIGTERM), so `qmp call query-version` works
//! on a fresh machine: `qemu-storage-daemon` for `call`, `events` and `schema` (so
//! `qmp schema` prints the storage daemon's schema, a subset of the system
//! emulator's), `qemu-system-x86_64 -M none` for `compat` (the bindings are the
//! system emulator's) and `shell` (so that it has events to show, e.g. after `stop`).
//!
//! `shell` is an interactive shell with the habits of QEMU's qmp-shell (see
//! src/cli/shell.rs). On a QEMU named with `--socket`/`--tcp` it reconnects by itself
//! when the connection is lost (QEMU restarted), saying so above the prompt; a command
//! typed meanwhile waits up to `--timeout` seconds (10 without it) and is then reported
//! as not sent. `--no-reconnect` ends it with status 1 instead, `--reconnect-give-up
//! SECONDS` after that long without a connection. Its private QEMU dies with it: there
//! a lost connection ends it with status 1.
//!
//! `call` checks the arguments against the peer's own schema before sending anything
//! (one `query-qmp-schema`, with QEMU's wording: an unknown command, a missing,
//! unexpected or mistyped member, a value an enum lacks), so it works against older
//! and newer QEMUs alike; only when the peer's schema cannot be had (a server that
//! does not answer `query-qmp-schema`) does it check against the bindings this
//! program was built with, and says so. `device_add`, `netdev_add` and `object-add`
//! take more members than their schema lists: for them only the command is checked.
//! The reply is then decoded with the command's typed reply in the bindings, as
//! `Client::execute` would. A reply that does not decode (a QEMU of another release
//! than the bindings: a member one side requires and the other lacks) is still
//! printed in full on stdout, with a warning naming the command and the member on
//! stderr, and the exit status is 3. `--no-check` skips both checks.
//!
//! `compat` compares the bindings this program was built with against the peer's
//! schema (`qmp::drift`): it prints every difference, one line each, and a summary;
//! with `--require CMD,CMD…` it prints the summary and, for each named command,
//! whether the peer fully supports it (it has it, and nothing in its arguments or
//! reply would make a call through the bindings fail: see `qmp::drift`) with the
//! differences that break it, and exits with 4 when one is not fully supported.
//!
//! `--ga` talks to a QEMU guest agent (qemu-ga) on the Unix socket `--socket` names
//! (`qemu-ga -m unix-listen -p PATH`, or the QEMU chardev of the agent's virtio-serial
//! port) with `qmp::ga::Client` instead of QMP; no private agent is started, so
//! `--socket` is required. Two subcommands talk to it: `call`, which checks the
//! arguments against the guest agent's bindings this program was built with (qemu-ga
//! 10.0's schema: the agent has no `query-qmp-schema`), sends the command, and prints
//! the reply as `call` does, decoded with the bindings' typed reply (exit status 3
//! when it does not decode); and `exec`, which runs a program in the guest
//! (`qemu_qapi::guest::exec`: `guest-exec` with captured output, then
//! `guest-exec-status` polls), writes its stdout to stdout and its stderr to stderr,
//! and exits with the program's exit code (128+N when signal N killed it). `--timeout`
//! bounds each call, and for `exec` the whole run: a program still running then is
//! reported with its pid (qemu-ga cannot kill it), exit status 1. `qmp --ga serve`
//! serves as a guest agent instead of a QMP monitor (`qmp::server::serve`).
//!
//! Exit status: 0 success; 1 an error (connection, QEMU's error reply, bad arguments);
//! 2 a usage error; 3 `call` printed a reply that does not fit the bindings; 4
//! `compat --require` named a command the peer does not fully support. 3 rather
//! than 0 so that a script learns that the typed bindings (and so Rust code built on
//! them) would fail on this QEMU; rather than 1 so that it can still take the reply
//! (`qmp call … || [ $? -eq 3 ]`). 4 rather than 1 for the same reason: the peer
//! answered, and the answer is "no".

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde_json::Value;

#[path = "../cli/shell.rs"]
mod shell;

#[derive(Parser, Debug)]
#[command(
    name = "qmp",
    version,
    about = "Talk to QEMU's QMP monitor",
    after_help = "Exit status: 0 success; 1 error; 2 usage error; 3 `call` printed a reply \
                  that does not decode with the bindings this program was built with \
                  (a warning on stderr names the command and the member); 4 `compat \
                  --require` named a command the peer does not fully support.\n\n\
                  Without --socket or --tcp, a private QEMU is started for the run (and \
                  named on stderr): qemu-storage-daemon, or qemu-system-x86_64 -M none \
                  for `compat` and `shell`.\n\n\
                  With --ga --socket PATH: talk to a guest agent (qemu-ga) instead; \
                  `call` and `exec` work, and `exec` exits with the program's exit code \
                  (128+N for signal N)."
)]
struct Cli {
    /// Path of QEMU's QMP Unix socket.
    #[arg(long, global = true, value_name = "PATH", conflicts_with = "tcp")]
    socket: Option<PathBuf>,
    /// Address of QEMU's QMP TCP socket.
    #[arg(long, global = true, value_name = "HOST:PORT")]
    tcp: Option<String>,
    /// Give up on a call after this many seconds (with --ga exec: on the program too).
    #[arg(
        long,
        global = true,
        value_name = "SECONDS",
        value_parser = timeout_seconds,
        allow_negative_numbers = true
    )]
    timeout: Option<f64>,
    /// Record the traffic to this transcript file (with `serve`: every session's).
    /// The file is readable by its owner only, and secrets (a `secret` object's
    /// data, passwords: `qmp::secrets`) are recorded redacted.
    #[arg(long, global = true, value_name = "FILE")]
    record: Option<PathBuf>,
    /// With --record: record secrets as sent instead of redacting them.
    #[arg(long, global = true, requires = "record")]
    record_secrets: bool,
    /// Talk to a QEMU guest agent (qemu-ga) on --socket instead of QMP: `call` and
    /// `exec` work. --socket may also name the pty QEMU made for the agent's serial
    /// port (`-chardev pty`: "char device redirected to /dev/pts/N").
    #[arg(long, global = true)]
    ga: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run one command and print its reply (the `return` value) as JSON. The reply is
    /// decoded with the bindings' typed reply; when that fails it is printed anyway,
    /// with a warning on stderr, and the exit status is 3.
    Call {
        /// The command name, e.g. `query-version`.
        command: String,
        /// The arguments as a JSON object, e.g. '{"node-name": "n0"}'.
        args: Option<String>,
        /// Print on one line instead of pretty-printing.
        #[arg(long)]
        compact: bool,
        /// Send the command without checking it and its arguments against the peer's
        /// schema (or, when that cannot be had, against the bindings this program was
        /// built with), and do not decode the reply with the bindings.
        #[arg(long)]
        no_check: bool,
    },
    /// Print events as JSON lines until interrupted (or until --count events).
    Events {
        /// Exit after this many events.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// Print the peer's schema (`query-qmp-schema`) as JSON.
    Schema,
    /// Compare the bindings this program was built with against the peer's schema:
    /// commands, events, members, branches and enum values one side lacks, members
    /// required on one side and optional on the other.
    Compat {
        /// Commands the peer must fully support (comma-separated, or the option
        /// repeated): print only the summary and each one's verdict, and exit with 4
        /// when one is not fully supported.
        #[arg(long, value_name = "CMD,CMD…", value_delimiter = ',')]
        require: Vec<String>,
    },
    /// An interactive shell with the habits of QEMU's qmp-shell: `command key=value
    /// ...` or JSON lines, Tab completion from the peer's schema, events shown as they
    /// arrive, history kept between sessions. Ctrl-D quits. With --socket or --tcp it
    /// reconnects when the connection is lost (see --no-reconnect); a lost connection
    /// to its private QEMU ends it with status 1.
    Shell(shell::ShellArgs),
    /// Serve QMP on --socket or --tcp until stopped: replay a transcript, or (without
    /// --replay) answer only `query-version`. With --ga, serve as a guest agent
    /// (syncs and `guest-ping` built in; without --replay, `guest-info` too).
    Serve {
        /// The transcript to replay (recorded with --record), to every connection
        /// from its start.
        #[arg(long, value_name = "FILE")]
        replay: Option<PathBuf>,
    },
    /// Share QEMU's one QMP monitor (--socket or --tcp) with many clients: serve it on
    /// each --listen socket (every command) and --read-only-listen socket (`query-*`
    /// only, or --allow) until Ctrl-C or SIGTERM; exits with status 1 when QEMU goes
    /// away (its clients are disconnected). Each client gets QEMU's greeting and its
    /// own negotiation, its ids back verbatim, and every event.
    Proxy {
        /// Serve every command on this Unix socket (repeatable).
        #[arg(long, value_name = "PATH")]
        listen: Vec<PathBuf>,
        /// Serve only `query-*` (or --allow) on this Unix socket (repeatable).
        #[arg(long, value_name = "PATH")]
        read_only_listen: Vec<PathBuf>,
        /// The read-only sockets' allow-list: names and prefixes ending in *, e.g.
        /// query-*,qom-get.
        #[arg(long, value_name = "CMD,PREFIX*,…", requires = "read_only_listen")]
        allow: Option<String>,
        /// Do not negotiate oob with QEMU nor offer it to clients.
        #[arg(long)]
        no_oob: bool,
    },
    /// With --ga: run a program in the guest, write its stdout and stderr here, and
    /// exit with its exit code (128+N when signal N killed it). --timeout bounds the
    /// whole run.
    Exec {
        /// The program (a path in the guest) and its arguments, after `--`.
        #[arg(
            required = true,
            num_args = 1..,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "PROGRAM [ARGS]"
        )]
        argv: Vec<String>,
    },
}

impl Cmd {
    fn name(&self) -> &'static str {
        match self {
            Cmd::Call { .. } => "call",
            Cmd::Events { .. } => "events",
            Cmd::Schema => "schema",
            Cmd::Compat { .. } => "compat",
            Cmd::Shell(_) => "shell",
            Cmd::Serve { .. } => "serve",
            Cmd::Proxy { .. } => "proxy",
            Cmd::Exec { .. } => "exec",
        }
    }
}

/// The usage error in the combination of `--ga` and the rest, if any (clap cannot
/// say "this subcommand needs that global option").
fn ga_usage_error(cli: &Cli) -> Option<String> {
    if !cli.ga {
        return matches!(cli.command, Cmd::Exec { .. }).then(|| {
            "`exec` runs a program through a guest agent: add --ga --socket PATH (the \
             agent's Unix socket)"
                .to_owned()
        });
    }
    if matches!(cli.command, Cmd::Serve { .. }) {
        // Serves as a guest agent, on --socket or --tcp, recording if asked.
        return None;
    }
    if cli.tcp.is_some() {
        return Some(
            "--ga talks to a guest agent on a Unix socket: use --socket PATH, not --tcp".into(),
        );
    }
    if cli.socket.is_none() {
        return Some(
            "--ga needs --socket PATH: the guest agent's Unix socket (`qemu-ga -m \
             unix-listen -p PATH`, or the QEMU chardev of its virtio-serial port); no \
             private agent is started"
                .into(),
        );
    }
    if cli.record.is_some() {
        return Some("--record does not work with --ga (only QMP sessions are recorded)".into());
    }
    match cli.command {
        Cmd::Call { .. } | Cmd::Exec { .. } => None,
        ref other => Some(format!(
            "`{}` is not available with --ga: with a guest agent, `call` and `exec` work \
             (and `serve` serves as one)",
            other.name()
        )),
    }
}

/// `--timeout`: a number of seconds that makes a `Duration` (refused when negative,
/// not a number or too large, as a usage error, where `Duration::from_secs_f64`
/// would panic later).
fn timeout_seconds(text: &str) -> Result<f64, String> {
    let n: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds (e.g. 30 or 0.5)"))?;
    Duration::try_from_secs_f64(n)
        .map(|_| n)
        .map_err(|_| format!("`{text}` is not a number of seconds from 0 up (e.g. 30 or 0.5)"))
}

/// `call`'s JSON-ARGS, parsed before connecting (QMP and guest agent alike).
fn parse_call_args(args: Option<&str>) -> Result<Option<Value>, String> {
    args.map(serde_json::from_str)
        .transpose()
        .map_err(|e| format!("the arguments are not valid JSON: {e}"))
}

/// QEMU takes a command's arguments as a JSON object only: refused before connecting.
fn must_be_object(command: &str, args: &Value) -> Result<(), String> {
    if args.is_object() {
        return Ok(());
    }
    Err(format!(
        "the arguments of `{command}` must be a JSON object, not {}",
        match args {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    ))
}

/// Checks a command's arguments against the bindings this program was built with
/// (`qemu-qapi`, QEMU 10.0's system schema by default): an unknown command, or a
/// missing, unexpected or mistyped member, is reported by name. Used when the peer's
/// own schema cannot be had.
fn check_arguments(command: &str, args: &Value) -> Result<(), String> {
    must_be_object(command, args)?;
    match qemu_qapi::commands::check_command_arguments(command, args) {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => Err(format!(
            "bad arguments for `{command}`: {e} (checked against the bindings this program \
             was built with; nothing was sent; use --no-check to send them anyway)"
        )),
        None => Err(format!(
            "unknown command `{command}`: the bindings this program was built with do not \
             have it (nothing was sent; use --no-check to send it anyway)"
        )),
    }
}

/// Checks a command and its arguments against the peer's schema (`peer` names it in
/// messages, e.g. `QEMU 7.2.22`) as QEMU's dispatcher would, with QEMU's wording.
fn check_against_peer(
    schema: &qmp::schema_check::Schema,
    peer: &str,
    command: &str,
    args: &Value,
) -> Result<(), String> {
    must_be_object(command, args)?;
    let result = if qmp::peer::OPEN_ARGUMENTS.contains(&command) {
        schema
            .check_command(command, None)
            .map(|_| ())
            .or_else(|r| {
                if r.class == qmp::schema_check::COMMAND_NOT_FOUND {
                    Err(r)
                } else {
                    Ok(())
                }
            })
    } else {
        schema.check_command(command, args.as_object()).map(|_| ())
    };
    match result {
        Ok(()) => Ok(()),
        Err(r) if r.class == qmp::schema_check::COMMAND_NOT_FOUND => {
            let in_bindings = qemu_qapi::commands::COMMANDS
                .iter()
                .any(|c| c.name == command);
            Err(format!(
                "{peer} has no command `{command}` (its query-qmp-schema does not list \
                 it{}); nothing was sent (use --no-check to send it anyway)",
                if in_bindings {
                    ", though the bindings this program was built with have it"
                } else {
                    ""
                }
            ))
        }
        Err(r) => Err(format!(
            "{peer} would refuse the arguments of `{command}`: {} (checked against its \
             query-qmp-schema); nothing was sent (use --no-check to send them anyway)",
            r.desc
        )),
    }
}

/// `QEMU 7.2.22`, from the greeting.
fn peer_name(client: &qmp::Client) -> String {
    let v = &client.greeting().qmp.version.qemu;
    format!("QEMU {}.{}.{}", v.major, v.minor, v.micro)
}

/// Checks `call`'s arguments against the peer's schema, fetched now; against the
/// bindings, with a note on stderr, when it cannot be had.
async fn check_call(client: &qmp::Client, command: &str, args: &Value) -> Result<(), String> {
    // The client fetches it once (`qmp::peer`); a later typed call would reuse it.
    match client.peer_schema().await {
        Ok(peer) => check_against_peer(peer.index(), &peer_name(client), command, args),
        Err(why) => {
            eprintln!(
                "qmp: note: the peer's schema cannot be had ({why}); checking the arguments \
                 against the bindings this program was built with instead"
            );
            check_arguments(command, args)
        }
    }
}

/// `qmp compat`'s report (stdout) and, with `--require`, the failure to report (the
/// required commands the peer does not fully support).
fn compat_report(
    drift: &qmp::drift::Drift,
    peer: &str,
    require: &[String],
) -> (String, Option<String>) {
    use std::fmt::Write;
    let mut out = format!(
        "qmp compat: the bindings this program was built with against {peer}\n\
         (- only in the bindings, + only in the peer, ~ different on each side)\n"
    );
    if require.is_empty() {
        let _ = write!(out, "{drift}");
        let _ = writeln!(out, "{}", drift.summary());
        return (out, None);
    }
    let _ = writeln!(out, "{}", drift.summary());
    let mut failed = Vec::new();
    for name in require {
        let support = drift.support(name);
        match &support {
            qmp::drift::Support::Partial(breaking) => {
                let _ = writeln!(
                    out,
                    "{name}: not fully supported ({} difference{} break{} calls):",
                    breaking.len(),
                    if breaking.len() == 1 { "" } else { "s" },
                    if breaking.len() == 1 { "s" } else { "" },
                );
                for c in breaking {
                    let _ = writeln!(out, "  {c}");
                }
            }
            other => {
                let _ = writeln!(out, "{name}: {other}");
            }
        }
        if !support.is_full() {
            failed.push(name.as_str());
        }
    }
    let failure = (!failed.is_empty()).then(|| {
        format!(
            "{peer} does not fully support {} (of the {} required)",
            failed.join(", "),
            require.len()
        )
    });
    (out, failure)
}

/// Why a reply did not decode with the bindings: the command, the member's path and
/// serde's message (the reply itself is printed on stdout).
#[derive(Debug)]
struct ReplyMismatch {
    command: String,
    path: String,
    message: String,
}

/// Exit status of a `call` whose reply was printed but does not decode (see the
/// module docs).
const EXIT_REPLY_MISMATCH: u8 = 3;

/// Exit status of `compat --require` when a required command is not fully supported.
const EXIT_NOT_SUPPORTED: u8 = 4;

impl std::fmt::Display for ReplyMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "warning: the reply of `{}` does not decode with the bindings this program \
             was built with: at `{}`: {} (printed as received)",
            self.command, self.path, self.message
        )
    }
}

/// Decodes `reply`, the `return` value of `command`, with the command's typed reply in
/// the bindings, as `Client::execute` would have.
fn check_reply(command: &str, reply: &Value) -> Result<(), ReplyMismatch> {
    check_reply_with(command, reply, qemu_qapi::commands::check_command_reply)
}

/// A bindings' `check_command_reply` (QMP's or the guest agent's).
type ReplyChecker = fn(&str, &str) -> Option<Result<(), qmp::Error>>;

/// [`check_reply`] with the given bindings' checker.
fn check_reply_with(
    command: &str,
    reply: &Value,
    checker: ReplyChecker,
) -> Result<(), ReplyMismatch> {
    // The text the typed decoder reads: member order and spacing do not matter to it.
    let text = reply.to_string();
    let Some(Err(e)) = checker(command, &text) else {
        // Decoded, or a command the bindings lack (sent with --no-check, which skips
        // this check anyway).
        return Ok(());
    };
    // serde's message without its " at line 1 column N": that is a position in the
    // re-serialized text, not in what QEMU sent.
    let message = match std::error::Error::source(&e) {
        Some(source) => {
            let m = source.to_string();
            match m.rfind(" at line ") {
                Some(i) => m[..i].to_owned(),
                None => m,
            }
        }
        None => e.to_string(),
    };
    Err(ReplyMismatch {
        command: command.to_owned(),
        path: e.decode_path().unwrap_or("return").to_owned(),
        message,
    })
}

async fn connect(cli: &Cli, socket: Option<&Path>) -> Result<qmp::Client, String> {
    let config = config(cli)?;
    let r = match (&cli.tcp, socket) {
        (Some(addr), _) => config.connect_tcp(addr.as_str()).await,
        (None, Some(path)) => config.connect_unix(path).await,
        (None, None) => unreachable!("a socket is always chosen"),
    };
    r.map_err(|e| e.to_string())
}

/// The connection options the global options ask for (`--timeout`, `--record`).
fn config(cli: &Cli) -> Result<qmp::Config, String> {
    let mut config = qmp::Config::new();
    config.call_timeout(cli.timeout.map(Duration::from_secs_f64));
    if let Some(file) = &cli.record {
        // The client's own traffic hook: the session is recorded as the client sends
        // and receives it (fd passing keeps working, unlike through a proxy).
        let hook = qmp::server::transcript::Recorder::create(file)
            .map_err(|e| format!("{}: {e}", file.display()))?
            .keep_secrets(cli.record_secrets);
        config.traffic_hook(std::sync::Arc::new(hook));
    }
    Ok(config)
}

/// Prints `v` on stdout. A closed stdout (e.g. `qmp schema | head`) is not an error
/// worth reporting: it returns `Ok(false)` so the caller stops.
fn print_json(v: &Value, compact: bool) -> Result<bool, String> {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let written = if compact {
        serde_json::to_writer(&mut out, v)
    } else {
        serde_json::to_writer_pretty(&mut out, v)
    }
    .map_err(std::io::Error::from)
    .and_then(|()| writeln!(out))
    .and_then(|()| out.flush());
    match written {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(format!("writing to stdout: {e}")),
    }
}

/// Prints `text` on stdout, as [`print_json`] does.
fn print_text(text: &str) -> Result<bool, String> {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(format!("writing to stdout: {e}")),
    }
}

/// How a run ended well: `Mismatch` when `call` printed a reply that does not decode,
/// `NotSupported` when `compat --require` found a command the peer does not fully
/// support (the text says which).
enum Done {
    Ok,
    Mismatch(ReplyMismatch),
    NotSupported(String),
    /// `exec`: the program's exit status, passed on.
    Exited(u8),
}

async fn run(cli: &Cli, socket: Option<&Path>, started: Option<&str>) -> Result<Done, String> {
    // Validate what needs no peer before connecting, so a typo costs no round trip.
    let call_args = match &cli.command {
        Cmd::Call {
            command,
            args,
            no_check,
            ..
        } => {
            let v = parse_call_args(args.as_deref())?;
            if let (Some(v), false) = (&v, no_check) {
                must_be_object(command, v)?;
            }
            v
        }
        _ => None,
    };
    // `shell` on a QEMU the user named follows it across restarts (src/cli/shell.rs).
    if let (Cmd::Shell(args), None) = (&cli.command, started) {
        if !args.no_reconnect {
            let address = match (&cli.tcp, socket) {
                (Some(addr), _) => qmp::reconnect::Address::Tcp(addr.clone()),
                (None, Some(path)) => qmp::reconnect::Address::Unix(path.to_owned()),
                (None, None) => unreachable!("a socket is always chosen"),
            };
            return shell::run_reconnecting(&config(cli)?, address, cli.timeout, args)
                .await
                .map(|()| Done::Ok);
        }
    }
    let client = connect(cli, socket).await?;
    if let Some(what) = started {
        eprintln!(
            "qmp: no --socket or --tcp given: talking to {what} ({}), started for this run",
            peer_name(&client)
        );
    }
    let result = match &cli.command {
        Cmd::Call {
            command,
            compact,
            no_check,
            ..
        } => {
            if !no_check {
                let empty = Value::Object(Default::default());
                check_call(&client, command, call_args.as_ref().unwrap_or(&empty)).await?;
            }
            let reply = client
                .execute_raw(command, call_args.as_ref())
                .await
                .map_err(|e| e.to_string())?;
            let checked = if *no_check {
                Ok(())
            } else {
                check_reply(command, &reply)
            };
            print_json(&reply, *compact).map(|_| match checked {
                Ok(()) => Done::Ok,
                Err(m) => Done::Mismatch(m),
            })
        }
        Cmd::Compat { require } => {
            // The client's copy of the peer's schema (one `query-qmp-schema`, parsed
            // by the index `supports` and `call`'s check use): no second fetch.
            let schema = client
                .peer_schema()
                .await
                .map_err(|e| format!("cannot get the peer's schema (query-qmp-schema): {e}"))?;
            let drift = qemu_qapi::drift(&schema).map_err(|e| e.to_string())?;
            let mut peer = peer_name(&client);
            let package = client.greeting().qmp.version.package.trim();
            if !package.is_empty() {
                peer.push_str(&format!(" ({package})"));
            }
            let (report, failure) = compat_report(&drift, &peer, require);
            print_text(&report).map(|_| match failure {
                Some(f) => Done::NotSupported(f),
                None => Done::Ok,
            })
        }
        Cmd::Schema => {
            let schema = client
                .execute_raw("query-qmp-schema", None::<&()>)
                .await
                .map_err(|e| e.to_string())?;
            print_json(&schema, false).map(|_| Done::Ok)
        }
        Cmd::Events { count } => {
            let mut events = client.subscribe_raw();
            let v = &client.greeting().qmp.version.qemu;
            eprintln!(
                "qmp: connected to QEMU {}.{}.{}; waiting for events",
                v.major, v.minor, v.micro
            );
            let mut seen = 0;
            let mut out = Ok(Done::Ok);
            while !matches!(count, Some(c) if seen >= *c) {
                match events.next().await {
                    Some(Ok(e)) => {
                        // Normalise to one compact line whatever the peer's spacing.
                        match print_json(&e.to_value(), true) {
                            Ok(true) => seen += 1,
                            Ok(false) => break,
                            Err(e) => {
                                out = Err(e);
                                break;
                            }
                        }
                    }
                    Some(Err(e)) if e.is_lagged() => {
                        eprintln!("qmp: {e}");
                    }
                    Some(Err(e)) => {
                        out = Err(e.to_string());
                        break;
                    }
                    None => {
                        out = Err(client.closed().await.to_string());
                        break;
                    }
                }
            }
            out
        }
        Cmd::Shell(args) => shell::run(&client, args).await.map(|()| Done::Ok),
        Cmd::Serve { .. } => Err("`serve` is handled before connecting".into()),
        Cmd::Proxy { .. } => Err("`proxy` is handled before connecting".into()),
        Cmd::Exec { .. } => Err("`exec` is handled by run_ga".into()),
    };
    client.close().await;
    result
}

/// Checks a guest-agent command's arguments against the guest agent's bindings this
/// program was built with (the agent has no `query-qmp-schema` to check against).
fn check_ga_arguments(command: &str, args: &Value) -> Result<(), String> {
    must_be_object(command, args)?;
    match qemu_qapi::ga::commands::check_command_arguments(command, args) {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => Err(format!(
            "bad arguments for `{command}`: {e} (checked against the guest agent's bindings \
             this program was built with; nothing was sent; use --no-check to send them \
             anyway)"
        )),
        None => Err(format!(
            "unknown guest-agent command `{command}`: the guest agent's bindings this program \
             was built with do not have it (nothing was sent; use --no-check to send it \
             anyway)"
        )),
    }
}

/// Sends a command that never answers (`success-response: false`: it returns once
/// written; `execute_raw` would wait for a reply that never comes). `None` for other
/// commands.
async fn call_without_reply(
    client: &qmp::ga::Client,
    command: &str,
    args: Value,
) -> Option<Result<(), String>> {
    use qemu_qapi::ga::commands::{
        GuestShutdown, GuestSuspendDisk, GuestSuspendHybrid, GuestSuspendRam,
    };
    async fn typed<C: qmp::Command + serde::de::DeserializeOwned>(
        client: &qmp::ga::Client,
        args: Value,
    ) -> Result<(), String> {
        let cmd: C = serde_json::from_value(args)
            .map_err(|e| format!("bad arguments for `{}`: {e}", C::NAME))?;
        client
            .execute(&cmd)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
    Some(match command {
        "guest-shutdown" => typed::<GuestShutdown>(client, args).await,
        "guest-suspend-disk" => typed::<GuestSuspendDisk>(client, args).await,
        "guest-suspend-ram" => typed::<GuestSuspendRam>(client, args).await,
        "guest-suspend-hybrid" => typed::<GuestSuspendHybrid>(client, args).await,
        _ => return None,
    })
}

/// The exit status that passes on how a guest program ended, as a shell would: its
/// code, or 128+N for signal N. A code outside 0..=255 (a Windows guest's) becomes 1,
/// with a note, rather than a truncated value that could read as success.
fn exit_status_of(status: qemu_qapi::guest::ExitStatus) -> (u8, Option<String>) {
    use qemu_qapi::guest::ExitStatus;
    match status {
        ExitStatus::Code(c) => match u8::try_from(c) {
            Ok(code) => (code, None),
            Err(_) => (
                1,
                Some(format!(
                    "the program's exit code {c} does not fit an exit status; exiting with 1"
                )),
            ),
        },
        ExitStatus::Signal(n) => {
            let note = Some(format!("the program was killed by signal {n}"));
            // Checked: the number comes from the agent.
            match 128i64.checked_add(n).map(u8::try_from) {
                Some(Ok(code)) => (code, note),
                _ => (1, note),
            }
        }
        ExitStatus::Unknown => (
            1,
            Some("the guest agent gave no exit code for the program; exiting with 1".into()),
        ),
    }
}

/// Writes `bytes` to stdout or stderr; a closed pipe is not an error (as
/// [`print_json`]).
fn write_all_to(mut out: impl std::io::Write, bytes: &[u8], name: &str) -> Result<(), String> {
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(format!("writing to {name}: {e}")),
    }
}

/// `qmp --ga`: `call` or `exec` through a guest agent on `socket`.
async fn run_ga(cli: &Cli, socket: &Path) -> Result<Done, String> {
    let timeout = cli.timeout.map(Duration::from_secs_f64);
    // Validate what needs no agent before connecting, as `run` does.
    let call_args = match &cli.command {
        Cmd::Call {
            command,
            args,
            no_check,
            ..
        } => {
            let v = parse_call_args(args.as_deref())?;
            if !no_check {
                let empty = Value::Object(Default::default());
                check_ga_arguments(command, v.as_ref().unwrap_or(&empty))?;
            }
            v
        }
        _ => None,
    };
    let client = qmp::ga::Config::new()
        .call_timeout(timeout)
        .connect_path(socket)
        .await
        .map_err(|e| e.to_string())?;
    let result = match &cli.command {
        Cmd::Call {
            command,
            compact,
            no_check,
            ..
        } => {
            let never_answers = qemu_qapi::ga::commands::COMMANDS
                .iter()
                .any(|c| c.name == command && !c.success_response);
            let args = call_args
                .clone()
                .unwrap_or(Value::Object(Default::default()));
            match never_answers {
                true => match call_without_reply(&client, command, args).await {
                    Some(sent) => sent.map(|()| {
                        eprintln!("qmp: `{command}` sent; it sends no reply");
                        Done::Ok
                    }),
                    None => Err(format!(
                        "`{command}` never answers (success-response: false) and this program \
                         cannot send it"
                    )),
                },
                false => match client.execute_raw(command, call_args.as_ref()).await {
                    Ok(reply) => {
                        let checked = if *no_check {
                            Ok(())
                        } else {
                            check_reply_with(
                                command,
                                &reply,
                                qemu_qapi::ga::commands::check_command_reply,
                            )
                        };
                        print_json(&reply, *compact).map(|_| match checked {
                            Ok(()) => Done::Ok,
                            Err(m) => Done::Mismatch(m),
                        })
                    }
                    Err(e) => Err(e.to_string()),
                },
            }
        }
        Cmd::Exec { argv } => {
            let (program, args) = argv.split_first().ok_or("no program given")?;
            let exec = qemu_qapi::guest::Exec::new(program.as_str())
                .args(args)
                .timeout(timeout);
            match qemu_qapi::guest::exec(&client, &exec).await {
                Ok(out) => {
                    write_all_to(std::io::stdout().lock(), &out.stdout, "stdout")?;
                    write_all_to(std::io::stderr().lock(), &out.stderr, "stderr")?;
                    for (truncated, stream) in [
                        (out.stdout_truncated, "stdout"),
                        (out.stderr_truncated, "stderr"),
                    ] {
                        if truncated {
                            eprintln!(
                                "qmp: warning: the guest agent kept only the start of the \
                                 program's {stream}"
                            );
                        }
                    }
                    let (code, note) = exit_status_of(out.status);
                    if let Some(note) = note {
                        eprintln!("qmp: {note}");
                    }
                    Ok(Done::Exited(code))
                }
                Err(e) => Err(e.to_string()),
            }
        }
        other => Err(format!("`{}` is not available with --ga", other.name())),
    };
    client.close().await;
    result
}

async fn interrupted() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return "interrupted";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupted",
        _ = term.recv() => "terminated",
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(usage) = ga_usage_error(&cli) {
        use clap::CommandFactory;
        Cli::command()
            .error(clap::error::ErrorKind::ArgumentConflict, usage)
            .exit();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("qmp: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        // (`--ga serve` is `serve`'s, below.)
        if let (true, Some(socket), false) = (
            cli.ga,
            &cli.socket,
            matches!(cli.command, Cmd::Serve { .. }),
        ) {
            return tokio::select! {
                r = run_ga(&cli, socket) => r,
                why = interrupted() => Err(why.to_owned()),
            };
        }
        if let Cmd::Serve { replay } = &cli.command {
            let options = qmp::server::serve::ServeOptions {
                socket: cli.socket.clone(),
                tcp: cli.tcp.clone(),
                replay: replay.clone(),
                record: cli.record.clone(),
                record_secrets: cli.record_secrets,
                guest_agent: cli.ga,
            };
            return qmp::server::serve::run(&options).await.map(|()| Done::Ok);
        }
        if let Cmd::Proxy {
            listen,
            read_only_listen,
            allow,
            no_oob,
        } = &cli.command
        {
            // `run` checks its options (exactly one of --socket/--tcp: no private
            // QEMU for a proxy) and serves until interrupted or QEMU goes away.
            let options = qmp::proxy::ProxyOptions {
                socket: cli.socket.clone(),
                tcp: cli.tcp.clone(),
                listen: listen.clone(),
                read_only_listen: read_only_listen.clone(),
                read_only_allow: allow.clone(),
                no_oob: *no_oob,
            };
            return qmp::proxy::run(&options).await.map(|()| Done::Ok);
        }
        // The private QEMU (if any) lives in this scope: it is killed on every way out.
        let mut daemon = None;
        let mut started = None;
        let socket = match (&cli.socket, &cli.tcp) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(_)) => None,
            (None, None) => {
                // `compat` compares with the bindings, which are a system emulator's;
                // the rest takes the lighter storage daemon.
                let (what, d) = match cli.command {
                    Cmd::Compat { .. } | Cmd::Shell(_) => (
                        "qemu-system-x86_64 -M none",
                        qmp::local::LocalQemu::system_none(),
                    ),
                    _ => (
                        "qemu-storage-daemon",
                        qmp::local::LocalQemu::storage_daemon(),
                    ),
                };
                // Killed when dropped, on every way out.
                let mut d = d.map_err(|e| format!("no --socket or --tcp given, and {e}"))?;
                d.wait_for_socket(Duration::from_secs(10))
                    .map_err(|e| e.to_string())?;
                let s = d.socket().to_owned();
                daemon = Some(d);
                started = Some(what);
                Some(s)
            }
        };
        let r = tokio::select! {
            r = run(&cli, socket.as_deref(), started) => r,
            why = interrupted() => Err(why.to_owned()),
        };
        drop(daemon);
        r
    });

    match result {
        Ok(Done::Ok) => ExitCode::SUCCESS,
        Ok(Done::Mismatch(m)) => {
            eprintln!("qmp: {m}");
            ExitCode::from(EXIT_REPLY_MISMATCH)
        }
        Ok(Done::NotSupported(why)) => {
            eprintln!("qmp: {why}");
            ExitCode::from(EXIT_NOT_SUPPORTED)
        }
        Ok(Done::Exited(code)) => ExitCode::from(code),
        Err(e) => {
            eprintln!("qmp: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A negative, infinite or non-numeric `--timeout` is a usage error, not a panic
    /// (`Duration::from_secs_f64(-1.0)` panics).
    #[test]
    fn bad_timeouts_are_usage_errors() {
        for bad in ["-1", "inf", "NaN", "1e300", "soon"] {
            let e = Cli::try_parse_from(["qmp", "--timeout", bad, "schema"]).unwrap_err();
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{bad}: {e}"
            );
            assert!(
                e.to_string().contains("is not a number of seconds"),
                "{bad}: {e}"
            );
        }
        let ok = Cli::try_parse_from(["qmp", "--timeout", "0.5", "schema"]).unwrap();
        assert_eq!(ok.timeout, Some(0.5));
    }

    #[test]
    fn arguments_must_be_an_object() {
        let e = check_arguments("blockdev-del", &serde_json::json!([1])).unwrap_err();
        assert!(
            e.contains("`blockdev-del`") && e.contains("an array"),
            "{e}"
        );
    }

    #[test]
    fn replies_are_decoded_with_the_bindings() {
        let ok = serde_json::json!({"status": "running", "running": true});
        assert!(check_reply("query-status", &ok).is_ok());
        let m = check_reply("query-status", &serde_json::json!({"running": true})).unwrap_err();
        assert_eq!(m.command, "query-status");
        assert_eq!(m.path, "return");
        assert_eq!(m.message, "missing field `status`");
        let m = check_reply(
            "query-version",
            &serde_json::json!({"qemu": {"major": "x", "minor": 0, "micro": 0}, "package": ""}),
        )
        .unwrap_err();
        assert_eq!(m.path, "return.qemu.major");
        assert!(m.to_string().contains("`query-version`"), "{m}");
        // Commands the bindings lack are not checked (they were sent with --no-check).
        assert!(check_reply("no-such-command", &ok).is_ok());
    }

    /// A peer with `blockdev-del`, `device_add` and `x-old` (a command the bindings
    /// lack), its types masked as QEMU masks them.
    fn peer_schema() -> qmp::schema_check::Schema {
        qmp::schema_check::Schema::from_introspection(&serde_json::json!([
            {"name": "str", "meta-type": "builtin", "json-type": "string"},
            {"name": "0", "meta-type": "object", "members": []},
            {"name": "1", "meta-type": "object", "members": [{"name": "node-name", "type": "str"}]},
            {"name": "2", "meta-type": "object", "members": [
                {"name": "driver", "type": "str"}, {"name": "id", "type": "str", "default": null}]},
            {"name": "blockdev-del", "meta-type": "command", "arg-type": "1", "ret-type": "0"},
            {"name": "device_add", "meta-type": "command", "arg-type": "2", "ret-type": "0"},
            {"name": "x-old", "meta-type": "command", "arg-type": "0", "ret-type": "0"}
        ]))
        .unwrap()
    }

    #[test]
    fn arguments_are_checked_against_the_peer() {
        let s = peer_schema();
        let check = |c: &str, a: Value| check_against_peer(&s, "QEMU 7.2.22", c, &a);
        assert!(check("blockdev-del", serde_json::json!({"node-name": "n0"})).is_ok());
        // A command the bindings lack, but the peer has.
        assert!(check("x-old", serde_json::json!({})).is_ok());
        // A command the peer lacks: named with the peer, and the bindings have it.
        let e = check("blockdev-set-active", serde_json::json!({})).unwrap_err();
        assert!(
            e.contains("QEMU 7.2.22 has no command `blockdev-set-active`")
                && e.contains("the bindings this program was built with have it")
                && e.contains("nothing was sent"),
            "{e}"
        );
        // QEMU's own wording for a bad member.
        let e = check("blockdev-del", serde_json::json!({"node_name": "n0"})).unwrap_err();
        assert!(
            e.contains("QEMU 7.2.22 would refuse the arguments of `blockdev-del`")
                && e.contains("Parameter 'node-name' is missing"),
            "{e}"
        );
        // device_add takes the device's properties too.
        assert!(check(
            "device_add",
            serde_json::json!({"driver": "e1000", "mac": "x"})
        )
        .is_ok());
        let e = check("blockdev-del", serde_json::json!("n0")).unwrap_err();
        assert!(e.contains("must be a JSON object"), "{e}");
    }

    #[test]
    fn compat_takes_the_schema_the_client_keeps() {
        // The bindings' side is indexed once per process.
        let first = qemu_qapi::bindings_schema().unwrap();
        assert!(std::ptr::eq(first, qemu_qapi::bindings_schema().unwrap()));
        let peer = qmp::PeerSchema::from_index(peer_schema());
        let drift = qemu_qapi::drift(&peer).unwrap();
        assert!(drift.is_fully_supported("blockdev-del"), "{drift}");
        assert_eq!(
            drift.support("x-old"),
            qmp::drift::Support::NotInBindings { in_peer: true }
        );
        assert!(!drift.is_fully_supported("blockdev-set-active"));
        assert!(drift.commands_only_in_peer() == ["x-old"], "{drift}");
    }

    #[test]
    fn compat_lists_every_difference_or_judges_the_required_commands() {
        let bindings = serde_json::json!([
            {"name": "str", "meta-type": "builtin", "json-type": "string"},
            {"name": "q_empty", "meta-type": "object", "members": []},
            {"name": "A", "meta-type": "object", "members": [{"name": "node-name", "type": "str"},
                {"name": "force", "type": "str", "default": null}]},
            {"name": "blockdev-del", "meta-type": "command", "arg-type": "A", "ret-type": "q_empty"},
            {"name": "query-jobs", "meta-type": "command", "arg-type": "q_empty", "ret-type": "q_empty"}
        ]);
        let peer = serde_json::json!([
            {"name": "str", "meta-type": "builtin", "json-type": "string"},
            {"name": "0", "meta-type": "object", "members": []},
            {"name": "1", "meta-type": "object", "members": [{"name": "node-name", "type": "str"}]},
            {"name": "blockdev-del", "meta-type": "command", "arg-type": "1", "ret-type": "0"},
            {"name": "query-jobs", "meta-type": "command", "arg-type": "0", "ret-type": "0"}
        ]);
        let drift = qmp::drift::Drift::between_json(&bindings, &peer).unwrap();
        let (all, failure) = compat_report(&drift, "QEMU 7.2.22", &[]);
        assert!(failure.is_none());
        assert!(
            all.starts_with(
                "qmp compat: the bindings this program was built with against QEMU 7.2.22\n"
            ),
            "{all}"
        );
        assert!(
            all.contains("\n- command blockdev-del member force: only in the bindings, optional (breaks calls)\n"),
            "{all}"
        );
        assert!(
            all.ends_with("1 only in the peer\n") || all.contains("1 difference"),
            "{all}"
        );
        let require = |names: &[&str]| {
            let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            compat_report(&drift, "QEMU 7.2.22", &names)
        };
        let (out, failure) = require(&["query-jobs"]);
        assert!(failure.is_none(), "{out}");
        assert!(out.contains("query-jobs: fully supported"), "{out}");
        let (out, failure) = require(&["query-jobs", "blockdev-del", "nope"]);
        assert!(
            out.contains("blockdev-del: not fully supported (1 difference breaks calls):\n  - command blockdev-del member force"),
            "{out}"
        );
        assert!(
            out.contains("nope: neither the bindings nor the peer have it"),
            "{out}"
        );
        assert_eq!(
            failure.as_deref(),
            Some("QEMU 7.2.22 does not fully support blockdev-del, nope (of the 3 required)")
        );
    }

    #[test]
    fn ga_arguments_and_replies_are_checked_against_the_guest_agents_bindings() {
        assert!(check_ga_arguments("guest-info", &serde_json::json!({})).is_ok());
        assert!(check_ga_arguments("guest-exec-status", &serde_json::json!({"pid": 1})).is_ok());
        let e =
            check_ga_arguments("guest-exec-status", &serde_json::json!({"pid": "x"})).unwrap_err();
        assert!(
            e.contains("`guest-exec-status`") && e.contains("guest agent"),
            "{e}"
        );
        let e = check_ga_arguments("query-version", &serde_json::json!({})).unwrap_err();
        assert!(
            e.contains("unknown guest-agent command `query-version`"),
            "{e}"
        );
        let e = check_ga_arguments("guest-info", &serde_json::json!([])).unwrap_err();
        assert!(e.contains("must be a JSON object"), "{e}");
        let checker = qemu_qapi::ga::commands::check_command_reply;
        assert!(check_reply_with("guest-get-time", &serde_json::json!(17), checker).is_ok());
        let m = check_reply_with("guest-get-time", &serde_json::json!("x"), checker).unwrap_err();
        assert_eq!(m.command, "guest-get-time");
    }

    #[test]
    fn exit_statuses_pass_the_programs_on() {
        use qemu_qapi::guest::ExitStatus;
        assert_eq!(exit_status_of(ExitStatus::Code(0)), (0, None));
        assert_eq!(exit_status_of(ExitStatus::Code(3)).0, 3);
        assert_eq!(exit_status_of(ExitStatus::Signal(9)).0, 137);
        let (code, note) = exit_status_of(ExitStatus::Code(0x1_0000_0000));
        assert_eq!(code, 1);
        assert!(note.unwrap().contains("4294967296"));
        assert_eq!(exit_status_of(ExitStatus::Unknown).0, 1);
        assert_eq!(exit_status_of(ExitStatus::Signal(i64::MAX)).0, 1);
    }

    #[test]
    fn ga_usage_errors_name_what_works() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("qmp").chain(args.iter().copied())).unwrap()
        };
        assert!(ga_usage_error(&parse(&["--ga", "--socket", "s", "call", "guest-ping"])).is_none());
        let cli = parse(&[
            "--ga",
            "--socket",
            "s",
            "exec",
            "--timeout",
            "5",
            "--",
            "uname",
            "-a",
        ]);
        assert!(ga_usage_error(&cli).is_none());
        assert_eq!(cli.timeout, Some(5.0));
        assert!(matches!(&cli.command, Cmd::Exec { argv } if argv == &["uname", "-a"]));
        let e = ga_usage_error(&parse(&["--ga", "call", "guest-ping"])).unwrap();
        assert!(e.contains("--ga needs --socket PATH"), "{e}");
        assert!(ga_usage_error(&parse(&["--ga", "--tcp", "h:1", "serve"])).is_none());
        let e = ga_usage_error(&parse(&["--ga", "--socket", "s", "schema"])).unwrap();
        assert!(
            e.contains("`schema`") && e.contains("`call` and `exec`"),
            "{e}"
        );
        let e = ga_usage_error(&parse(&["--socket", "s", "exec", "--", "true"])).unwrap();
        assert!(e.contains("--ga"), "{e}");
    }

    #[test]
    fn arguments_are_checked_against_the_bindings() {
        assert!(check_arguments("query-version", &serde_json::json!({})).is_ok());
        assert!(check_arguments("blockdev-del", &serde_json::json!({"node-name": "n0"})).is_ok());
        // A typo in a member name is refused, naming the member.
        let e =
            check_arguments("blockdev-del", &serde_json::json!({"node_name": "n0"})).unwrap_err();
        assert!(e.contains("node"), "{e}");
        // A mistyped member.
        let e = check_arguments("blockdev-del", &serde_json::json!({"node-name": 7})).unwrap_err();
        assert!(e.contains("`blockdev-del`"), "{e}");
        // An unknown command.
        let e = check_arguments("query-versoin", &serde_json::json!({})).unwrap_err();
        assert!(e.contains("unknown command `query-versoin`"), "{e}");
    }
}
