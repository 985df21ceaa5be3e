//! The floor: the least a QMP client can do. A blocking Unix socket, newline-delimited
//! JSON, every reply parsed into `serde_json::Value` and checked, no tasks, no typed
//! decoding. Calls with more than one in flight are pipelined: every request the window
//! allows goes out in one `write`, then every reply already buffered is consumed.
//!
//! What any real client adds (id routing, events fan-out, timeouts, typed decoding)
//! costs something on top of this; the benchmark reports ours as a ratio of it.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Instant;

use bench_common::{finish, proc_status_kib, rate, Args};
use serde_json::Value;

struct Conn {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    line: Vec<u8>,
}

impl Conn {
    /// Connects, reads the greeting and negotiates (with `oob` when asked).
    fn open(socket: &str, oob: bool) -> Conn {
        let stream =
            UnixStream::connect(socket).unwrap_or_else(|e| fail(&format!("connect {socket}: {e}")));
        let writer = stream
            .try_clone()
            .unwrap_or_else(|e| fail(&format!("clone: {e}")));
        let mut conn = Conn {
            reader: BufReader::with_capacity(1 << 16, stream),
            writer,
            line: Vec::new(),
        };
        let greeting = conn.read();
        let offered = greeting["QMP"]["capabilities"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c == "oob"));
        if oob && !offered {
            fail("the server does not offer oob");
        }
        let caps = if oob {
            r#"{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}"#
        } else {
            r#"{"execute":"qmp_capabilities"}"#
        };
        conn.send(caps.as_bytes());
        let reply = conn.read();
        if reply.get("return").is_none() {
            fail(&format!("negotiation failed: {reply}"));
        }
        conn
    }

    fn send(&mut self, request: &[u8]) {
        self.writer
            .write_all(request)
            .unwrap_or_else(|e| fail(&format!("write: {e}")));
        self.writer
            .write_all(b"\n")
            .unwrap_or_else(|e| fail(&format!("write: {e}")));
    }

    /// Reads one line and parses it.
    fn read(&mut self) -> Value {
        self.line.clear();
        match self.reader.read_until(b'\n', &mut self.line) {
            Ok(0) => fail("peer closed"),
            Ok(_) => {}
            Err(e) => fail(&format!("read: {e}")),
        }
        serde_json::from_slice(&self.line).unwrap_or_else(|e| fail(&format!("bad JSON: {e}")))
    }

    /// Whether a whole line is already buffered.
    fn line_buffered(&self) -> bool {
        self.reader.buffer().contains(&b'\n')
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("floor: {msg}");
    std::process::exit(1)
}

