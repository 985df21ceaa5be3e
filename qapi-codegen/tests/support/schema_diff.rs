//! Compares a schema model read from QAPI sources with what a QEMU binary built from
//! them reports through `query-qmp-schema`, matching types by where they are used
//! (the binary's names are masked). Shared by the introspection and old-dialect tests.

// Each test binary that includes this module uses part of it.
#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap};

use super::as_serde::to_json;
use qapi_codegen::model::{EntityKind, Schema};
use serde_json::Value;

/// The version in a doc text's `since: X.Y` / `(since X.Y)`, if any.
fn since(text: &str) -> Option<(u32, u32)> {
    let lower = text.to_ascii_lowercase();
    let at = lower.find("since")?;
    let rest = lower[at + 5..].trim_start_matches([':', ' ', '\n']);
    let mut parts = rest.splitn(3, |c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn by_name(x: &Value) -> HashMap<&str, &Value> {
    x.as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e))
        .collect()
}

fn strs(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(String::from))
        .collect()
}

/// What differs between the sources' output and the binary's, each item named by a
/// path in the sources' names (`query-foo.arg.member bar`).
#[derive(Default)]
pub struct Diff {
    /// Present in the sources only, with the condition that explains it, if any.
    pub source_only: Vec<(String, bool)>,
    /// Anything else: a real disagreement.
    pub mismatches: Vec<String>,
}

struct Compare<'a> {
    schema: &'a Schema,
    src: HashMap<&'a str, &'a Value>,
    live: HashMap<&'a str, &'a Value>,
    /// Source type name → live type name, as matched so far.
    pairs: HashMap<String, String>,
    queue: Vec<(String, String, String)>,
    diff: Diff,
    /// The binary's release: members documented as added later are explained.
    version: (u32, u32),
}

impl<'a> Compare<'a> {
    /// True if the source entity `name` (or its member, value or branch `item`, or the
    /// feature `feature`) has a condition.
    fn has_if(&self, name: &str, item: Option<&str>, feature: Option<&str>) -> bool {
        let Some(e) = self.schema.lookup(name) else {
            return false;
        };
        if let Some(f) = feature {
            let feats = match (item, &e.kind) {
                (None, _) => &e.features,
                (Some(m), EntityKind::Object(o)) => match o.members.iter().find(|x| x.name == m) {
                    Some(x) => &x.features,
                    None => return false,
                },
                (Some(m), EntityKind::Enum(en)) => match en.members.iter().find(|x| x.name == m) {
                    Some(x) => &x.features,
                    None => return false,
                },
                _ => return false,
            };
            return feats.iter().any(|x| x.name == f && x.ifcond.is_some());
        }
        let Some(item) = item else {
            return e.ifcond.is_some();
        };
        self.added_later(name, item)
            || match &e.kind {
                EntityKind::Object(o) => {
                    o.members
                        .iter()
                        .any(|m| m.name == item && m.ifcond.is_some())
                        || o.branches.as_ref().is_some_and(|b| {
                            b.variants
                                .iter()
                                .any(|v| v.name == item && v.ifcond.is_some())
                        })
                }
                EntityKind::Enum(en) => en
                    .members
                    .iter()
                    .any(|m| m.name == item && m.ifcond.is_some()),
                EntityKind::Alternate(a) => a
                    .alternatives
                    .variants
                    .iter()
                    .any(|v| v.ifcond.is_some() && self.schema.entity(v.ty).name == item),
                _ => false,
            }
    }

    /// True if the doc of `name` says its member `item` appeared after the binary's
    /// release (`since: 11.1`): the sources may carry changes made after it.
    fn added_later(&self, name: &str, item: &str) -> bool {
        let Some(doc) = self.schema.lookup(name).and_then(|e| e.doc) else {
            return false;
        };
        let doc = self.schema.doc(doc);
        doc.args
            .iter()
            .filter(|(n, _)| n == item)
            .any(|(_, section)| since(&section.text).is_some_and(|v| v > self.version))
    }

    fn source_only(&mut self, what: String, cond: bool) {
        self.diff.source_only.push((what, cond));
    }

    fn mismatch(&mut self, what: String) {
        self.diff.mismatches.push(what);
    }

    /// Strips `[`…`]`, returning the depth.
    fn unwrap(name: &str) -> (usize, &str) {
        let depth = name.bytes().take_while(|&b| b == b'[').count();
        (
            depth,
            &name[depth..name.len() - depth.min(name.len() - depth)],
        )
    }

