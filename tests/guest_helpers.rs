//! `qemu_qapi::guest` against a scripted fake agent over `tokio::io::duplex`: the
//! freeze guard (thaw, thaw from drop, no thaw after an error reply, a thaw after a
//! freeze without answer or a cancelled one, a second thaw after an unanswered one), the file handle closed on every path
//! (an error half-way, a cancelled transfer), short writes, and `exec`'s decoding and
//! timeout. Never against a real qemu-ga: on this machine a freeze would freeze it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use qemu_qapi::guest::{self, Exec, ExitStatus, Transfer};
use qemu_qapi::qmp::ga;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};

/// Bounds every wait, so that a hang fails instead of blocking the suite (nothing here
/// should take more than a second).
const HANG: Duration = Duration::from_secs(60);

/// What the fake agent does with one command.
enum Answer {
    Return(Value),
    Error(&'static str),
    /// No reply at all (the command hangs in the agent).
    Never,
    /// The agent goes away.
    Hangup,
}

type Script = Box<dyn FnMut(&str, &Value) -> Answer + Send>;

/// The commands the fake received (not the syncs), in order.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<(String, Value)>>>);

impl Log {
    fn names(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(n, _)| n.clone())
            .collect()
    }

    fn entries(&self) -> Vec<(String, Value)> {
        self.0.lock().unwrap().clone()
    }

    /// Waits (bounded by [`HANG`]) until the fake has received `name`.
    async fn wait_for(&self, name: &str) {
        self.wait_for_times(name, 1).await
    }

