//! Memory under an event flood: `qmp::server` floods 1,000,000 events at a client whose
//! only subscriber is slow (it sleeps 1 ms every 1,000 events). The client's memory must
//! stay bounded: events beyond a subscriber's buffer are counted as missed, never stored.
//!
//! Prints the process's peak RSS (`VmHWM` from /proc/self/status) after a baseline
//! session (connect + one call, no flood) and after the flood, for two subscriber
//! buffer sizes. Server and client run in this one process, so the figures include the
//! server's (bounded, 1024-message) output queue.
//!
//! Measured on the 2-core CI machine (release build, 2026-11-26, with the previous
//! broadcast-channel fan-out): baseline peak RSS
//! 3.8 MiB; 1,000,000 events with a 64-event buffer: 125,603 received, 874,397 counted
//! as missed, peak +0.4 MiB over the baseline; with the default 1024-event buffer:
//! peak +0.9 MiB. The bound is about twice the subscriber buffer (its queue, plus
//! what the stream took from it) times the event size, plus the read buffer (at most
//! 64 KiB for small events), whatever the number of events.
//!
//! The flood of `qmp::server`'s `event_flood` fault starts with the negotiation reply,
//! before this program can subscribe. Until 2026-11-27 the client dropped (uncounted)
//! the events its reader routed before the first subscription existed: CI once saw 12
//! of 20,000 neither received nor counted as missed. Subscriptions made before the
//! first request now start with the events since negotiation, and a gap fails the run
//! (`tests/event_accounting.rs` reproduces the race deterministically).
//!
//! Then many subscribers of one type (issue 18): a flood server (in this process)
//! sends 200,000 small QEMU-shaped events (`JOB_STATUS_CHANGE`, `RESUME`) to 1, 10
//! and 100 back-pressure subscribers of one `EventSet`, each of which must see every
//! event, in three modes, alternated in each round so the machine's drift hits all
//! alike: `set` ([`qmp::Client::subscribe_all`]: each subscriber decodes every
//! event), `shared` ([`qmp::Client::subscribe_all_shared`]: decoded once, `Arc`s
//! handed out) and `floor` (one raw subscription parses each line once into a
//! `serde_json::Value` and hands it by reference to N counting consumers in one loop,
//! as the benchmark's floor client does: no task or queue per subscriber). Prints events/s per subscriber, min–max of the
//! rounds.
//!
//! Run: `cargo bench -p qemu-qmp --bench flood` (without `--bench`, as under `cargo test`,
//! it floods only 20,000 events, and 2,000 to the many subscribers, once).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use qmp::server::{Faults, Server};
use qmp::{Config, EventSet, Overflow};
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const EVENTS: u64 = 1_000_000;

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn run(capacity: usize, flood: u64) -> (u64, u64, Duration) {
    let server = Server::builder()
        .capabilities(["oob"])
        .faults(Faults {
            event_flood: Some(flood),
            ..Faults::none()
        })
        .handle_raw("ping", false, |_ctx, _args| async { Ok(json!({})) })
        .build();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("flood.sock");
    let _listening = server.listen_unix(&path).await.expect("listen");
    let start = Instant::now();
    let client = Config::new()
        .event_capacity(capacity)
        .connect_unix(&path)
        .await
        .expect("connect");
    let mut sub = client.subscribe_raw();
    client.execute_raw("ping", None::<&()>).await.expect("ping");
    let (mut received, mut missed) = (0u64, 0u64);
    while received + missed < flood {
        match tokio::time::timeout(Duration::from_secs(20), sub.next()).await {
            Ok(Some(Ok(_))) => {
                received += 1;
                if received % 1000 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            Ok(Some(Err(e))) => missed += e.missed_events().expect("only lag errors"),
            Ok(None) => break,
            // Every event is delivered or counted as missed (qmp::EventStream's
            // guarantee): a gap is a bug, and fails the run.
            Err(_) => panic!(
                "flood stalled: {received} received + {missed} missed of {flood} \
                 ({} unaccounted for)",
                flood.saturating_sub(received + missed)
            ),
        }
    }
    let elapsed = start.elapsed();
    client.close().await;
    (received, missed, elapsed)
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct JobStatusChange {
    id: String,
    status: String,
}

/// A two-event set, shaped as the generated `Event` enum.
#[allow(dead_code)]
enum Ev {
    JobStatusChange(JobStatusChange),
    Resume,
    Other(String),
}

impl EventSet for Ev {
    fn decode(name: &str, data: Option<&str>) -> Result<Self, serde_json::Error> {
        Ok(match name {
            "JOB_STATUS_CHANGE" => Ev::JobStatusChange(serde_json::from_str(data.unwrap_or("{}"))?),
            "RESUME" => Ev::Resume,
            other => Ev::Other(other.to_owned()),
        })
    }
}

/// Greeting, then a reply to every command; after the reply to `flood`, `events`.
async fn flood_server(listener: tokio::net::UnixListener, events: Arc<String>) {
    loop {
        let Ok((s, _)) = listener.accept().await else {
            return;
        };
        let events = events.clone();
        tokio::spawn(async move {
            let (r, mut w) = s.into_split();
            let mut lines = BufReader::new(r).lines();
            let greeting = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, \"major\": 10}, \"package\": \"\"}, \"capabilities\": []}}\r\n";
            if w.write_all(greeting.as_bytes()).await.is_err() {
                return;
            }
            while let Ok(Some(line)) = lines.next_line().await {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                let reply = json!({"return": {}, "id": v["id"]});
                if w.write_all(format!("{reply}\r\n").as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
                if v["execute"] == "flood" && w.write_all(events.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

fn flood_lines(n: usize) -> String {
    let mut events = String::new();
    for i in 0..n {
        if i % 2 == 0 {
            events.push_str(&format!(
                "{{\"timestamp\": {{\"seconds\": 1700000000, \"microseconds\": {}}}, \"event\": \"JOB_STATUS_CHANGE\", \"data\": {{\"status\": \"running\", \"id\": \"job{}\"}}}}\r\n",
                i % 1_000_000,
                i % 100
            ));
        } else {
            events.push_str(&format!(
                "{{\"timestamp\": {{\"seconds\": 1700000000, \"microseconds\": {}}}, \"event\": \"RESUME\"}}\r\n",
                i % 1_000_000
            ));
        }
    }
    events
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Set,
    Shared,
    Floor,
}

/// Events/s for `subs` subscribers that each see all `n` events.
async fn many(path: &Path, mode: Mode, subs: usize, n: usize) -> f64 {
    let client = Config::new()
        .event_capacity(1024)
        .connect_unix(path)
        .await
        .expect("connect");
    let mut tasks = tokio::task::JoinSet::new();
    let bp = Overflow::Backpressure;
    match mode {
        Mode::Set => {
            for _ in 0..subs {
                let mut sub = client.subscribe_all_with::<Ev>(bp);
                tasks.spawn(async move {
                    let mut seen = 0;
                    while seen < n {
                        match sub.next().await {
                            Some(Ok(Ev::JobStatusChange(_) | Ev::Resume)) => seen += 1,
                            other => panic!("set subscriber: {:?}", other.map(|r| r.err())),
                        }
                    }
                });
            }
        }
        Mode::Shared => {
            for _ in 0..subs {
                let mut sub = client.subscribe_all_shared_with::<Ev>(bp);
                tasks.spawn(async move {
                    let mut seen = 0;
                    while seen < n {
                        match sub
                            .next()
                            .await
                            .map(|r| r.map(|e| matches!(*e, Ev::Other(_))))
                        {
                            Some(Ok(false)) => seen += 1,
                            other => panic!("shared subscriber: {other:?}"),
                        }
                    }
                });
            }
        }
        Mode::Floor => {
            let mut raw = client.subscribe_raw_with(bp);
            tasks.spawn(async move {
                let mut counts = vec![0usize; subs];
                for _ in 0..n {
                    let ev = raw.next().await.expect("open").expect("no lag");
                    let v: serde_json::Value = serde_json::from_str(ev.json()).expect("JSON");
                    for c in counts.iter_mut() {
                        *c += usize::from(v["event"].is_string());
                    }
                }
                assert!(counts.iter().all(|&c| c == n), "floor: {counts:?}");
            });
        }
    }
    let start = Instant::now();
    client
        .execute_raw("flood", None::<&()>)
        .await
        .expect("flood");
    while let Some(r) = tasks.join_next().await {
        r.expect("subscriber");
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    client.close().await;
    rate
}

async fn many_subscribers(full: bool) {
    let n = if full { 200_000 } else { 2_000 };
    let rounds = if full { 3 } else { 1 };
    let dir = tempfile::tempdir().expect("tempdir");
    let path: PathBuf = dir.path().join("many.sock");
    let listener = tokio::net::UnixListener::bind(&path).expect("bind");
    let server = tokio::spawn(flood_server(listener, Arc::new(flood_lines(n))));
    for subs in [1usize, 10, 100] {
        let modes = [Mode::Set, Mode::Shared, Mode::Floor];
        let mut rates = vec![Vec::new(); modes.len()];
        for round in 0..rounds {
            // Rotate the order each round.
            for k in 0..modes.len() {
                let m = (k + round) % modes.len();
                rates[m].push(many(&path, modes[m], subs, n).await);
            }
        }
        let fmt = |v: &[f64]| {
            let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi = v.iter().cloned().fold(0.0, f64::max);
            format!("{lo:>9.0}–{hi:<9.0}")
        };
        println!(
            "{n} events to {subs:>3} subscribers (events/s, min–max of {rounds}): set {} shared {} floor {}",
            fmt(&rates[0]),
            fmt(&rates[1]),
            fmt(&rates[2]),
        );
    }
    server.abort();
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary
    // without it: then only a quick smoke run, so the test suite stays fast.
    let full = std::env::args().any(|a| a == "--bench");
    let events = if full { EVENTS } else { 20_000 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        run(1024, 0).await;
        let baseline = vm_hwm_kib();
        println!("baseline (connect + 1 call, no flood): peak RSS {baseline} KiB");
        for capacity in [64usize, 1024] {
            let (received, missed, elapsed) = run(capacity, events).await;
            let peak = vm_hwm_kib();
            println!(
                "flood {events} events, subscriber buffer {capacity}: received {received}, missed {missed}, \
                 {:.2} s ({:.0} events/s); peak RSS {peak} KiB ({:+} KiB over baseline, ratio {:.2})",
                elapsed.as_secs_f64(),
                events as f64 / elapsed.as_secs_f64(),
                peak as i64 - baseline as i64,
                peak as f64 / baseline.max(1) as f64,
            );
        }
        many_subscribers(full).await;
    });
}
