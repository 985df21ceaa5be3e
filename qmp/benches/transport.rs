//! Transport benchmark: our client against a minimal hand-written client, same run,
//! same machine, same server (a fresh `qemu-storage-daemon` per measurement).
//!
//! `cargo bench -p qemu-qmp --bench transport` prints calls/s (or events/s) for each
//! workload, the median of 5 rounds, and ours/floor ratios. Rounds alternate between
//! the clients so machine noise hits both alike. (Under `cargo test` it does nothing.)
//!
//! Workloads:
//! * `seq`: sequential typed `query-version`;
//! * `inflight32-oob`: 32 requests in flight with `oob` negotiated (the floor writes
//!   32 requests in one write, then reads 32 replies);
//! * `events`: an in-process server floods 200,000 small events; the floor parses
//!   each line into `serde_json::Value`, ours decodes into a typed event enum;
//! * `peer` (`QMP_BENCH_ONLY=peer`; `qmp::peer`), against `qemu-system-x86_64 -M
//!   none` (QEMU 10.0's full 213 KB schema), a fresh QEMU and connection per round:
//!   the floor's `query-qmp-schema` (write, read the line, parse it into a `Value`)
//!   against our first `supports` on a new connection (fetch, parse, index); then the
//!   cost of each later check (`supports`, `supports_probe`), and `seq` with a
//!   connection that never asks against one whose schema is known (refusal checks on
//!   every call) and against the floor, counting the `query-qmp-schema` requests of
//!   the connection that never asks.
//! * `proxy` (`QMP_BENCH_ONLY=proxy`; `qmp::proxy`, issue 18): `seq` (5,000 sequential
//!   typed `query-version`, no `oob`) against `qemu-storage-daemon` directly and
//!   through a `qmp::proxy::Proxy` in front of the same daemon, in pairs on one fresh
//!   daemon each, the order alternating between pairs; prints both medians and the
//!   median of the per-pair ratios proxy/direct with their range. The proxy runs in
//!   this process, on a current-thread runtime of its own thread (as a separate
//!   `qmp proxy` process would have its own). The client runs twice: `proxy-seq` on a
//!   current-thread runtime, the rule of bench/run.py's drivers for one call at a
//!   time (a second worker thread only adds cross-thread wake-ups), which is the row
//!   issue 18's target is read from; then `proxy-seq-mt` on the bench's 2-worker
//!   runtime, as this section ran before, for comparison.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use qmp::local::LocalQemu;
use qmp::{Command, Config, EventSet};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

const SEQ_CALLS: usize = 5000;
const PIPE_CALLS: usize = 10_000;
const EVENTS: usize = 200_000;
const ROUNDS: usize = 5;

/// A fresh `qemu-storage-daemon`, once it listens.
async fn daemon() -> LocalQemu {
    let mut d = LocalQemu::storage_daemon().expect("qemu-storage-daemon");
    d.wait_for_socket(Duration::from_secs(10))
        .expect("QMP socket");
    d
}

#[derive(Serialize)]
struct QueryVersion {}
#[derive(Deserialize)]
#[allow(dead_code)]
struct VersionInfo {
    qemu: Triple,
    package: String,
}
#[derive(Deserialize)]
#[allow(dead_code)]
struct Triple {
    major: u32,
    minor: u32,
    micro: u32,
}
impl Command for QueryVersion {
    const NAME: &'static str = "query-version";
    type Reply = VersionInfo;
}

/// The minimal client: one task, one buffered reader, `serde_json::Value` replies.
struct Floor {
    r: tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
    w: tokio::net::unix::OwnedWriteHalf,
}

impl Floor {
    async fn connect(path: &Path, oob: bool) -> Floor {
        let s = UnixStream::connect(path).await.unwrap();
        let (r, w) = s.into_split();
        let mut f = Floor {
            r: BufReader::new(r).lines(),
            w,
        };
        f.r.next_line().await.unwrap();
        let caps = if oob {
            "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]}}\n"
        } else {
            "{\"execute\":\"qmp_capabilities\"}\n"
        };
        f.w.write_all(caps.as_bytes()).await.unwrap();
        f.r.next_line().await.unwrap();
        f
    }

    async fn read_reply(&mut self) -> serde_json::Value {
        loop {
            let line = self.r.next_line().await.unwrap().unwrap();
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if v.get("return").is_some() {
                return v;
            }
        }
    }
}

