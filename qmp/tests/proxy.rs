//! `qmp::proxy` against real QEMU 10.0 (`qemu-system-x86_64 -M none`): clients of
//! three kinds at once (ours, QEMU's own Python `qemu.qmp`, a raw socket), events to
//! all, an allow-listed socket, a client that leaves mid-call, ids of every JSON type,
//! the proxy's answers compared with QEMU's own, and QEMU going away.

#[path = "support/skip.rs"]
mod skip;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use qmp::local::LocalQemu;
use qmp::proxy::{Allow, Proxy, ProxyConfig};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// A generous bound: a test that waits this long for one message has hung.
const HANG: Duration = Duration::from_secs(20);

/// A raw peer: writes lines verbatim, reads lines as JSON.
struct RawPeer {
    reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    writer: tokio::net::unix::OwnedWriteHalf,
}

impl RawPeer {
    async fn connect(path: &Path) -> RawPeer {
        let s = tokio::time::timeout(HANG, UnixStream::connect(path))
            .await
            .expect("connect in time")
            .unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
        let (r, w) = s.into_split();
        RawPeer {
            reader: BufReader::new(r),
            writer: w,
        }
    }

    async fn send(&mut self, line: &str) {
        self.writer.write_all(line.as_bytes()).await.expect("write");
        self.writer.write_all(b"\n").await.expect("write");
    }

    /// The next line, `None` at end of stream (or when the peer resets it).
    async fn recv_line(&mut self) -> Option<String> {
        let mut line = String::new();
        let n = tokio::time::timeout(HANG, self.reader.read_line(&mut line))
            .await
            .expect("no message within the hang bound")
            .unwrap_or(0);
        (n > 0).then_some(line)
    }

    async fn recv(&mut self) -> Value {
        let line = self.recv_line().await.expect("peer closed");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
    }

    /// Sends a request and returns the next message.
    async fn call(&mut self, line: &str) -> Value {
        self.send(line).await;
        self.recv().await
    }
}

/// `qemu-system-x86_64 -M none`, listening, or `None` (skipped) when not installed.
fn system_none() -> Option<LocalQemu> {
    let mut qemu = match LocalQemu::system_none() {
        Ok(q) => q,
        Err(e) => {
            skip::skipping(&format!("{e} (scripts/setup-qemu)"));
            return None;
        }
    };
    qemu.wait_for_socket(HANG)
        .expect("QEMU listens on its QMP socket");
    Some(qemu)
}

/// A proxy in front of `qemu`, with a socket forwarding everything and a read-only
/// one (`query-*`), in `dir`.
async fn proxy(
    qemu: &LocalQemu,
    dir: &Path,
) -> (Proxy, qmp::proxy::Listener, qmp::proxy::Listener) {
    let proxy = ProxyConfig::new()
        .connect_unix(qemu.socket())
        .await
        .expect("the proxy connects to QEMU");
    let rw = proxy
        .listen_unix(dir.join("rw.sock"), Allow::all())
        .await
        .unwrap();
    let ro = proxy
        .listen_unix(dir.join("ro.sock"), Allow::read_only())
        .await
        .unwrap();
    (proxy, rw, ro)
}

