//! Shared pieces of the benchmark drivers: the command line every client driver takes
//! (the Python driver `bench/qemu_qmp_client.py` takes the same one), the result line
//! they print, the memory figures read from `/proc`, and the events the flood server
//! sends.
//!
//! A driver runs one workload against one server and prints one JSON line:
//! `{"value": <number>, "unit": "...", "hwm_kib": <VmHWM>, "note": "..."}`.
//! `scripts/bench` (through `bench/run.py`) starts the servers, runs the drivers and
//! aggregates the lines.

use std::fmt::Write as _;
use std::time::Duration;

/// The command line shared by all client drivers:
/// `DRIVER WORKLOAD --socket PATH [--calls N] [--inflight N] [--oob] [--subscribers N]
/// [--events N] [--conns N] [--stalled]`.
#[derive(Debug, Clone)]
pub struct Args {
    /// `calls` (query-version), `schema` (query-qmp-schema), `events`, `conns` or
    /// `ga-ping` (guest-ping to the guest agent).
    pub workload: String,
    /// The server's Unix socket.
    pub socket: String,
    /// How many calls to make (`calls`, `schema`).
    pub calls: usize,
    /// How many calls to keep in flight at once (`calls`).
    pub inflight: usize,
    /// Negotiate the `oob` capability (the server must offer it).
    pub oob: bool,
    /// How many event subscribers (`events`).
    pub subscribers: usize,
    /// How many events the flood server sends (`events`).
    pub events: usize,
    /// How many connections to hold open (`conns`).
    pub conns: usize,
    /// Add a subscriber that never reads (`events`): its missed events must be counted,
    /// not stored.
    pub stalled: bool,
    /// Decode events as raw JSON rather than into the typed `Event` enum (`events`).
    pub raw: bool,
}

impl Args {
    /// True for the workloads with one stream of work: one call at a time (`seq`,
    /// `seq-oob`, `schema`, `ga-ping`) or one event subscriber (`events1`, with or without a
    /// stalled one beside it). Every async Rust driver (ours, qapi-rs) runs these on a
    /// current-thread tokio runtime, as such a client would be built (a second worker
    /// thread only adds cross-thread wake-ups, and the machine's second core is the
    /// server's), and the concurrent ones (calls in flight, 10 or 100 subscribers,
    /// connections) on the default multi-thread runtime; one rule for both, so neither
    /// gets a better runtime.
    pub fn single_stream(&self) -> bool {
        match self.workload.as_str() {
            "calls" => self.inflight == 1,
            "schema" | "ga-ping" => true,
            "events" => self.subscribers == 1,
            _ => false,
        }
    }

    /// The tokio runtime an async driver runs this workload on (see
    /// [`single_stream`](Self::single_stream)); exits on failure.
    pub fn runtime(&self) -> tokio::runtime::Runtime {
        // BENCH_RUNTIME=current-thread|multi-thread overrides the rule, for experiments.
        let current = match std::env::var("BENCH_RUNTIME").as_deref() {
            Ok("current-thread") => true,
            Ok("multi-thread") => false,
            _ => self.single_stream(),
        };
        let mut builder = if current {
            tokio::runtime::Builder::new_current_thread()
        } else {
            tokio::runtime::Builder::new_multi_thread()
        };
        builder.enable_all().build().unwrap_or_else(|e| {
            eprintln!("runtime: {e}");
            std::process::exit(1)
        })
    }

    /// Parses `std::env::args()`; exits with a usage message on a bad command line.
    pub fn parse() -> Args {
        let mut it = std::env::args().skip(1);
        let mut a = Args {
            workload: String::new(),
            socket: String::new(),
            calls: 5000,
            inflight: 1,
            oob: false,
            subscribers: 1,
            events: 200_000,
            conns: 1000,
            stalled: false,
            raw: false,
        };
        let usage = || -> ! {
            eprintln!(
                "usage: DRIVER calls|schema|events|conns|ga-ping --socket PATH [--calls N] \
                 [--inflight N] [--oob] [--subscribers N] [--events N] [--conns N] \
                 [--stalled] [--raw]"
            );
            std::process::exit(2)
        };
        let num = |it: &mut std::iter::Skip<std::env::Args>| -> usize {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| usage())
        };
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--socket" => a.socket = it.next().unwrap_or_else(|| usage()),
                "--calls" => a.calls = num(&mut it),
                "--inflight" => a.inflight = num(&mut it).max(1),
                "--subscribers" => a.subscribers = num(&mut it),
                "--events" => a.events = num(&mut it),
                "--conns" => a.conns = num(&mut it),
                "--oob" => a.oob = true,
                "--stalled" => a.stalled = true,
                "--raw" => a.raw = true,
                w if a.workload.is_empty() && !w.starts_with('-') => a.workload = w.to_string(),
                _ => usage(),
            }
        }
        if a.workload.is_empty() || a.socket.is_empty() {
            usage()
        }
        a
    }
}

/// Reads one `kB` field of `/proc/self/status` (`VmHWM`, `VmRSS`).
pub fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix(field)?.strip_prefix(':')?;
            rest.trim().trim_end_matches("kB").trim().parse().ok()
        })
        .unwrap_or(0)
}

/// Prints the driver's result line and exits: 0 when `ok`, 1 otherwise (a failed check,
/// e.g. a missed event, still prints its figure so that the report can show it).
pub fn finish(value: f64, unit: &str, ok: bool, note: &str) -> ! {
    let line = serde_json::json!({
        "value": value,
        "unit": unit,
        "hwm_kib": proc_status_kib("VmHWM"),
        "ok": ok,
        "note": note,
    });
    println!("{line}");
    std::process::exit(if ok { 0 } else { 1 })
}

/// Calls per second from a count and an elapsed time.
pub fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

/// The event names the flood server sends, in turn. Both are in QEMU 10.0's schema and
/// in `qapi-qmp` 0.15 (whose event stream ends at the first event it does not know).
pub const FLOOD_EVENTS: [&str; 2] = ["JOB_STATUS_CHANGE", "RESUME"];

/// Appends flood event number `i` to `out` as one QEMU-shaped line (QEMU's member
/// order as seen on the wire: `timestamp`, `event`, `data`).
pub fn flood_event(out: &mut String, i: usize) {
    let micros = i % 1_000_000;
    let secs = 1_764_000_000 + i / 1_000_000;
    if i.is_multiple_of(2) {
        let _ = writeln!(
            out,
            r#"{{"timestamp": {{"seconds": {secs}, "microseconds": {micros}}}, "event": "JOB_STATUS_CHANGE", "data": {{"status": "running", "id": "job{}"}}}}"#,
            i % 8
        );
    } else {
        let _ = writeln!(
            out,
            r#"{{"timestamp": {{"seconds": {secs}, "microseconds": {micros}}}, "event": "RESUME"}}"#
        );
    }
}
