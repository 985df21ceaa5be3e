//! `qmp shell`: an interactive QMP shell with the habits of QEMU's qmp-shell.
//!
//! - Lines are `command key=value ...` (qmp-shell's shorthand: see `shell_input.rs`,
//!   with its `transaction(` ... `)` sub-shell) or raw JSON requests
//!   (`{"execute": ..., "arguments": {...}}`); with `--hmp` (qmp-shell's `-H`) they
//!   are HMP commands, sent with `human-monitor-command` (`cpu N` picks the CPU, as
//!   in qmp-shell).
//! - Tab completes command names, argument names and enum values from the peer's
//!   schema (`shell_complete.rs`); HMP commands with `--hmp`.
//! - Events are printed as they arrive, above the line being typed, which stays as
//!   it was (rustyline's `ExternalPrinter`).
//! - History is kept between sessions in `$XDG_STATE_HOME/qmp/history` (or
//!   `~/.local/state/qmp/history`; `history-hmp` for `--hmp`), or `--history FILE`;
//!   only when the input is a terminal (piped commands are not recorded).
//! - Replies are printed as qmp-shell prints them, the whole response
//!   (`{"return": ...}`), pretty (4 spaces, sorted keys, as `qmp-shell -p`) or one
//!   line each with `--compact`; an error reply or a bad line is reported on stderr
//!   and the shell goes on.
//! - Ctrl-D ends the shell (exit status 0); Ctrl-C drops the line being typed (and an
//!   open transaction). After a successful `quit` (QEMU stops) it ends with status 0.
//!
//! # Reconnecting
//!
//! On a QEMU the user named (`--socket PATH`, `--tcp HOST:PORT`) the shell talks
//! through `qmp::reconnect::ReconnectingClient`, as QEMU's qmp-shell talks through
//! the layer above its socket: when the connection is lost (QEMU restarted, upgraded,
//! its socket made again) it says so above the prompt, without breaking the line
//! being typed, tries again (100 ms, then twice as long each time, up to 2 s between
//! attempts), and says `reconnected to QEMU x.y.z` when it is back; the event
//! stream's gap notice (events sent while nobody listened are lost) is shown as a
//! note. Completion is then refreshed from the new QEMU's schema (it may be another
//! release). A command typed while reconnecting waits for the connection, up to
//! `--timeout` seconds (10 s without it), then is reported as not sent; a command
//! whose connection is lost before its reply is reported as not retried (it may or may
//! not have run): nothing is ever sent twice. By default the shell never gives up
//! (the operator is there: Ctrl-D leaves); `--reconnect-give-up SECONDS` ends it with
//! status 1 after that long without a connection, and `--no-reconnect` ends it with
//! status 1 as soon as the connection is lost.
//!
//! The private QEMU the program starts when neither is given dies with the shell, so
//! there is nothing to reconnect to: a lost connection ends the shell with status 1.
//!
//! The connection is behind [`Backend`]: what the shell needs is to execute a
//! command, a stream of events, to learn that the connection is gone for good, and
//! (for a reconnecting client) the connection's state changes. It is implemented for
//! `qmp::Client` (no reconnection) and for [`Reconnecting`].

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qmp::reconnect::{Address, ReconnectState, ReconnectStateWatch, ReconnectingClient};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, Context, Editor, ExternalPrinter, Helper};
use serde::Serialize;
use serde_json::{Map, Value};

#[path = "shell_complete.rs"]
mod complete;
#[path = "shell_input.rs"]
mod input;

use complete::{Completion, SchemaIndex};
use input::{Parser, Request};

/// How long a command typed while reconnecting waits for the connection without
/// `--timeout`.
const DEFAULT_RECONNECT_WAIT: Duration = Duration::from_secs(10);
/// The longest pause between two reconnection attempts: QEMU restarted by hand is
/// back within seconds, and an attempt on a socket is cheap.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(2);