async fn floor_seq(path: &Path) -> f64 {
    let mut f = Floor::connect(path, false).await;
    let start = Instant::now();
    for i in 0..SEQ_CALLS {
        f.w.write_all(format!("{{\"execute\":\"query-version\",\"id\":{i}}}\n").as_bytes())
            .await
            .unwrap();
        let v = f.read_reply().await;
        assert_eq!(v["return"]["qemu"]["major"], 10);
    }
    SEQ_CALLS as f64 / start.elapsed().as_secs_f64()
}

async fn ours_seq(path: &Path) -> f64 {
    let mut config = Config::new();
    config.negotiate_oob(false);
    let c = config.connect_unix(path).await.unwrap();
    let start = Instant::now();
    for _ in 0..SEQ_CALLS {
        let v = c.execute(&QueryVersion {}).await.unwrap();
        assert_eq!(v.qemu.major, 10);
    }
    SEQ_CALLS as f64 / start.elapsed().as_secs_f64()
}

async fn floor_pipe(path: &Path, depth: usize) -> f64 {
    let mut f = Floor::connect(path, true).await;
    let start = Instant::now();
    let mut next = 0;
    let mut batch = String::new();
    while next < PIPE_CALLS {
        batch.clear();
        for _ in 0..depth {
            batch.push_str(&format!(
                "{{\"execute\":\"query-version\",\"id\":{next}}}\n"
            ));
            next += 1;
        }
        f.w.write_all(batch.as_bytes()).await.unwrap();
        for _ in 0..depth {
            f.read_reply().await;
        }
    }
    PIPE_CALLS as f64 / start.elapsed().as_secs_f64()
}

