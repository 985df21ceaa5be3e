//! Parse + check of QEMU 10.0's system schema (`qapi/qapi-schema.json`, ~150 files).
//!
//! The files are read into memory once, so the figure is the front end alone (QEMU's
//! Python front end, `QAPISchema(...)`, takes ~280 ms for the same work on the 2-core
//! CI machine). The schema comes from `$QAPI_CORPUS/qapi`, or
//! `../shared/qemu-10.0/qapi` relative to the workspace root.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion};

fn corpus() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let c = match std::env::var_os("QAPI_CORPUS") {
        Some(p) => root.join(p),
        None => root.join("../shared/qemu-10.0"),
    };
    c.join("qapi/qapi-schema.json").is_file().then_some(c)
}

fn bench(c: &mut Criterion) {
    let Some(corpus) = corpus() else {
        println!("no QEMU schema found (set QAPI_CORPUS): skipping the parse benchmark");
        return;
    };
    let dir = corpus.join("qapi");
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    for entry in std::fs::read_dir(&dir).expect("read qapi/") {
        let entry = entry.expect("dir entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") {
            files.insert(name, std::fs::read(entry.path()).expect("read schema file"));
        }
    }
    let parse = || {
        qapi_codegen::front::parse_with_loader("qapi-schema.json", "/qapi", |f| {
            files
                .get(f)
                .cloned()
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        })
        .expect("QEMU's schema is valid")
    };
    let n = parse().entities.len();
    println!("system schema: {n} entities");
    c.bench_function("parse+check qapi/qapi-schema.json (QEMU 10.0)", |b| {
        // Freeing the model is not part of reading it.
        b.iter_with_large_drop(parse)
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
