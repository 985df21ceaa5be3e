//! The `qapi-rs` driver of the benchmark: the `qapi` 0.15 crate with its `qapi-qmp`
//! bindings, used the way its documentation shows (tokio, `QmpStreamTokio`).
//!
//! Takes the drivers' common command line (`bench-common`). Notes on what the crate
//! does, measured here rather than worked around:
//! - its greeting model reads `"oob"` into its catch-all variant, so it never believes
//!   the server supports oob: it sends no ids and holds its write lock until each
//!   reply, i.e. one command in flight whatever the caller does;
//! - its event stream is one `Stream` of the typed `Event` enum; more than one
//!   subscriber is the user's fan-out (a bounded channel per subscriber here);
//! - its stream ends at the first event it does not know (the flood only sends events
//!   it knows);
//! - its guest agent client (`QgaStreamTokio`, feature `qga` of `qapi`, with the
//!   `qapi-qga` 0.13 bindings) synchronises with `guest-sync`, not
//!   `guest-sync-delimited` (no 0xFF byte to reset the agent's parser or to skip a
//!   former client's replies): `ga-ping` makes that call first, as its documentation
//!   says a client must.

use std::sync::Arc;
use std::time::Instant;

use bench_common::{finish, proc_status_kib, rate, Args};
use futures::StreamExt;
use qapi::futures::{QapiService, QmpStreamTokio};
use qapi::qmp;

type Service = QapiService<QmpStreamTokio<tokio::io::WriteHalf<tokio::net::UnixStream>>>;

fn fail(msg: &str) -> ! {
    eprintln!("qapi-rs: {msg}");
    std::process::exit(1)
}

async fn open(
    a: &Args,
) -> qapi::futures::QapiStream<
    QmpStreamTokio<tokio::io::ReadHalf<tokio::net::UnixStream>>,
    QmpStreamTokio<tokio::io::WriteHalf<tokio::net::UnixStream>>,
> {
    let negotiation = QmpStreamTokio::open_uds(&a.socket)
        .await
        .unwrap_or_else(|e| fail(&format!("connect {}: {e}", a.socket)));
    let stream = if a.oob {
        negotiation.negotiate_caps([qmp::QMPCapability::oob]).await
    } else {
        negotiation.negotiate().await
    };
    stream.unwrap_or_else(|e| fail(&format!("negotiate: {e}")))
}

async fn calls(a: &Args) -> ! {
    let (service, _events) = open(a).await.spawn_tokio();
    let service: Arc<Service> = Arc::new(service);
    let per_task = a.calls / a.inflight;
    let extra = a.calls % a.inflight;
    let start = Instant::now();
    let tasks: Vec<_> = (0..a.inflight)
        .map(|i| {
            let service = service.clone();
            let n = per_task + usize::from(i < extra);
            tokio::spawn(async move {
                for _ in 0..n {
                    let v = service
                        .execute(qmp::query_version {})
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
    let (service, _events) = open(a).await.spawn_tokio();
    let start = Instant::now();
    for _ in 0..a.calls {
        let infos = service
            .execute(qmp::query_qmp_schema {})
            .await
            .unwrap_or_else(|e| fail(&format!("query-qmp-schema: {e}")));
        if infos.is_empty() {
            fail("query-qmp-schema returned no entities");
        }
    }
    let ms = start.elapsed().as_secs_f64() * 1e3 / a.calls as f64;
    finish(ms, "ms/call", true, "")
}

fn check(ev: &qmp::Event) -> bool {
    matches!(
        ev,
        qmp::Event::JOB_STATUS_CHANGE { .. } | qmp::Event::RESUME { .. }
    )
}

async fn events(a: &Args) -> ! {
    if a.stalled {
        fail("a stalled subscriber is not applicable: the crate has no subscribers");
    }
    let mut stream = open(a).await;
    let start = Instant::now();
    // The flood starts after the reply to this (see bench-server); `execute` on the
    // stream drives the reader only until the reply is in.
    stream
        .execute(qmp::query_version {})
        .await
        .unwrap_or_else(|e| fail(&format!("query-version: {e}")));
    let (_service, mut events) = stream.into_parts();
    let mut got = 0usize;
    let counts: Vec<usize> = if a.subscribers == 1 {
        let mut n = 0;
        while got < a.events {
            match events.next().await {
                Some(Ok(ev)) => {
                    got += 1;
                    n += usize::from(check(&ev));
                }
                Some(Err(e)) => fail(&format!("event stream: {e}")),
                None => break,
            }
        }
        vec![n]
    } else {
        let mut senders = Vec::new();
        let mut tasks = Vec::new();
        for _ in 0..a.subscribers {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Arc<qmp::Event>>(1024);
            senders.push(tx);
            tasks.push(tokio::spawn(async move {
                let mut n = 0usize;
                while let Some(ev) = rx.recv().await {
                    n += usize::from(check(&ev));
                }
                n
            }));
        }
        while got < a.events {
            match events.next().await {
                Some(Ok(ev)) => {
                    got += 1;
                    let ev = Arc::new(ev);
                    for tx in &senders {
                        if tx.send(ev.clone()).await.is_err() {
                            fail("subscriber gone");
                        }
                    }
                }
                Some(Err(e)) => fail(&format!("event stream: {e}")),
                None => break,
            }
        }
        drop(senders);
        let mut counts = Vec::new();
        for t in tasks {
            counts.push(t.await.unwrap_or(0));
        }
        counts
    };
    let elapsed = start.elapsed();
    let ok = counts.iter().all(|&n| n == a.events);
    let note = if ok {
        String::new()
    } else {
        format!("received {counts:?} of {}", a.events)
    };
    finish(rate(a.events, elapsed), "events/s", ok, &note)
}

async fn conns(a: &Args) -> ! {
    let before = proc_status_kib("VmRSS");
    let mut held = Vec::with_capacity(a.conns);
    let one = Args {
        oob: false,
        ..a.clone()
    };
    for _ in 0..a.conns {
        held.push(open(&one).await.spawn_tokio());
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
    let stream = qapi::futures::QgaStreamTokio::open_uds(&a.socket)
        .await
        .unwrap_or_else(|e| fail(&format!("connect to the agent at {}: {e}", a.socket)));
    let (service, _reader) = stream.spawn_tokio();
    service
        .guest_sync(0x5eed ^ std::process::id() as i32)
        .await
        .unwrap_or_else(|e| fail(&format!("guest-sync: {e}")));
    let start = Instant::now();
    for _ in 0..a.calls {
        service
            .execute(qapi::qga::guest_ping {})
            .await
            .unwrap_or_else(|e| fail(&format!("guest-ping: {e}")));
    }
    finish(rate(a.calls, start.elapsed()), "calls/s", true, "")
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
