//! Name recovery (`introspect::recover_names`) on the real `query-qmp-schema` captures
//! in `schema/introspect/`, against the named snapshots in `schema/`: every named type
//! of a release's sources that is present in that release's capture (reachable from
//! the capture's commands and events along the same path) must get its source name.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use qapi_codegen::introspect::{read_file, recover_names, Recovery};
use qapi_codegen::model::{EntityKind, Schema};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `schema/<prefix>-<version>.json`, newest first, with their versions.
fn references(prefix: &str) -> Vec<(String, PathBuf)> {
    let mut found: Vec<(Vec<u32>, String, PathBuf)> = std::fs::read_dir(root().join("schema"))
        .expect("schema/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_owned();
            let version = name.strip_prefix(prefix)?.strip_suffix(".json")?.to_owned();
            let key = version
                .split('.')
                .map(|n| n.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            Some((key, version, p))
        })
        .collect();
    found.sort();
    found.reverse();
    found.into_iter().map(|(_, v, p)| (v, p)).collect()
}

fn load(path: &Path) -> Schema {
    qapi_codegen::config::load(path)
        .unwrap_or_else(|e| panic!("{e}"))
        .schema
}

/// Recovers the capture's names and returns the model, the recovery and the
/// references' versions.
fn recover(capture: &str) -> (Schema, Recovery, Vec<String>) {
    let refs = references("qemu-system-");
    let loaded: Vec<Schema> = refs.iter().map(|(_, p)| load(p)).collect();
    let loaded_refs: Vec<&Schema> = loaded.iter().collect();
    let mut schema = read_file(&root().join("schema/introspect").join(capture))
        .unwrap_or_else(|e| panic!("{e}"));
    let recovery = recover_names(&mut schema, &loaded_refs);
    (schema, recovery, refs.into_iter().map(|(v, _)| v).collect())
}

/// Prints the figures for each reference and returns the named types of the
/// reference of `release` present in the capture that did not get their name (the
/// capture's own release's reference is preferred on a tie, so none should).
fn figures(capture: &str, release: &str) -> Vec<String> {
    let (schema, recovery, versions) = recover(capture);
    let mut missed: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for m in &recovery.missed {
        missed
            .entry(m.reference)
            .or_default()
            .push(format!("{} (named {})", m.name, m.capture_name));
    }
    println!(
        "{capture}: {} types named from a reference",
        recovery.recovered
    );
    for (k, v) in versions.iter().enumerate() {
        let present = recovery.present[k];
        let miss = missed.get(&k).map_or(0, Vec::len);
        println!(
            "  qemu-system-{v}.json: {} of {present} named types present got their source name",
            present - miss
        );
        if miss > 0 {
            println!("    not: {}", missed[&k].join(", "));
        }
    }
    check_unique(&schema);
    let Some(k) = versions.iter().position(|v| v == release) else {
        println!("  (no reference of release {release}: nothing asserted)");
        return Vec::new();
    };
    let unexplained: Vec<String> = recovery
        .missed
        .iter()
        .filter(|m| m.reference == k)
        .map(|m| format!("{} (named {})", m.name, m.capture_name))
        .collect();
    unexplained
}

/// No two entities share a name, and no two types' names fold to the same letters.
fn check_unique(schema: &Schema) {
    let fold = |s: &str| -> String {
        s.chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    let mut exact = HashSet::new();
    let mut folded = HashSet::new();
    for e in &schema.entities {
        assert!(exact.insert(e.name.clone()), "duplicate name {}", e.name);
        if !matches!(e.kind, EntityKind::Command(_) | EntityKind::Event(_)) {
            assert!(folded.insert(fold(&e.name)), "colliding name {}", e.name);
        }
        assert_eq!(schema.lookup(&e.name).map(|x| &x.name), Some(&e.name));
    }
}

#[test]
fn system_10_0_capture_gets_every_source_name() {
    let missed = figures("qemu-system-x86_64-10.0.json", "10.0");
    assert!(missed.is_empty(), "not recovered: {missed:?}");
}

#[test]
fn storage_daemon_10_0_capture_gets_every_source_name() {
    let missed = figures("qemu-storage-daemon-10.0.json", "10.0");
    assert!(missed.is_empty(), "not recovered: {missed:?}");
}

#[test]
fn system_7_2_capture_gets_every_source_name() {
    let missed = figures("qemu-system-x86_64-7.2.json", "7.2");
    assert!(missed.is_empty(), "not recovered: {missed:?}");
}

/// The names a program written against the default bindings uses are there.
#[test]
fn the_names_programs_use_are_recovered() {
    for capture in [
        "qemu-system-x86_64-10.0.json",
        "qemu-system-x86_64-7.2.json",
        "qemu-storage-daemon-10.0.json",
    ] {
        let (schema, _, _) = recover(capture);
        let system = !capture.starts_with("qemu-storage-daemon");
        let mut want = vec![
            "VersionInfo",
            "BlockDeviceInfo",
            "BlockdevOptions",
            "BlockdevCreateOptions",
            "JobInfo",
            "JobStatus",
            "q_obj_JOB_STATUS_CHANGE-arg",
            "q_obj_query-named-block-nodes-arg",
        ];
        if system {
            want.extend(["StatusInfo", "RunState", "MigrationInfo"]);
        }
        for name in want {
            assert!(schema.lookup(name).is_some(), "{capture}: no {name}");
        }
        let arg = schema
            .lookup("q_obj_JOB_STATUS_CHANGE-arg")
            .expect("event data");
        assert!(arg.implicit, "{capture}: event data not implicit");
    }
}