/// `qmp shell`'s options.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "With --socket or --tcp the shell reconnects by itself when the \
                        connection is lost (QEMU restarted): it says so above the prompt, \
                        and `reconnected to QEMU x.y.z` once back (completion then follows \
                        the new QEMU's schema). A command typed meanwhile waits up to \
                        --timeout seconds (10 without it) and is then reported as not \
                        sent; one whose connection was lost before its reply is reported \
                        as not retried (it may or may not have run). It never gives up \
                        unless --reconnect-give-up says so; Ctrl-D leaves. Without \
                        --socket or --tcp the shell's own QEMU dies with it: a lost \
                        connection ends it.\n\n\
                        Exit status: 0 after Ctrl-D, end of input or a successful `quit`; \
                        1 when the connection is lost for good (--no-reconnect, \
                        --reconnect-give-up, the private QEMU died) or the terminal fails."
)]
pub struct ShellArgs {
    /// Lines are HMP commands, sent with `human-monitor-command` (qmp-shell's -H).
    #[arg(long, short = 'H')]
    pub hmp: bool,
    /// Print each reply and event on one line instead of pretty-printing.
    #[arg(long)]
    pub compact: bool,
    /// Print each request as sent (JSON) before its reply (qmp-shell's -v).
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// Keep the history in FILE [default: $XDG_STATE_HOME/qmp/history, or
    /// ~/.local/state/qmp/history; `history-hmp` with --hmp].
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,
    /// Keep no history between sessions.
    #[arg(long, conflicts_with = "history")]
    pub no_history: bool,
    /// Do not reconnect: end the shell (status 1) when the connection to the QEMU
    /// named with --socket or --tcp is lost.
    #[arg(long)]
    pub no_reconnect: bool,
    /// Stop reconnecting after SECONDS without a connection, ending the shell with
    /// status 1 [default: never; Ctrl-D leaves].
    #[arg(
        long,
        value_name = "SECONDS",
        conflicts_with = "no_reconnect",
        value_parser = seconds
    )]
    pub reconnect_give_up: Option<Duration>,
}

/// A number of seconds (`1.5`), refused when negative, not a number or too large,
/// rather than panicking on it.
fn seconds(text: &str) -> Result<Duration, String> {
    let n: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds (e.g. 60 or 0.5)"))?;
    Duration::try_from_secs_f64(n)
        .map_err(|_| format!("`{text}` is not a number of seconds from 0 up (e.g. 60 or 0.5)"))
}

/// Why a call failed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The client's error: QEMU's error reply, a lost connection, a timeout...
    Qmp(qmp::Error),
    /// The shell did not send the command (no connection in time); the text says why.
    NotSent(String),
}

impl From<qmp::Error> for CallError {
    fn from(e: qmp::Error) -> CallError {
        CallError::Qmp(e)
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Qmp(e) => e.fmt(f),
            CallError::NotSent(why) => f.write_str(why),
        }
    }
}

impl CallError {
    fn qmp_error(&self) -> Option<&qmp::QmpError> {
        match self {
            CallError::Qmp(e) => e.qmp_error(),
            CallError::NotSent(_) => None,
        }
    }
}

/// For a call that got no reply: whether QEMU may have run it (sent, or partly
/// written, then the connection ended or the call timed out) or surely did not (not
/// sent), so the user knows whether running it again is safe. `None` when it ran (an
/// error reply, a reply that did not decode) or nothing is known.
fn call_hint(command: &str, e: &CallError) -> Option<String> {
    let sent = match e {
        CallError::NotSent(_) => false,
        CallError::Qmp(q) if q.may_have_run() => true,
        CallError::Qmp(q) if q.is_not_sent() => false,
        CallError::Qmp(_) => return None,
    };
    Some(if sent {
        format!(
            "`{command}` got no reply, but QEMU may have run it: check its effect before \
             running it again"
        )
    } else {
        format!("`{command}` was not sent to QEMU: running it again is safe")
    })
}

/// What the shell needs of its connection (see the module docs).
pub(crate) trait Backend {
    /// A stream of events (the connection's, or following the connections).
    type Events;
    /// Runs a command, returning its `return` value.
    fn execute(
        &self,
        name: &str,
        args: &Map<String, Value>,
        oob: bool,
    ) -> impl Future<Output = Result<Value, CallError>>;
    /// Every event from now on.
    fn events(&self) -> Self::Events;
    /// The next event of `events`; `None` once it ended.
    fn next_event(
        events: &mut Self::Events,
    ) -> impl Future<Output = Option<qmp::Result<qmp::RawEvent>>>;
    /// Resolves when the connection is gone for good, with the message that ends the
    /// shell.
    fn lost(&self) -> impl Future<Output = String>;
    /// Whether a call's failure means the connection is gone for good.
    fn gone(&self, e: &CallError) -> bool;
    /// The peer, for the banner (`QEMU 10.0.2`).
    fn peer(&self) -> String;
    /// For a client that reconnects: a watch of its state, its address and how long a
    /// command waits for a connection.
    fn reconnecting(&self) -> Option<(ReconnectStateWatch, String, Duration)>;
}

/// The version in a greeting, `QEMU 10.0.2`.
fn peer_of(client: &qmp::Client) -> String {
    let v = &client.greeting().qmp.version.qemu;
    format!("QEMU {}.{}.{}", v.major, v.minor, v.micro)
}

impl Backend for qmp::Client {
    type Events = qmp::EventStream<qmp::RawEvent>;

    async fn execute(
        &self,
        name: &str,
        args: &Map<String, Value>,
        oob: bool,
    ) -> Result<Value, CallError> {
        let args = (!args.is_empty()).then_some(args);
        Ok(if oob {
            self.execute_oob_raw(name, args).await?
        } else {
            self.execute_raw(name, args).await?
        })
    }