/// `calls` `query-version` calls with up to `inflight` outstanding, pipelined.
fn calls(a: &Args) -> ! {
    let mut conn = Conn::open(&a.socket, a.oob);
    let mut seen = vec![false; a.calls];
    let (mut sent, mut done) = (0usize, 0usize);
    let mut out = Vec::with_capacity(64 * a.inflight);
    let start = Instant::now();
    while done < a.calls {
        let room = (a.inflight - (sent - done)).min(a.calls - sent);
        if room > 0 {
            out.clear();
            for _ in 0..room {
                let _ = writeln!(out, r#"{{"execute":"query-version","id":{sent}}}"#);
                sent += 1;
            }
            conn.writer
                .write_all(&out)
                .unwrap_or_else(|e| fail(&format!("write: {e}")));
        }
        loop {
            let reply = conn.read();
            let id = reply["id"]
                .as_u64()
                .map(|i| i as usize)
                .filter(|&i| i < sent);
            let Some(id) = id else {
                fail(&format!("reply with unexpected id: {reply}"))
            };
            if std::mem::replace(&mut seen[id], true) {
                fail(&format!("duplicate reply: {reply}"));
            }
            if !reply["return"]["qemu"]["major"].is_u64() {
                fail(&format!("not a query-version reply: {reply}"));
            }
            done += 1;
            if !conn.line_buffered() {
                break;
            }
        }
    }
    finish(rate(a.calls, start.elapsed()), "calls/s", true, "")
}

/// `calls` `query-qmp-schema` calls, each reply parsed into a `Value` (the floor has no
/// types to decode into).
fn schema(a: &Args) -> ! {
    let mut conn = Conn::open(&a.socket, a.oob);
    let start = Instant::now();
    for i in 0..a.calls {
        conn.send(format!(r#"{{"execute":"query-qmp-schema","id":{i}}}"#).as_bytes());
        let reply = conn.read();
        let n = reply["return"].as_array().map_or(0, Vec::len);
        if n == 0 || reply["id"] != i {
            fail("query-qmp-schema returned no entities");
        }
    }
    let ms = start.elapsed().as_secs_f64() * 1e3 / a.calls as f64;
    finish(ms, "ms/call", true, "")
}

/// Receives the flood: each line parsed into a `Value` once and handed, by reference,
/// to every subscriber in turn (the floor has no tasks: a subscriber is a consumer that
/// counts and checks what it is handed). A stalled subscriber (`--stalled`) never
/// reads: it has a bounded queue, and what does not fit is counted as missed.
fn events(a: &Args) -> ! {
    const STALLED_CAPACITY: usize = 1024;
    let mut conn = Conn::open(&a.socket, a.oob);
    let start = Instant::now();
    // The flood starts after the reply to this (see bench-server).
    conn.send(br#"{"execute":"query-version","id":0}"#);
    let mut counts = vec![0usize; a.subscribers];
    let mut stalled: VecDeque<Arc<Value>> = VecDeque::with_capacity(STALLED_CAPACITY);
    let mut missed = 0usize;
    let mut got = 0usize;
    while got < a.events {
        let msg = conn.read();
        if msg.get("event").is_none() {
            continue;
        }
        got += 1;
        let msg = Arc::new(msg);
        for n in counts.iter_mut() {
            if msg["event"].is_string() {
                *n += 1;
            }
        }
        if a.stalled {
            if stalled.len() < STALLED_CAPACITY {
                stalled.push_back(msg);
            } else {
                missed += 1;
            }
        }
    }
    let elapsed = start.elapsed();
    let ok = counts.iter().all(|&n| n == a.events);
    let note = if ok {
        format!("missed by stalled subscriber: {missed}")
    } else {
        format!("received {counts:?} of {}", a.events)
    };
    finish(rate(a.events, elapsed), "events/s", ok, &note)
}

/// Opens `conns` connections, negotiates each and reports the memory they hold.
fn conns(a: &Args) -> ! {
    let before = proc_status_kib("VmRSS");
    let mut held = Vec::with_capacity(a.conns);
    for _ in 0..a.conns {
        held.push(Conn::open(&a.socket, false));
    }
    let after = proc_status_kib("VmRSS");
    let per = (after.saturating_sub(before)) as f64 / a.conns as f64;
    finish(
        per,
        "KiB/conn",
        true,
        &format!("{} connections", held.len()),
    )
}

/// `calls` sequential `guest-ping` calls to the guest agent (`qemu-ga`), after the
/// `guest-sync-delimited` any agent client must send first: the agent has no greeting,
/// and the stream may hold a former client's replies until a sync marks its start.
fn ga_ping(a: &Args) -> ! {
    let stream = UnixStream::connect(&a.socket)
        .unwrap_or_else(|e| fail(&format!("connect {}: {e}", a.socket)));
    let mut writer = stream
        .try_clone()
        .unwrap_or_else(|e| fail(&format!("clone: {e}")));
    let mut reader = BufReader::with_capacity(1 << 16, stream);
    let mut line = Vec::new();
    let id = 0x5eed_u32 ^ std::process::id();
    // The 0xFF byte resets the agent's parser; the agent sends one before its reply.
    let mut sync = vec![0xffu8];
    let _ = writeln!(
        sync,
        r#"{{"execute":"guest-sync-delimited","arguments":{{"id":{id}}}}}"#
    );
    writer
        .write_all(&sync)
        .unwrap_or_else(|e| fail(&format!("write: {e}")));
    loop {
        line.clear();
        match reader.read_until(0xff, &mut line) {
            Ok(0) => fail("agent closed during guest-sync-delimited"),
            Ok(_) if line.last() == Some(&0xff) => break,
            Ok(_) => continue,
            Err(e) => fail(&format!("read: {e}")),
        }
    }
    let read = |reader: &mut BufReader<UnixStream>, line: &mut Vec<u8>| -> Value {
        line.clear();
        match reader.read_until(b'\n', line) {
            Ok(0) => fail("agent closed"),
            Ok(_) => {}
            Err(e) => fail(&format!("read: {e}")),
        }
        serde_json::from_slice(line).unwrap_or_else(|e| fail(&format!("bad JSON: {e}")))
    };
    let reply = read(&mut reader, &mut line);
    if reply["return"] != id {
        fail(&format!("guest-sync-delimited: unexpected reply {reply}"));
    }
    let start = Instant::now();
    for _ in 0..a.calls {
        writer
            .write_all(b"{\"execute\":\"guest-ping\"}\n")
            .unwrap_or_else(|e| fail(&format!("write: {e}")));
        let reply = read(&mut reader, &mut line);
        if !reply["return"].is_object() {
            fail(&format!("guest-ping: unexpected reply {reply}"));
        }
    }
    finish(rate(a.calls, start.elapsed()), "calls/s", true, "")
}

fn main() {
    let a = Args::parse();
    match a.workload.as_str() {
        "calls" => calls(&a),
        "schema" => schema(&a),
        "events" => events(&a),
        "conns" => conns(&a),
        "ga-ping" => ga_ping(&a),
        w => fail(&format!("unknown workload {w}")),
    }
}
