//! The client's own traffic hook (`Config::traffic_hook`): what it sees and in which
//! order, and that a transcript recorded through it with `transcript::Recorder`
//! replays with `qmp::server`'s replay to the same replies and events.

mod server_support;

use std::sync::{Arc, Mutex};

use qmp::server::replay::Replay;
use qmp::server::transcript::{self, Recorder};
use qmp::server::Server;
use qmp::{Config, Direction, TrafficHook};
use serde_json::{json, Value};
use server_support::{session_commands, Qsd, HANG};

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(HANG, f).await.expect("hung")
}

/// A hook that keeps every message, parsed.
#[derive(Default)]
struct Collect(Mutex<Vec<(Direction, Value)>>);

impl TrafficHook for Collect {
    fn message(&self, dir: Direction, line: &str) {
        let v = serde_json::from_str(line).unwrap_or_else(|e| {
            panic!("hook got a line that is not one JSON value ({e}): {line:?}")
        });
        self.0.lock().unwrap().push((dir, v));
    }
}

impl Collect {
    fn take(&self) -> Vec<(Direction, Value)> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// A server whose `answer` command emits an event to the caller before replying.
fn answering_server() -> Server {
    Server::builder()
        .capabilities(["oob"])
        .handle_raw("answer", false, |ctx, args| async move {
            ctx.server
                .emit_raw_to(ctx.client, "THINKING", Some(Value::Object(args.clone())))
                .await;
            Ok(json!({"answer": args.get("q").cloned().unwrap_or(Value::Null)}))
        })
        .build()
}

fn short(e: &(Direction, Value)) -> String {
    let (dir, v) = e;
    let dir = match dir {
        Direction::ToServer => "c2s",
        Direction::ToClient => "s2c",
    };
    let what = if v.get("QMP").is_some() {
        "greeting".to_string()
    } else if let Some(name) = v.get("execute") {
        format!("execute {}", name.as_str().unwrap_or("?"))
    } else if let Some(name) = v.get("event") {
        format!("event {}", name.as_str().unwrap_or("?"))
    } else if v.get("return").is_some() {
        "return".to_string()
    } else {
        "error".to_string()
    };
    format!("{dir} {what}")
}

async fn hook_order_over(c: qmp::Client, hook: &Collect) {
    let mut events = c.subscribe_raw();
    let r = bounded(c.execute_raw("answer", Some(&json!({"q": 1}))))
        .await
        .unwrap();
    assert_eq!(r, json!({"answer": 1}));
    bounded(events.next()).await.unwrap().unwrap();
    let err = bounded(c.execute_raw("no-such-command", None::<&()>))
        .await
        .unwrap_err();
    assert_eq!(err.qmp_error().unwrap().class, "CommandNotFound");
    let seen = hook.take();
    let got: Vec<String> = seen.iter().map(short).collect();
    assert_eq!(
        got,
        [
            "s2c greeting",
            "c2s execute qmp_capabilities",
            "s2c return",
            "c2s execute answer",
            "s2c event THINKING",
            "s2c return",
            "c2s execute no-such-command",
            "s2c error",
        ],
        "{seen:#?}"
    );
    assert_eq!(seen[1].1["arguments"], json!({"enable": ["oob"]}));
    assert_eq!(seen[3].1["arguments"], json!({"q": 1}));
    assert_eq!(seen[5].1["return"], json!({"answer": 1}));
    assert_eq!(seen[3].1["id"], seen[5].1["id"]);

    // Concurrent calls are coalesced into fewer writes, but the hook still sees each
    // request once, as its own message, and before its reply.
    let args: Vec<Value> = (0..20).map(|i| json!({"q": i})).collect();
    let calls = args.iter().map(|a| c.execute_raw("answer", Some(a)));
    let replies = bounded(futures_join_all(calls)).await;
    for (i, r) in replies.into_iter().enumerate() {
        assert_eq!(r.unwrap(), json!({"answer": i}));
    }
    let seen = hook.take();
    let requests: Vec<&Value> = seen
        .iter()
        .filter(|(d, _)| *d == Direction::ToServer)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(requests.len(), 20, "{seen:#?}");
    let mut qs: Vec<i64> = requests
        .iter()
        .map(|v| v["arguments"]["q"].as_i64().unwrap())
        .collect();
    qs.sort_unstable();
    assert_eq!(qs, (0..20).collect::<Vec<_>>());
    for (pos, (dir, v)) in seen.iter().enumerate() {
        if *dir == Direction::ToClient && v.get("return").is_some() {
            let asked = seen[..pos]
                .iter()
                .any(|(d, r)| *d == Direction::ToServer && r["id"] == v["id"]);
            assert!(asked, "reply before its request: {v}");
        }
    }
    assert_eq!(
        seen.iter()
            .filter(|(_, v)| v.get("event").is_some())
            .count(),
        20
    );
    c.close().await;
}

/// Awaits all futures concurrently (polled together, so their requests queue up).
async fn futures_join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}