    fn events(&self) -> Self::Events {
        self.subscribe_raw()
    }

    async fn next_event(events: &mut Self::Events) -> Option<qmp::Result<qmp::RawEvent>> {
        events.next().await
    }

    async fn lost(&self) -> String {
        let why = self.closed().await;
        format!(
            "the connection to QEMU was lost ({why}); the shell ends (start it again once \
             QEMU is back)"
        )
    }

    fn gone(&self, e: &CallError) -> bool {
        matches!(e, CallError::Qmp(e) if e.is_closed())
    }

    fn peer(&self) -> String {
        peer_of(self)
    }

    fn reconnecting(&self) -> Option<(ReconnectStateWatch, String, Duration)> {
        None
    }
}

/// A connection to a QEMU the user named, kept up by `ReconnectingClient` (see the
/// module docs).
pub(crate) struct Reconnecting {
    client: ReconnectingClient,
    /// How long a command typed while reconnecting waits for the connection.
    wait: Duration,
}

impl Reconnecting {
    /// Connects to `address` (once: a wrong address fails at once) and keeps the
    /// connection up with the shell's options. `timeout` is `--timeout`, in seconds.
    pub(crate) async fn connect(
        config: &qmp::Config,
        address: Address,
        timeout: Option<f64>,
        args: &ShellArgs,
    ) -> Result<Reconnecting, String> {
        let wait = match timeout {
            None => DEFAULT_RECONNECT_WAIT,
            Some(t) => Duration::try_from_secs_f64(t).map_err(|_| {
                format!("--timeout {t}: not a number of seconds from 0 up (e.g. 30 or 0.5)")
            })?,
        };
        let client = ReconnectingClient::builder(config, address)
            .max_delay(MAX_RECONNECT_DELAY)
            .give_up_after(args.reconnect_give_up)
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        Ok(Reconnecting { client, wait })
    }

    /// The current connection, waiting up to `self.wait` for one while reconnecting.
    async fn connection(&self, name: &str) -> Result<qmp::Client, CallError> {
        if let Some(c) = self.client.current() {
            return Ok(c);
        }
        let mut watch = self.client.watch_connection_state();
        let waited = tokio::time::timeout(self.wait, async {
            loop {
                if let Some(c) = self.client.current() {
                    return Some(c);
                }
                // `None`: the client gave up or was closed.
                watch.next().await?;
            }
        })
        .await;
        match waited {
            Ok(Some(c)) => Ok(c),
            Ok(None) => Err(CallError::NotSent(format!(
                "`{name}` was not sent: {}",
                self.client.closed().await
            ))),
            Err(_) => Err(CallError::NotSent(format!(
                "`{name}` was not sent: QEMU at {} is not back after {:.1?} ({}); type it \
                 again once the shell says it reconnected (--timeout SECONDS waits longer)",
                self.client.address(),
                self.wait,
                self.client.connection_state()
            ))),
        }
    }
}

impl Backend for Reconnecting {
    type Events = qmp::reconnect::Subscription<qmp::RawEvent>;

    async fn execute(
        &self,
        name: &str,
        args: &Map<String, Value>,
        oob: bool,
    ) -> Result<Value, CallError> {
        let client = self.connection(name).await?;
        let args = (!args.is_empty()).then_some(args);
        if oob {
            // The reconnecting client has no `exec-oob`: the connection's own client
            // sends it (its error, if the connection is lost, is the connection's).
            return Ok(client.execute_oob_raw(name, args).await?);
        }
        // Through the reconnecting client, for its error when the connection is lost
        // during the call (saying it was not retried). It goes on `client`'s
        // connection: nothing is awaited between `connection` and this call's check on
        // the current-thread runtime, so it does not wait again (unbounded).
        Ok(self.client.execute_raw(name, args).await?)
    }

    fn events(&self) -> Self::Events {
        self.client.subscribe_raw()
    }

    async fn next_event(events: &mut Self::Events) -> Option<qmp::Result<qmp::RawEvent>> {
        events.next().await
    }

    async fn lost(&self) -> String {
        let why = self.client.closed().await;
        format!(
            "{why}; the shell ends (start it again once QEMU is back; --reconnect-give-up \
             SECONDS sets how long it tries)"
        )
    }

    fn gone(&self, _: &CallError) -> bool {
        self.client.connection_state().is_final()
    }

    fn peer(&self) -> String {
        match self.client.current() {
            Some(c) => peer_of(&c),
            None => format!("QEMU at {} (not connected)", self.client.address()),
        }
    }

    fn reconnecting(&self) -> Option<(ReconnectStateWatch, String, Duration)> {
        Some((
            self.client.watch_connection_state(),
            self.client.address().to_string(),
            self.wait,
        ))
    }
}

