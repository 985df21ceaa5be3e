//! Session transcripts: the traffic of one QMP session as JSON lines, for record and
//! replay.
//!
//! Each line of a transcript file is one message:
//!
//! ```json
//! {"t": 0.001234, "dir": "s2c", "msg": {"QMP": {"version": {...}, "capabilities": ["oob"]}}}
//! {"t": 0.002001, "dir": "c2s", "msg": {"execute": "qmp_capabilities", "id": 0}}
//! ```
//!
//! `t` is seconds since the recorder was created, `dir` is `c2s` (client to server) or
//! `s2c` (server to client) and `msg` is the message itself. The same format is written
//! whichever side records, so a transcript recorded by the client against real QEMU can
//! be replayed by [`crate::server`] (see [`super::replay`]).
//!
//! The recording side only needs a [`TrafficHook`]: something told about every line it
//! sends and receives. [`Recorder`] is the hook that writes a transcript file; give it
//! to the client with [`crate::Config::traffic_hook`]:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use qmp::server::transcript::Recorder;
//!
//! let mut config = qmp::Config::new();
//! config.traffic_hook(Arc::new(Recorder::create("session.jsonl")?));
//! let client = config.connect_unix("/tmp/qmp.sock").await?;
//! client.execute_raw("query-version", None::<&()>).await?;
//! # Ok(()) }
//! ```

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::value::RawValue;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Re-exported from [`crate::traffic`], where the client and the server share them.
pub use crate::traffic::{Direction, TrafficHook};

/// One transcript line.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Seconds since the start of the recording.
    pub t: f64,
    /// Which way the message went.
    pub dir: Direction,
    /// The message.
    pub msg: Value,
}

crate::runtime::plain_record!(Entry, "transcript entry" { t: f64 = "t", dir: Direction = "dir", msg: Value = "msg" });

/// A [`TrafficHook`] that appends every message to a transcript file, flushing each
/// line so that a transcript survives a crash of the recording process.
///
/// A transcript can hold what the session carried, secrets included, so the file is
/// created readable and writable by its owner only (mode 0600 on Unix, given at
/// creation: there is no moment at which others could open it), and the secret
/// members of requests ([`crate::secrets::SECRET_MEMBERS`]) are recorded as
/// [`crate::secrets::REDACTED`] unless [`Recorder::keep_secrets`] says otherwise.
/// Replay still matches such a request ([`super::replay`]).
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    out: Mutex<BufWriter<File>>,
    keep_secrets: bool,
}

