//! The `qmp` command-line program against real QEMU 10.0: `call` (arguments checked
//! against the peer's schema, or the bindings when it has none), `events`, `schema`,
//! `compat` and the no-socket mode (a private QEMU, named on stderr, always stopped
//! on exit). `tests/compat_releases.rs` runs `compat` and `call` against QEMU 7.2 too.

#[path = "support/skip.rs"]
mod skip;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const QMP: &str = env!("CARGO_BIN_EXE_qmp");

fn have(binary: &str) -> bool {
    let found = qmp::local::installed(binary);
    if !found {
        skip::skipping(&format!("{binary} is not installed (scripts/setup-qemu)"));
    }
    found
}

/// A process killed on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn storage_daemon() -> qmp::local::LocalQemu {
    let mut qsd = qmp::local::LocalQemu::storage_daemon().unwrap();
    qsd.wait_for_socket(Duration::from_secs(10)).unwrap();
    qsd
}

fn qmp(args: &[&str]) -> Output {
    Command::new(QMP)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "qmp failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn call_prints_the_reply() {
    if !have("qemu-storage-daemon") {
        return;
    }
    let qsd = storage_daemon();
    let s = qsd.socket().to_str().unwrap();
    let v = json_of(&qmp(&["--socket", s, "call", "query-version"]));
    assert_eq!(v["qemu"]["major"], 10);
    let out = qmp(&[
        "--socket",
        s,
        "call",
        "blockdev-add",
        r#"{"driver": "null-co", "node-name": "cli0"}"#,
        "--compact",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "{}");
    let nodes = json_of(&qmp(&[
        "--socket",
        s,
        "call",
        "query-named-block-nodes",
        r#"{"flat": true}"#,
    ]));
    assert!(nodes
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["node-name"] == "cli0"));
    // A QMP error: non-zero exit, the class on stderr.
    let out = qmp(&["--socket", s, "call", "no-such-command", "--no-check"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CommandNotFound"));
    // `schema` prints query-qmp-schema.
    let schema = json_of(&qmp(&["--socket", s, "schema"]));
    assert!(schema
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == "query-version" && e["meta-type"] == "command"));
}

/// The commands a `--record` transcript shows the client sending, in order.
fn sent_commands(transcript: &Path) -> Vec<String> {
    std::fs::read_to_string(transcript)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["dir"] == "c2s")
        .filter_map(|e| e["msg"]["execute"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn malformed_arguments_are_refused_before_connecting() {
    // The socket does not exist: the error must come before connecting.
    let out = qmp(&[
        "--socket",
        "/nonexistent/qmp.sock",
        "call",
        "blockdev-del",
        "[1]",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must be a JSON object"), "{err}");
    let out = qmp(&["--socket", "/nonexistent/qmp.sock", "call", "x", "{oops"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid JSON"));
}

#[test]
fn bad_arguments_are_refused_by_the_peers_schema_before_sending() {
    if !have("qemu-storage-daemon") {
        return;
    }
    let qsd = storage_daemon();
    let s = qsd.socket().to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let transcript = dir.path().join("session.jsonl");
    let t = transcript.to_str().unwrap();
    let call = |args: &[&str]| {
        let mut all = vec!["--socket", s, "--record", t, "call"];
        all.extend_from_slice(args);
        let out = qmp(&all);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // A typo in a member name: refused with QEMU's words, naming the peer.
    let err = call(&["blockdev-del", r#"{"node_name": "n0"}"#]);
    assert!(
        err.contains("QEMU 10.0.")
            && err.contains("would refuse the arguments of `blockdev-del`")
            && err.contains("Parameter 'node-name' is missing")
            && err.contains("nothing was sent"),
        "{err}"
    );
    let err = call(&["blockdev-del", r#"{"node-name": "n0", "force": true}"#]);
    assert!(err.contains("Parameter 'force' is unexpected"), "{err}");
    let err = call(&[
        "blockdev-add",
        r#"{"driver": "no-such-driver", "node-name": "x"}"#,
    ]);
    assert!(
        err.contains("Parameter 'driver' does not accept value 'no-such-driver'"),
        "{err}"
    );
    // An unknown command, and one the system emulator has but the daemon does not.
    let err = call(&["query-versoin"]);
    assert!(err.contains("has no command `query-versoin`"), "{err}");
    let err = call(&["query-cpus-fast"]);
    assert!(
        err.contains("has no command `query-cpus-fast`")
            && err.contains("the bindings this program was built with have it"),
        "{err}"
    );
    // Only the schema was asked for, each time: none of the refused commands was sent.
    let sent = sent_commands(&transcript);
    assert!(
        !sent.is_empty()
            && sent
                .iter()
                .all(|c| c == "qmp_capabilities" || c == "query-qmp-schema"),
        "{sent:?}"
    );
}

#[test]
fn without_the_peers_schema_arguments_are_checked_against_the_bindings() {
    // `qmp serve` without a transcript answers only `query-version`: no schema.
    let mut server = qmp::local::LocalQemu::spawn(QMP, |socket| {
        vec![
            "--socket".into(),
            socket.display().to_string(),
            "serve".into(),
        ]
    })
    .unwrap();
    server.wait_for_socket(Duration::from_secs(10)).unwrap();
    let s = server.socket().to_str().unwrap();
    let out = qmp(&[
        "--socket",
        s,
        "call",
        "blockdev-del",
        r#"{"node_name": "n0"}"#,
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the peer's schema cannot be had")
            && err.contains("bad arguments for `blockdev-del`")
            && err.contains("checked against the bindings"),
        "{err}"
    );
    assert!(
        err.contains("node_name") || err.contains("node-name"),
        "{err}"
    );
    let out = qmp(&["--socket", s, "call", "query-versoin"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown command `query-versoin`"), "{err}");
    // What the bindings accept is sent.
    let out = qmp(&["--socket", s, "call", "query-version"]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn a_recorded_secret_is_redacted_in_an_owner_only_file_and_replays() {
    use std::os::unix::fs::PermissionsExt;
    if !have("qemu-storage-daemon") {
        return;
    }
    let qsd = storage_daemon();
    let s = qsd.socket().to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secret = r#"{"qom-type": "secret", "id": "sec0", "data": "hunter2"}"#;
    let transcript = dir.path().join("session.jsonl");
    let t = transcript.to_str().unwrap();
    let v = json_of(&qmp(&[
        "--socket",
        s,
        "--record",
        t,
        "call",
        "object-add",
        secret,
    ]));
    assert_eq!(v, serde_json::json!({}));
    let mode = std::fs::metadata(&transcript).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "transcript mode {mode:o}");
    let text = std::fs::read_to_string(&transcript).unwrap();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains(qmp::secrets::REDACTED), "{text}");

    // `qmp serve --replay` answers the same call from the redacted transcript.
    let mut server = qmp::local::LocalQemu::spawn(QMP, |socket| {
        vec![
            "--socket".into(),
            socket.display().to_string(),
            "serve".into(),
            "--replay".into(),
            t.into(),
        ]
    })
    .unwrap();
    server.wait_for_socket(Duration::from_secs(10)).unwrap();
    let r = server.socket().to_str().unwrap();
    let v = json_of(&qmp(&["--socket", r, "call", "object-add", secret]));
    assert_eq!(v, serde_json::json!({}));

    // --record-secrets keeps it, still owner-only.
    let kept = dir.path().join("kept.jsonl");
    let k = kept.to_str().unwrap();
    let secret1 = r#"{"qom-type": "secret", "id": "sec1", "data": "hunter2"}"#;
    json_of(&qmp(&[
        "--socket",
        s,
        "--record",
        k,
        "--record-secrets",
        "call",
        "object-add",
        secret1,
    ]));
    let mode = std::fs::metadata(&kept).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "transcript mode {mode:o}");
    assert!(std::fs::read_to_string(&kept).unwrap().contains("hunter2"));
}

/// Reads the child's stderr until the "waiting for events" line.
fn wait_until_listening(child: &mut Child) {
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains("waiting for events") {
            // Keep draining stderr so the child never blocks on it.
            std::thread::spawn(move || for _ in lines {});
            return;
        }
    }
    panic!("qmp events never started listening");
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < limit, "qmp did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn events_are_streamed_as_json_lines() {
    if !have("qemu-system-x86_64") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let listen = dir.path().join("events.sock");
    let control = dir.path().join("control.sock");
    let qemu = Command::new("qemu-system-x86_64")
        .args(["-M", "none", "-nodefaults", "-display", "none"])
        .arg("-chardev")
        .arg(format!(
            "socket,id=m1,path={},server=on,wait=off",
            listen.display()
        ))
        .args(["-mon", "chardev=m1,mode=control"])
        .arg("-chardev")
        .arg(format!(
            "socket,id=m2,path={},server=on,wait=off",
            control.display()
        ))
        .args(["-mon", "chardev=m2,mode=control"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _qemu = Guard(qemu);
    wait_for(&listen);
    wait_for(&control);
    let events = Command::new(QMP)
        .args([
            "--socket",
            listen.to_str().unwrap(),
            "events",
            "--count",
            "2",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut events = Guard(events);
    wait_until_listening(&mut events.0);
    let c = control.to_str().unwrap();
    json_of(&qmp(&["--socket", c, "call", "stop"]));
    json_of(&qmp(&["--socket", c, "call", "cont"]));
    let status = wait_exit(&mut events.0, Duration::from_secs(20));
    assert!(status.success());
    let mut out = String::new();
    events
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0]["event"], "STOP");
    assert_eq!(lines[1]["event"], "RESUME");
    assert!(lines[0]["timestamp"]["seconds"].as_i64().unwrap() > 0);
}

/// Pids of the processes whose parent is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command name: state, ppid, ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        if ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}

fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // A zombie no longer runs.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z')),
    }
}

#[test]
fn without_a_socket_a_private_storage_daemon_is_started_and_stopped() {
    if !have("qemu-storage-daemon") {
        return;
    }
    // `call`: the daemon answers, and is gone when qmp exits.
    let v = json_of(&qmp(&["call", "query-version"]));
    assert_eq!(v["qemu"]["major"], 10);
    // `schema` says on stderr which program it asked: the storage daemon's schema is
    // not the system emulator's.
    let out = qmp(&["schema"]);
    let schema = json_of(&out);
    assert!(schema.as_array().is_some_and(|a| !a.is_empty()));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no --socket or --tcp given: talking to qemu-storage-daemon (QEMU 10.0."),
        "{err}"
    );

    // `events`, interrupted by a signal: the daemon is stopped too.
    let child = Command::new(QMP)
        .arg("events")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Guard(child);
    wait_until_listening(&mut child.0);
    let daemons = children_of(child.0.id());
    assert_eq!(daemons.len(), 1, "one private daemon runs: {daemons:?}");
    let status = Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = wait_exit(&mut child.0, Duration::from_secs(10));
    assert!(!status.success(), "interrupted is reported as failure");
    assert!(gone(daemons[0]), "the private daemon was stopped");
}

#[test]
fn a_reply_that_does_not_fit_the_bindings_is_printed_with_a_warning_and_status_3() {
    // What QEMU 7.2 answers to `query-dirty-rate` (QEMU 10.0's reply also has the
    // required `calc-time-unit`), served from a transcript twice.
    let dir = tempfile::tempdir().unwrap();
    let transcript = dir.path().join("old.jsonl");
    let reply = serde_json::json!({
        "status": "unstarted", "start-time": 0, "calc-time": 0,
        "sample-pages": 512, "mode": "page-sampling"
    });
    let mut lines = vec![serde_json::json!({"t": 0, "dir": "s2c", "msg": {"QMP": {
        "version": {"qemu": {"major": 7, "minor": 2, "micro": 0}, "package": ""},
        "capabilities": []}}})];
    for id in [1, 2] {
        lines.push(serde_json::json!({"t": id, "dir": "c2s",
            "msg": {"execute": "query-dirty-rate", "id": id}}));
        lines.push(serde_json::json!({"t": id, "dir": "s2c",
            "msg": {"return": reply, "id": id}}));
    }
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&transcript, text).unwrap();
    let file = transcript.to_str().unwrap().to_owned();
    let mut server = qmp::local::LocalQemu::spawn(QMP, |socket| {
        vec![
            "--socket".into(),
            socket.display().to_string(),
            "serve".into(),
            "--replay".into(),
            file,
        ]
    })
    .unwrap();
    server.wait_for_socket(Duration::from_secs(10)).unwrap();
    let s = server.socket().to_str().unwrap();
    let out = qmp(&["--socket", s, "call", "query-dirty-rate"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, reply, "the reply is printed as received");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`query-dirty-rate`")
            && err.contains("at `return`")
            && err.contains("missing field `calc-time-unit`"),
        "{err}"
    );
    // --no-check prints it without the check.
    let out = qmp(&["--socket", s, "call", "query-dirty-rate", "--no-check"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap(), reply);
}

#[test]
fn compat_without_a_socket_asks_a_private_system_emulator() {
    if !have("qemu-system-x86_64") {
        return;
    }
    let out = qmp(&["compat", "--require", "query-version,query-status"]);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("talking to qemu-system-x86_64 -M none (QEMU 10.0."),
        "{err}"
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("\nquery-version: fully supported\nquery-status: fully supported\n"),
        "{report}"
    );
}

/// `qmp proxy` shares one monitor: here `qmp serve` stands in for QEMU (it answers
/// `query-version`), two `qmp call`s go through the proxy's socket, and its
/// read-only socket refuses what is not a query. Without an upstream socket it is a
/// clear error (no private QEMU is started for a proxy).
#[test]
fn proxy_serves_the_monitor_on_its_sockets() {
    let out = qmp(&["proxy", "--listen", "/nonexistent/p.sock"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`proxy` needs exactly one of --socket PATH or --tcp HOST:PORT"),
        "{err}"
    );

    let mut server = qmp::local::LocalQemu::spawn(QMP, |socket| {
        vec![
            "--socket".into(),
            socket.display().to_string(),
            "serve".into(),
        ]
    })
    .unwrap();
    server.wait_for_socket(Duration::from_secs(10)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("proxy.sock");
    let read_only = dir.path().join("ro.sock");
    let proxy = Guard(
        Command::new(QMP)
            .arg("--socket")
            .arg(server.socket())
            .arg("proxy")
            .arg("--listen")
            .arg(&shared)
            .arg("--read-only-listen")
            .arg(&read_only)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(&shared);
    wait_for(&read_only);
    for _ in 0..2 {
        let v = json_of(&qmp(&[
            "--socket",
            shared.to_str().unwrap(),
            "call",
            "query-version",
        ]));
        assert!(v["qemu"]["major"].is_u64(), "{v}");
    }
    let out = qmp(&[
        "--socket",
        read_only.to_str().unwrap(),
        "call",
        "--no-check",
        "stop",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("The command stop is not allowed on this proxy socket (it allows query-*)"),
        "{err}"
    );
    drop(proxy);
}
