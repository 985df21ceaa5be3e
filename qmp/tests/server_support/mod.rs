//! Helpers shared by the server, reliability and interop tests: a real
//! `qemu-storage-daemon` started and killed by the test, and a raw line-based QMP peer
//! that sends exactly the bytes it is given.
#![allow(dead_code)]

#[path = "../support/skip.rs"]
mod skip;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use qmp::local::LocalQemu;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// A generous bound: a test that waits this long for one message has hung.
pub const HANG: Duration = Duration::from_secs(20);

/// A QEMU (`qemu-storage-daemon`, or `qemu-system-x86_64 -M none`) with its QMP
/// monitor on a Unix socket (`qmp::local::LocalQemu`), listening (found without a probe
/// connection, which would take the monitor's one session), killed when dropped.
pub struct Qsd {
    _qemu: LocalQemu,
    pub socket: PathBuf,
}

impl Qsd {
    /// Starts the daemon, or `None` (with a message; a failure when
    /// `QMP_TESTS_REQUIRE_ALL` is set) when it is not installed.
    pub fn start() -> Option<Qsd> {
        Qsd::listening(LocalQemu::storage_daemon())
    }

    /// Starts `qemu-system-x86_64 -M none` (no KVM needed), or `None` when it is not
    /// installed.
    pub fn start_system() -> Option<Qsd> {
        Qsd::listening(LocalQemu::system_none())
    }

    fn listening(started: std::io::Result<LocalQemu>) -> Option<Qsd> {
        let mut qemu = match started {
            Ok(q) => q,
            Err(e) => {
                skip::skipping(&format!("{e} (scripts/setup-qemu)"));
                return None;
            }
        };
        qemu.wait_for_socket(HANG)
            .expect("QEMU listens on its QMP socket");
        Some(Qsd {
            socket: qemu.socket().to_owned(),
            _qemu: qemu,
        })
    }
}

/// The commands of a recorded session with real QEMU: a success, a `blockdev-add` of
/// node `node` and the same again (an error), and a query with arguments.
pub fn session_commands(node: &str) -> [(&'static str, Value); 4] {
    [
        ("query-version", json!({})),
        (
            "blockdev-add",
            json!({"driver": "null-co", "node-name": node}),
        ),
        (
            "blockdev-add",
            json!({"driver": "null-co", "node-name": node}),
        ),
        ("query-named-block-nodes", json!({"flat": true})),
    ]
}

/// A raw peer: writes lines verbatim, reads lines as JSON.
pub struct RawPeer {
    reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    writer: tokio::net::unix::OwnedWriteHalf,
}

impl RawPeer {
    pub async fn connect(path: &Path) -> RawPeer {
        // The socket file can exist a moment before QEMU listens on it.
        let mut tries = 0;
        let s = loop {
            match UnixStream::connect(path).await {
                Ok(s) => break s,
                Err(e) if tries < 200 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                Err(e) => panic!("connect {}: {e}", path.display()),
            }
        };
        let (r, w) = s.into_split();
        RawPeer {
            reader: BufReader::new(r),
            writer: w,
        }
    }

    pub async fn send(&mut self, line: &str) {
        self.writer.write_all(line.as_bytes()).await.expect("write");
        self.writer.write_all(b"\n").await.expect("write");
    }

    /// The next line, `None` at end of stream.
    pub async fn recv_line(&mut self) -> Option<String> {
        let mut line = String::new();
        let n = tokio::time::timeout(HANG, self.reader.read_line(&mut line))
            .await
            .expect("no message within the hang bound")
            .expect("read");
        (n > 0).then_some(line)
    }

    pub async fn recv(&mut self) -> Value {
        let line = self.recv_line().await.expect("peer closed");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
    }

    /// Sends a request and returns the next message.
    pub async fn call(&mut self, line: &str) -> Value {
        self.send(line).await;
        self.recv().await
    }
}

/// The `query-qmp-schema` of a live daemon.
pub async fn live_schema(socket: &Path) -> Value {
    let mut p = RawPeer::connect(socket).await;
    p.recv().await;
    p.call(r#"{"execute":"qmp_capabilities"}"#).await;
    let mut r = p.call(r#"{"execute":"query-qmp-schema"}"#).await;
    r["return"].take()
}

/// Runs a raw session against `socket` (greeting, then each request line answered by
/// one reply) while recording it with `hook`, as a client-side recorder would.
pub async fn record_session(
    socket: &Path,
    hook: &dyn qmp::server::transcript::TrafficHook,
    requests: &[&str],
) -> Vec<Value> {
    use qmp::server::transcript::Direction;
    let mut p = RawPeer::connect(socket).await;
    let greeting = p.recv_line().await.expect("greeting");
    hook.message(Direction::ToClient, greeting.trim_end());
    let mut replies = Vec::new();
    for r in requests {
        hook.message(Direction::ToServer, r);
        p.send(r).await;
        let line = p.recv_line().await.expect("reply");
        hook.message(Direction::ToClient, line.trim_end());
        replies.push(serde_json::from_str(&line).expect("reply JSON"));
    }
    replies
}

/// The Python interpreter of the venv with `qemu.qmp` (created by
/// `scripts/python-venv` on first use).
pub fn venv_python() -> PathBuf {
    // Once per test binary: tests run in parallel and must not build the venv twice
    // at the same time.
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON.get_or_init(create_venv).clone()
}

fn create_venv() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/python-venv");
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/python-venv");
    assert!(out.status.success(), "scripts/python-venv failed");
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    PathBuf::from(stdout.lines().last().expect("python path").trim())
}

/// Runs `qmp/tests/interop/qemu_qmp_client.py` with `args`, returning its JSON output.
pub async fn run_qemu_qmp(python: &Path, args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/qemu_qmp_client.py");
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(python)
            .arg(&script)
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("qemu.qmp client hung")
    .expect("spawn python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "qemu.qmp client failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("bad output ({e}): {stdout}"))
}