/// Creates (truncates) `path` for traffic: owner-only from the start on Unix. An
/// existing file keeps its mode (the owner chose it), but is truncated.
pub(crate) fn create_private(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

impl Recorder {
    /// Creates (truncates) `path`, readable by its owner only, and records into it,
    /// with secrets redacted.
    ///
    /// # Errors
    /// When the file cannot be created.
    pub fn create(path: impl AsRef<Path>) -> std::io::Result<Recorder> {
        Ok(Recorder {
            start: Instant::now(),
            out: Mutex::new(BufWriter::new(create_private(path.as_ref())?)),
            keep_secrets: false,
        })
    }

    /// Records secret members as sent instead of redacting them (`qmp
    /// --record-secrets`): for a transcript that must replay against a server that
    /// checks them. The file stays owner-only.
    pub fn keep_secrets(mut self, keep: bool) -> Recorder {
        self.keep_secrets = keep;
        self
    }
}

impl TrafficHook for Recorder {
    fn message(&self, dir: Direction, line: &str) {
        let t = self.start.elapsed().as_secs_f64();
        let line = match dir {
            Direction::ToServer if !self.keep_secrets => crate::secrets::redact_line(line),
            _ => std::borrow::Cow::Borrowed(line),
        };
        let line = &*line;
        // A line that is not JSON (garbage from a broken peer) is kept as a string so
        // the transcript stays valid JSON lines.
        let raw = RawValue::from_string(line.to_owned());
        let mut out = match self.out.lock() {
            Ok(out) => out,
            Err(poisoned) => poisoned.into_inner(),
        };
        let dir = match dir {
            Direction::ToServer => "c2s",
            Direction::ToClient => "s2c",
        };
        let result = match raw {
            Ok(raw) => writeln!(out, "{{\"t\":{t},\"dir\":\"{dir}\",\"msg\":{}}}", raw.get()),
            Err(_) => writeln!(
                out,
                "{{\"t\":{t},\"dir\":\"{dir}\",\"msg\":{}}}",
                Value::String(line.to_owned())
            ),
        };
        if let Err(e) = result.and_then(|()| out.flush()) {
            tracing::warn!("transcript recorder: write failed: {e}");
        }
    }
}

/// The longest line a recording proxy keeps (longer lines are forwarded, not recorded).
const MAX_RECORDED_LINE: usize = 64 * 1024 * 1024;

/// Puts a recording proxy in front of `peer`: returns a stream to hand to a client
/// (e.g. [`crate::Config::connect_stream`]); every byte is forwarded both ways
/// unchanged, and every complete line is reported to `hook` with its direction.
///
/// This records any client's session without the client's help; our own client
/// records itself with [`crate::Config::traffic_hook`] (what `qmp --record` uses).
/// File descriptors cannot cross the proxy. Must be called within a tokio runtime: it
/// spawns one task per direction, which end when either side closes.
pub fn record_stream<S>(peer: S, hook: Arc<dyn TrafficHook>) -> tokio::io::DuplexStream
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (peer_r, peer_w) = tokio::io::split(peer);
    let (client_r, client_w) = tokio::io::split(theirs);
    tokio::spawn(pump(client_r, peer_w, hook.clone(), Direction::ToServer));
    tokio::spawn(pump(peer_r, client_w, hook, Direction::ToClient));
    ours
}

async fn pump<R, W>(mut from: R, mut to: W, hook: Arc<dyn TrafficHook>, dir: Direction)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() || to.flush().await.is_err() {
            break;
        }
        for &b in &buf[..n] {
            if b == b'\n' {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim();
                if !text.is_empty() && !too_long {
                    hook.message(dir, text);
                }
                line.clear();
                too_long = false;
            } else if line.len() < MAX_RECORDED_LINE {
                line.push(b);
            } else {
                too_long = true;
            }
        }
    }
    let _ = to.shutdown().await;
}

/// Why a transcript could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TranscriptError {
    /// Reading the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is not a transcript entry.
    #[error("{path}:{line}: not a transcript entry: {reason}")]
    Entry {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// The decoding error.
        reason: String,
    },
}

/// Reads a transcript file (blank lines are skipped).
///
/// # Errors
/// When the file cannot be read or a line is not an [`Entry`] (with its line number).
pub fn read(path: impl AsRef<Path>) -> Result<Vec<Entry>, TranscriptError> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let file = File::open(path).map_err(|source| TranscriptError::Io {
        path: shown.clone(),
        source,
    })?;
    let mut entries = Vec::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| TranscriptError::Io {
            path: shown.clone(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let entry = serde_json::from_str(&line).map_err(|e| TranscriptError::Entry {
            path: shown.clone(),
            line: n + 1,
            reason: e.to_string(),
        })?;
        entries.push(entry);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let rec = Recorder::create(&path).unwrap();
        rec.message(Direction::ToClient, r#"{"QMP": {"capabilities": []}}"#);
        rec.message(Direction::ToServer, r#"{"execute": "x", "id": 1}"#);
        rec.message(Direction::ToClient, "not json {");
        let entries = read(&path).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].dir, Direction::ToClient);
        assert_eq!(entries[1].msg["execute"], "x");
        assert_eq!(entries[2].msg, Value::String("not json {".into()));
        assert!(entries[0].t <= entries[2].t);
    }

    #[test]
    fn bad_line_names_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        std::fs::write(&path, "{\"t\":0,\"dir\":\"c2s\",\"msg\":{}}\n\n{\"t\":1}\n").unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains(":3: not a transcript entry"), "{err}");
    }
}
