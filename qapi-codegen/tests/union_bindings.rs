//! The bindings of QEMU 7.2 and 10.0 at once (the union of `schema/qemu-system-7.2.json`
//! and `schema/qemu-system-10.0.json`, and of the guest agent's `schema/qemu-ga-*.json`):
//!
//! * they compile with `#![deny(warnings, missing_docs)]` (one temporary crate with a
//!   module per schema, depending on the real `qmp` crate, built with `cargo build`);
//! * their run-time availability table answers, for every command, event and named
//!   type of either release, and every argument, reply member, data member, member,
//!   enum value, branch and alternative of them, which releases have it: a program
//!   in that crate asks, and each answer is checked against the two schemas read on
//!   their own;
//! * a program written against the 10.0 bindings alone compiles against them unchanged
//!   except where a member 10.0 requires became optional: every public item, field,
//!   variant and function of the 10.0 bindings is in the union's, the same, except the
//!   fields of those members (now `Option`) and the `new` of their types; the test
//!   lists each such member.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use qapi_codegen::emit::{generate, Manual, Options};
use qapi_codegen::model::{EntityId, EntityKind, Schema};

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema")
}

fn read(file: &str) -> Schema {
    qapi_codegen::front::parse_file(schema_dir().join(file)).unwrap_or_else(|e| panic!("{e}"))
}

/// The two releases' schemas of a program (`system`, `ga`), oldest first, and their
/// union.
fn both(prefix: &str) -> (Vec<(String, Schema)>, Schema) {
    let listed = vec![
        ("7.2".to_owned(), read(&format!("qemu-{prefix}-7.2.json"))),
        ("10.0".to_owned(), read(&format!("qemu-{prefix}-10.0.json"))),
    ];
    let union = qapi_codegen::union::merge(&listed).unwrap_or_else(|e| panic!("{e}"));
    (listed, union)
}

/// The element type of (nested) arrays.
fn element(s: &Schema, mut id: EntityId) -> EntityId {
    while let EntityKind::Array(a) = &s.entity(id).kind {
        id = a.element;
    }
    id
}

/// The wire names of the members, values, branches or alternatives of entity `id`,
/// by kind of part (`member`, `value`, `branch`, `alternative`).
fn parts(s: &Schema, id: EntityId) -> Vec<(&'static str, String)> {
    match &s.entity(id).kind {
        EntityKind::Enum(e) => e
            .members
            .iter()
            .map(|m| ("value", m.name.clone()))
            .collect(),
        EntityKind::Object(o) => {
            let mut v: Vec<_> = o
                .members
                .iter()
                .map(|m| ("member", m.name.clone()))
                .collect();
            if let Some(b) = &o.branches {
                v.extend(b.variants.iter().map(|b| ("branch", b.name.clone())));
            }
            v
        }
        EntityKind::Alternate(a) => a
            .alternatives
            .variants
            .iter()
            .map(|v| ("alternative", v.name.clone()))
            .collect(),
        _ => Vec::new(),
    }
}

/// Questions `(method, name, part)` with the releases that should answer.
type Questions = BTreeMap<(String, String, String), Vec<String>>;

