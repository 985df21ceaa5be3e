//! `qmp`: talk to QEMU's QMP monitor from the command line.
//!
//! ```text
//! qmp [--socket PATH | --tcp HOST:PORT] call COMMAND [JSON-ARGS]   # prints the reply
//! qmp [--socket PATH | --tcp HOST:PORT] events [--count N]         # JSON lines
//! qmp [--socket PATH | --tcp HOST:PORT] schema                     # query-qmp-schema
//! qmp (--socket PATH | --tcp HOST:PORT) serve [--replay FILE]       # a test server
//! ```
//!
//! `--record FILE` records the session's traffic as a transcript (JSON lines);
//! `qmp serve --replay FILE` serves such a transcript back (see `qmp::server`).
//!
//! Without `--socket`/`--tcp`, it starts a private `qemu-storage-daemon` with a QMP
//! monitor on a socket in a temporary directory, and stops it on exit (also on error
//! and on Ctrl-C or SIGTERM), so `qmp call query-version` works on a fresh machine.
//!
//! `call` checks the arguments against the bindings this program was built with before
//! sending anything, and decodes the reply with the command's typed reply, as
//! `Client::execute` would. A reply that does not decode (a QEMU of another release
//! than the bindings: a member one side requires and the other lacks) is still printed
//! in full on stdout, with a warning naming the command and the member on stderr, and
//! the exit status is 3. `--no-check` skips both checks.
//!
//! Exit status: 0 success; 1 an error (connection, QEMU's error reply, bad arguments);
//! 2 a usage error; 3 `call` printed a reply that does not fit the bindings. 3 rather
//! than 0 so that a script learns that the typed bindings (and so Rust code built on
//! them) would fail on this QEMU; rather than 1 so that it can still take the reply
//! (`qmp call … || [ $? -eq 3 ]`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde_json::Value;

#[derive(Parser, Debug)]
#[command(
    name = "qmp",
    version,
    about = "Talk to QEMU's QMP monitor",
    after_help = "Exit status: 0 success; 1 error; 2 usage error; 3 `call` printed a reply \
                  that does not decode with the bindings this program was built with \
                  (a warning on stderr names the command and the member)."
)]
struct Cli {
    /// Path of QEMU's QMP Unix socket.
    #[arg(long, global = true, value_name = "PATH", conflicts_with = "tcp")]
    socket: Option<PathBuf>,
    /// Address of QEMU's QMP TCP socket.
    #[arg(long, global = true, value_name = "HOST:PORT")]
    tcp: Option<String>,
    /// Give up on a call after this many seconds.
    #[arg(long, global = true, value_name = "SECONDS")]
    timeout: Option<f64>,
    /// Record the traffic to this transcript file (with `serve`: every session's).
    #[arg(long, global = true, value_name = "FILE")]
    record: Option<PathBuf>,
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
        /// Send the command even if the bindings (QEMU 10.0's system schema) do not
        /// know it or would refuse its arguments, e.g. for a newer QEMU, and do not
        /// decode the reply with them.
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
    /// Serve QMP on --socket or --tcp until stopped: replay a transcript, or (without
    /// --replay) answer only `query-version`.
    Serve {
        /// The transcript to replay (recorded with --record).
        #[arg(long, value_name = "FILE")]
        replay: Option<PathBuf>,
    },
}

/// Checks a command's arguments before anything is sent, against the bindings this
/// program was built with (`qemu-qapi`, QEMU 10.0's system schema by default): an
/// unknown command, or a missing, unexpected or mistyped member, is reported by name
/// without a round trip to QEMU.
fn check_arguments(command: &str, args: &Value) -> Result<(), String> {
    if !args.is_object() {
        return Err(format!(
            "the arguments of `{command}` must be a JSON object, not {}",
            match args {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::String(_) => "a string",
                Value::Array(_) => "an array",
                Value::Object(_) => "an object",
            }
        ));
    }
    match qemu_qapi::commands::check_command_arguments(command, args) {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => Err(format!(
            "bad arguments for `{command}`: {e} (use --no-check to send them anyway)"
        )),
        None => Err(format!(
            "unknown command `{command}`: the bindings this program was built with do not \
             have it (use --no-check to send it anyway)"
        )),
    }
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
    // The text the typed decoder reads: member order and spacing do not matter to it.
    let text = reply.to_string();
    let Some(Err(e)) = qemu_qapi::commands::check_command_reply(command, &text) else {
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
    let mut config = qmp::Config::new();
    config.call_timeout(cli.timeout.map(Duration::from_secs_f64));
    if let Some(file) = &cli.record {
        // The client's own traffic hook: the session is recorded as the client sends
        // and receives it (fd passing keeps working, unlike through a proxy).
        let hook = qmp::server::transcript::Recorder::create(file)
            .map_err(|e| format!("{}: {e}", file.display()))?;
        config.traffic_hook(std::sync::Arc::new(hook));
    }
    let r = match (&cli.tcp, socket) {
        (Some(addr), _) => config.connect_tcp(addr.as_str()).await,
        (None, Some(path)) => config.connect_unix(path).await,
        (None, None) => unreachable!("a socket is always chosen"),
    };
    r.map_err(|e| e.to_string())
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

/// How a run ended well: `Mismatch` when `call` printed a reply that does not decode.
enum Done {
    Ok,
    Mismatch(ReplyMismatch),
}

async fn run(cli: &Cli, socket: Option<&Path>) -> Result<Done, String> {
    // Validate before connecting, so a typo costs no round trip.
    let call_args = match &cli.command {
        Cmd::Call {
            command,
            args,
            no_check,
            ..
        } => {
            let v: Option<Value> = args
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| format!("the arguments are not valid JSON: {e}"))?;
            if !no_check {
                let empty = Value::Object(Default::default());
                check_arguments(command, v.as_ref().unwrap_or(&empty))?;
            }
            v
        }
        _ => None,
    };
    let client = connect(cli, socket).await?;
    let result = match &cli.command {
        Cmd::Call {
            command,
            compact,
            no_check,
            ..
        } => {
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
        Cmd::Serve { .. } => Err("`serve` is handled before connecting".into()),
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
        if let Cmd::Serve { replay } = &cli.command {
            let options = qmp::server::serve::ServeOptions {
                socket: cli.socket.clone(),
                tcp: cli.tcp.clone(),
                replay: replay.clone(),
                record: cli.record.clone(),
            };
            return qmp::server::serve::run(&options).await.map(|()| Done::Ok);
        }
        // The daemon (if any) lives in this scope: it is killed on every way out.
        let mut daemon = None;
        let socket = match (&cli.socket, &cli.tcp) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(_)) => None,
            (None, None) => {
                // Killed when dropped, on every way out.
                let mut d = qmp::local::LocalQemu::storage_daemon()
                    .map_err(|e| format!("no --socket or --tcp given, and {e}"))?;
                d.wait_for_socket(Duration::from_secs(10))
                    .map_err(|e| e.to_string())?;
                let s = d.socket().to_owned();
                daemon = Some(d);
                Some(s)
            }
        };
        let r = tokio::select! {
            r = run(&cli, socket.as_deref()) => r,
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
        Err(e) => {
            eprintln!("qmp: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
