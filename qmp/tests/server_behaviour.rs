//! `qmp::server` as users see it: typed handlers and events with our client, several
//! clients, TCP, schema checks, event ordering around replies, `exec-oob`, traffic
//! recording and replay of a session recorded against real QEMU.

mod server_support;

use std::sync::Arc;
use std::time::Duration;

use qmp::schema_check::Schema;
use qmp::server::replay::Replay;
use qmp::server::transcript::{self, Direction, Recorder};
use qmp::server::Server;
use qmp::{Command, Config, ErrorKind, Event};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use server_support::{record_session, session_commands, Qsd, RawPeer, HANG};

#[derive(Debug, Serialize, Deserialize)]
struct Echo {
    text: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct EchoReply {
    text: String,
    len: usize,
}

impl Command for Echo {
    const NAME: &'static str = "echo";
    type Reply = EchoReply;
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Stopped {
    reason: String,
}

impl Event for Stopped {
    const NAME: &'static str = "STOPPED";
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(HANG, f).await.expect("hung")
}

fn echo_server() -> Server {
    Server::builder()
        .capabilities(["oob"])
        .handle::<Echo, _, _>(|cmd, _ctx| async move {
            Ok(EchoReply {
                len: cmd.text.len(),
                text: cmd.text,
            })
        })
        .handle_raw("slow", false, |_ctx, _args| async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok(json!("slow"))
        })
        .handle_raw("fast", true, |_ctx, _args| async { Ok(json!("fast")) })
        .handle_raw("around", false, |ctx, _args| async move {
            ctx.server.emit_raw_to(ctx.client, "BEFORE", None).await;
            ctx.emit_after_reply("AFTER", Some(json!({"x": 1})));
            Ok(json!({}))
        })
        .build()
}

#[tokio::test]
async fn typed_handlers_and_typed_events_with_our_client() {
    let server = echo_server();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let _l = server.listen_unix(&path).await.unwrap();
    let c = bounded(qmp::connect_unix(&path)).await.unwrap();
    let reply = bounded(c.execute(&Echo {
        text: "hello".into(),
    }))
    .await
    .unwrap();
    assert_eq!(
        reply,
        EchoReply {
            text: "hello".into(),
            len: 5
        }
    );
    let mut stops = c.subscribe::<Stopped>();
    server.wait_for_clients(1).await;
    let n = server
        .emit(&Stopped {
            reason: "test".into(),
        })
        .await
        .unwrap();
    assert_eq!(n, 1);
    let ev = bounded(stops.next()).await.unwrap().unwrap();
    assert_eq!(ev.reason, "test");
    // Bad arguments for a typed handler are refused, not a panic.
    let err = bounded(c.execute_raw("echo", Some(&json!({"text": 5}))))
        .await
        .unwrap_err();
    assert_eq!(err.qmp_error().unwrap().class, "GenericError");
}

#[tokio::test]
async fn events_go_to_all_or_to_one_client_over_tcp() {
    let server = echo_server();
    let l = server.listen_tcp("127.0.0.1:0").await.unwrap();
    let qmp::server::ListenAddr::Tcp(addr) = l.addr().clone() else {
        panic!()
    };
    let mut clients = Vec::new();
    let mut subs = Vec::new();
    for _ in 0..3 {
        let c = bounded(qmp::connect_tcp(addr)).await.unwrap();
        subs.push(c.subscribe_raw());
        clients.push(c);
    }
    server.wait_for_clients(3).await;
    assert_eq!(server.emit_raw("ALL", Some(json!({"n": 1}))).await, 3);
    let ids = server.clients();
    assert!(server.emit_raw_to(ids[1], "ONE", None).await);
    assert_eq!(server.emit_raw("ALL", Some(json!({"n": 2}))).await, 3);
    for (i, sub) in subs.iter_mut().enumerate() {
        let mut names = Vec::new();
        let want = if i == 1 { 3 } else { 2 };
        for _ in 0..want {
            names.push(
                bounded(sub.next())
                    .await
                    .unwrap()
                    .unwrap()
                    .name()
                    .to_string(),
            );
        }
        // Clients are numbered in accept order, which is connect order here.
        let expect: Vec<&str> = if i == 1 {
            vec!["ALL", "ONE", "ALL"]
        } else {
            vec!["ALL", "ALL"]
        };
        assert_eq!(names, expect, "client {i}");
    }
}

#[tokio::test]
async fn events_around_the_reply_keep_their_order_and_wait_for_negotiation() {
    let server = echo_server();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let _l = server.listen_unix(&path).await.unwrap();
    let mut p = RawPeer::connect(&path).await;
    assert!(p.recv().await.get("QMP").is_some());
    // Not negotiated: not a recipient of events.
    assert_eq!(server.emit_raw("EARLY", None).await, 0);
    assert_eq!(
        p.call(r#"{"execute":"qmp_capabilities","id":1}"#).await,
        json!({"return": {}, "id": 1})
    );
    p.send(r#"{"execute":"around","id":"x"}"#).await;
    assert_eq!(p.recv().await["event"], "BEFORE");
    assert_eq!(p.recv().await, json!({"return": {}, "id": "x"}));
    let after = p.recv().await;
    assert_eq!(after["event"], "AFTER");
    assert_eq!(after["data"], json!({"x": 1}));
    assert!(after["timestamp"]["seconds"].as_i64().unwrap() > 0);
}

#[tokio::test]
async fn exec_oob_overtakes_a_slow_in_band_command() {
    let server = echo_server();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let _l = server.listen_unix(&path).await.unwrap();
    let c = bounded(qmp::connect_unix(&path)).await.unwrap();
    assert!(c.oob_enabled());
    let slow = {
        let c = c.clone();
        tokio::spawn(async move {
            let v = c.execute_raw("slow", None::<&()>).await.unwrap();
            (v, std::time::Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let fast = bounded(c.execute_oob_raw("fast", None::<&()>))
        .await
        .unwrap();
    let fast_at = std::time::Instant::now();
    let (slow_v, slow_at) = bounded(slow).await.unwrap();
    assert_eq!((fast, slow_v), (json!("fast"), json!("slow")));
    assert!(fast_at < slow_at, "exec-oob did not overtake");
    // And a command that does not allow it is refused with QEMU's text.
    let err = bounded(c.execute_oob_raw("slow", None::<&()>))
        .await
        .unwrap_err();
    assert_eq!(
        err.qmp_error().unwrap().desc,
        "The command slow does not support OOB"
    );
}

#[tokio::test]
async fn schema_checks_refuse_what_qemu_would_refuse() {
    let schema = Schema::from_introspection(&json!([
        {"name": "str", "meta-type": "builtin", "json-type": "string"},
        {"name": "0", "meta-type": "object", "members": []},
        {"name": "echo-arg", "meta-type": "object", "members": [{"name": "text", "type": "str"}]},
        {"name": "echo", "meta-type": "command", "arg-type": "echo-arg", "ret-type": "0"},
        {"name": "nohandler", "meta-type": "command", "arg-type": "0", "ret-type": "0"}
    ]))
    .unwrap();
    let server = Server::builder()
        .schema(schema)
        .handle::<Echo, _, _>(|cmd, _ctx| async move {
            Ok(EchoReply {
                len: cmd.text.len(),
                text: cmd.text,
            })
        })
        .handle_raw("not-in-schema", false, |_c, _a| async { Ok(json!({})) })
        .build();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let _l = server.listen_unix(&path).await.unwrap();
    let c = bounded(qmp::connect_unix(&path)).await.unwrap();
    let cases = [
        (
            "echo",
            json!({}),
            "GenericError",
            "Parameter 'text' is missing",
        ),
        (
            "echo",
            json!({"text": "a", "extra": 1}),
            "GenericError",
            "Parameter 'extra' is unexpected",
        ),
        (
            "echo",
            json!({"text": 1}),
            "GenericError",
            "Invalid parameter type for 'text', expected: string",
        ),
        (
            "not-in-schema",
            json!({}),
            "CommandNotFound",
            "The command not-in-schema has not been found",
        ),
    ];
    for (cmd, args, class, desc) in cases {
        let err = bounded(c.execute_raw(cmd, Some(&args))).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Qmp);
        let e = err.qmp_error().unwrap();
        assert_eq!(
            (e.class.as_str(), e.desc.as_str()),
            (class, desc),
            "{cmd} {args}"
        );
    }
    let err = bounded(c.execute_raw("nohandler", None::<&()>))
        .await
        .unwrap_err();
    assert!(
        err.qmp_error().unwrap().desc.contains("no handler"),
        "{err}"
    );
    let ok = bounded(c.execute(&Echo { text: "ok".into() }))
        .await
        .unwrap();
    assert_eq!(ok.len, 2);
}

#[tokio::test]
async fn replay_of_a_session_recorded_against_qemu_answers_our_client() {
    let Some(qsd) = Qsd::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.jsonl");
    let requests = [
        r#"{"execute":"qmp_capabilities","arguments":{"enable":["oob"]},"id":0}"#,
        r#"{"execute":"query-version","id":1}"#,
        r#"{"execute":"blockdev-add","arguments":{"driver":"null-co","node-name":"n0"},"id":2}"#,
        r#"{"execute":"blockdev-add","arguments":{"driver":"null-co","node-name":"n0"},"id":3}"#,
        r#"{"execute":"query-named-block-nodes","id":4}"#,
        r#"{"execute":"blockdev-del","arguments":{"node-name":"n0"},"id":5}"#,
    ];
    let recorded = {
        let rec = Recorder::create(&path).unwrap();
        record_session(&qsd.socket, &rec, &requests).await
    };
    drop(qsd);
    let replay = Replay::from_file(&path).unwrap();
    assert_eq!(replay.remaining(), 5);
    let server = Server::builder().replay(replay).build();
    let sock = dir.path().join("replay.sock");
    let _l = server.listen_unix(&sock).await.unwrap();
    let c = bounded(qmp::connect_unix(&sock)).await.unwrap();
    assert_eq!(c.greeting().qmp.version.qemu.major, 10);
    for (req, want) in requests[1..].iter().zip(&recorded[1..]) {
        let req: Value = serde_json::from_str(req).unwrap();
        let name = req["execute"].as_str().unwrap();
        let got = bounded(c.execute_raw(name, req.get("arguments"))).await;
        match (got, want.get("return")) {
            (Ok(v), Some(w)) => assert_eq!(&v, w, "{name}"),
            (Err(e), None) => {
                let e = e.qmp_error().unwrap();
                assert_eq!(e.class, want["error"]["class"]);
                assert_eq!(e.desc, want["error"]["desc"]);
            }
            (got, _) => panic!("{name}: got {got:?}, recorded {want}"),
        }
    }
    // A request the recording does not have.
    let err = bounded(c.execute_raw("query-version", None::<&()>))
        .await
        .unwrap_err();
    assert!(err
        .qmp_error()
        .unwrap()
        .desc
        .contains("no recorded request matches"));
}

#[tokio::test]
async fn server_side_recording_replays() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.jsonl");
    let server = Server::builder()
        .traffic_hook(Arc::new(Recorder::create(&path).unwrap()))
        .handle_raw("answer", false, |ctx, args| async move {
            ctx.server
                .emit_raw_to(ctx.client, "THINKING", Some(Value::Object(args.clone())))
                .await;
            Ok(json!(42))
        })
        .build();
    let sock = dir.path().join("s.sock");
    let l = server.listen_unix(&sock).await.unwrap();
    let c = bounded(qmp::connect_unix(&sock)).await.unwrap();
    let mut events = c.subscribe_raw();
    assert_eq!(
        bounded(c.execute_raw("answer", Some(&json!({"q": "life"}))))
            .await
            .unwrap(),
        json!(42)
    );
    bounded(events.next()).await.unwrap().unwrap();
    c.close().await;
    drop(l);
    let entries = transcript::read(&path).unwrap();
    assert!(entries[0].msg.get("QMP").is_some());
    assert!(entries.iter().any(|e| e.dir == Direction::ToServer));

    let replayed = Server::builder()
        .replay(Replay::from_file(&path).unwrap())
        .build();
    let sock2 = dir.path().join("r.sock");
    let _l2 = replayed.listen_unix(&sock2).await.unwrap();
    let c2 = bounded(Config::new().connect_unix(&sock2)).await.unwrap();
    let mut events2 = c2.subscribe_raw();
    assert_eq!(
        bounded(c2.execute_raw("answer", Some(&json!({"q": "life"}))))
            .await
            .unwrap(),
        json!(42)
    );
    let ev = bounded(events2.next()).await.unwrap().unwrap();
    assert_eq!(ev.name(), "THINKING");
    assert_eq!(ev.to_value()["data"], json!({"q": "life"}));
    // Different arguments do not match the recording.
    let err = bounded(c2.execute_raw("answer", Some(&json!({"q": "other"}))))
        .await
        .unwrap_err();
    assert_eq!(err.qmp_error().unwrap().class, "GenericError");
}

/// Our client records a session with real QEMU through `record_stream`; the
/// transcript replays to a new client with the same replies and events.
#[tokio::test]
async fn client_session_recorded_through_the_proxy_replays() {
    let Some(qsd) = Qsd::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("client.jsonl");
    let commands = session_commands("rec0");
    let mut recorded = Vec::new();
    {
        let stream = tokio::net::UnixStream::connect(&qsd.socket).await.unwrap();
        let hook = Arc::new(Recorder::create(&path).unwrap());
        let proxied = transcript::record_stream(stream, hook);
        let c = bounded(Config::new().connect_stream(proxied))
            .await
            .unwrap();
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

/// What `qmp serve --replay FILE --record FILE` runs: a replay server that records.
#[tokio::test]
async fn serve_options_replay_and_record() {
    let dir = tempfile::tempdir().unwrap();
    let transcript_path = dir.path().join("in.jsonl");
    std::fs::write(
        &transcript_path,
        concat!(
            r#"{"t":0.0,"dir":"s2c","msg":{"QMP":{"version":{"qemu":{"micro":2,"minor":0,"major":10},"package":""},"capabilities":["oob"]}}}"#,
            "\n",
            r#"{"t":0.1,"dir":"c2s","msg":{"execute":"qmp_capabilities","arguments":{"enable":["oob"]},"id":0}}"#,
            "\n",
            r#"{"t":0.1,"dir":"s2c","msg":{"return":{},"id":0}}"#,
            "\n",
            r#"{"t":0.2,"dir":"c2s","msg":{"execute":"stop","id":1}}"#,
            "\n",
            r#"{"t":0.3,"dir":"s2c","msg":{"timestamp":{"seconds":1,"microseconds":2},"event":"STOP"}}"#,
            "\n",
            r#"{"t":0.3,"dir":"s2c","msg":{"return":{},"id":1}}"#,
            "\n",
        ),
    )
    .unwrap();
    let out_path = dir.path().join("out.jsonl");
    let options = qmp::server::serve::ServeOptions {
        socket: Some(dir.path().join("s.sock")),
        replay: Some(transcript_path),
        record: Some(out_path.clone()),
        ..Default::default()
    };
    let (_server, listening) = qmp::server::serve::start(&options).await.unwrap();
    let c = bounded(qmp::connect_unix(options.socket.as_ref().unwrap()))
        .await
        .unwrap();
    assert!(c.oob_enabled());
    let mut events = c.subscribe_raw();
    assert_eq!(
        bounded(c.execute_raw("stop", None::<&()>)).await.unwrap(),
        json!({})
    );
    assert_eq!(
        bounded(events.next()).await.unwrap().unwrap().name(),
        "STOP"
    );
    c.close().await;
    drop(listening);
    let recorded = transcript::read(&out_path).unwrap();
    assert!(recorded
        .iter()
        .any(|e| e.dir == Direction::ToServer && e.msg["execute"] == "stop"));
}

#[tokio::test]
async fn a_panicking_handler_costs_one_error_reply_not_the_session() {
    let server = Server::builder()
        .handle_raw("boom", true, |_ctx, _args| async {
            if true {
                panic!("handler bug");
            }
            Ok(json!({}))
        })
        .handle_raw("fine", false, |_ctx, _args| async { Ok(json!("fine")) })
        .build();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let _l = server.listen_unix(&path).await.unwrap();
    let c = bounded(qmp::connect_unix(&path)).await.unwrap();
    let err = bounded(c.execute_raw("boom", None::<&()>))
        .await
        .unwrap_err();
    assert_eq!(err.qmp_error().unwrap().class, "GenericError");
    assert_eq!(
        bounded(c.execute_raw("fine", None::<&()>)).await.unwrap(),
        json!("fine")
    );
}
