//! `qmp --ga` end to end: the built program against the installed qemu-ga (run on
//! the host with `-m unix-listen` in a private directory): `call` (checked against the
//! guest agent's bindings, reply printed), `exec` (the program's stdout, stderr and
//! exit status passed on; a timeout); and, needing no agent, the usage errors and
//! `qmp --ga call` against `qmp --ga serve`.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

#[path = "support/skip.rs"]
mod skip;

fn qmp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qmp"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running qmp")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A `qemu-ga -m unix-listen` in a private directory, its socket up; killed and
/// reaped on drop.
struct Agent {
    dir: tempfile::TempDir,
    child: Child,
}

impl Agent {
    fn start() -> Option<Agent> {
        // As tests/ga_live.rs finds it: on PATH, or where Debian puts it.
        let program = if qemu_qapi::qmp::local::installed("qemu-ga") {
            PathBuf::from("qemu-ga")
        } else {
            ["/usr/sbin/qemu-ga", "/usr/bin/qemu-ga"]
                .into_iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())?
        };
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::create_dir(dir.path().join("state")).expect("the state directory");
        let child = Command::new(program)
            .arg("-m")
            .arg("unix-listen")
            .arg("-p")
            .arg(dir.path().join("qga.sock"))
            .arg("-t")
            .arg(dir.path().join("state"))
            .arg("-f")
            .arg(dir.path().join("qga.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting qemu-ga");
        let agent = Agent { dir, child };
        // `qmp --ga` does not wait for the agent: wait until it accepts (the socket
        // file appears before the agent listens). A bound, not a timing assertion.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::os::unix::net::UnixStream::connect(agent.socket()).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "qemu-ga never accepted on its socket"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(agent)
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("qga.sock")
    }

    /// `qmp --ga --socket SOCKET` then `args`.
    fn qmp(&self, args: &[&str]) -> Output {
        let socket = self.socket();
        let mut all = vec!["--ga", "--socket", socket.to_str().unwrap()];
        all.extend_from_slice(args);
        qmp(&all)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

macro_rules! agent_or_skip {
    () => {
        match Agent::start() {
            Some(a) => a,
            None => {
                skip::skipping("qemu-ga is not installed (scripts/setup-qemu)");
                return;
            }
        }
    };
}

#[test]
fn call_checks_against_the_guest_agent_bindings_and_prints_the_reply() {
    let agent = agent_or_skip!();
    let out = agent.qmp(&["call", "guest-info"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        reply["version"].as_str().unwrap().starts_with("10.0"),
        "{reply}"
    );
    assert!(reply["supported_commands"].as_array().unwrap().len() > 10);

    let out = agent.qmp(&["call", "guest-ping", "--compact"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "{}\n");

    // With arguments, checked and sent.
    let out = agent.qmp(&[
        "call",
        "guest-exec",
        r#"{"path": "/bin/true"}"#,
        "--compact",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pid = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["pid"].clone();
    assert!(pid.is_i64(), "{}", text(&out.stdout));

    // Refused before sending: a mistyped member, a QMP command the agent lacks.
    let out = agent.qmp(&["call", "guest-exec-status", r#"{"pid": "one"}"#]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("bad arguments for `guest-exec-status`") && err.contains("nothing was sent"),
        "{err}"
    );
    let out = agent.qmp(&["call", "query-version"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unknown guest-agent command `query-version`"),
        "{}",
        text(&out.stderr)
    );
    // The agent's own error reply.
    let out = agent.qmp(&["call", "guest-file-open", r#"{"path": "/nonexistent/x"}"#]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("guest-file-open"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn exec_passes_on_the_programs_output_and_exit_status() {
    let agent = agent_or_skip!();
    let out = agent.qmp(&["exec", "--", "/bin/echo", "hello", "-n"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello -n\n");

    let out = agent.qmp(&[
        "exec",
        "--",
        "/bin/sh",
        "-c",
        "printf 'out\\377'; echo err >&2; exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    // Bytes, not text: 0xFF comes through.
    assert_eq!(out.stdout, b"out\xff");
    assert_eq!(text(&out.stderr), "err\n");

    let out = agent.qmp(&["exec", "--", "/bin/sh", "-c", "kill -9 $$"]);
    assert_eq!(out.status.code(), Some(128 + 9));
    assert!(
        text(&out.stderr).contains("killed by signal 9"),
        "{}",
        text(&out.stderr)
    );

    // A program that does not exist: the agent's error, exit status 1.
    let out = agent.qmp(&["exec", "--", "/nonexistent/prog"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("`/nonexistent/prog`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn exec_timeout_names_the_pid_and_says_the_program_may_still_run() {
    let agent = agent_or_skip!();
    let out = agent.qmp(&["exec", "--timeout", "0.3", "--", "/bin/sleep", "30"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("`/bin/sleep`")
            && err.contains("within 300 ms")
            && err.contains("may still be running"),
        "{err}"
    );
    // End the program (this agent runs on the host: its pid is ours).
    let pid: String = err
        .split("pid ")
        .nth(1)
        .expect("a pid in the message")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    assert!(!pid.is_empty(), "{err}");
    let _ = Command::new("kill").arg(&pid).status();
}

#[test]
fn ga_usage_errors_need_no_agent() {
    let out = qmp(&["--ga", "call", "guest-info"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("--ga needs --socket PATH") && err.contains("no private agent is started"),
        "{err}"
    );

    let out = qmp(&["--ga", "--socket", "/nonexistent/qga.sock", "schema"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("`schema` is not available with --ga") && err.contains("`call` and `exec`"),
        "{err}"
    );

    let out = qmp(&["--socket", "/nonexistent/qmp.sock", "exec", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--ga"), "{}", text(&out.stderr));

    // No agent on the socket: a connection error naming it, not a usage error.
    let out = qmp(&[
        "--ga",
        "--socket",
        "/nonexistent/qga.sock",
        "call",
        "guest-ping",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("/nonexistent/qga.sock"),
        "{}",
        text(&out.stderr)
    );
}

/// `qmp --ga serve` (a test agent, no qemu-ga needed) answered by `qmp --ga call`.
#[test]
fn ga_call_talks_to_qmp_ga_serve() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let socket_arg = socket.to_str().unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_qmp"))
        .args(["--ga", "--socket", socket_arg, "serve"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting qmp --ga serve");
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let server = Kill(&mut server);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "qmp --ga serve never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = qmp(&["--ga", "--socket", socket_arg, "call", "guest-info"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["version"], "10.0.0");
    let out = qmp(&["--ga", "--socket", socket_arg, "call", "guest-ping"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    drop(server);
}