/// Runs the shell on a QEMU the user named, reconnecting (see the module docs).
pub(crate) async fn run_reconnecting(
    config: &qmp::Config,
    address: Address,
    timeout: Option<f64>,
    args: &ShellArgs,
) -> Result<(), String> {
    let backend = Reconnecting::connect(config, address, timeout, args).await?;
    let result = run(&backend, args).await;
    backend.client.close().await;
    result
}

/// Runs the shell on `backend` until Ctrl-D (`Ok`), or until the connection is lost
/// for good or the terminal fails (`Err`, saying which).
pub(crate) async fn run<B: Backend>(backend: &B, args: &ShellArgs) -> Result<(), String> {
    let first = completion(backend, args.hmp, &|note| eprintln!("{note}")).await;
    let completion = Arc::new(Mutex::new(first.unwrap_or_else(|| {
        eprintln!(
            "qmp: note: the connection to QEMU was lost while reading what completes: \
             nothing completes (until the shell reconnects)"
        );
        Completion::Nothing
    })));
    let in_transaction = Arc::new(AtomicBool::new(false));
    let config = Config::builder()
        .completion_type(CompletionType::List)
        .auto_add_history(false)
        .max_history_size(1024)
        .and_then(|c| c.history_ignore_dups(true))
        .map_err(|e| format!("cannot set the line editor up: {e}"))?
        .build();
    let mut editor: Editor<ShellHelper, FileHistory> = Editor::with_config(config)
        .map_err(|e| format!("cannot start the line editor on this terminal: {e}"))?;
    editor.set_helper(Some(ShellHelper {
        completion: completion.clone(),
        in_transaction: in_transaction.clone(),
    }));
    let interactive = std::io::stdin().is_terminal();
    let history = match (interactive, args.no_history) {
        (true, false) => history_file(args),
        _ => None,
    };
    if let Some(path) = &history {
        load_history(&mut editor, path);
    }
    // Restores the terminal's mode on every way out, also while the editor thread
    // is still reading a line in raw mode (connection lost, SIGTERM).
    let _terminal = TerminalMode::save();
    let out = Out::new(editor.create_external_printer().ok());
    println!(
        "Welcome to the {} shell!\nConnected to {}\n(Tab completes; Ctrl-D quits; events are \
         shown as they arrive)\n",
        if args.hmp { "HMP" } else { "QMP low-level" },
        backend.peer()
    );
    // Made before the first prompt, so that no event or state change is missed.
    let events = backend.events();
    let reconnecting = backend.reconnecting();

    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    let (prompts, prompts_rx) = std::sync::mpsc::channel::<String>();
    std::thread::Builder::new()
        .name("qmp-shell-editor".into())
        .spawn(move || edit_lines(editor, prompts_rx, lines_tx, history))
        .map_err(|e| format!("cannot start the line editor's thread: {e}"))?;

    let mut shell = Shell {
        args,
        parser: Parser::default(),
        cpu_index: None,
        in_transaction,
    };
    let main = async {
        loop {
            let prompt = if shell.parser.in_transaction() {
                "TRANS> "
            } else {
                "(QEMU) "
            };
            if prompts.send(prompt.to_owned()).is_err() {
                break Err("the line editor stopped".to_owned());
            }
            let input = tokio::select! {
                input = lines.recv() => input,
                why = backend.lost() => break Err(lost(why, interactive)),
            };
            match input {
                Some(Input::Line(text)) => {
                    // A paste of several lines comes as one (bracketed paste): each
                    // line runs in turn, but a JSON request may span lines.
                    let lines: Vec<&str> = if text.trim_start().starts_with('{') {
                        vec![text.as_str()]
                    } else {
                        text.lines().collect()
                    };
                    let mut flow = Flow::Go;
                    for line in lines {
                        flow = shell.line(backend, line, &out).await;
                        if !matches!(flow, Flow::Go) {
                            break;
                        }
                    }
                    match flow {
                        Flow::Go => {}
                        Flow::Quit => break Ok(()),
                        Flow::Lost => break Err(lost(backend.lost().await, interactive)),
                    }
                }
                Some(Input::Interrupted) => {
                    if shell.parser.cancel() {
                        shell.in_transaction.store(false, Ordering::Relaxed);
                        eprintln!("(transaction dropped)");
                    }
                }
                Some(Input::Eof) => break Ok(()),
                Some(Input::Failed(why)) => break Err(format!("reading the terminal: {why}")),
                None => break Err("the line editor stopped".to_owned()),
            }
        }
    };
    // The event printer and the reconnection notes run beside the shell's loop (in
    // this task: they borrow the backend); once done they wait for the loop to end.
    let pump = async {
        print_events::<B>(events, &out, args.compact).await;
        std::future::pending::<()>().await
    };
    let follow = async {
        if let Some((watch, address, wait)) = reconnecting {
            let f = Follow {
                out: &out,
                completion: &completion,
                hmp: args.hmp,
                address,
                wait,
            };
            f.run(backend, watch).await;
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        r = main => r,
        () = pump => unreachable!("the event printer never ends"),
        () = follow => unreachable!("the reconnection notes never end"),
    }
}

/// The message for a lost connection (the cursor may be on a half-typed line).
fn lost(why: String, interactive: bool) -> String {
    if interactive {
        println!();
    }
    why
}

/// What the shell says about a reconnecting client's connection, above the prompt.
struct Follow<'a> {
    out: &'a Out,
    completion: &'a Mutex<Completion>,
    hmp: bool,
    address: String,
    wait: Duration,
}

