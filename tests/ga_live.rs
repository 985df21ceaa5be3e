//! `qmp::ga::Client` against the real `qemu-ga` of QEMU 10.0, run on the host with
//! `-m unix-listen` in a private directory (killed and reaped on drop): typed calls,
//! `guest-exec`, a stale reply left by an earlier client, the agent killed mid-call
//! and restarted on the same socket. Skipped (with a message) where qemu-ga is not
//! installed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use qemu_qapi::ga::commands::{GuestExec, GuestExecStatus, GuestInfo, GuestPing};
use qemu_qapi::ga::types::GuestExecCaptureOutput;
use qemu_qapi::qmp;
use qmp::ga;

#[path = "support/skip.rs"]
mod skip;

/// Bounds every wait of these tests, so that a hang fails instead of blocking the
/// suite (not a timing assertion: nothing here should take more than a second).
const HANG: Duration = Duration::from_secs(60);

fn qemu_ga() -> Option<PathBuf> {
    if qmp::local::installed("qemu-ga") {
        return Some("qemu-ga".into());
    }
    ["/usr/sbin/qemu-ga", "/usr/bin/qemu-ga"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// A `qemu-ga -m unix-listen` in a private directory; killed and reaped on drop.
struct Agent {
    program: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Agent {
    fn start(program: PathBuf) -> Agent {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::create_dir(dir.path().join("state")).expect("the state directory");
        let mut agent = Agent {
            program,
            dir,
            child: None,
        };
        agent.restart();
        agent
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("qga.sock")
    }

    /// (Re)starts the agent on the same socket.
    fn restart(&mut self) {
        self.kill();
        let dir: &Path = self.dir.path();
        let child = Command::new(&self.program)
            .arg("-m")
            .arg("unix-listen")
            .arg("-p")
            .arg(self.socket())
            .arg("-t")
            .arg(dir.join("state"))
            .arg("-f")
            .arg(dir.join("qga.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting qemu-ga");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

fn config() -> ga::Config {
    let mut c = ga::Config::new();
    // The agent needs a moment to create its socket.
    c.wait_for_agent(Some(Duration::from_secs(30)));
    c
}

async fn guard<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(HANG, f)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
}

macro_rules! agent_or_skip {
    () => {
        match qemu_ga() {
            Some(p) => Agent::start(p),
            None => {
                skip::skipping("qemu-ga is not installed (scripts/setup-qemu)");
                return;
            }
        }
    };
}

/// Decodes standard base64 (what `guest-exec-status` returns); `None` if malformed.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for &c in s {
        acc = (acc << 6) | u32::from(value(c)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[tokio::test]
async fn info_ping_and_exec() {
    let agent = agent_or_skip!();
    let client = guard("connect", config().connect_unix(agent.socket()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let info = guard("guest-info", client.execute(&GuestInfo))
        .await
        .unwrap();
    assert!(info.version.starts_with("10.0"), "{}", info.version);
    assert!(info
        .supported_commands
        .iter()
        .any(|c| c.name == "guest-shutdown" && !c.success_response));
    guard("guest-ping", client.execute(&GuestPing))
        .await
        .unwrap();
    assert!(!client.agent_ignores_ids(), "qemu-ga 10.0 echoes ids");

    let exec = GuestExec::new("/bin/echo".into())
        .with_arg(vec!["hello".into()])
        .with_capture_output(GuestExecCaptureOutput::Flag(true));
    let pid = guard("guest-exec", client.execute(&exec))
        .await
        .unwrap()
        .pid;
    let status = guard("guest-exec-status", async {
        loop {
            let status = client.execute(&GuestExecStatus::new(pid)).await.unwrap();
            if status.exited {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(status.exitcode, Some(0));
    let out = status.out_data.expect("captured output");
    assert_eq!(
        base64_decode(&out).as_deref(),
        Some(&b"hello\n"[..]),
        "{out}"
    );
    client.close().await;
}

#[tokio::test]
async fn a_stale_reply_from_an_earlier_client_never_reaches_a_caller() {
    let agent = agent_or_skip!();
    // Once the socket is up: an earlier client asks, reads only part of the answers
    // and goes away leaving half a request in the agent's parser. On a unix-listen
    // socket the agent keeps that half request for the next connection (its parse
    // error is that connection's first line); on a virtio-serial port unread replies
    // would stay in the stream too.
    guard("first connect", config().connect_unix(agent.socket()))
        .await
        .unwrap()
        .close()
        .await;
    {
        use std::io::{BufRead, Write};
        let mut raw = std::os::unix::net::UnixStream::connect(agent.socket()).unwrap();
        raw.write_all(
            b"{\"execute\": \"guest-info\", \"id\": 1}\n\
              {\"execute\": \"guest-get-time\", \"id\": 2}\n\
              {\"execute\": \"guest-sync\", \"arguments\": {\"id\": 77}}\n\
              {\"execute\": \"guest-ping\", \"id\": 3}\n\
              {\"execute\": \"guest-p",
        )
        .unwrap();
        // Read up to the reply of guest-sync, so the agent has written everything
        // before it: qemu-ga 10.0 was seen to exit when a client hung up on replies
        // it was still writing. The reply to guest-ping stays unread.
        let mut lines = std::io::BufReader::new(raw).lines();
        for line in lines.by_ref() {
            if line.unwrap().contains("77") {
                break;
            }
        }
    }
    let client = guard("connect", config().connect_unix(agent.socket()))
        .await
        .unwrap();
    // Untyped, so that another command's reply would show.
    let reply = guard("guest-ping", client.execute_raw("guest-ping", None::<&()>))
        .await
        .unwrap();
    assert_eq!(reply, serde_json::json!({}));
    let info = guard("guest-info", client.execute(&GuestInfo))
        .await
        .unwrap();
    assert!(info.version.starts_with("10.0"));
}

#[tokio::test]
async fn the_agent_killed_mid_call_fails_every_caller_and_a_restart_resynchronises() {
    let mut agent = agent_or_skip!();
    let client = guard("connect", config().connect_unix(agent.socket()))
        .await
        .unwrap();
    guard("guest-ping", client.execute(&GuestPing))
        .await
        .unwrap();
    // Stopped, the agent reads nothing and answers nothing: the calls are in flight
    // (or queued) when it is killed.
    let stopped = Command::new("kill")
        .args(["-STOP", &agent.pid().to_string()])
        .status()
        .expect("kill -STOP");
    assert!(stopped.success());
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.execute(&GuestInfo).await.map(drop) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    agent.kill();
    for call in calls {
        let e = guard("a call to a killed agent", call)
            .await
            .unwrap()
            .unwrap_err();
        assert!(e.is_closed(), "{e}");
    }
    let e = guard("a later call", client.execute(&GuestPing))
        .await
        .unwrap_err();
    assert!(e.is_closed(), "{e}");

    // The same socket path, a new agent: a new client synchronises and works.
    agent.restart();
    let client = guard("reconnect", config().connect_unix(agent.socket()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    guard("guest-ping", client.execute(&GuestPing))
        .await
        .unwrap();
    let info = guard("guest-info", client.execute(&GuestInfo))
        .await
        .unwrap();
    assert!(info.version.starts_with("10.0"));
}

#[tokio::test]
async fn no_agent_on_the_socket_is_a_clear_error() {
    let Some(program) = qemu_ga() else {
        skip::skipping("qemu-ga is not installed (scripts/setup-qemu)");
        return;
    };
    let mut agent = Agent::start(program);
    agent.kill();
    let e = ga::Config::new()
        .wait_for_agent(Some(Duration::from_millis(300)))
        .connect_unix(agent.socket())
        .await
        .unwrap_err();
    assert!(e.is_timeout(), "{e}");
    assert!(
        e.to_string()
            .contains(&agent.socket().display().to_string()),
        "{e}"
    );
}
