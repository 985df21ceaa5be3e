//! `qmp::ga::Client` against `qmp::server` in guest-agent mode, with the agent's faults
//! injected: stale replies and a partial line left by an earlier client, garbage
//! between replies, an old agent that ignores ids, late replies after a timeout, an
//! agent that starts after the client connects, an agent killed mid-call, and many
//! concurrent callers. Every call is an `echo` of its own number, so in every test a
//! caller that received another's reply fails the test.

use std::path::PathBuf;
use std::time::Duration;

use qmp::ga::{Client, Config};
use qmp::server::{Faults, Listening, Server};
use qmp::Command;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Bounds every test, so that a hang fails instead of blocking the suite (not a
/// timing assertion: nothing here takes more than a second or so).
const HANG: Duration = Duration::from_secs(60);

/// Returns its argument: each caller can tell its own reply from another's.
#[derive(Debug, Serialize, Deserialize)]
struct Echo {
    n: u64,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Echoed {
    n: u64,
}

impl Command for Echo {
    const NAME: &'static str = "echo";
    type Reply = Echoed;
}

/// An agent that knows `echo` (typed handler) besides its built-in commands.
fn agent(faults: Faults) -> Server {
    Server::builder()
        .guest_agent()
        .handle::<Echo, _, _>(|cmd, _ctx| async move { Ok(Echoed { n: cmd.n }) })
        .faults(faults)
        .build()
}

/// Faults on the replies to `echo` only.
fn on_echo() -> Faults {
    Faults {
        only_command: Some("echo".into()),
        ..Faults::none()
    }
}

struct Served {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    _listening: Listening,
}

async fn listen(server: &Server) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("qga.sock");
    let listening = server.listen_unix(&socket).await.unwrap();
    Served {
        _dir: dir,
        socket,
        _listening: listening,
    }
}

async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(HANG, f)
        .await
        .expect("the test hung (a reply never came)")
}

async fn connect(served: &Served, config: &Config) -> Client {
    bounded(config.connect_unix(&served.socket))
        .await
        .expect("connecting to the agent")
}

/// `calls` concurrent callers, each of which must get its own number back.
async fn each_gets_its_own(client: &Client, calls: u64) {
    let tasks: Vec<_> = (0..calls)
        .map(|n| {
            let c = client.clone();
            tokio::spawn(async move { (n, c.execute(&Echo { n }).await) })
        })
        .collect();
    for t in tasks {
        let (n, reply) = bounded(t).await.unwrap();
        assert_eq!(
            reply.unwrap(),
            Echoed { n },
            "caller {n} got another's reply"
        );
    }
}

#[tokio::test]
async fn stale_replies_and_a_partial_line_before_the_sync_reach_no_caller() {
    let server = agent(Faults {
        // An earlier client's reply (with an id our client might use), one without
        // id, an earlier sync's delimited reply, and half a line.
        preamble: Some(
            b"{\"return\": {\"n\": 99}, \"id\": 7}\n{\"return\": {\"n\": 98}}\n\xff{\"return\": 12}\n{\"return\": {\"stal"
                .to_vec(),
        ),
        ..Faults::none()
    });
    let served = listen(&server).await;
    let client = connect(&served, &Config::new()).await;
    assert_eq!(
        bounded(client.execute(&Echo { n: 1 })).await.unwrap(),
        Echoed { n: 1 }
    );
    each_gets_its_own(&client, 20).await;
    assert!(!client.agent_ignores_ids());
}

#[tokio::test]
async fn garbage_between_replies_is_dropped() {
    for garbage in [
        // Not UTF-8, then not JSON.
        b"%% not json %%\xfe\xfe {\"half\": ".to_vec(),
        b"this is not JSON".to_vec(),
        // JSON, but the reply to a request nobody sent.
        br#"{"return": {"n": 424242}, "id": 424242}"#.to_vec(),
        br#"{"event": "NOT_FROM_AN_AGENT"}"#.to_vec(),
    ] {
        let server = agent(Faults {
            garbage_before_reply: Some(garbage.clone()),
            ..on_echo()
        });
        let served = listen(&server).await;
        let client = connect(&served, &Config::new()).await;
        for n in 0..5 {
            assert_eq!(
                bounded(client.execute(&Echo { n })).await.unwrap(),
                Echoed { n },
                "with garbage {:?}",
                String::from_utf8_lossy(&garbage)
            );
        }
        each_gets_its_own(&client, 20).await;
        // A caller's own guest-sync-delimited gets its own reply too.
        let r = bounded(client.execute_raw("guest-sync-delimited", Some(&json!({"id": 4242}))))
            .await
            .unwrap();
        assert_eq!(r, json!(4242));
        client.close().await;
    }
}