/// Unix socket: lone calls write themselves (the direct path), pipelined ones go
/// through the writer task.
#[tokio::test]
async fn hook_sees_greeting_negotiation_commands_replies_and_events_in_order_unix() {
    let dir = tempfile::tempdir().unwrap();
    let server = answering_server();
    let sock = dir.path().join("s.sock");
    let _l = server.listen_unix(&sock).await.unwrap();
    let hook = Arc::new(Collect::default());
    let c = bounded(Config::new().traffic_hook(hook.clone()).connect_unix(&sock))
        .await
        .unwrap();
    hook_order_over(c, &hook).await;
}

/// Any stream (here in memory), on a multi-threaded runtime: every request goes
/// through the writer task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_sees_greeting_negotiation_commands_replies_and_events_in_order_stream() {
    let server = answering_server();
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let s = server.clone();
    tokio::spawn(async move { s.serve_stream(theirs).await });
    let hook = Arc::new(Collect::default());
    let c = bounded(
        Config::new()
            .traffic_hook(hook.clone())
            .connect_stream(ours),
    )
    .await
    .unwrap();
    hook_order_over(c, &hook).await;
}

/// Records with the hook against `qmp::server` (events included), replays the file.
#[tokio::test]
async fn session_recorded_by_the_hook_replays_with_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("client.jsonl");
    let server = answering_server();
    let sock = dir.path().join("s.sock");
    let l = server.listen_unix(&sock).await.unwrap();
    {
        let mut config = Config::new();
        config.traffic_hook(Arc::new(Recorder::create(&path).unwrap()));
        let c = bounded(config.connect_unix(&sock)).await.unwrap();
        for q in ["life", "universe"] {
            bounded(c.execute_raw("answer", Some(&json!({"q": q}))))
                .await
                .unwrap();
        }
        c.close().await;
    }
    drop(l);
    let entries = transcript::read(&path).unwrap();
    assert_eq!(entries.len(), 9, "{entries:#?}");
    assert!(entries[0].msg.get("QMP").is_some());
    assert_eq!(entries[1].dir, Direction::ToServer);
    assert_eq!(entries[1].msg["execute"], "qmp_capabilities");
    assert!(entries.windows(2).all(|w| w[0].t <= w[1].t), "{entries:#?}");

    let replayed = Server::builder()
        .replay(Replay::from_file(&path).unwrap())
        .build();
    let sock2 = dir.path().join("r.sock");
    let _l2 = replayed.listen_unix(&sock2).await.unwrap();
    let c2 = bounded(qmp::connect_unix(&sock2)).await.unwrap();
    assert!(c2.oob_enabled());
    let mut events = c2.subscribe_raw();
    for q in ["life", "universe"] {
        let r = bounded(c2.execute_raw("answer", Some(&json!({"q": q}))))
            .await
            .unwrap();
        assert_eq!(r, json!({"answer": q}));
        let ev = bounded(events.next()).await.unwrap().unwrap();
        assert_eq!(ev.name(), "THINKING");
        assert_eq!(ev.to_value()["data"], json!({"q": q}));
    }
}

/// Records a session with real QEMU (`qemu-storage-daemon`) through the hook; the
/// transcript replays with the same replies and errors.
#[tokio::test]
async fn qsd_session_recorded_by_the_hook_replays() {
    let Some(qsd) = Qsd::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qsd.jsonl");
    let commands = session_commands("hook0");
    let mut recorded = Vec::new();
    {
        let mut config = Config::new();
        config.traffic_hook(Arc::new(Recorder::create(&path).unwrap()));
        let c = bounded(config.connect_unix(&qsd.socket)).await.unwrap();
        for (name, args) in &commands {
            recorded.push(
                bounded(c.execute_raw(name, Some(args)))
                    .await
                    .map_err(|e| e.qmp_error().cloned()),
            );
        }
        c.close().await;
    }
    drop(qsd);
    assert!(recorded[2].is_err(), "QEMU refuses a duplicate node name");
    let entries = transcript::read(&path).unwrap();
    assert!(entries[0].msg.get("QMP").is_some(), "{:?}", entries[0]);
    assert_eq!(entries[1].msg["execute"], "qmp_capabilities");
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.dir == Direction::ToServer)
            .count(),
        1 + commands.len()
    );

    let server = Server::builder()
        .replay(Replay::from_file(&path).unwrap())
        .build();
    let sock = dir.path().join("replay.sock");
    let _l = server.listen_unix(&sock).await.unwrap();
    let c = bounded(qmp::connect_unix(&sock)).await.unwrap();
    for ((name, args), want) in commands.iter().zip(&recorded) {
        let got = bounded(c.execute_raw(name, Some(args)))
            .await
            .map_err(|e| e.qmp_error().cloned());
        match (got, want) {
            (Ok(g), Ok(w)) => assert_eq!(&g, w, "{name}"),
            (Err(Some(g)), Err(Some(w))) => {
                assert_eq!((&g.class, &g.desc), (&w.class, &w.desc), "{name}")
            }
            (g, w) => panic!("{name}: replayed {g:?}, recorded {w:?}"),
        }
    }
}

