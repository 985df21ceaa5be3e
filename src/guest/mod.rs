//! Helpers over a guest-agent connection ([`qmp::ga::Client`], feature `qga`): run a
//! program in the guest and collect its output ([`exec`](crate::guest::exec)), copy
//! a file in or out in chunks ([`read_file`](crate::guest::read_file),
//! [`write_file`](crate::guest::write_file)), and freeze the guest's file systems for
//! as long as a guard lives ([`freeze`](crate::guest::freeze)).
//!
//! Each helper is a sequence of ordinary calls (`guest-exec` then
//! `guest-exec-status` polls; `guest-file-open`, reads or writes, `guest-file-close`;
//! `guest-fsfreeze-freeze` then `guest-fsfreeze-thaw`). The client sends one command
//! at a time, so other calls on the same connection (other tasks' `guest-ping`, say)
//! interleave between them: the channel is never held for a program's lifetime or a
//! whole file. Every call is bounded by the client's call timeout
//! ([`qmp::ga::Config::call_timeout`]).
//!
//! What the guest holds is released on every path: a file handle is closed when a
//! transfer fails half-way, and when its future is dropped (cancelled) a task closes
//! it; a freeze guard dropped without
//! [`FreezeGuard::thaw`](crate::guest::FreezeGuard::thaw) spawns a thaw. Those spawned
//! tasks need a tokio runtime (the one the client runs on); they run on a
//! clone of the client, so they keep the connection open until they are done.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), qemu_qapi::guest::Error> {
//! use std::time::Duration;
//! use qemu_qapi::guest::{self, Exec};
//!
//! let agent = qemu_qapi::qmp::ga::Config::new()
//!     .call_timeout(Some(Duration::from_secs(10)))
//!     .connect_unix("/run/vm/qga.sock")
//!     .await?;
//! let out = guest::exec(&agent, &Exec::new("/bin/uname").arg("-a")).await?;
//! println!("{}", String::from_utf8_lossy(&out.stdout));
//! guest::write_file(&agent, "/tmp/greeting", b"hello\n").await?;
//! assert_eq!(guest::read_file(&agent, "/tmp/greeting").await?, b"hello\n");
//! let frozen = guest::freeze(&agent).await?; // snapshot the disks now
//! frozen.thaw().await?;
//! # Ok(()) }
//! ```

mod exec;
mod file;
mod freeze;

pub use exec::{exec, Exec, ExecOutput, ExitStatus, DEFAULT_POLL_INTERVAL};
pub use file::{read_file, write_file, Transfer, DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE};
pub use freeze::{freeze, freeze_mountpoints, FreezeGuard};

use std::fmt;
use std::time::Duration;

/// What went wrong in a helper of this module: one type for all of them.
///
/// A failed call to the agent is [`Error::Agent`], which keeps the [`qmp::Error`]
/// (its kind says whether the agent refused, timed out or went away) and says what
/// the helper was doing.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// A call to the agent failed.
    Agent {
        /// What the helper was doing, e.g. "reading /etc/hostname from the guest".
        what: String,
        /// The client's error.
        source: qmp::Error,
    },
    /// The program run by [`exec`] did not exit within its timeout.
    ExecTimeout {
        /// The program's path in the guest.
        program: String,
        /// Its pid in the guest, or `None` when `guest-exec` itself was not answered
        /// in time (the agent may still start it).
        pid: Option<i64>,
        /// The timeout.
        limit: Duration,
    },
    /// The agent's reply does not make sense (bad base64, a count out of range): a
    /// bug of the agent, or not qemu-ga.
    BadReply {
        /// What the helper was doing.
        what: String,
        /// What is wrong with the reply.
        detail: String,
    },
}

impl Error {
    pub(crate) fn agent(what: impl Into<String>, source: qmp::Error) -> Self {
        Error::Agent {
            what: what.into(),
            source,
        }
    }

    /// The client's error, for [`Error::Agent`].
    pub fn as_qmp(&self) -> Option<&qmp::Error> {
        match self {
            Error::Agent { source, .. } => Some(source),
            _ => None,
        }
    }

    /// True when the helper gave up waiting: [`Error::ExecTimeout`], or a call that
    /// timed out ([`qmp::Error::is_timeout`]).
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::ExecTimeout { .. } => true,
            Error::Agent { source, .. } => source.is_timeout(),
            Error::BadReply { .. } => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Agent { what, source } => write!(f, "{what}: {source}"),
            Error::ExecTimeout {
                program,
                pid: Some(pid),
                limit,
            } => write!(
                f,
                "`{program}` (pid {pid} in the guest) did not exit within {}; it may \
                 still be running in the guest, and qemu-ga has no command to kill it: kill it \
                 from the guest (e.g. run `kill {pid}` with guest-exec), or give it a longer \
                 timeout",
                qmp::Limit(*limit)
            ),
            Error::ExecTimeout {
                program,
                pid: None,
                limit,
            } => write!(
                f,
                "the guest agent did not answer `guest-exec` of `{program}` within {}; \
                 it may still start the program (pid unknown), and qemu-ga has no command to \
                 kill it: check the guest, or give it a longer timeout",
                qmp::Limit(*limit)
            ),
            Error::BadReply { what, detail } => write!(
                f,
                "{what}: the guest agent's reply makes no sense: {detail} (a bug of the agent, \
                 or not qemu-ga on the other end)"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Agent { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<qmp::Error> for Error {
    /// A call that is not one of a helper's (e.g. connecting), kept as it is.
    fn from(source: qmp::Error) -> Self {
        Error::Agent {
            what: "talking to the guest agent".into(),
            source,
        }
    }
}

/// `Result<T, guest::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Standard base64 (what qemu-ga sends: glib's `g_base64_encode`), padding optional
/// on decoding so that an agent that leaves it out is still understood.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

fn encode(bytes: &[u8]) -> String {
    base64::Engine::encode(&BASE64, bytes)
}

fn decode(what: &str, member: &str, text: &str) -> Result<Vec<u8>> {
    base64::Engine::decode(&BASE64, text).map_err(|e| Error::BadReply {
        what: what.to_owned(),
        detail: format!("`{member}` is not base64: {e}"),
    })
}

/// Runs `f` on the current tokio runtime, or says why it cannot (dropped outside a
/// runtime, e.g. after it shut down): then what `f` would release stays held.
fn spawn_cleanup<F>(what: String, f: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(f);
        }
        Err(_) => tracing::warn!(
            target: "qemu_qapi::guest",
            "cannot {what}: dropped outside a tokio runtime; release it by hand"
        ),
    }
}