    fn pair(&mut self, src: &str, live: &str, at: &str) {
        let (ds, s) = Self::unwrap(src);
        let (dl, l) = Self::unwrap(live);
        if ds != dl {
            return self.mismatch(format!("{at}: {src} vs {live}"));
        }
        match self.pairs.get(s) {
            Some(known) if known == l => {}
            Some(known) => {
                let known = known.clone();
                self.mismatch(format!("{at}: {s} matched both {known} and {l}"))
            }
            None => {
                self.pairs.insert(s.to_string(), l.to_string());
                self.queue
                    .push((s.to_string(), l.to_string(), at.to_string()));
            }
        }
    }

    fn features(&mut self, name: &str, item: Option<&str>, s: &Value, l: &Value, at: &str) {
        let (fs, fl) = (strs(&s["features"]), strs(&l["features"]));
        for f in fs.difference(&fl) {
            let cond = self.has_if(name, item, Some(f));
            self.source_only(format!("{at}: feature {f}"), cond);
        }
        for f in fl.difference(&fs) {
            self.mismatch(format!("{at}: feature {f} only in the binary"));
        }
    }

    fn compare_type(&mut self, s_name: &str, l_name: &str, at: &str) {
        let (Some(&s), Some(&l)) = (self.src.get(s_name), self.live.get(l_name)) else {
            return self.mismatch(format!("{at}: {s_name} or {l_name} undefined"));
        };
        if s["meta-type"] != l["meta-type"] {
            return self.mismatch(format!(
                "{at}: {s_name} is {} but {l_name} is {}",
                s["meta-type"], l["meta-type"]
            ));
        }
        self.features(s_name, None, s, l, &format!("{at} ({s_name})"));
        match s["meta-type"].as_str().unwrap() {
            "builtin" => {
                if s_name != l_name {
                    self.mismatch(format!("{at}: {s_name} vs {l_name}"));
                }
            }
            "enum" => {
                let (vs, vl) = (strs(&s["values"]), strs(&l["values"]));
                for v in vs.difference(&vl) {
                    let cond = self.has_if(s_name, Some(v), None);
                    self.source_only(format!("{at} ({s_name}): value {v}"), cond);
                }
                for v in vl.difference(&vs) {
                    self.mismatch(format!("{at} ({s_name}): value {v} only in the binary"));
                }
            }
            "array" => {
                let (es, el) = (
                    s["element-type"].as_str().unwrap().to_string(),
                    l["element-type"].as_str().unwrap().to_string(),
                );
                self.pair(&es, &el, &format!("{at}[]"));
            }
            "object" => {
                let lm: HashMap<&str, &Value> = l["members"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| (m["name"].as_str().unwrap(), m))
                    .collect();
                let sm: BTreeSet<&str> = s["members"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["name"].as_str().unwrap())
                    .collect();
                for m in s["members"].as_array().unwrap() {
                    let name = m["name"].as_str().unwrap();
                    let mat = format!("{at}.{name}");
                    match lm.get(name) {
                        None => {
                            let cond = self.has_if(s_name, Some(name), None);
                            self.source_only(format!("{at} ({s_name}): member {name}"), cond);
                        }
                        Some(lmem) => {
                            if m.get("default") != lmem.get("default") {
                                self.mismatch(format!("{mat}: optional differs"));
                            }
                            self.features(s_name, Some(name), m, lmem, &mat);
                            let (ts, tl) = (
                                m["type"].as_str().unwrap().to_string(),
                                lmem["type"].as_str().unwrap().to_string(),
                            );
                            self.pair(&ts, &tl, &mat);
                        }
                    }
                }
                for name in lm.keys().filter(|n| !sm.contains(*n)) {
                    self.mismatch(format!("{at} ({s_name}): member {name} only in the binary"));
                }
                if s["tag"] != l["tag"] {
                    self.mismatch(format!("{at} ({s_name}): tag {} vs {}", s["tag"], l["tag"]));
                }
                let lv: HashMap<&str, &str> = l["variants"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|v| (v["case"].as_str().unwrap(), v["type"].as_str().unwrap()))
                    .collect();
                for v in s["variants"].as_array().into_iter().flatten() {
                    let case = v["case"].as_str().unwrap();
                    match lv.get(case) {
                        // A branch compiled out still exists in the binary as an empty
                        // branch if its tag value is compiled in.
                        None => {
                            let cond = self.has_if(s_name, Some(case), None);
                            self.source_only(format!("{at} ({s_name}): branch {case}"), cond);
                        }
                        Some(lt) => {
                            let st = v["type"].as_str().unwrap().to_string();
                            let lt = lt.to_string();
                            let s_is_empty = st == "q_empty";
                            let l_entry = self.live.get(lt.as_str()).copied();
                            let l_is_empty = l_entry.is_some_and(|e| {
                                e["members"].as_array().is_some_and(Vec::is_empty)
                                    && e.get("variants").is_none()
                            });
                            if !s_is_empty && l_is_empty {
                                let cond = self.has_if(s_name, Some(case), None);
                                self.source_only(
                                    format!("{at} ({s_name}): branch {case} (empty in the binary)"),
                                    cond,
                                );
                            } else {
                                self.pair(&st, &lt, &format!("{at}:{case}"));
                            }
                        }
                    }
                }
            }
            "alternate" => {
                let ms = s["members"].as_array().unwrap();
                let ml = l["members"].as_array().unwrap();
                if ms.len() == ml.len() {
                    for (k, (a, b)) in ms.iter().zip(ml).enumerate() {
                        let (ta, tb) = (
                            a["type"].as_str().unwrap().to_string(),
                            b["type"].as_str().unwrap().to_string(),
                        );
                        self.pair(&ta, &tb, &format!("{at}|{k}"));
                    }
                } else {
                    let cond = ms
                        .iter()
                        .any(|m| self.has_if(s_name, Some(m["type"].as_str().unwrap_or("")), None));
                    self.source_only(format!("{at} ({s_name}): alternatives"), cond);
                }
            }
            other => self.mismatch(format!("{at}: meta-type {other}")),
        }
    }