impl Follow<'_> {
    /// Says when the connection is lost and when it is back (then refreshes the
    /// completion from the new peer), until the client gives up.
    async fn run<B: Backend>(&self, backend: &B, mut watch: ReconnectStateWatch) {
        let mut peer = backend.peer();
        while let Some(t) = watch.next().await {
            match t.state {
                // Once per loss: later attempts are silent.
                ReconnectState::Reconnecting { attempt: 1, .. } => {
                    self.out.above_prompt(format!(
                        "qmp: the connection to QEMU was lost; reconnecting to {} (a \
                         command typed meanwhile waits up to {:.1?} for it)",
                        self.address, self.wait
                    ));
                }
                ReconnectState::Connected { .. } => {
                    let now = backend.peer();
                    let was = if now == peer {
                        String::new()
                    } else {
                        format!(" (was {peer})")
                    };
                    self.out
                        .above_prompt(format!("qmp: reconnected to {now}{was}"));
                    peer = now;
                    // QEMU may have been upgraded: complete from its own schema. Lost
                    // again meanwhile: the old stays until the next reconnection.
                    let note = |note| self.out.above_prompt(note);
                    if let Some(fresh) = completion(backend, self.hmp, &note).await {
                        *self.completion.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
                    }
                }
                _ => {}
            }
        }
    }
}

/// How a line ended.
enum Flow {
    Go,
    /// `quit` succeeded: QEMU is stopping.
    Quit,
    /// The connection is gone for good ([`Backend::gone`]).
    Lost,
}

struct Shell<'a> {
    args: &'a ShellArgs,
    parser: Parser,
    /// HMP's `cpu N`; until then no `cpu-index` is sent (qmp-shell sends 0, which
    /// a QEMU without CPUs, `-M none`, refuses).
    cpu_index: Option<i64>,
    /// Shared with the completer: lines are transaction actions.
    in_transaction: Arc<AtomicBool>,
}

impl Shell<'_> {
    async fn line<B: Backend>(&mut self, backend: &B, line: &str, out: &Out) -> Flow {
        if self.args.hmp {
            return self.hmp(backend, line).await;
        }
        let parsed = self.parser.line(line);
        self.in_transaction
            .store(self.parser.in_transaction(), Ordering::Relaxed);
        let request = match parsed {
            Ok(Some(r)) => r,
            Ok(None) => return Flow::Go,
            Err(e) => {
                eprintln!("Error while parsing command line: {e}\n{}", input::FORMAT);
                return Flow::Go;
            }
        };
        if self.args.verbose {
            out.now(&json_text(&request.to_json(), self.args.compact));
        }
        match backend
            .execute(&request.name, &request.args, request.oob)
            .await
        {
            Ok(v) => {
                let mut reply = Map::new();
                reply.insert("return".into(), v);
                out.now(&json_text(&Value::Object(reply), self.args.compact));
                if request.name == "quit" {
                    eprintln!("qmp: QEMU is quitting; the shell ends");
                    return Flow::Quit;
                }
                Flow::Go
            }
            Err(e) => self.failed(backend, &request, e),
        }
    }

    /// Reports a failed call; `Flow::Lost` when the connection is gone for good.
    fn failed<B: Backend>(&self, backend: &B, request: &Request, e: CallError) -> Flow {
        if backend.gone(&e) {
            // The shell ends with why the connection went; whether this command
            // ran is the user's next question.
            if let Some(hint) = call_hint(&request.name, &e) {
                eprintln!("qmp: {hint}");
            }
            return Flow::Lost;
        }
        match e.qmp_error() {
            Some(q) => eprintln!("Error: {}: {}", q.class, q.desc),
            None => {
                eprintln!("Error: `{}`: {e}", request.name);
                if let Some(hint) = call_hint(&request.name, &e) {
                    eprintln!("qmp: {hint}");
                }
            }
        }
        Flow::Go
    }

    /// An HMP line, as qmp-shell's `HMPShell` runs it.
    async fn hmp<B: Backend>(&mut self, backend: &B, line: &str) -> Flow {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(first) = words.first() else {
            return Flow::Go;
        };
        if *first == "cpu" {
            let Some(Ok(index)) = words.get(1).map(|w| w.parse::<i64>()) else {
                eprintln!("cpu command takes an integer argument");
                return Flow::Go;
            };
            // As qmp-shell does: the index is good if a command runs on it.
            match self.human(backend, "info version", Some(index)).await {
                Ok(_) => self.cpu_index = Some(index),
                Err(e) if backend.gone(&e) => return Flow::Lost,
                Err(_) => eprintln!("bad CPU index"),
            }
            return Flow::Go;
        }
        if self.args.verbose {
            eprintln!("(human-monitor-command: {line})");
        }
        match self.human(backend, line, self.cpu_index).await {
            Ok(text) => {
                let text = text.replace("\r\n", "\n");
                if !text.is_empty() {
                    print_text(&text);
                    if !text.ends_with('\n') {
                        print_text("\n");
                    }
                }
                Flow::Go
            }
            Err(e) if backend.gone(&e) => Flow::Lost,
            Err(e) => match e.qmp_error() {
                Some(q) => {
                    eprintln!("{}: {}", q.class, q.desc);
                    Flow::Go
                }
                None => {
                    eprintln!("Error: {e}");
                    Flow::Go
                }
            },
        }
    }

    async fn human<B: Backend>(
        &self,
        backend: &B,
        line: &str,
        cpu: Option<i64>,
    ) -> Result<String, CallError> {
        let mut args = Map::new();
        args.insert("command-line".into(), line.into());
        if let Some(cpu) = cpu {
            args.insert("cpu-index".into(), cpu.into());
        }
        let v = backend
            .execute("human-monitor-command", &args, false)
            .await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }
}

