//! Client-side decoding cost of the typed bindings against `serde_json::Value` (what
//! the benchmark's floor client does), in one process, alternated:
//!
//! * the `query-qmp-schema` reply of `qemu-system-x86_64` 10.0 (213 KB, captured in
//!   `schema/introspect/`) into `Vec<types::SchemaInfo>`, every element a flat union
//!   whose discriminator QEMU sends after some branch members;
//! * one `JOB_STATUS_CHANGE` event line: classified as the client does
//!   (`qmp::message::Incoming`) and its data decoded into `events::Event`.
//!
//! `cargo bench --bench decode` prints milliseconds (schema) and nanoseconds (event)
//! per decode, medians of 5 rounds, and the ratio typed ÷ Value. Without `--bench`
//! (as `cargo test --all-targets` runs it) each decode runs once, as a smoke test.

use std::hint::black_box;
use std::time::Instant;

use qemu_qapi::events::Event;
use qemu_qapi::qmp::message::Incoming;
use qemu_qapi::qmp::EventSet;
use qemu_qapi::types::SchemaInfo;
use serde_json::value::RawValue;
use serde_json::Value;

fn per_call(n: u32, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_secs_f64() / f64::from(n)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (rounds, schema_n, event_n) = if bench { (5, 100, 200_000) } else { (1, 1, 1) };
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/introspect/qemu-system-x86_64-10.0.json"
    );
    let schema = std::fs::read_to_string(path).expect("schema capture");
    let data = r#"{"id":"job0","status":"running"}"#;
    let line = format!(
        r#"{{"event":"JOB_STATUS_CHANGE","data":{data},"timestamp":{{"seconds":1,"microseconds":2}}}}"#
    );
    let raw: Box<RawValue> = RawValue::from_string(data.to_owned()).expect("raw data");

    let (mut sv, mut st, mut ev, mut et) = (vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        sv.push(per_call(schema_n, || {
            black_box(serde_json::from_str::<Value>(&schema).expect("value"));
        }));
        st.push(per_call(schema_n, || {
            let v: Vec<SchemaInfo> = serde_json::from_str(&schema).expect("typed");
            black_box(v);
        }));
        ev.push(per_call(event_n, || {
            black_box(serde_json::from_str::<Value>(&line).expect("value"));
        }));
        et.push(per_call(event_n, || {
            // What the client does with a line: classify it, then decode the data.
            let Ok(Incoming::Event { name, data, .. }) = Incoming::parse(&line) else {
                panic!("not an event")
            };
            black_box(Event::decode(&name, data.map(|d| d.get())).expect("typed"));
        }));
    }
    assert!(matches!(
        Event::decode("JOB_STATUS_CHANGE", Some(raw.get())),
        Ok(Event::JobStatusChange(_))
    ));
    if !bench {
        println!("decode: smoke run passed (cargo bench --bench decode for figures)");
        return;
    }
    let (sv, st, ev, et) = (median(sv), median(st), median(ev), median(et));
    println!(
        "query-qmp-schema reply ({} bytes): Value {:.3} ms, typed Vec<SchemaInfo> {:.3} ms (typed / Value {:.2})",
        schema.len(),
        sv * 1e3,
        st * 1e3,
        st / sv
    );
    println!(
        "JOB_STATUS_CHANGE line: into Value {:.0} ns, classified and decoded into Event {:.0} ns (typed / Value {:.2})",
        ev * 1e9,
        et * 1e9,
        et / ev
    );
}