/// A raw client: greeting read, negotiated (without `oob`).
async fn raw_client(path: &Path) -> RawPeer {
    let mut p = RawPeer::connect(path).await;
    let greeting = p.recv().await;
    assert!(
        greeting["QMP"]["version"]["qemu"]["major"].is_number(),
        "{greeting}"
    );
    let r = p
        .call(r#"{"execute":"qmp_capabilities","id":"caps"}"#)
        .await;
    assert_eq!(r, json!({"return": {}, "id": "caps"}));
    p
}

/// The venv python with `qemu.qmp`: `target/venv` (as `scripts/python-venv` makes it
/// for the interop tests), the benchmark's `target/bench/venv`, or made by
/// `scripts/python-venv`; `None` (skipped) when none can be had.
fn qemu_qmp_python() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let imports = |python: &Path| {
        python.is_file()
            && Command::new(python)
                .args(["-c", "import qemu.qmp"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    };
    for venv in ["target/venv", "target/bench/venv"] {
        let python = root.join(venv).join("bin/python");
        if imports(&python) {
            return Some(python);
        }
    }
    let made = Command::new("bash")
        .arg(root.join("scripts/python-venv"))
        .stderr(Stdio::inherit())
        .output();
    match made {
        Ok(out) if out.status.success() => {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let python = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
            if imports(&python) {
                return Some(python);
            }
            skip::skipping("scripts/python-venv made no python that imports qemu.qmp");
            None
        }
        _ => {
            skip::skipping("no python with qemu.qmp (scripts/python-venv failed)");
            None
        }
    }
}

/// The `qemu.qmp` client of the three-client test: five calls in flight at once, a
/// line `{"ready": ...}`, then STOP and RESUME awaited, a call after them, and a last
/// line with everything seen.
const QEMU_QMP_CLIENT: &str = r#"
import asyncio, json, sys
from qemu.qmp import QMPClient

async def main(sock):
    qmp = QMPClient("proxy-test")
    await asyncio.wait_for(qmp.connect(sock), 20)
    names = ["query-version", "query-status", "query-name", "query-version", "query-status"]
    rets = await asyncio.wait_for(asyncio.gather(*(qmp.execute(n) for n in names)), 20)
    print(json.dumps({"ready": [[n, r] for n, r in zip(names, rets)],
                      "capabilities": list(qmp.greeting.QMP.capabilities)}), flush=True)
    seen = []
    while not ("STOP" in seen and "RESUME" in seen):
        ev = await asyncio.wait_for(qmp.events.get(), 60)
        seen.append(ev["event"])
    after = await asyncio.wait_for(qmp.execute("query-status"), 20)
    await qmp.disconnect()
    print(json.dumps({"events": seen, "after": after}), flush=True)

asyncio.run(main(sys.argv[1]))
"#;

/// Reads lines from `peer` until both STOP and RESUME came; returns the event names
/// in order (anything else on the way fails the test).
async fn raw_events(peer: &mut RawPeer) -> Vec<String> {
    let mut seen = Vec::new();
    while !(seen.iter().any(|e| e == "STOP") && seen.iter().any(|e| e == "RESUME")) {
        let m = peer.recv().await;
        let name = m["event"]
            .as_str()
            .unwrap_or_else(|| panic!("expected an event, got {m}"));
        assert!(m["timestamp"]["seconds"].is_number(), "{m}");
        seen.push(name.to_string());
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_kinds_of_clients_share_one_qemu() {
    let Some(qemu) = system_none() else { return };
    let Some(python) = qemu_qmp_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (proxy, rw, ro) = proxy(&qemu, dir.path()).await;
    let rw = rw.path().unwrap().clone();
    let ro = ro.path().unwrap().clone();
    // QEMU -M none offers oob; the proxy offers it on.
    assert_eq!(proxy.capabilities(), ["oob"]);

    // qemu.qmp, in a process of its own, running while the others do.
    let mut py = tokio::process::Command::new(&python)
        .args(["-c", QEMU_QMP_CLIENT, rw.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start python");
    let mut py_out = BufReader::new(py.stdout.take().unwrap()).lines();

    // Ours (negotiates oob), subscribed before anything is stopped.
    let ours = qmp::Config::new()
        .call_timeout(Some(HANG))
        .connect_unix(&rw)
        .await
        .expect("our client connects through the proxy");
    assert!(ours.oob_enabled());
    assert_eq!(ours.greeting().qmp.version.qemu.major, 10);
    let mut ours_events = ours.subscribe_raw();

    // A raw client, and one connected but not negotiated (it must get no event).
    let mut raw = raw_client(&rw).await;
    let mut unnegotiated = RawPeer::connect(&rw).await;
    let greeting = unnegotiated.recv().await;
    assert_eq!(greeting["QMP"]["capabilities"], json!(["oob"]));

    // Calls in flight on every client at once: ours concurrent, raw pipelined (three
    // requests in one write, answered one after the other, in order), python's five.
    let ours_calls = async {
        let (v, s, n) = tokio::join!(
            ours.execute_raw("query-version", None::<&()>),
            ours.execute_raw("query-status", None::<&()>),
            ours.execute_raw("query-name", None::<&()>),
        );
        assert_eq!(v.unwrap()["qemu"]["major"], 10);
        assert_eq!(s.unwrap()["status"], "running");
        assert_eq!(n.unwrap(), json!({}));
    };
    let raw_calls = async {
        raw.send(concat!(
            r#"{"execute":"query-version","id":"r1"}"#,
            r#"{"execute":"query-status","id":2}"#,
            r#"{"execute":"query-name","id":{"k":[3]}}"#
        ))
        .await;
        let a = raw.recv().await;
        let b = raw.recv().await;
        let c = raw.recv().await;
        assert_eq!(a["id"], "r1");
        assert_eq!(a["return"]["qemu"]["major"], 10);
        assert_eq!(b["id"], 2);
        assert_eq!(b["return"]["status"], "running");
        assert_eq!(c, json!({"return": {}, "id": {"k": [3]}}));
    };
    let py_ready = async {
        let line = tokio::time::timeout(HANG * 3, py_out.next_line())
            .await
            .expect("qemu.qmp is ready in time")
            .unwrap()
            .expect("qemu.qmp printed its first line");
        serde_json::from_str::<Value>(&line).unwrap()
    };
    let ((), (), ready) = tokio::join!(ours_calls, raw_calls, py_ready);
    assert_eq!(ready["capabilities"], json!(["oob"]));
    let calls = ready["ready"].as_array().unwrap();
    assert_eq!(calls.len(), 5);
    for call in calls {
        match call[0].as_str().unwrap() {
            "query-version" => assert_eq!(call[1]["qemu"]["major"], 10),
            "query-status" => assert_eq!(call[1]["status"], "running"),
            "query-name" => assert_eq!(call[1], json!({})),
            other => panic!("{other}"),
        }
    }

    // The read-only socket: queries pass, `stop` is refused with the proxy's text.
    let mut reader = raw_client(&ro).await;
    let r = reader.call(r#"{"execute":"query-status","id":1}"#).await;
    assert_eq!(r["return"]["status"], "running");
    let r = reader.call(r#"{"execute":"stop","id":"no"}"#).await;
    assert_eq!(
        r,
        json!({"error": {"class": "GenericError",
            "desc": "The command stop is not allowed on this proxy socket (it allows query-*)"},
            "id": "no"})
    );
    // fd passing is refused, on any socket, before QEMU sees it.
    let r = raw
        .call(r#"{"execute":"getfd","arguments":{"fdname":"x"},"id":5}"#)
        .await;
    assert_eq!(r["error"]["class"], "GenericError");
    assert!(
        r["error"]["desc"]
            .as_str()
            .unwrap()
            .starts_with("The command getfd needs a file descriptor passed with SCM_RIGHTS"),
        "{r}"
    );

    // A client that leaves with a call in flight: its reply (QEMU's 200 KB schema) is
    // dropped, the others go on.
    {
        let mut leaving = raw_client(&rw).await;
        leaving
            .send(r#"{"execute":"query-qmp-schema","id":"gone"}"#)
            .await;
    }
    let v = ours
        .execute_raw("query-version", None::<&()>)
        .await
        .unwrap();
    assert_eq!(v["qemu"]["major"], 10);

    // One client stops and continues QEMU; every negotiated client sees both events.
    ours.execute_raw("stop", None::<&()>).await.unwrap();
    let s = ours.execute_raw("query-status", None::<&()>).await.unwrap();
    assert_eq!(s["status"], "paused");
    ours.execute_raw("cont", None::<&()>).await.unwrap();

    let mut ours_seen = Vec::new();
    while ours_seen.len() < 2 {
        let ev = tokio::time::timeout(HANG, ours_events.next())
            .await
            .expect("an event in time")
            .expect("stream open")
            .expect("no lag");
        ours_seen.push(ev.name().to_string());
    }
    assert_eq!(ours_seen, ["STOP", "RESUME"]);
    assert_eq!(raw_events(&mut raw).await, ["STOP", "RESUME"]);
    assert_eq!(raw_events(&mut reader).await, ["STOP", "RESUME"]);
    let last = tokio::time::timeout(HANG * 3, py_out.next_line())
        .await
        .expect("qemu.qmp ends in time")
        .unwrap()
        .expect("qemu.qmp printed its last line");
    let last: Value = serde_json::from_str(&last).unwrap();
    assert_eq!(last["events"], json!(["STOP", "RESUME"]));
    assert_eq!(last["after"]["status"], "running");
    let status = tokio::time::timeout(HANG, py.wait())
        .await
        .expect("python exits")
        .unwrap();
    assert!(status.success(), "qemu.qmp client failed: {status}");

    // The client that never negotiated got no event: its first message now is the
    // reply to its negotiation.
    let r = unnegotiated
        .call(r#"{"execute":"qmp_capabilities","id":1}"#)
        .await;
    assert_eq!(r, json!({"return": {}, "id": 1}));
    let r = unnegotiated.call(r#"{"execute":"query-status"}"#).await;
    assert_eq!(r, json!({"return": {"status": "running", "running": true}}));
    assert!(!proxy.is_closed());
    ours.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_of_every_json_type_come_back_verbatim_to_their_client() {
    let Some(qemu) = system_none() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (_proxy, rw, _ro) = proxy(&qemu, dir.path()).await;
    let rw = rw.path().unwrap().clone();
    // The ids as written: each must come back as the same text.
    let ids = [
        "0",
        "-7",
        "3.25",
        "1.0",
        "18446744073709551616",
        "1e3",
        r#""x""#,
        r#""""#,
        r#""caf\u00e9 \"q\"""#,
        "true",
        "false",
        "null",
        r#"[1, "a", null]"#,
        r#"{"k": {"n": [true]}}"#,
    ];
    let mut a = raw_client(&rw).await;
    let mut b = raw_client(&rw).await;
    // The same ids on both clients, sent at the same time; a asks for the version, b
    // for the status, so a reply at the wrong client shows.
    let send = |cmd: &'static str| {
        let mut batch = String::new();
        for id in ids {
            batch.push_str(&format!(r#"{{"execute": "{cmd}", "id": {id}}}"#));
        }
        batch.push_str(&format!(r#"{{"execute": "{cmd}"}}"#));
        batch
    };
    let (ba, bb) = (send("query-version"), send("query-status"));
    tokio::join!(a.send(&ba), b.send(&bb));
    for (peer, key) in [(&mut a, "qemu"), (&mut b, "status")] {
        for id in ids {
            let line = peer.recv_line().await.expect("a reply");
            let reply: Value = serde_json::from_str(&line).unwrap();
            assert!(reply["return"].get(key).is_some(), "{line}");
            // The id's text, verbatim: the line ends with it.
            let tail = format!(r#", "id": {id}}}"#);
            assert!(
                line.trim_end().ends_with(&tail),
                "id {id} not verbatim: {line}"
            );
        }
        let line = peer.recv_line().await.expect("a reply");
        let reply: Value = serde_json::from_str(&line).unwrap();
        assert!(reply.get("id").is_none(), "{line}");
        assert!(reply["return"].get(key).is_some(), "{line}");
    }
    // Errors carry the id too, QEMU's text unchanged.
    let r = a
        .call(r#"{"execute":"no-such-command","id":[{"x":1}]}"#)
        .await;
    assert_eq!(
        r,
        json!({"error": {"class": "CommandNotFound",
            "desc": "The command no-such-command has not been found"}, "id": [{"x": 1}]})
    );
}

/// The same bad and good requests, byte for byte, to QEMU directly and through the
/// proxy: the same answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_answers_as_qemu_does() {
    let Some(direct) = system_none() else { return };
    let Some(behind) = system_none() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (_proxy, rw, _ro) = proxy(&behind, dir.path()).await;
    let requests = [
        r#"{"execute":"query-version","id":1}"#,
        r#"{"execute":"qmp_capabilities","arguments":{"enable":["nope"]},"id":2}"#,
        r#"[1, 2]"#,
        r#"{"execute":"qmp_capabilities","id":3,"foo":1}"#,
        r#"{"execute":"qmp_capabilities","arguments":{"enable":["oob"]},"id":4}"#,
        r#"{"execute":"qmp_capabilities","id":5}"#,
        r#"{"execute":1,"id":7}"#,
        r#"{"execute":"query-name","arguments":[],"id":8}"#,
        r#"{"id":9}"#,
        r#"{"execute":"no-such","id":10}"#,
        r#"{"exec-oob":"query-name","id":11}"#,
        r#"{"exec-oob":"migrate-pause","id":13}"#,
        r#"{"execute":"query-status","arguments":{"x":1},"id":14}"#,
    ];
    let mut q = RawPeer::connect(direct.socket()).await;
    let mut p = RawPeer::connect(rw.path().unwrap()).await;
    let (gq, gp) = (q.recv().await, p.recv().await);
    assert_eq!(gq["QMP"]["capabilities"], gp["QMP"]["capabilities"]);
    for r in requests {
        let (from_qemu, from_proxy) = (q.call(r).await, p.call(r).await);
        assert_eq!(from_proxy, from_qemu, "request {r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_are_disconnected_when_qemu_goes_away() {
    let Some(mut qemu) = system_none() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (proxy, rw, _ro) = proxy(&qemu, dir.path()).await;
    let rw = rw.path().unwrap().clone();
    let mut raw = raw_client(&rw).await;
    let ours = qmp::Config::new().connect_unix(&rw).await.unwrap();
    ours.execute_raw("query-status", None::<&()>).await.unwrap();
    qemu.child().kill().unwrap();
    let reason = tokio::time::timeout(HANG, proxy.closed())
        .await
        .expect("the proxy notices");
    assert!(
        // A QEMU killed with requests unread resets the connection instead.
        reason.contains(&qemu.socket().display().to_string())
            && (reason.ends_with("closed the connection") || reason.contains("was lost")),
        "{reason}"
    );
    assert!(proxy.is_closed());
    assert_eq!(
        raw.recv_line().await,
        None,
        "the raw client is disconnected"
    );
    let e = tokio::time::timeout(HANG, ours.closed())
        .await
        .expect("ours is disconnected");
    assert!(e.is_closed() || e.kind() == qmp::ErrorKind::Io, "{e}");
    // Nobody accepts any more.
    let again = tokio::time::timeout(HANG, tokio::net::UnixStream::connect(&rw)).await;
    match again.expect("connect returns") {
        Err(_) => {}
        Ok(s) => {
            let mut peer = BufReader::new(s);
            let mut line = String::new();
            let n = tokio::time::timeout(HANG, peer.read_line(&mut line))
                .await
                .expect("closed at once")
                .unwrap_or(0);
            assert_eq!(n, 0, "a new client got {line:?}");
        }
    }
    // The sessions' tasks end right after their clients see the end of the stream;
    // under load that can be a moment later.
    tokio::time::timeout(HANG, async {
        while proxy.clients() != 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} clients still listed", proxy.clients()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_listener_on_the_same_path_is_refused_and_tcp_serves_beside() {
    let Some(qemu) = system_none() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (proxy, rw, _ro) = proxy(&qemu, dir.path()).await;
    let e = proxy
        .listen_unix(rw.path().unwrap(), Allow::all())
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("listens on this socket already"),
        "{e}"
    );
    // The first still serves.
    let mut p = raw_client(rw.path().unwrap()).await;
    let r = p.call(r#"{"execute":"query-status","id":1}"#).await;
    assert_eq!(r["return"]["status"], "running");
    // And a TCP listener, read-only, serves beside it.
    let tcp = proxy
        .listen_tcp("127.0.0.1:0".parse().unwrap(), Allow::read_only())
        .await
        .unwrap();
    let qmp::server::ListenAddr::Tcp(addr) = tcp.addr().clone() else {
        panic!("{:?}", tcp.addr())
    };
    let c = qmp::Config::new().connect_tcp(addr).await.unwrap();
    let s = c.execute_raw("query-status", None::<&()>).await.unwrap();
    assert_eq!(s["status"], "running");
    let e = c.execute_raw("stop", None::<&()>).await.unwrap_err();
    assert!(
        e.to_string().contains("not allowed on this proxy socket"),
        "{e}"
    );
    assert_eq!(proxy.clients(), 2);
}

/// `qmp proxy`'s entry point: serves its sockets, and when QEMU goes away returns an
/// error saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_until_qemu_goes_away() {
    let Some(mut qemu) = system_none() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let options = qmp::proxy::ProxyOptions {
        socket: Some(qemu.socket().to_owned()),
        listen: vec![dir.path().join("rw.sock")],
        read_only_listen: vec![dir.path().join("ro.sock")],
        read_only_allow: Some("query-*,qom-list".into()),
        ..Default::default()
    };
    let running = tokio::spawn(async move { qmp::proxy::run(&options).await });
    // Listening once the socket file is there (bound before anything is printed).
    let ro = dir.path().join("ro.sock");
    tokio::time::timeout(HANG, async {
        while !ro.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the proxy listens");
    let mut p = raw_client(&ro).await;
    let r = p
        .call(r#"{"execute":"qom-list","arguments":{"path":"/"},"id":1}"#)
        .await;
    assert!(r["return"].is_array(), "{r}");
    let r = p.call(r#"{"execute":"qom-set","id":2}"#).await;
    assert_eq!(
        r["error"]["desc"],
        "The command qom-set is not allowed on this proxy socket (it allows query-*, qom-list)"
    );
    qemu.child().kill().unwrap();
    let err = tokio::time::timeout(HANG, running)
        .await
        .expect("run returns once QEMU is gone")
        .unwrap()
        .unwrap_err();
    assert!(err.contains("clients were disconnected"), "{err}");
    assert_eq!(p.recv_line().await, None);
}

/// `exec-oob` is forwarded as such: QEMU runs it at once, and its reply overtakes the
/// reply to an in-band command sent before it (QEMU takes tens of milliseconds to
/// build its 200 KB schema; the out-of-band `migrate-pause` fails at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_oob_is_forwarded_out_of_band() {
    let Some(qemu) = system_none() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (_proxy, rw, _ro) = proxy(&qemu, dir.path()).await;
    let mut p = RawPeer::connect(rw.path().unwrap()).await;
    p.recv().await;
    let r = p
        .call(r#"{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}"#)
        .await;
    assert_eq!(r, json!({"return": {}}));
    p.send(concat!(
        r#"{"execute":"query-qmp-schema","id":"slow"}"#,
        r#"{"exec-oob":"migrate-pause","id":"fast"}"#
    ))
    .await;
    let first = p.recv().await;
    let second = p.recv().await;
    // (Not the whole reply in the message: the schema is 200 KB.)
    assert_eq!(first["id"], "fast", "the in-band reply came first");
    assert_eq!(first["error"]["class"], "GenericError", "{first}");
    assert_eq!(second["id"], "slow");
    assert!(second["return"].as_array().unwrap().len() > 1000);
}