/// What completes lines on `backend`: its schema, or HMP commands with `--hmp`.
/// `note` says what could not be had. `None` when the connection was lost meanwhile
/// (no note: a reconnecting shell fetches it again once reconnected).
async fn completion<B: Backend>(
    backend: &B,
    hmp: bool,
    note: &dyn Fn(String),
) -> Option<Completion> {
    if hmp {
        hmp_completion(backend, note).await
    } else {
        qmp_completion(backend, note).await
    }
}

/// Whether a call failed for want of a connection (rather than on the peer's answer).
fn disconnected(e: &CallError) -> bool {
    match e {
        CallError::NotSent(_) => true,
        CallError::Qmp(e) => e.is_closed(),
    }
}

/// The peer's schema for completion; command names from `query-commands` when the
/// schema cannot be had, nothing (with a note) when neither can.
async fn qmp_completion<B: Backend>(backend: &B, note: &dyn Fn(String)) -> Option<Completion> {
    let none = Map::new();
    let schema = match backend.execute("query-qmp-schema", &none, false).await {
        Ok(v) => SchemaIndex::from_introspection(&v),
        Err(e) if disconnected(&e) => return None,
        Err(e) => Err(e.to_string()),
    };
    match schema {
        Ok(index) => return Some(Completion::Qmp(index)),
        Err(why) => note(format!(
            "qmp: note: the peer's schema (query-qmp-schema) cannot be had ({why}): only \
             command names complete"
        )),
    }
    match backend.execute("query-commands", &none, false).await {
        Ok(Value::Array(cmds)) => Some(Completion::Qmp(SchemaIndex::from_command_names(
            cmds.iter()
                .filter_map(|c| c.get("name")?.as_str().map(str::to_owned)),
        ))),
        Err(e) if disconnected(&e) => None,
        other => {
            let why = match other {
                Err(e) => e.to_string(),
                Ok(_) => "its reply is not a list".into(),
            };
            note(format!(
                "qmp: note: query-commands failed too ({why}): nothing completes"
            ));
            Some(Completion::Nothing)
        }
    }
}

/// HMP commands from the peer's `help` and `info`.
async fn hmp_completion<B: Backend>(backend: &B, note: &dyn Fn(String)) -> Option<Completion> {
    let mut texts = Vec::new();
    for line in ["help", "info"] {
        let mut args = Map::new();
        args.insert("command-line".into(), line.into());
        match backend.execute("human-monitor-command", &args, false).await {
            Ok(v) => texts.push(v.as_str().unwrap_or_default().to_owned()),
            Err(e) if disconnected(&e) => return None,
            Err(e) => {
                note(format!(
                    "qmp: note: HMP `{line}` failed ({e}): HMP commands do not complete"
                ));
                return Some(Completion::Nothing);
            }
        }
    }
    Some(Completion::Hmp(complete::hmp_lines(&texts[0], &texts[1])))
}

