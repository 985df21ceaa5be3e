//! Codegen time: schema → formatted Rust, for QEMU 10.0's system emulator schema.
//!
//! `cargo bench -p qemu-qapi-codegen --bench generate` prints the median, min and max of 10
//! runs of each step (one run without `--bench`), for the `schema/` snapshot and, when `QAPI_CORPUS` is set, for
//! the full QAPI sources (with their doc text, which the emitter converts).
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use qapi_codegen::emit::{generate, generate_tokens, Options};

fn stats(mut v: Vec<Duration>) -> String {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "median {:8.1} ms  min {:8.1} ms  max {:8.1} ms",
        ms(v[v.len() / 2]),
        ms(v[0]),
        ms(v[v.len() - 1])
    )
}

fn bench(label: &str, path: &Path, runs: usize) {
    let mut load = Vec::new();
    let mut tokens = Vec::new();
    let mut full = Vec::new();
    let mut lines = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let loaded = qapi_codegen::config::load(path).unwrap_or_else(|e| panic!("{e}"));
        load.push(t.elapsed());
        let opts = Options::default();
        let t = Instant::now();
        let ts = generate_tokens(&loaded.schema, &opts).expect("tokens");
        tokens.push(t.elapsed());
        drop(ts);
        let t = Instant::now();
        let code = generate(&loaded.schema, &opts).expect("generate");
        full.push(t.elapsed());
        lines = code.lines().count();
    }
    println!("{label} ({}): {lines} lines of Rust", path.display());
    println!("  read + check        {}", stats(load));
    println!("  emit tokens         {}", stats(tokens));
    println!("  emit + format       {}", stats(full));
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_owned();
    // `cargo test --all-targets` runs benchmarks without `--bench`: once, as a smoke
    // test (the debug build would take minutes for ten runs).
    let runs = if std::env::args().any(|a| a == "--bench") {
        10
    } else {
        1
    };
    bench("snapshot", &root.join("schema/qemu-system-10.0.json"), runs);
    if let Some(c) = std::env::var_os("QAPI_CORPUS") {
        bench(
            "sources",
            &PathBuf::from(c).join("qapi/qapi-schema.json"),
            runs,
        );
    }
}