#[tokio::test]
async fn an_agent_that_ignores_ids_is_detected_and_each_caller_gets_its_own_reply() {
    let server = agent(Faults {
        strip_reply_ids: true,
        ..Faults::none()
    });
    let served = listen(&server).await;
    let client = connect(&served, &Config::new()).await;
    each_gets_its_own(&client, 30).await;
    assert!(client.agent_ignores_ids());
}

/// The reply to a call that timed out arrives while the next call waits: it must go
/// to nobody, with and without ids.
#[tokio::test]
async fn a_late_reply_after_a_timeout_goes_to_nobody() {
    for strip_reply_ids in [false, true] {
        let server = agent(Faults {
            reply_delay: Some(Duration::from_millis(300)),
            strip_reply_ids,
            ..on_echo()
        });
        let served = listen(&server).await;
        let client = connect(&served, &Config::new()).await;
        let e = bounded(
            client
                .with_timeout(Some(Duration::from_millis(20)))
                .execute(&Echo { n: 1 }),
        )
        .await
        .unwrap_err();
        assert!(e.is_timeout(), "{e}");
        // The reply to 1 comes while 2 waits (the agent answers one request at a
        // time): 2 gets its own.
        assert_eq!(
            bounded(client.execute(&Echo { n: 2 })).await.unwrap(),
            Echoed { n: 2 },
            "strip_reply_ids: {strip_reply_ids}"
        );
        each_gets_its_own(&client, 3).await;
        client.close().await;
    }
}

#[tokio::test]
async fn an_agent_that_starts_late_is_waited_for() {
    let server = agent(Faults {
        late_start: Some(Duration::from_millis(300)),
        ..Faults::none()
    });
    let served = listen(&server).await;
    let mut config = Config::new();
    config.sync_timeout(Duration::from_millis(50));

    // Without waiting: a timeout that says what it waited for.
    let e = bounded(config.connect_unix(&served.socket))
        .await
        .unwrap_err();
    assert!(e.is_timeout(), "{e}");
    assert!(e.to_string().contains("guest-sync-delimited"), "{e}");

    // Waiting: the syncs sent meanwhile are all answered once the agent reads; only
    // the last one counts.
    config.wait_for_agent(Some(Duration::from_secs(30)));
    let client = connect(&served, &config).await;
    each_gets_its_own(&client, 10).await;
}

#[tokio::test]
async fn an_agent_killed_mid_call_fails_that_call_and_every_later_one() {
    let server = agent(Faults {
        close_after: Some(3),
        ..on_echo()
    });
    let served = listen(&server).await;
    let client = connect(&served, &Config::new()).await;
    let tasks: Vec<_> = (0..10)
        .map(|n| {
            let c = client.clone();
            tokio::spawn(async move { (n, c.execute(&Echo { n }).await) })
        })
        .collect();
    let mut answered = 0;
    for t in tasks {
        match bounded(t).await.unwrap() {
            (n, Ok(reply)) => {
                assert_eq!(reply, Echoed { n }, "caller {n} got another's reply");
                answered += 1;
            }
            (_, Err(e)) => {
                assert!(e.is_closed(), "{e}");
                assert!(!e.to_string().contains("as expected"), "{e}");
            }
        }
    }
    // One call at a time: three answered, the fourth killed the agent.
    assert_eq!(answered, 3);
    let e = bounded(client.execute(&Echo { n: 99 })).await.unwrap_err();
    assert!(e.is_closed(), "{e}");
}

#[tokio::test]
async fn fifty_concurrent_callers_each_get_their_own_reply() {
    let server = agent(Faults::none());
    let served = listen(&server).await;
    let client = connect(&served, &Config::new()).await;
    each_gets_its_own(&client, 50).await;
    // And through every fault that leaves the connection up, at once.
    let server = agent(Faults {
        preamble: Some(b"{\"return\": {\"n\": 7}, \"id\": 1}\n{\"ret".to_vec()),
        strip_reply_ids: true,
        garbage_before_reply: Some(b"\xff{\"return\": 3}".to_vec()),
        reply_delay: Some(Duration::from_millis(2)),
        ..on_echo()
    });
    let served = listen(&server).await;
    let client = connect(&served, &Config::new()).await;
    each_gets_its_own(&client, 50).await;
    assert!(client.agent_ignores_ids());
}