/// The line editor's helper: completion only.
struct ShellHelper {
    /// Replaced after a reconnection (the new peer's schema).
    completion: Arc<Mutex<Completion>>,
    in_transaction: Arc<AtomicBool>,
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = line.get(..pos).unwrap_or(line);
        let trans = self.in_transaction.load(Ordering::Relaxed);
        let (at, candidates) = self
            .completion
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .complete(before, trans);
        Ok((
            at,
            candidates
                .into_iter()
                .map(|c| Pair {
                    display: c.display,
                    replacement: c.replacement,
                })
                .collect(),
        ))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}
impl Highlighter for ShellHelper {}
impl Validator for ShellHelper {}
impl Helper for ShellHelper {}

/// From the editor thread to the shell.
enum Input {
    Line(String),
    Interrupted,
    Eof,
    Failed(String),
}

/// The editor thread: reads a line for each prompt the shell sends (the shell sends
/// the next one once the previous line's reply is printed), and keeps the history.
fn edit_lines(
    mut editor: Editor<ShellHelper, FileHistory>,
    prompts: std::sync::mpsc::Receiver<String>,
    lines: tokio::sync::mpsc::UnboundedSender<Input>,
    history: Option<PathBuf>,
) {
    let mut history_failed = false;
    for prompt in prompts {
        let input = match editor.readline(&prompt) {
            Ok(line) => {
                if let (Some(path), false) = (&history, line.trim().is_empty()) {
                    // Appended at once, so that a lost connection or a kill loses
                    // nothing, and two shells at once both keep theirs.
                    let saved = editor
                        .add_history_entry(line.as_str())
                        .and_then(|_| editor.append_history(path));
                    if let (Err(e), false) = (saved, history_failed) {
                        history_failed = true;
                        eprintln!(
                            "qmp: warning: cannot save the history to {}: {e} (the \
                             shell goes on without saving it; --history FILE picks \
                             another file)",
                            path.display()
                        );
                    }
                }
                Input::Line(line)
            }
            Err(ReadlineError::Interrupted) => Input::Interrupted,
            Err(ReadlineError::Eof) => Input::Eof,
            Err(e) => Input::Failed(e.to_string()),
        };
        let last = matches!(input, Input::Eof | Input::Failed(_));
        if lines.send(input).is_err() || last {
            break;
        }
    }
}

/// `--history`, or the default file (module docs), its folder made if missing;
/// `None` (with a note) when there is nowhere to keep it.
fn history_file(args: &ShellArgs) -> Option<PathBuf> {
    if let Some(path) = &args.history {
        return Some(path.clone());
    }
    let name = if args.hmp { "history-hmp" } else { "history" };
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|h| h.join(".local/state"))
        });
    let Some(state) = state else {
        eprintln!(
            "qmp: note: neither XDG_STATE_HOME nor HOME is set: no history is kept \
             (--history FILE keeps one)"
        );
        return None;
    };
    let dir = state.join("qmp");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!(
            "qmp: note: cannot make {} for the history: {e}; no history is kept \
             (--history FILE keeps one elsewhere)",
            dir.display()
        );
        return None;
    }
    Some(dir.join(name))
}

fn load_history(editor: &mut Editor<ShellHelper, FileHistory>, path: &Path) {
    match editor.load_history(path) {
        Ok(()) => {}
        Err(ReadlineError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => eprintln!(
            "qmp: warning: cannot read the history {}: {e} (starting without it)",
            path.display()
        ),
    }
}

/// Prints the peer's events as they arrive.
async fn print_events<B: Backend>(mut events: B::Events, out: &Out, compact: bool) {
    while let Some(event) = B::next_event(&mut events).await {
        match event {
            Ok(e) => out.above_prompt(json_text(&e.to_value(), compact)),
            // A slow terminal, or a reconnection: some events are missing.
            Err(e) if e.is_lagged() || e.is_gap() => out.above_prompt(format!("qmp: note: {e}")),
            Err(e) => {
                out.above_prompt(format!("qmp: events stopped: {e}"));
                break;
            }
        }
    }
}

/// Where output goes: replies straight to stdout (no line is being typed then);
/// events and notes above the prompt, through the editor's printer when the input
/// is a terminal.
#[derive(Clone)]
struct Out {
    above: Option<std::sync::mpsc::Sender<String>>,
}

impl Out {
    /// With the editor's printer: a thread of its own hands text to it, since its
    /// `print` may block until the editor reads (a bounded pipe), which must not
    /// stall the runtime that reads replies.
    fn new<P: ExternalPrinter + Send + 'static>(printer: Option<P>) -> Out {
        let above = printer.and_then(|mut printer| {
            let (tx, rx) = std::sync::mpsc::channel::<String>();
            std::thread::Builder::new()
                .name("qmp-shell-printer".into())
                .spawn(move || {
                    for text in rx {
                        if printer.print(text.clone()).is_err() {
                            print_text(&text);
                        }
                    }
                })
                .ok()
                .map(|_| tx)
        });
        Out { above }
    }

    fn above_prompt(&self, mut text: String) {
        // With its newline: the printer writes the text as it is while no line is
        // being read (a command runs), and the next prompt would overwrite a last
        // line left open.
        text.push('\n');
        match &self.above {
            Some(tx) => {
                if let Err(std::sync::mpsc::SendError(text)) = tx.send(text) {
                    print_text(&text);
                }
            }
            None => print_text(&text),
        }
    }

    /// Output of the line just entered.
    fn now(&self, text: &str) {
        print_text(&format!("{text}\n"));
    }
}