    fn run(mut self, src_x: &'a Value, live_x: &'a Value) -> Diff {
        for e in src_x.as_array().unwrap() {
            let meta = e["meta-type"].as_str().unwrap();
            if meta != "command" && meta != "event" {
                continue;
            }
            let name = e["name"].as_str().unwrap();
            let Some(&l) = self.live.get(name) else {
                let cond = self.has_if(name, None, None);
                self.source_only(format!("{meta} {name}"), cond);
                continue;
            };
            self.features(name, None, e, l, name);
            if e.get("allow-oob") != l.get("allow-oob") {
                self.mismatch(format!("{name}: allow-oob differs"));
            }
            for key in ["arg-type", "ret-type"] {
                if let (Some(s), Some(t)) = (e[key].as_str(), l[key].as_str()) {
                    self.pair(s, t, &format!("{name}.{key}"));
                }
            }
        }
        for e in live_x.as_array().unwrap() {
            let name = e["name"].as_str().unwrap();
            let meta = e["meta-type"].as_str().unwrap();
            if (meta == "command" || meta == "event") && !self.src.contains_key(name) {
                self.mismatch(format!("{meta} {name} only in the binary"));
            }
        }
        while let Some((s, l, at)) = self.queue.pop() {
            self.compare_type(&s, &l, &at);
        }
        self.diff
    }
}

/// Compares `schema` (read from sources) with `live` (a binary's `query-qmp-schema`
/// output, as a model) of release `version`.
pub fn diff(schema: &Schema, live: &Schema, version: (u32, u32)) -> Diff {
    let src_x = to_json(schema, false);
    let live_x = to_json(live, false);
    let cmp = Compare {
        schema,
        src: by_name(&src_x),
        live: by_name(&live_x),
        pairs: HashMap::new(),
        queue: Vec::new(),
        diff: Diff::default(),
        version,
    };
    cmp.run(&src_x, &live_x)
}

impl Diff {
    /// Prints the items only in the sources; fails on mismatches and on items only in
    /// the sources that have no condition (or later `since`) to explain them.
    #[track_caller]
    pub fn check(&self, what: &str) {
        let unexplained: Vec<&str> = self
            .source_only
            .iter()
            .filter(|(_, explained)| !explained)
            .map(|(w, _)| w.as_str())
            .collect();
        println!(
            "{what}: {} items only in the sources, {} of them unexplained",
            self.source_only.len(),
            unexplained.len()
        );
        for (item, _) in &self.source_only {
            println!("  source only: {item}");
        }
        assert!(
            self.mismatches.is_empty() && unexplained.is_empty(),
            "{what}:\nmismatches:\n  {}\nonly in the sources, without an `if`:\n  {}",
            self.mismatches.join("\n  "),
            unexplained.join("\n  ")
        );
    }

    /// Items only in the sources that nothing explains.
    pub fn unexplained(&self) -> usize {
        self.source_only.iter().filter(|(_, e)| !e).count()
    }
}