    /// Waits (bounded by [`HANG`]) until the fake has received `name` `times` times.
    async fn wait_for_times(&self, name: &str, times: usize) {
        let seen = async {
            while self.names().iter().filter(|n| *n == name).count() < times {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(HANG, seen).await.unwrap_or_else(|_| {
            panic!("`{name}` never came {times} times; got {:?}", self.names())
        });
    }
}

/// Plays qemu-ga: 0xFF bytes reset its parser, `guest-sync-delimited` is answered
/// with 0xFF then `{"return": <id>}`, every other command is logged and answered as
/// `script` says, one at a time.
async fn agent(stream: DuplexStream, log: Log, mut script: Script) {
    let (r, mut w) = tokio::io::split(stream);
    let mut r = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = match buf.iter().rposition(|&b| b == 0xFF) {
            Some(pos) => &buf[pos + 1..],
            None => &buf[..],
        };
        let Ok(req) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        let name = req["execute"].as_str().unwrap_or("").to_owned();
        let args = req.get("arguments").cloned().unwrap_or(json!({}));
        let mut out = Vec::new();
        let mut reply = if name == "guest-sync-delimited" {
            out.push(0xFF);
            json!({ "return": args["id"] })
        } else {
            log.0.lock().unwrap().push((name.clone(), args.clone()));
            match script(&name, &args) {
                Answer::Return(v) => json!({ "return": v }),
                Answer::Error(desc) => json!({ "error": {"class": "GenericError", "desc": desc} }),
                Answer::Never => continue,
                Answer::Hangup => return,
            }
        };
        if let Some(id) = req.get("id") {
            reply["id"] = id.clone();
        }
        out.extend_from_slice(reply.to_string().as_bytes());
        out.push(b'\n');
        if w.write_all(&out).await.is_err() {
            return;
        }
    }
}

async fn connect(config: &ga::Config, script: Script) -> (ga::Client, Log) {
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let log = Log::default();
    tokio::spawn(agent(theirs, log.clone(), script));
    let client = tokio::time::timeout(HANG, config.connect_stream(ours))
        .await
        .expect("connect hung")
        .expect("connect");
    (client, log)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(text: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text.as_str().expect("a string"))
        .expect("base64")
}

/// Freeze and thaw answer with `n` file systems; everything else with `{}`.
fn freezer(n: i64) -> Script {
    Box::new(move |name, _| match name {
        "guest-fsfreeze-freeze" | "guest-fsfreeze-freeze-list" | "guest-fsfreeze-thaw" => {
            Answer::Return(json!(n))
        }
        _ => Answer::Return(json!({})),
    })
}

async fn ping(client: &ga::Client) {
    tokio::time::timeout(HANG, client.execute_raw("guest-ping", None::<&()>))
        .await
        .expect("guest-ping hung")
        .expect("guest-ping");
}

#[tokio::test]
async fn freeze_then_thaw_returns_the_counts() {
    let (client, log) = connect(&ga::Config::new(), freezer(3)).await;
    let guard = guest::freeze(&client).await.unwrap();
    assert_eq!(guard.frozen(), 3);
    assert_eq!(guard.thaw().await.unwrap(), 3);
    // Thawed once: the guard's drop after thaw() sends nothing more.
    ping(&client).await;
    assert_eq!(
        log.names(),
        ["guest-fsfreeze-freeze", "guest-fsfreeze-thaw", "guest-ping"]
    );
}

#[tokio::test]
async fn freeze_mountpoints_sends_the_list() {
    let (client, log) = connect(&ga::Config::new(), freezer(2)).await;
    let guard = guest::freeze_mountpoints(&client, &["/", "/data"])
        .await
        .unwrap();
    guard.thaw().await.unwrap();
    assert_eq!(
        log.entries()[0],
        (
            "guest-fsfreeze-freeze-list".to_owned(),
            json!({"mountpoints": ["/", "/data"]})
        )
    );
}

#[tokio::test]
async fn a_guard_dropped_without_thaw_thaws_from_a_task() {
    let (client, log) = connect(&ga::Config::new(), freezer(1)).await;
    {
        let _guard = guest::freeze(&client).await.unwrap();
        // Dropped here: an early return, a `?`, a panic in real code.
    }
    log.wait_for("guest-fsfreeze-thaw").await;
    assert_eq!(
        log.names(),
        ["guest-fsfreeze-freeze", "guest-fsfreeze-thaw"]
    );
}

#[tokio::test]
async fn an_unanswered_thaw_is_sent_again_from_a_task() {
    let mut thaws = 0;
    let script: Script = Box::new(move |name, _| match name {
        "guest-fsfreeze-thaw" => {
            thaws += 1;
            if thaws == 1 {
                Answer::Never
            } else {
                Answer::Return(json!(1))
            }
        }
        _ => Answer::Return(json!(1)),
    });
    let mut config = ga::Config::new();
    config.call_timeout(Some(Duration::from_millis(200)));
    let (client, log) = connect(&config, script).await;
    let guard = guest::freeze(&client).await.unwrap();
    let e = guard.thaw().await.unwrap_err();
    assert!(e.is_timeout(), "{e}");
    assert!(e.to_string().contains("guest-fsfreeze-thaw"), "{e}");
    log.wait_for_times("guest-fsfreeze-thaw", 2).await;
    ping(&client).await;
    assert_eq!(
        log.names(),
        [
            "guest-fsfreeze-freeze",
            "guest-fsfreeze-thaw",
            "guest-fsfreeze-thaw",
            "guest-ping"
        ]
    );
}

#[tokio::test]
async fn an_error_reply_to_freeze_sends_no_thaw() {
    // qemu-ga thaws by itself before it answers with an error (src/guest/freeze.rs).
    let script: Script = Box::new(|name, _| match name {
        "guest-fsfreeze-freeze" => Answer::Error("failed to freeze /: Operation not permitted"),
        _ => Answer::Return(json!({})),
    });
    let (client, log) = connect(&ga::Config::new(), script).await;
    let e = guest::freeze(&client).await.unwrap_err();
    assert!(e.as_qmp().is_some_and(|q| q.is_qmp_error()), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("guest-fsfreeze-freeze") && text.contains("Operation not permitted"),
        "{text}"
    );
    // Calls are sent in order: a thaw, had one been sent, would come before this.
    ping(&client).await;
    assert_eq!(log.names(), ["guest-fsfreeze-freeze", "guest-ping"]);
}

#[tokio::test]
async fn a_freeze_without_answer_is_thawed_before_the_error_returns() {
    let script: Script = Box::new(|name, _| match name {
        "guest-fsfreeze-freeze" => Answer::Never,
        _ => Answer::Return(json!(1)),
    });
    let mut config = ga::Config::new();
    config.call_timeout(Some(Duration::from_millis(200)));
    let (client, log) = connect(&config, script).await;
    let e = guest::freeze(&client).await.unwrap_err();
    assert!(e.is_timeout(), "{e}");
    assert!(
        e.to_string().contains("a thaw was sent and succeeded"),
        "{e}"
    );
    // Already there when freeze() returned, not left to a task.
    assert_eq!(
        log.names(),
        ["guest-fsfreeze-freeze", "guest-fsfreeze-thaw"]
    );
}

#[tokio::test]
async fn a_cancelled_freeze_is_thawed_from_a_task() {
    let script: Script = Box::new(|name, _| match name {
        "guest-fsfreeze-freeze" => Answer::Never,
        _ => Answer::Return(json!(0)),
    });
    let (client, log) = connect(&ga::Config::new(), script).await;
    let cancelled = tokio::time::timeout(Duration::from_millis(100), guest::freeze(&client)).await;
    assert!(cancelled.is_err(), "the freeze was never answered");
    log.wait_for("guest-fsfreeze-thaw").await;
    assert_eq!(
        log.names(),
        ["guest-fsfreeze-freeze", "guest-fsfreeze-thaw"]
    );
}

#[tokio::test]
async fn a_connection_lost_during_freeze_says_the_guest_may_still_be_frozen() {
    let script: Script = Box::new(|name, _| match name {
        "guest-fsfreeze-freeze" => Answer::Hangup,
        _ => Answer::Return(json!(0)),
    });
    let (client, _log) = connect(&ga::Config::new(), script).await;
    let e = guest::freeze(&client).await.unwrap_err();
    assert!(e.as_qmp().is_some_and(|q| q.is_closed()), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("may still be frozen") && text.contains("guest-fsfreeze-thaw"),
        "{text}"
    );
}

/// A guest file of `content` behind handle 7: reads of `count` bytes (the `n`-th read
/// answered by `fail_read` if it says so), writes appended to `written` (at most
/// `short` bytes taken per call).
fn file_agent(
    content: Vec<u8>,
    fail_read: Option<usize>,
    fail_write: Option<usize>,
    short: usize,
    written: Arc<Mutex<Vec<u8>>>,
) -> Script {
    let (mut pos, mut reads, mut writes) = (0usize, 0usize, 0usize);
    Box::new(move |name, args| match name {
        "guest-file-open" => Answer::Return(json!(7)),
        "guest-file-close" => Answer::Return(json!({})),
        "guest-file-read" => {
            reads += 1;
            if fail_read == Some(reads) {
                return Answer::Error("read failed: Input/output error");
            }
            let count = args["count"].as_u64().unwrap_or(4096) as usize;
            let end = content.len().min(pos + count);
            let chunk = &content[pos..end];
            pos = end;
            Answer::Return(json!({
                "count": chunk.len(), "buf-b64": b64(chunk), "eof": pos == content.len()
            }))
        }
        "guest-file-write" => {
            writes += 1;
            if fail_write == Some(writes) {
                return Answer::Error("write failed: No space left on device");
            }
            let bytes = unb64(&args["buf-b64"]);
            assert_eq!(args["count"].as_u64(), Some(bytes.len() as u64));
            let taken = bytes.len().min(short);
            written.lock().unwrap().extend_from_slice(&bytes[..taken]);
            Answer::Return(json!({"count": taken, "eof": false}))
        }
        _ => Answer::Return(json!({})),
    })
}

fn content(len: usize) -> Vec<u8> {
    // Not UTF-8: every byte value, 0xFF included (the agent's delimiter).
    (0..len).map(|i| (i * 7 % 256) as u8).collect()
}

#[tokio::test]
async fn a_file_is_read_in_chunks_and_closed() {
    let data = content(1000);
    let script = file_agent(data.clone(), None, None, usize::MAX, Default::default());
    let (client, log) = connect(&ga::Config::new(), script).await;
    let got = Transfer::new()
        .chunk_size(300)
        .read(&client, "/etc/data")
        .await
        .unwrap();
    assert_eq!(got, data);
    let entries = log.entries();
    assert_eq!(
        entries[0],
        (
            "guest-file-open".to_owned(),
            json!({"path": "/etc/data", "mode": "rb"})
        )
    );
    let reads = entries
        .iter()
        .filter(|(n, a)| n == "guest-file-read" && a["count"] == json!(300))
        .count();
    assert_eq!(reads, 4, "{entries:?}");
    assert_eq!(
        entries.last().unwrap(),
        &("guest-file-close".to_owned(), json!({"handle": 7}))
    );
}

#[tokio::test]
async fn a_read_failing_half_way_closes_the_handle() {
    let script = file_agent(content(1000), Some(2), None, usize::MAX, Default::default());
    let (client, log) = connect(&ga::Config::new(), script).await;
    let e = Transfer::new()
        .chunk_size(300)
        .read(&client, "/etc/data")
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("reading /etc/data from the guest")
            && text.contains("at byte 300")
            && text.contains("Input/output error"),
        "{text}"
    );
    // Closed before the error came back.
    assert_eq!(
        log.names(),
        [
            "guest-file-open",
            "guest-file-read",
            "guest-file-read",
            "guest-file-close"
        ]
    );
}

