//! Our schema front end's parse + check of a QAPI schema (`qapi-schema.json` and what
//! it includes), timed in-process: `ours-parse SCHEMA [RUNS]` prints the drivers'
//! result line with the median milliseconds of RUNS runs (default 10), after one
//! untimed warm-up run. Files are read from disk on every run, as QEMU's front end does
//! (the page cache holds them after the warm-up).

use std::time::Instant;

use bench_common::finish;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: ours-parse SCHEMA [RUNS]");
        std::process::exit(2)
    };
    let runs: usize = args
        .next()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10)
        .max(1);
    let parse = || match qapi_codegen::front::parse_file(&path) {
        Ok(schema) => schema,
        Err(e) => {
            eprintln!("ours-parse: {e}");
            std::process::exit(1)
        }
    };
    let entities = parse().entities.len();
    let mut ms: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(parse());
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    finish(
        ms[ms.len() / 2],
        "ms",
        true,
        &format!("{entities} entities"),
    )
}
