//! The "ours" driver of the benchmark: our `qmp` client with the generated
//! `qemu-qapi` bindings, used as the README shows. Takes the drivers' common command
//! line (`bench-common`):
//!
//! - `calls`: typed `query-version` from `--inflight` tasks sharing one `Client`;
//! - `schema`: typed `query-qmp-schema` (into `Vec<types::SchemaInfo>`);
//! - `events`: `--subscribers` subscriptions to the generated `Event` enum (or raw
//!   with `--raw`), each drained by its own task: `subscribe_all` for one subscriber,
//!   `subscribe_all_shared` read with `next_ref` (each event decoded once, lent to
//!   each as `&Event`) for more, as the crate's docs advise for many subscribers of
//!   one type (issue 18);
//!   they must see every event, so they
//!   use `Overflow::Backpressure` (the reader waits for them rather than counting
//!   events as missed). `--stalled` adds one subscription that is never read, with the
//!   default policy (what it misses is counted, not stored, and it never holds the
//!   reader up). Subscriptions are made before the `query-version` that starts the
//!   flood;
//! - `conns`: `--conns` idle connections, memory per connection;
//! - `ga-ping`: `--calls` typed `guest-ping` calls, one at a time, to the guest agent
//!   (`qmp::ga::Client`, which synchronises with `guest-sync-delimited` on connect).

use std::time::Instant;

use bench_common::{finish, proc_status_kib, rate, Args};
use qemu_qapi::commands::{QueryQmpSchema, QueryVersion};
use qemu_qapi::events::Event;
use qemu_qapi::ga::commands::GuestPing;
use qmp::{Client, Config, Overflow};

fn fail(msg: &str) -> ! {
    eprintln!("ours: {msg}");
    std::process::exit(1)
}

async fn open(a: &Args, oob: bool) -> Client {
    Config::new()
        .negotiate_oob(oob)
        .connect_unix(&a.socket)
        .await
        .unwrap_or_else(|e| fail(&format!("connect {}: {e}", a.socket)))
}