#[tokio::test]
async fn a_write_failing_half_way_closes_the_handle() {
    let script = file_agent(Vec::new(), None, Some(2), usize::MAX, Default::default());
    let (client, log) = connect(&ga::Config::new(), script).await;
    let e = Transfer::new()
        .chunk_size(100)
        .write(&client, "/var/out", &content(250))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("No space left on device") && e.to_string().contains("byte 100"),
        "{e}"
    );
    assert_eq!(
        log.entries().last().unwrap(),
        &("guest-file-close".to_owned(), json!({"handle": 7}))
    );
    assert_eq!(
        log.entries()[0].1,
        json!({"path": "/var/out", "mode": "wb"})
    );
}

#[tokio::test]
async fn short_writes_go_on_from_where_they_stopped() {
    let written = Arc::new(Mutex::new(Vec::new()));
    let script = file_agent(Vec::new(), None, None, 5, written.clone());
    let (client, log) = connect(&ga::Config::new(), script).await;
    let data = content(23);
    Transfer::new()
        .chunk_size(8)
        .write(&client, "/var/out", &data)
        .await
        .unwrap();
    assert_eq!(*written.lock().unwrap(), data);
    // 5 bytes a call: 23 bytes take 5 writes, each sending what is left of its chunk.
    let writes: Vec<usize> = log
        .entries()
        .iter()
        .filter(|(n, _)| n == "guest-file-write")
        .map(|(_, a)| unb64(&a["buf-b64"]).len())
        .collect();
    assert_eq!(writes, [8, 8, 8, 8, 3]);
    assert_eq!(log.names().last().unwrap(), "guest-file-close");
}

