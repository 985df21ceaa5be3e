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
//! Run: `cargo bench -p qmp --bench flood` (without `--bench`, as under `cargo test`,
//! it floods only 20,000 events).

use std::time::{Duration, Instant};

use qmp::server::{Faults, Server};
use qmp::Config;
use serde_json::json;

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
    });
}