/// Writes to stdout; a closed stdout is ignored (the shell ends at the next read).
fn print_text(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// JSON as qmp-shell prints it: `-p`'s four-space indentation and sorted keys
/// (serde_json's maps are sorted), or one line.
fn json_text(v: &Value, compact: bool) -> String {
    if compact {
        return v.to_string();
    }
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut buf,
        serde_json::ser::PrettyFormatter::with_indent(b"    "),
    );
    match v.serialize(&mut ser) {
        Ok(()) => String::from_utf8(buf).unwrap_or_else(|_| v.to_string()),
        Err(_) => v.to_string(),
    }
}

/// The terminal's mode when the shell started, put back when dropped.
struct TerminalMode(Option<nix::sys::termios::Termios>);

impl TerminalMode {
    fn save() -> TerminalMode {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return TerminalMode(None);
        }
        TerminalMode(nix::sys::termios::tcgetattr(&stdin).ok())
    }
}

impl Drop for TerminalMode {
    fn drop(&mut self) {
        if let Some(mode) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSADRAIN,
                mode,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replies_print_as_qmp_shell_does() {
        let v = json!({"return": {"status": "running", "running": true}});
        assert_eq!(
            json_text(&v, false),
            "{\n    \"return\": {\n        \"running\": true,\n        \"status\": \"running\"\n    }\n}"
        );
        assert_eq!(
            json_text(&v, true),
            r#"{"return":{"running":true,"status":"running"}}"#
        );
    }

    /// A call sent and left unanswered may have run; one that never left did not;
    /// one QEMU answered needs no hint.
    #[cfg(feature = "server")]
    #[tokio::test]
    async fn a_call_without_reply_says_whether_it_may_have_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        // `stop` is read and never answered; other commands get QEMU's
        // CommandNotFound error reply.
        let server = qmp::server::Server::builder()
            .handle_raw("stop", false, |_, _| async {
                std::future::pending::<()>().await;
                Ok(json!({}))
            })
            .build();
        let _listening = server.listen_unix(&path).await.unwrap();
        let mut config = qmp::Config::new();
        config.call_timeout(Some(Duration::from_millis(200)));
        let client = config.connect_unix(&path).await.unwrap();
        // First: the server, as QEMU, runs in-band commands one at a time, and
        // `stop` never ends.
        let refused = CallError::from(
            client
                .execute_raw("no-such-command", None::<&Value>)
                .await
                .unwrap_err(),
        );
        assert!(refused.qmp_error().is_some(), "an error reply: {refused}");
        assert_eq!(
            call_hint("no-such-command", &refused),
            None,
            "QEMU answered"
        );
        let unanswered = CallError::from(
            client
                .execute_raw("stop", None::<&Value>)
                .await
                .unwrap_err(),
        );
        assert_eq!(
            call_hint("stop", &unanswered).as_deref(),
            Some(
                "`stop` got no reply, but QEMU may have run it: check its effect before \
                 running it again"
            )
        );
        let not_sent = CallError::NotSent("no connection within 1 s".into());
        assert_eq!(
            call_hint("cont", &not_sent).as_deref(),
            Some("`cont` was not sent to QEMU: running it again is safe")
        );
    }

    #[test]
    fn history_goes_under_xdg_state_home() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            a: ShellArgs,
        }
        let a = T::try_parse_from(["t", "--history", "/x/h"]).unwrap().a;
        assert_eq!(history_file(&a), Some(PathBuf::from("/x/h")));
        assert!(T::try_parse_from(["t", "--history", "/x/h", "--no-history"]).is_err());
    }

    #[test]
    fn give_up_takes_seconds_and_refuses_what_is_not() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            a: ShellArgs,
        }
        let a = T::try_parse_from(["t", "--reconnect-give-up", "1.5"])
            .unwrap()
            .a;
        assert_eq!(a.reconnect_give_up, Some(Duration::from_millis(1500)));
        assert_eq!(T::try_parse_from(["t"]).unwrap().a.reconnect_give_up, None);
        for bad in ["-1", "x", "NaN", "1e300"] {
            let e = T::try_parse_from(["t", &format!("--reconnect-give-up={bad}")]);
            let e = e.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("number of seconds"), "{bad}: {e}");
        }
        assert!(T::try_parse_from(["t", "--no-reconnect", "--reconnect-give-up", "5"]).is_err());
    }
}