#[tokio::test]
async fn a_cancelled_transfer_closes_the_handle_from_a_task() {
    let script: Script = Box::new(|name, _| match name {
        "guest-file-open" => Answer::Return(json!(9)),
        "guest-file-read" => Answer::Never,
        _ => Answer::Return(json!({})),
    });
    let (client, log) = connect(&ga::Config::new(), script).await;
    let cancelled = tokio::time::timeout(
        Duration::from_millis(100),
        guest::read_file(&client, "/big"),
    )
    .await;
    assert!(cancelled.is_err(), "the read was never answered");
    log.wait_for("guest-file-close").await;
    assert_eq!(
        log.entries().last().unwrap(),
        &("guest-file-close".to_owned(), json!({"handle": 9}))
    );
}

/// `guest-exec` answers pid 42; `guest-exec-status` says "running" `running` times,
/// then `done`.
fn exec_agent(running: usize, done: Value) -> Script {
    let mut polls = 0;
    Box::new(move |name, _| match name {
        "guest-exec" => Answer::Return(json!({"pid": 42})),
        "guest-exec-status" => {
            polls += 1;
            if polls <= running {
                Answer::Return(json!({"exited": false}))
            } else {
                Answer::Return(done.clone())
            }
        }
        _ => Answer::Return(json!({})),
    })
}