#[tokio::test]
async fn connected_agents_are_listed_and_get_no_events() {
    let server = agent(Faults::none());
    let served = listen(&server).await;
    let client = connect(&served, &Config::new()).await;
    bounded(server.wait_for_clients(1)).await;
    let id = server.clients()[0];
    assert_eq!(server.emit_raw("STOP", None).await, 0);
    assert!(!server.emit_raw_to(id, "STOP", None).await);
    each_gets_its_own(&client, 3).await;
    server.disconnect(id).await;
    let e = bounded(client.closed()).await;
    assert!(e.is_closed(), "{e}");
}

/// Reads from `stream` until `input` holds `n` complete lines, returning them (with
/// their `\n`); what follows stays in `input`.
async fn lines(stream: &mut tokio::net::UnixStream, input: &mut Vec<u8>, n: usize) -> Vec<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    while out.len() < n {
        if let Some(nl) = input.iter().position(|&b| b == b'\n') {
            out.push(input.drain(..=nl).collect());
            continue;
        }
        let mut buf = [0u8; 4096];
        let got = bounded(stream.read(&mut buf)).await.unwrap();
        assert!(got > 0, "closed early; lines so far: {out:?}");
        input.extend_from_slice(&buf[..got]);
    }
    out
}

/// What the faults above put on the wire, seen by a raw client: the tests above
/// would prove nothing if the faults were not there.
#[tokio::test]
async fn the_faults_are_on_the_wire() {
    use tokio::io::AsyncWriteExt;
    let server = agent(Faults {
        preamble: Some(b"{\"return\": {}, \"id\": 7}\n{\"return\": {\"stal".to_vec()),
        strip_reply_ids: true,
        garbage_before_reply: Some(b"\xfegarbage".to_vec()),
        close_after: Some(1),
        ..on_echo()
    });
    let served = listen(&server).await;
    let mut s = tokio::net::UnixStream::connect(&served.socket)
        .await
        .unwrap();
    s.write_all(
        b"\xff{\"execute\": \"guest-sync-delimited\", \"arguments\": {\"id\": 5}, \"id\": 1}\
          {\"execute\": \"echo\", \"arguments\": {\"n\": 3}, \"id\": 2}\
          {\"execute\": \"guest-ping\", \"id\": 3}\
          {\"execute\": \"echo\", \"arguments\": {\"n\": 4}, \"id\": 4}",
    )
    .await
    .unwrap();
    let mut input = Vec::new();
    let got = lines(&mut s, &mut input, 6).await;
    let expected: [&[u8]; 6] = [
        // The preamble, whose partial line the parse error's reply completes.
        b"{\"return\": {}, \"id\": 7}\n",
        b"{\"return\": {\"stal{\"error\":{\"class\":\"GenericError\",\"desc\":\"JSON parse error, stray '\xef\xbf\xbd'\"}}\n",
        // The sync is exempt from the reply faults, but an agent that ignores ids
        // ignores its id too.
        b"\xff{\"return\":5}\n",
        b"\xfegarbage\n",
        b"{\"return\":{\"n\":3}}\n",
        // Other commands are spared the faults `only_command` narrows, not that one.
        b"{\"return\":{}}\n",
    ];
    for (got, expected) in got.iter().zip(expected) {
        assert!(
            got == expected,
            "got {:?}, expected {:?}",
            String::from_utf8_lossy(got),
            String::from_utf8_lossy(expected)
        );
    }
    // The second echo closes the connection unanswered.
    use tokio::io::AsyncReadExt;
    let mut rest = Vec::new();
    bounded(s.read_to_end(&mut rest)).await.unwrap();
    assert!(input.is_empty() && rest.is_empty(), "{input:?} {rest:?}");
}

/// A successful reply without an id, from an agent that echoes ids, answers no call
/// (the client learns at each sync whether the agent echoes ids): found with this
/// fault, which made every call return `{"n": 424242}`.
#[tokio::test]
async fn a_reply_without_id_from_an_agent_that_echoes_ids_reaches_nobody() {
    let server = agent(Faults {
        garbage_before_reply: Some(br#"{"return": {"n": 424242}}"#.to_vec()),
        ..on_echo()
    });
    let served = listen(&server).await;
    let client = connect(&served, &Config::new()).await;
    for n in 0..5 {
        assert_eq!(
            bounded(client.execute(&Echo { n })).await.unwrap(),
            Echoed { n }
        );
    }
    each_gets_its_own(&client, 20).await;
    assert!(!client.agent_ignores_ids());
}
