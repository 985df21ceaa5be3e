//! [`exec`]: `guest-exec` with captured output, then `guest-exec-status` polls.

use std::time::Duration;

use qmp::ga::Client;
use tokio::time::Instant;

use super::{decode, encode, Error, Result};
use crate::ga::commands::{GuestExec, GuestExecStatus};

/// The default first wait between two `guest-exec-status` polls.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// The longest the wait between polls grows to by default.
const DEFAULT_MAX_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long a poll may take past the deadline before the timeout is reported: the
/// last poll, made at the deadline, needs a round trip to see a program that has
/// just exited.
const LAST_POLL_GRACE: Duration = Duration::from_secs(2);

/// `guest-exec`'s arguments, built as JSON rather than with the bindings' `GuestExec`:
/// `capture-output` is a boolean up to QEMU 8.0 and a boolean-or-mode alternate
/// since 8.1, so the typed value differs between the releases the bindings may be
/// built for (`QGA_SCHEMA`), while `true` means the same to every agent. The reply
/// (`{"pid": …}`) is the same in every release: the bindings' type.
struct ExecRequest(serde_json::Map<String, serde_json::Value>);

impl serde::Serialize for ExecRequest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl qmp::Command for ExecRequest {
    const NAME: &'static str = <GuestExec as qmp::Command>::NAME;
    type Reply = <GuestExec as qmp::Command>::Reply;
}

/// A program to run in the guest, and how: [`Exec::new`], then the setters; run it
/// with [`exec`].
#[derive(Debug, Clone)]
pub struct Exec {
    path: String,
    args: Vec<String>,
    env: Vec<String>,
    input: Option<Vec<u8>>,
    timeout: Option<Duration>,
    poll_interval: Duration,
    max_poll_interval: Duration,
}

impl Exec {
    /// Runs the program at `path` (in the guest; qemu-ga looks it up in its `PATH`
    /// when it has no `/`), without arguments, in the agent's environment, with an
    /// empty stdin and no timeout.
    pub fn new(path: impl Into<String>) -> Self {
        Exec {
            path: path.into(),
            args: Vec::new(),
            env: Vec::new(),
            input: None,
            timeout: None,
            poll_interval: DEFAULT_POLL_INTERVAL,
            max_poll_interval: DEFAULT_MAX_POLL_INTERVAL,
        }
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable. With any variable set, qemu-ga gives the program
    /// only the variables set here (it replaces the environment).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push(format!("{name}={value}"));
        self
    }

    /// What the program reads on stdin (sent base64-encoded in the `guest-exec`
    /// request, so it must fit in one message).
    pub fn input(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.input = Some(bytes.into());
        self
    }

    /// Gives up when the program has not exited this long after [`exec`] was
    /// called: [`Error::ExecTimeout`]. The program may then still be running in the
    /// guest (qemu-ga cannot kill it). `None` (the default): waits as long as it runs.
    pub fn timeout(mut self, limit: Option<Duration>) -> Self {
        self.timeout = limit;
        self
    }

    /// The first wait between two `guest-exec-status` polls ([`DEFAULT_POLL_INTERVAL`]);
    /// each wait is half as long again as the one before, up to one second (or this
    /// interval, if longer), so a long program costs few calls and a short one is seen
    /// to exit soon.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self.max_poll_interval = DEFAULT_MAX_POLL_INTERVAL.max(self.poll_interval);
        self
    }

    /// The program's path.
    pub fn program(&self) -> &str {
        &self.path
    }
}

/// How a program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i64),
    /// It was killed by this signal (POSIX guests).
    Signal(i64),
    /// The agent said it exited but gave neither a code nor a signal.
    Unknown,
}

impl ExitStatus {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        *self == ExitStatus::Code(0)
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit code {c}"),
            ExitStatus::Signal(s) => write!(f, "killed by signal {s}"),
            ExitStatus::Unknown => f.write_str("exited (the agent gave no exit code)"),
        }
    }
}