/// A hook that calls back into the client: on the first request it sees, `sent()`
/// spawns another call on the same client and blocks until that call has completed;
/// `received()` asks the client for its state on every line. No lock of the
/// connection is held while a hook runs, so both complete (before, the hook ran under
/// the write gate or the table of pending calls, which the nested call needs).
struct CallsBack {
    client: std::sync::OnceLock<qmp::Client>,
    armed: std::sync::atomic::AtomicBool,
    /// What the nested call returned (`None`: it did not finish in time).
    nested: Mutex<Option<Result<Value, String>>>,
    states: Mutex<Vec<(qmp::ConnectionState, bool)>>,
    seen: Collect,
}

impl TrafficHook for CallsBack {
    fn message(&self, dir: Direction, line: &str) {
        self.seen.message(dir, line);
        let Some(client) = self.client.get() else {
            return; // still connecting
        };
        // Synchronous calls back into the client.
        self.states
            .lock()
            .unwrap()
            .push((client.connection_state(), client.is_closed()));
        if dir == Direction::ToServer && self.armed.swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            let (tx, rx) = std::sync::mpsc::channel();
            let c = client.clone();
            tokio::runtime::Handle::current().spawn(async move {
                let r = c.execute_raw("answer", Some(&json!({"q": "nested"}))).await;
                let _ = tx.send(r.map_err(|e| e.to_string()));
            });
            // Blocks this thread (the caller's) until the nested call is done; bounded so
            // that a deadlock fails the test instead of hanging it.
            let got = rx.recv_timeout(HANG).ok();
            *self.nested.lock().unwrap() = got;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_that_calls_back_into_the_client_completes() {
    for unix in [true, false] {
        let server = answering_server();
        let hook = Arc::new(CallsBack {
            client: Default::default(),
            armed: false.into(),
            nested: Mutex::new(None),
            states: Mutex::new(Vec::new()),
            seen: Collect::default(),
        });
        let dir = tempfile::tempdir().unwrap();
        let mut listening = None;
        let c = if unix {
            // Unix socket: a lone call writes itself (its caller runs the hook).
            let sock = dir.path().join("s.sock");
            listening = Some(server.listen_unix(&sock).await.unwrap());
            bounded(Config::new().traffic_hook(hook.clone()).connect_unix(&sock))
                .await
                .unwrap()
        } else {
            // Any other stream: every request goes through the writer task.
            let (ours, theirs) = tokio::io::duplex(64 * 1024);
            let s = server.clone();
            tokio::spawn(async move { s.serve_stream(theirs).await });
            bounded(
                Config::new()
                    .traffic_hook(hook.clone())
                    .connect_stream(ours),
            )
            .await
            .unwrap()
        };
        hook.client.set(c.clone()).unwrap();
        hook.armed.store(true, std::sync::atomic::Ordering::SeqCst);
        let r = bounded(c.execute_raw("answer", Some(&json!({"q": "outer"}))))
            .await
            .unwrap();
        assert_eq!(r, json!({"answer": "outer"}), "unix: {unix}");
        let nested = hook.nested.lock().unwrap().clone();
        assert_eq!(
            nested,
            Some(Ok(json!({"answer": "nested"}))),
            "unix: {unix}: the nested call did not complete"
        );
        let states = hook.states.lock().unwrap().clone();
        assert!(
            states.len() >= 4
                && states
                    .iter()
                    .all(|s| *s == (qmp::ConnectionState::Running, false)),
            "unix: {unix}: {states:?}"
        );
        // A hook still sees each request before its reply.
        let seen = hook.seen.take();
        for (pos, (dir, v)) in seen.iter().enumerate() {
            if *dir == Direction::ToClient && v.get("return").is_some() && v.get("id").is_some() {
                let asked = seen[..pos]
                    .iter()
                    .any(|(d, r)| *d == Direction::ToServer && r["id"] == v["id"]);
                assert!(asked, "unix: {unix}: reply before its request: {v}");
            }
        }
        let requests = seen
            .iter()
            .filter(|(d, v)| *d == Direction::ToServer && v["execute"] == "answer")
            .count();
        assert_eq!(requests, 2, "unix: {unix}: {seen:#?}");
        c.close().await;
        drop(listening);
    }
}