async fn calls(a: &Args) -> ! {
    let client = open(a, a.oob).await;
    if a.oob && !client.oob_enabled() {
        fail("oob was not negotiated");
    }
    let per_task = a.calls / a.inflight;
    let extra = a.calls % a.inflight;
    let start = Instant::now();
    let tasks: Vec<_> = (0..a.inflight)
        .map(|i| {
            let client = client.clone();
            let n = per_task + usize::from(i < extra);
            tokio::spawn(async move {
                for _ in 0..n {
                    let v = client
                        .execute(&QueryVersion)
                        .await
                        .unwrap_or_else(|e| fail(&format!("query-version: {e}")));
                    std::hint::black_box(v.qemu.major);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap_or_else(|e| fail(&format!("task: {e}")));
    }
    finish(rate(a.calls, start.elapsed()), "calls/s", true, "")
}

async fn schema(a: &Args) -> ! {
    let client = open(a, a.oob).await;
    let start = Instant::now();
    for _ in 0..a.calls {
        let infos = client
            .execute(&QueryQmpSchema)
            .await
            .unwrap_or_else(|e| fail(&format!("query-qmp-schema: {e}")));
        if infos.is_empty() {
            fail("query-qmp-schema returned no entities");
        }
    }
    let ms = start.elapsed().as_secs_f64() * 1e3 / a.calls as f64;
    finish(ms, "ms/call", true, "")
}

/// What one subscriber saw: events it checked, events it was told it missed.
#[derive(Default, Debug)]
struct Seen {
    events: usize,
    missed: u64,
}

/// Counts one typed item; false at the end of the stream.
fn typed(item: Option<Result<&Event, &qmp::Error>>, seen: &mut Seen) -> bool {
    match item {
        Some(Ok(Event::JobStatusChange(_) | Event::Resume)) => seen.events += 1,
        Some(Ok(other)) => fail(&format!("unexpected event {}", other.name())),
        Some(Err(e)) if e.is_lagged() => seen.missed += e.missed_events().unwrap_or(0),
        Some(Err(e)) => fail(&format!("event: {e}")),
        None => return false,
    }
    true
}

async fn events(a: &Args) -> ! {
    let client = open(a, a.oob).await;
    let total = a.events;
    let mut tasks = Vec::new();
    for _ in 0..a.subscribers {
        if a.raw {
            let mut sub = client.subscribe_raw_with(Overflow::Backpressure);
            tasks.push(tokio::spawn(async move {
                let mut seen = Seen::default();
                while seen.events + (seen.missed as usize) < total {
                    match sub.next().await {
                        Some(Ok(ev)) => seen.events += usize::from(!ev.name().is_empty()),
                        Some(Err(e)) if e.is_lagged() => {
                            seen.missed += e.missed_events().unwrap_or(0)
                        }
                        Some(Err(e)) => fail(&format!("event: {e}")),
                        None => break,
                    }
                }
                seen
            }));
        } else if a.subscribers > 1 {
            let mut sub = client.subscribe_all_shared_with::<Event>(Overflow::Backpressure);
            tasks.push(tokio::spawn(async move {
                let mut seen = Seen::default();
                while seen.events + (seen.missed as usize) < total {
                    let item = sub.next_ref().await;
                    if !typed(item.as_ref().map(|r| r.as_ref().copied()), &mut seen) {
                        break;
                    }
                }
                seen
            }));
        } else {
            let mut sub = client.subscribe_all_with::<Event>(Overflow::Backpressure);
            tasks.push(tokio::spawn(async move {
                let mut seen = Seen::default();
                while seen.events + (seen.missed as usize) < total {
                    let item = sub.next().await;
                    if !typed(item.as_ref().map(|r| r.as_ref()), &mut seen) {
                        break;
                    }
                }
                seen
            }));
        }
    }
    // Held, never read: what it misses must be counted, not stored.
    let stalled = a.stalled.then(|| client.subscribe_raw());
    let start = Instant::now();
    client
        .execute(&QueryVersion)
        .await
        .unwrap_or_else(|e| fail(&format!("query-version: {e}")));
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap_or_else(|e| fail(&format!("task: {e}"))));
    }
    let elapsed = start.elapsed();
    drop(stalled);
    let ok = seen.iter().all(|s| s.events == total);
    let missed: u64 = seen.iter().map(|s| s.missed).sum();
    let note = if ok {
        String::new()
    } else {
        format!("missed {missed} events over {} subscribers", seen.len())
    };
    finish(rate(total, elapsed), "events/s", ok, &note)
}

async fn conns(a: &Args) -> ! {
    let before = proc_status_kib("VmRSS");
    let mut held = Vec::with_capacity(a.conns);
    for _ in 0..a.conns {
        held.push(open(a, false).await);
    }
    let after = proc_status_kib("VmRSS");
    let per = after.saturating_sub(before) as f64 / a.conns as f64;
    finish(
        per,
        "KiB/conn",
        true,
        &format!("{} connections", held.len()),
    )
}

async fn ga_ping(a: &Args) -> ! {
    let agent = qmp::ga::Config::new()
        .connect_unix(&a.socket)
        .await
        .unwrap_or_else(|e| fail(&format!("connect to the agent at {}: {e}", a.socket)));
    let start = Instant::now();
    for _ in 0..a.calls {
        agent
            .execute(&GuestPing {})
            .await
            .unwrap_or_else(|e| fail(&format!("guest-ping: {e}")));
    }
    let rate = rate(a.calls, start.elapsed());
    agent.close().await;
    finish(rate, "calls/s", true, "")
}

fn main() {
    let a = Args::parse();
    // The same runtime rule for every async Rust driver (`Args::single_stream`).
    a.runtime().block_on(async {
        match a.workload.as_str() {
            "calls" => calls(&a).await,
            "schema" => schema(&a).await,
            "events" => events(&a).await,
            "conns" => conns(&a).await,
            "ga-ping" => ga_ping(&a).await,
            w => fail(&format!("unknown workload {w}")),
        }
    })
}