async fn ours_pipe(path: &Path, depth: usize) -> f64 {
    let c = Config::new().connect_unix(path).await.unwrap();
    assert!(c.oob_enabled());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..depth {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..PIPE_CALLS / depth {
                let v = c.execute(&QueryVersion {}).await.unwrap();
                assert_eq!(v.qemu.major, 10);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    PIPE_CALLS as f64 / start.elapsed().as_secs_f64()
}

/// A flood server: greeting, `qmp_capabilities`, then on `flood` the reply and
/// `EVENTS` small QEMU-shaped events.
async fn flood_server(path: PathBuf) {
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let mut events = String::new();
    for i in 0..EVENTS {
        events.push_str(&format!(
            "{{\"timestamp\": {{\"seconds\": 1700000000, \"microseconds\": {}}}, \"event\": \"JOB_STATUS_CHANGE\", \"data\": {{\"status\": \"running\", \"id\": \"job{}\"}}}}\r\n",
            i % 1_000_000,
            i % 100
        ));
    }
    let events = std::sync::Arc::new(events);
    loop {
        let (s, _) = listener.accept().await.unwrap();
        let events = events.clone();
        tokio::spawn(async move {
            let (r, mut w) = s.into_split();
            let mut lines = BufReader::new(r).lines();
            w.write_all(b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 2, \"minor\": 0, \"major\": 10}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n").await.unwrap();
            while let Ok(Some(line)) = lines.next_line().await {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                let reply = serde_json::json!({"return": {}, "id": v["id"]});
                w.write_all(format!("{reply}\r\n").as_bytes())
                    .await
                    .unwrap();
                if v["execute"] == "flood" {
                    let _ = w.write_all(events.as_bytes()).await;
                }
            }
        });
    }
}

async fn floor_events(path: &Path) -> f64 {
    let mut f = Floor::connect(path, false).await;
    f.w.write_all(b"{\"execute\":\"flood\",\"id\":1}\n")
        .await
        .unwrap();
    let start = Instant::now();
    let mut n = 0;
    while n < EVENTS {
        let line = f.r.next_line().await.unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if v.get("event").is_some() {
            n += 1;
        }
    }
    EVENTS as f64 / start.elapsed().as_secs_f64()
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct JobStatusChange {
    id: String,
    status: String,
}

#[allow(dead_code)]
enum Ev {
    JobStatusChange(JobStatusChange),
    Other(String),
}

impl EventSet for Ev {
    fn decode(name: &str, data: Option<&str>) -> Result<Self, serde_json::Error> {
        Ok(match name {
            "JOB_STATUS_CHANGE" => Ev::JobStatusChange(serde_json::from_str(data.unwrap_or("{}"))?),
            other => Ev::Other(other.to_owned()),
        })
    }
}

async fn ours_events(path: &Path) -> (f64, u64) {
    let mut config = Config::new();
    config.event_capacity(4096);
    let c = config.connect_unix(path).await.unwrap();
    let mut sub = c.subscribe_all::<Ev>();
    let start = Instant::now();
    let (_, (n, missed)) = tokio::join!(c.execute_raw("flood", None::<&()>), async {
        let mut n = 0usize;
        let mut missed = 0u64;
        while n + (missed as usize) < EVENTS {
            match sub.next().await.unwrap() {
                Ok(Ev::JobStatusChange(_)) => n += 1,
                Ok(Ev::Other(_)) => {}
                Err(e) => missed += e.missed_events().expect("only lag errors"),
            }
        }
        (n, missed)
    });
    (n as f64 / start.elapsed().as_secs_f64(), missed)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn report(name: &str, floor: Vec<f64>, ours: Vec<f64>, unit: &str) {
    let (f, o) = (median(floor), median(ours));
    println!(
        "{name:<16} floor {f:>12.0} {unit}   ours {o:>12.0} {unit}   ours/floor {:.3}",
        o / f
    );
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("transport benchmark: run it with `cargo bench -p qemu-qmp --bench transport`");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // QMP_BENCH_ONLY=calls|events runs one half.
    let only = std::env::var("QMP_BENCH_ONLY").unwrap_or_default();
    if only == "peer" {
        println!("multi-thread runtime, 2 workers:");
        rt.block_on(peer());
        return;
    }
    if only == "proxy" {
        println!("client: current-thread runtime; proxy: current-thread runtime, own thread:");
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(proxy(""));
        println!("client: multi-thread runtime, 2 workers; proxy: as above:");
        rt.block_on(proxy("-mt"));
        return;
    }
    if only != "events" {
        println!("multi-thread runtime, 2 workers:");
        rt.block_on(calls());
    }
    if only != "calls" {
        println!("multi-thread runtime, 2 workers:");
        rt.block_on(events());
        drop(rt);
        println!("current-thread runtime:");
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(events());
    }
}

async fn calls() {
    {
        let (mut fs, mut os) = (Vec::new(), Vec::new());
        let (mut fp, mut op) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let d = daemon().await;
            fs.push(floor_seq(d.socket()).await);
            let d = daemon().await;
            os.push(ours_seq(d.socket()).await);
            let d = daemon().await;
            fp.push(floor_pipe(d.socket(), 32).await);
            let d = daemon().await;
            op.push(ours_pipe(d.socket(), 32).await);
        }
        report("seq", fs, os, "calls/s");
        report("inflight32-oob", fp, op, "calls/s");
    }
}

async fn events() {
    {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flood.sock");
        tokio::spawn(flood_server(path.clone()));
        while !path.exists() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (mut fe, mut oe) = (Vec::new(), Vec::new());
        let mut missed_total = 0;
        for _ in 0..ROUNDS {
            fe.push(floor_events(&path).await);
            let (rate, missed) = ours_events(&path).await;
            missed_total += missed;
            oe.push(rate);
        }
        report("events1", fe, oe, "events/s");
        println!(
            "(events missed by our subscriber over all rounds, capacity 4096: {missed_total})"
        );
    }
}

/// A fresh `qemu-system-x86_64 -M none`, once it listens.
async fn system_none() -> LocalQemu {
    let mut q = LocalQemu::system_none().expect("qemu-system-x86_64");
    q.wait_for_socket(Duration::from_secs(10))
        .expect("QMP socket");
    q
}

/// The floor's `query-qmp-schema`: write, read the reply line, parse it.
async fn floor_schema(path: &Path) -> Duration {
    let mut f = Floor::connect(path, false).await;
    let start = Instant::now();
    f.w.write_all(b"{\"execute\":\"query-qmp-schema\",\"id\":1}\n")
        .await
        .unwrap();
    let v = f.read_reply().await;
    let took = start.elapsed();
    assert!(v["return"].as_array().unwrap().len() > 1000);
    took
}

/// Counts the `query-qmp-schema` requests a connection writes.
#[derive(Default)]
struct SchemaRequests(std::sync::atomic::AtomicUsize);

impl qmp::traffic::TrafficHook for SchemaRequests {
    fn message(&self, dir: qmp::traffic::Direction, line: &str) {
        if dir == qmp::traffic::Direction::ToServer && line.contains("query-qmp-schema") {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// `seq` on a connection made with `config`; `ask` first fetches the schema.
async fn ours_seq_with(path: &Path, config: &Config, ask: bool) -> f64 {
    let c = config.connect_unix(path).await.unwrap();
    if ask {
        assert!(c.supports::<QueryVersion>().await.unwrap());
    }
    let start = Instant::now();
    for _ in 0..SEQ_CALLS {
        let v = c.execute(&QueryVersion {}).await.unwrap();
        assert_eq!(v.qemu.major, 10);
    }
    SEQ_CALLS as f64 / start.elapsed().as_secs_f64()
}

async fn peer() {
    let ms = |d: &[Duration]| {
        let mut v: Vec<f64> = d.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v
    };
    // Pairs on one QEMU (its time to answer varies between processes by more than
    // what is measured here), the order alternating; the parsed schema is dropped
    // after each of ours, so every first `supports` parses anew.
    const PAIRS: usize = 12;
    let (mut floor, mut first, mut diff) = (Vec::new(), Vec::new(), Vec::new());
    let mut q = system_none().await;
    for i in 0..PAIRS {
        if i % 4 == 0 {
            q = system_none().await;
        }
        let mut pair = [Duration::ZERO; 2];
        for j in [i % 2, 1 - i % 2] {
            pair[j] = if j == 0 {
                floor_schema(q.socket()).await
            } else {
                let c = Config::new().connect_unix(q.socket()).await.unwrap();
                let start = Instant::now();
                assert!(c.supports::<QueryVersion>().await.unwrap());
                let took = start.elapsed();
                c.close().await;
                took
            };
        }
        floor.push(pair[0]);
        first.push(pair[1]);
        diff.push(pair[1].as_secs_f64() - pair[0].as_secs_f64());
    }
    drop(q);
    let (floor, first) = (ms(&floor), ms(&first));
    println!(
        "peer-first       floor query-qmp-schema {:.2} ms   ours first supports {:.2} ms   \
         ours-floor {:+.2} ms (median of {PAIRS} pairs on the same QEMU; floor {:.1?}, ours {:.1?})",
        floor[PAIRS / 2],
        first[PAIRS / 2],
        median(diff) * 1e3,
        floor,
        first
    );
    // The client's share of it, without QEMU: the reply text (as captured) into a
    // `Value` (the floor) and into our index (parse, index, hash, shared table).
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../schema/introspect/qemu-system-x86_64-10.0.json"),
    )
    .unwrap();
    let (mut value, mut index) = (Vec::new(), Vec::new());
    for _ in 0..30 {
        let start = Instant::now();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        drop(v);
        value.push(start.elapsed());
        let start = Instant::now();
        let s = qmp::PeerSchema::from_json_str(&text).unwrap();
        drop(s);
        index.push(start.elapsed());
    }
    let (value, index) = (ms(&value), ms(&index));
    println!(
        "peer-parse       213 KB reply: into Value (floor) {:.2} ms   into PeerSchema (ours) {:.2} ms   (medians of 30, each dropped)",
        value[15], index[15]
    );

    // Later checks, answered from memory.
    let q = system_none().await;
    let c = Config::new().connect_unix(q.socket()).await.unwrap();
    c.supports::<QueryVersion>().await.unwrap();
    const CHECKS: u32 = 1_000_000;
    let start = Instant::now();
    for _ in 0..CHECKS {
        assert!(c.supports::<QueryVersion>().await.unwrap());
    }
    let per_supports = start.elapsed() / CHECKS;
    let start = Instant::now();
    for _ in 0..CHECKS / 10 {
        assert!(c
            .supports_probe("blockdev-add/arg-type/+file/aio/^io_uring")
            .await
            .unwrap());
    }
    let per_probe = start.elapsed() / (CHECKS / 10);
    let start = Instant::now();
    for _ in 0..CHECKS / 10 {
        assert!(!c
            .supports_probe("chardev-add/arg-type/backend/+socket/data/reconnect-xx")
            .await
            .unwrap());
    }
    let per_deep = start.elapsed() / (CHECKS / 10);
    println!(
        "peer-later       supports {per_supports:.0?}   supports_probe(blockdev-add/arg-type/+file/aio/^io_uring) {per_probe:.0?}   \
         supports_probe(chardev-add/.../+socket/data/reconnect-xx) {per_deep:.0?}"
    );
    c.close().await;
    drop((c, q));

    // seq: never asks / schema known (refusal checks) / floor.
    let (mut never, mut known, mut fl) = (Vec::new(), Vec::new(), Vec::new());
    let counted = std::sync::Arc::new(SchemaRequests::default());
    let mut plain = Config::new();
    plain.negotiate_oob(false);
    let mut hooked = plain.clone();
    hooked.traffic_hook(counted.clone());
    for _ in 0..ROUNDS {
        let d = daemon().await;
        fl.push(floor_seq(d.socket()).await);
        let d = daemon().await;
        never.push(ours_seq_with(d.socket(), &hooked, false).await);
        let d = daemon().await;
        known.push(ours_seq_with(d.socket(), &plain, true).await);
    }
    let (f, n, k) = (median(fl), median(never), median(known));
    println!(
        "peer-seq         floor {f:>8.0} calls/s   ours never asks {n:>8.0} ({:.3} x floor)   \
         ours schema known {k:>8.0} ({:.3} x floor)   query-qmp-schema sent by the never-asking connections: {}",
        n / f,
        k / f,
        counted.0.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// How many direct/proxied pairs the `proxy` section runs.
const PROXY_PAIRS: usize = 12;

/// The CPU time the calling thread has run, from `/proc/thread-self/schedstat`
/// (nanoseconds; 0 where it cannot be read).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A `qmp::proxy::Proxy` in front of `qemu`'s socket, on a thread and current-thread
/// runtime of its own, listening on `listen`; runs until `stop` fires, then returns
/// the CPU time its thread used meanwhile (ns).
fn start_proxy(
    qemu: PathBuf,
    listen: PathBuf,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> (std::thread::JoinHandle<u64>, std::sync::mpsc::Receiver<()>) {
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let proxy = qmp::proxy::ProxyConfig::new()
                    .connect_unix(&qemu)
                    .await
                    .expect("the proxy connects");
                let _l = proxy
                    .listen_unix(&listen, qmp::proxy::Allow::all())
                    .await
                    .expect("the proxy listens");
                let start = thread_cpu_ns();
                ready_tx.send(()).unwrap();
                let _ = stop.await;
                let used = thread_cpu_ns().saturating_sub(start);
                proxy.close();
                // Let the close reach QEMU before the runtime goes.
                tokio::time::sleep(Duration::from_millis(20)).await;
                used
            })
    });
    (thread, ready)
}

/// The proxy section's pairs with the client on the runtime this runs on; `label`
/// ends the rows' names.
async fn proxy(label: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (mut direct, mut proxied, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut cpu_per_call = Vec::new();
    for i in 0..PROXY_PAIRS {
        // One daemon per pair: both sides meet the same QEMU process.
        let d = daemon().await;
        let mut pair = [0.0f64; 2];
        for side in [i % 2, 1 - i % 2] {
            pair[side] = if side == 0 {
                ours_seq(d.socket()).await
            } else {
                let listen = dir.path().join(format!("proxy{i}.sock"));
                let (stop_tx, stop) = tokio::sync::oneshot::channel();
                let (thread, ready) = start_proxy(d.socket().to_owned(), listen.clone(), stop);
                tokio::task::spawn_blocking(move || ready.recv())
                    .await
                    .unwrap()
                    .expect("the proxy starts");
                let rate = ours_seq(&listen).await;
                let _ = stop_tx.send(());
                let used = tokio::task::spawn_blocking(move || thread.join())
                    .await
                    .unwrap()
                    .unwrap();
                cpu_per_call.push(used as f64 / 1e3 / SEQ_CALLS as f64);
                rate
            };
        }
        direct.push(pair[0]);
        proxied.push(pair[1]);
        ratios.push(pair[1] / pair[0]);
    }
    let lo = ratios.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = ratios.iter().cloned().fold(0.0, f64::max);
    let (dmin, dmax) = (
        direct.iter().cloned().fold(f64::INFINITY, f64::min),
        direct.iter().cloned().fold(0.0, f64::max),
    );
    let (pmin, pmax) = (
        proxied.iter().cloned().fold(f64::INFINITY, f64::min),
        proxied.iter().cloned().fold(0.0, f64::max),
    );
    println!(
        "proxy-seq{label:<8} direct {:>8.0} calls/s ({dmin:.0}-{dmax:.0})   through the proxy {:>8.0} calls/s ({pmin:.0}-{pmax:.0})   \
         proxy/direct {:.3} (per-pair ratios {lo:.3}-{hi:.3}; medians of {PROXY_PAIRS} pairs, {SEQ_CALLS} calls each)",
        median(direct),
        median(proxied),
        median(ratios),
    );
    println!(
        "proxy-cpu{label:<8} the proxy's thread: {:.1} us of CPU per call (median of {PROXY_PAIRS}; {:.1?})",
        median(cpu_per_call.clone()),
        {
            let mut v = cpu_per_call;
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            v
        }
    );
}