#[tokio::test]
async fn exec_sends_input_and_env_and_decodes_output_and_signals() {
    let done = json!({
        "exited": true, "signal": 9,
        "out-data": b64(b"partial \xff output"), "out-truncated": true,
        "err-data": b64(b"")
    });
    let (client, log) = connect(&ga::Config::new(), exec_agent(2, done)).await;
    let program = Exec::new("/bin/prog")
        .args(["-x", "y"])
        .env("LANG", "C")
        .input(&b"in\x00put"[..])
        .poll_interval(Duration::from_millis(5));
    let out = guest::exec(&client, &program).await.unwrap();
    assert_eq!(out.pid, 42);
    assert_eq!(out.status, ExitStatus::Signal(9));
    assert!(!out.status.success());
    assert_eq!(out.stdout, b"partial \xff output");
    assert!(out.stdout_truncated && !out.stderr_truncated);
    assert!(out.stderr.is_empty());
    let entries = log.entries();
    assert_eq!(entries[0].0, "guest-exec");
    let args = &entries[0].1;
    assert_eq!(args["path"], "/bin/prog");
    assert_eq!(args["arg"], json!(["-x", "y"]));
    assert_eq!(args["env"], json!(["LANG=C"]));
    assert_eq!(args["capture-output"], json!(true));
    assert_eq!(unb64(&args["input-data"]), b"in\x00put");
    assert_eq!(
        entries
            .iter()
            .filter(|(n, _)| n == "guest-exec-status")
            .count(),
        3
    );
    assert!(entries[1..].iter().all(|(_, a)| *a == json!({"pid": 42})));
}

#[tokio::test]
async fn an_exec_timeout_names_the_program_the_pid_and_the_limit() {
    let (client, _log) = connect(&ga::Config::new(), exec_agent(usize::MAX, json!({}))).await;
    let program = Exec::new("/bin/stuck")
        .timeout(Some(Duration::from_millis(300)))
        .poll_interval(Duration::from_millis(10));
    let e = tokio::time::timeout(HANG, guest::exec(&client, &program))
        .await
        .expect("exec hung past its timeout")
        .unwrap_err();
    assert!(e.is_timeout());
    assert!(matches!(e, guest::Error::ExecTimeout { pid: Some(42), .. }));
    let text = e.to_string();
    for part in [
        "`/bin/stuck`",
        "pid 42",
        "within 300 ms",
        "may still be running",
        "no command to kill",
    ] {
        assert!(text.contains(part), "{part:?} not in {text}");
    }
}

#[tokio::test]
async fn output_that_is_not_base64_is_a_bad_reply() {
    let done = json!({"exited": true, "exitcode": 0, "out-data": "not base64!"});
    let (client, _log) = connect(&ga::Config::new(), exec_agent(0, done)).await;
    let e = guest::exec(&client, &Exec::new("/bin/x"))
        .await
        .unwrap_err();
    assert!(matches!(e, guest::Error::BadReply { .. }), "{e}");
    assert!(e.to_string().contains("out-data"), "{e}");
}