/// Every question asked of the table, as (method, name, part), with the releases
/// that should answer, from each schema read on its own.
fn expected(listed: &[(String, Schema)]) -> Questions {
    let mut out = Questions::new();
    for (release, s) in listed {
        let mut add = |method: &str, name: &str, part: &str| {
            out.entry((method.to_owned(), name.to_owned(), part.to_owned()))
                .or_default()
                .push(release.clone());
        };
        for e in &s.entities {
            let id = s.lookup_id(&e.name).expect("by name");
            match &e.kind {
                EntityKind::Command(c) => {
                    add("item", &e.name, "");
                    if let Some(a) = c.arg_type {
                        for (_, m) in parts(s, a).into_iter().filter(|(k, _)| *k == "member") {
                            add("member", &e.name, &m);
                        }
                    }
                    if let Some(r) = c.ret_type.map(|r| element(s, r)) {
                        if !s.entity(r).implicit {
                            for (k, m) in parts(s, r) {
                                if k == "member" {
                                    add("reply_member", &e.name, &m);
                                }
                            }
                        }
                    }
                }
                EntityKind::Event(ev) => {
                    add("item", &e.name, "");
                    if let Some(a) = ev.arg_type {
                        for (_, m) in parts(s, a).into_iter().filter(|(k, _)| *k == "member") {
                            add("member", &e.name, &m);
                        }
                    }
                }
                EntityKind::Enum(_) | EntityKind::Object(_) | EntityKind::Alternate(_)
                    if !e.implicit =>
                {
                    add("item", &e.name, "");
                    for (k, p) in parts(s, id) {
                        add(k, &e.name, &p);
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// A program that asks the table each question and prints `method\tname\tpart\tanswer`.
fn probe_program(modules: &[(&str, &Questions)]) -> String {
    let mut s = String::from(
        "//! Asks the availability tables.\nfn show(a: Option<&[&str]>) -> String {\n    \
         a.map(|r| r.join(\",\")).unwrap_or_else(|| \"-\".to_owned())\n}\n\nfn main() {\n",
    );
    for (module, questions) in modules {
        s.push_str(&format!(
            "    let t = union_bindings::{module}::availability::TABLE;\n    for (m, n, p) in [\n"
        ));
        for (m, n, p) in questions.keys() {
            s.push_str(&format!("        ({m:?}, {n:?}, {p:?}),\n"));
        }
        s.push_str(&format!(
            "    ] {{\n        let a = match m {{\n            \"item\" => t.item(n),\n            \
             \"member\" => t.member(n, p),\n            \"reply_member\" => t.reply_member(n, p),\n            \
             \"value\" => t.value(n, p),\n            \"branch\" => t.branch(n, p),\n            \
             _ => t.alternative(n, p),\n        }};\n        \
             println!(\"{module}\\t{{m}}\\t{{n}}\\t{{p}}\\t{{}}\", show(a));\n    }}\n"
        ));
    }
    s.push_str("}\n");
    s
}

/// The public lines of generated code, by item: `(module, item) → lines`, where a
/// line is a public item, field, function or enum variant, with no white space (a
/// field's type wrapped over several lines is joined, without the trailing comma
/// the formatter puts before `>`). The hidden `__Slots` types are not API.
fn api(code: &str) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut out: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let mut module = String::new();
    let mut item = String::new();
    let mut joined: Vec<String> = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for line in code.lines() {
        let indent = line.len() - line.trim_start().len();
        let t = line.trim();
        match pending.take() {
            Some((i, mut acc)) => {
                acc.push_str(t);
                if t.ends_with(',') && indent == i {
                    joined.push(format!("{}{acc}", " ".repeat(i)));
                } else {
                    pending = Some((i, acc));
                }
            }
            None if indent == 8
                && t.starts_with("pub")
                && t.contains(':')
                && !t.ends_with(',')
                && !t.ends_with('{') =>
            {
                pending = Some((indent, t.to_owned()));
            }
            None => joined.push(line.to_owned()),
        }
    }
    for line in &joined {
        let line = line.replace(",>", ">");
        let indent = line.len() - line.trim_start().len();
        let t = line.trim();
        if indent == 0 {
            if let Some(m) = t.strip_prefix("pub mod ") {
                module = m.trim_end_matches(" {").to_owned();
            }
            continue;
        }
        if indent == 4 {
            let head = t
                .strip_prefix("pub struct ")
                .or_else(|| t.strip_prefix("pub enum "))
                .or_else(|| t.strip_prefix("impl "))
                .or_else(|| t.strip_prefix("pub const "));
            if let Some(h) = head {
                item = h
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                if t.starts_with("pub ") && !item.contains("__Slots") {
                    out.entry((module.clone(), item.clone()))
                        .or_default()
                        .insert(t.to_owned());
                }
            }
            continue;
        }
        let variant = t.ends_with(',')
            && t.starts_with(|c: char| c.is_ascii_uppercase())
            && !t.contains("=>")
            && !t.contains(':');
        if indent == 8 && (t.starts_with("pub ") || variant) && !item.contains("__Slots") {
            out.entry((module.clone(), item.clone()))
                .or_default()
                .insert(t.to_owned());
        }
    }
    out
}

/// The members 10.0 requires that the union makes optional, as `type T member m`,
/// `command c argument m` or `event E member m`, with (Rust type or struct, field).
fn became_optional(new: &Schema, union: &Schema) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let users: BTreeMap<EntityId, String> = new
        .entities
        .iter()
        .filter_map(|e| match &e.kind {
            EntityKind::Command(c) => Some((c.arg_type?, format!("command {} argument", e.name))),
            EntityKind::Event(ev) => Some((ev.arg_type?, format!("event {} member", e.name))),
            _ => None,
        })
        .collect();
    for (k, e) in new.entities.iter().enumerate() {
        let EntityKind::Object(o) = &e.kind else {
            continue;
        };
        let Some(EntityKind::Object(u)) = union.lookup(&e.name).map(|x| &x.kind) else {
            continue;
        };
        for m in o.members.iter().filter(|m| !m.optional) {
            if u.members.iter().any(|x| x.name == m.name && x.optional) {
                let place = match users.get(&EntityId(k as u32)) {
                    Some(u) if e.implicit => u.clone(),
                    _ => format!("type {} member", e.name),
                };
                out.insert(format!("{place} {}", m.name));
            }
        }
    }
    out
}

#[test]
fn union_bindings_of_7_2_and_10_0() {
    let (system, system_union) = both("system");
    let (ga, ga_union) = both("ga");

    // A program written against 10.0's bindings: the union's public API holds
    // 10.0's, but for members made optional.
    let opts = Options::default();
    let optional = became_optional(&system[1].1, &system_union);
    println!(
        "members QEMU 10.0 requires that are optional in the union of 7.2 and 10.0 ({}):",
        optional.len()
    );
    for m in &optional {
        println!("  {m}");
    }
    for known in [
        "type BlockDeviceInfo member active",
        "type BlockDeviceStats member zone_append_bytes",
        "type DirtyRateInfo member calc-time-unit",
        "type MachineInfo member acpi",
        "type SevInfo member sev-type",
    ] {
        assert!(optional.contains(known), "{known} is not listed");
    }
    let single = generate(&system[1].1, &opts).expect("generate 10.0");
    let merged = generate(&system_union, &opts).expect("generate union");
    let (single_api, merged_api) = (api(&single), api(&merged));
    let mut unexplained = Vec::new();
    let mut changed = 0;
    for ((module, item), lines) in &single_api {
        let theirs = merged_api.get(&(module.clone(), item.clone()));
        for line in lines {
            if theirs.is_some_and(|t| t.contains(line)) {
                continue;
            }
            // `pub x: T,` → `pub x: Option<T>,`; `new(...)` without the member.
            let as_option = line.strip_prefix("pub ").and_then(|l| {
                let (field, ty) = l.split_once(": ")?;
                Some(format!(
                    "pub {field}: ::std::option::Option<{}>,",
                    ty.trim_end_matches(',')
                ))
            });
            let explained = match as_option {
                Some(o) if theirs.is_some_and(|t| t.contains(&o)) => true,
                _ => line.starts_with("pub fn new("),
            };
            if explained {
                changed += 1;
            } else {
                unexplained.push(format!("{module}::{item}: {line}"));
            }
        }
    }
    println!(
        "10.0's public lines changed by members made optional: {changed}; other differences: {}",
        unexplained.len()
    );
    assert!(
        unexplained.is_empty(),
        "10.0's bindings have public lines the union's lack:\n{}",
        unexplained.join("\n")
    );

    // Compile both unions, and ask their tables.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.parent().expect("workspace");
    let dir = std::env::temp_dir().join(format!("qapi-union-bindings-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("src/bin")).expect("temp crate");
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"union-bindings\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
             [workspace]\n[dependencies]\nqemu-qmp = {{ path = {:?} }}\nserde = \"1\"\nserde_json = \"1\"\n",
            root.join("qmp").display().to_string()
        ),
    )
    .expect("Cargo.toml");
    let ga_opts = Options {
        manual: Manual::guest_agent(),
        ..Options::default()
    };
    std::fs::write(dir.join("src/system.rs"), &merged).expect("system.rs");
    std::fs::write(
        dir.join("src/guest_agent.rs"),
        generate(&ga_union, &ga_opts).expect("generate ga union"),
    )
    .expect("guest_agent.rs");
    std::fs::write(
        dir.join("src/lib.rs"),
        "//! The union of QEMU 7.2's and 10.0's bindings.\n#![deny(warnings, missing_docs)]\n\
         /// System emulator, 7.2 and 10.0.\npub mod system {\n    include!(\"system.rs\");\n}\n\
         /// Guest agent, 7.2 and 10.0.\npub mod guest_agent {\n    include!(\"guest_agent.rs\");\n}\n",
    )
    .expect("lib.rs");
    let questions_system = expected(&system);
    let questions_ga = expected(&ga);
    std::fs::write(
        dir.join("src/bin/probe.rs"),
        probe_program(&[
            ("system", &questions_system),
            ("guest_agent", &questions_ga),
        ]),
    )
    .expect("probe.rs");
    let _ = std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("union-bindings");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        .args(["run", "--quiet", "--offline", "--bin", "probe"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", &target)
        .env("CARGO_PROFILE_DEV_DEBUG", "0")
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run cargo");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "cargo run failed:\n{stderr}");
    assert!(!stderr.contains("warning"), "warnings:\n{stderr}");

    let mut wrong = Vec::new();
    let mut asked = 0;
    for line in stdout.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let [module, m, n, p, answer] = f[..] else {
            panic!("bad line {line:?}")
        };
        let questions = if module == "system" {
            &questions_system
        } else {
            &questions_ga
        };
        let want = questions
            .get(&(m.to_owned(), n.to_owned(), p.to_owned()))
            .map(|r| r.join(","))
            .unwrap_or_else(|| "-".to_owned());
        asked += 1;
        if answer != want {
            wrong.push(format!("{module} {m}({n:?}, {p:?}): {answer}, want {want}"));
        }
    }
    assert_eq!(
        asked,
        questions_system.len() + questions_ga.len(),
        "answers missing"
    );
    println!(
        "availability: {asked} questions ({} system, {} guest agent), {} wrong",
        questions_system.len(),
        questions_ga.len(),
        wrong.len()
    );
    // A few by hand, as a program would ask.
    for (q, want) in [
        ("system\treply_member\tquery-status\tsinglestep\t", "7.2"),
        ("system\treply_member\tquery-block\tinserted\t", "7.2,10.0"),
        ("system\titem\tblockdev-set-active\t\t", "10.0"),
        ("system\titem\tx-query-rdma\t\t", "7.2"),
        ("system\tvalue\tSysEmuTarget\tcris\t", "7.2"),
        ("system\tvalue\tRunState\trunning\t", "7.2,10.0"),
        ("system\tmember\tmigrate\tblk\t", "7.2"),
        ("system\tbranch\tBlockdevOptions\tnull-co\t", "7.2,10.0"),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(q))
            .unwrap_or_else(|| panic!("not asked: {q:?}"));
        assert_eq!(&line[q.len()..], want, "{q:?}");
    }
    assert!(
        wrong.is_empty(),
        "{} wrong answers:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
