//! Transport benchmark: our client against a minimal hand-written client, same run,
//! same machine, same server (a fresh `qemu-storage-daemon` per measurement).
//!
//! `cargo bench -p qmp --bench transport` prints calls/s (or events/s) for each
//! workload, the median of 5 rounds, and ours/floor ratios. Rounds alternate between
//! the clients so machine noise hits both alike. (Under `cargo test` it does nothing.)
//!
//! Workloads:
//! * `seq`: sequential typed `query-version`;
//! * `inflight32-oob`: 32 requests in flight with `oob` negotiated (the floor writes
//!   32 requests in one write, then reads 32 replies);
//! * `events`: an in-process server floods 200,000 small events; the floor parses
//!   each line into `serde_json::Value`, ours decodes into a typed event enum.

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
    let mut sub = c.subscribe_set::<Ev>();
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
        println!("transport benchmark: run it with `cargo bench -p qmp --bench transport`");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // QMP_BENCH_ONLY=calls|events runs one half.
    let only = std::env::var("QMP_BENCH_ONLY").unwrap_or_default();
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