/// What a program run by [`exec`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecOutput {
    /// Its pid in the guest.
    pub pid: i64,
    /// How it ended.
    pub status: ExitStatus,
    /// What it wrote on stdout.
    pub stdout: Vec<u8>,
    /// What it wrote on stderr.
    pub stderr: Vec<u8>,
    /// The agent kept only the start of stdout (qemu-ga keeps 16 MiB of each stream).
    pub stdout_truncated: bool,
    /// The agent kept only the start of stderr.
    pub stderr_truncated: bool,
}

/// Runs `program` in the guest and waits for it to exit: `guest-exec` with
/// `capture-output`, then `guest-exec-status` every [`Exec::poll_interval`] (each
/// poll a call of its own: other calls go through in between) until it has exited;
/// its stdout and stderr come back decoded.
///
/// Dropping the returned future stops the polling, not the program: it goes on in
/// the guest (qemu-ga has no command to kill it), and its output stays with the
/// agent.
///
/// # Errors
/// [`Error::Agent`] when a call fails (e.g. the program does not exist: qemu-ga's
/// error reply to `guest-exec`), [`Error::ExecTimeout`] naming the program, its pid
/// and the limit when it outlives [`Exec::timeout`], [`Error::BadReply`] for output
/// that is not base64.
pub async fn exec(client: &Client, program: &Exec) -> Result<ExecOutput> {
    let path = &program.path;
    let started = Instant::now();
    let deadline = program.timeout.map(|t| started + t);
    // Every call is cut at the deadline (with a grace for the last poll), so that
    // `timeout` holds even on a client without a call timeout.
    let bounded =
        |deadline: Option<Instant>| deadline.map(|d| d.max(Instant::now() + LAST_POLL_GRACE));
    let timed_out = |pid: Option<i64>| Error::ExecTimeout {
        program: path.clone(),
        pid,
        limit: program.timeout.unwrap_or_default(),
    };

    let mut request = serde_json::Map::new();
    request.insert("path".into(), path.clone().into());
    if !program.args.is_empty() {
        request.insert("arg".into(), program.args.clone().into());
    }
    if !program.env.is_empty() {
        request.insert("env".into(), program.env.clone().into());
    }
    if let Some(input) = &program.input {
        request.insert("input-data".into(), encode(input).into());
    }
    request.insert("capture-output".into(), true.into());
    let request = ExecRequest(request);
    let started_call = client.execute(&request);
    let pid = match bounded(deadline) {
        Some(at) => match tokio::time::timeout_at(at, started_call).await {
            Ok(r) => r,
            Err(_) => return Err(timed_out(None)),
        },
        None => started_call.await,
    }
    .map_err(|e| Error::agent(format!("running `{path}` in the guest (guest-exec)"), e))?
    .pid;

    let what = || format!("waiting for `{path}` (pid {pid}) in the guest (guest-exec-status)");
    let mut interval = program.poll_interval;
    let status = loop {
        let request = GuestExecStatus::new(pid);
        let poll = client.execute(&request);
        let status = match bounded(deadline) {
            Some(at) => match tokio::time::timeout_at(at, poll).await {
                Ok(r) => r,
                Err(_) => return Err(timed_out(Some(pid))),
            },
            None => poll.await,
        }
        .map_err(|e| Error::agent(what(), e))?;
        if status.exited {
            break status;
        }
        let now = Instant::now();
        let mut next = now + interval;
        if let Some(d) = deadline {
            if now >= d {
                return Err(timed_out(Some(pid)));
            }
            // One last look at the deadline itself.
            next = next.min(d);
        }
        tokio::time::sleep_until(next).await;
        interval = (interval * 3 / 2).min(program.max_poll_interval);
    };

    let decoded = |member: &str, data: &Option<String>| match data {
        Some(text) => decode(&what(), member, text),
        None => Ok(Vec::new()),
    };
    Ok(ExecOutput {
        pid,
        status: match (status.exitcode, status.signal) {
            // qemu-ga sets `signal` only for a program a signal killed.
            (_, Some(s)) => ExitStatus::Signal(s),
            (Some(c), None) => ExitStatus::Code(c),
            (None, None) => ExitStatus::Unknown,
        },
        stdout: decoded("out-data", &status.out_data)?,
        stderr: decoded("err-data", &status.err_data)?,
        stdout_truncated: status.out_truncated.unwrap_or(false),
        stderr_truncated: status.err_truncated.unwrap_or(false),
    })
}
