//! Readable names for masked types (the rules are in the [module docs](super)).

use std::collections::{HashMap, HashSet, VecDeque};

use super::parse::{RawEntry, RawKind};

/// True for a name QEMU masked: a decimal number. QAPI names start with a letter, so a
/// real name never looks like this.
pub(super) fn is_masked(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
}

/// `query-block-jobs` → `QueryBlockJobs`, `BLOCK_JOB_READY` → `BlockJobReady`,
/// `x-origin` → `XOrigin`, `__com.redhat_foo` → `ComRedhatFoo`.
pub(super) fn camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for word in name.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut chars = word.chars();
        let Some(first) = chars.next() else { continue };
        out.push(first.to_ascii_uppercase());
        if word.bytes().any(|b| b.is_ascii_lowercase()) {
            out.push_str(chars.as_str());
        } else {
            out.extend(chars.map(|c| c.to_ascii_lowercase()));
        }
    }
    out
}

/// The names in use: exact names of every entity, and a folded form (lower case, letters
/// and digits only) of every type name.
#[derive(Default)]
pub(super) struct Taken {
    exact: HashSet<String>,
    folded: HashSet<String>,
    /// The next suffix worth trying for a base name, so that many uses of one name
    /// cost linear time, not quadratic.
    next_suffix: HashMap<String, u64>,
}

pub(super) fn fold(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

impl Taken {
    pub(super) fn reserve(&mut self, name: &str, is_type: bool) {
        self.exact.insert(name.to_string());
        if is_type {
            self.folded.insert(fold(name));
        }
    }

    pub(super) fn is_free(&self, name: &str) -> bool {
        !self.exact.contains(name) && !self.folded.contains(&fold(name))
    }

    /// `candidate`, or the first free `candidate2`, `candidate3`, …; reserved.
    pub(super) fn unique(&mut self, candidate: &str) -> String {
        let base = if fold(candidate).is_empty() {
            "Type"
        } else {
            candidate
        };
        let mut name = base.to_string();
        if !self.is_free(&name) {
            let mut n = self.next_suffix.get(base).copied().unwrap_or(2);
            loop {
                name = format!("{base}{n}");
                n += 1;
                if self.is_free(&name) {
                    break;
                }
            }
            self.next_suffix.insert(base.to_string(), n);
        }
        self.reserve(&name, true);
        name
    }
}

/// The final name of every entry: unmasked names as they are, `q_empty` for the entry
/// at `q_empty`, derived names for masked types, `ElementList` for arrays.
///
/// `index` maps entry names to positions; references were checked by the caller, and
/// array chains are known to be short and acyclic.
pub(super) fn derive(
    entries: &[RawEntry],
    index: &HashMap<&str, usize>,
    q_empty: Option<usize>,
) -> Vec<String> {
    let mut taken = Taken::default();
    let mut names: Vec<Option<String>> = vec![None; entries.len()];
    for (i, e) in entries.iter().enumerate() {
        let is_array = matches!(e.kind, RawKind::Array { .. });
        if !is_masked(&e.name) && !is_array && Some(i) != q_empty {
            let is_type = !matches!(e.kind, RawKind::Command { .. } | RawKind::Event { .. });
            taken.reserve(&e.name, is_type);
            names[i] = Some(e.name.clone());
        }
    }
    // The source reader's implicit names, whether or not this schema defines them.
    taken.reserve("q_empty", true);
    taken.reserve("QType", true);
    if let Some(i) = q_empty {
        names[i] = Some("q_empty".to_string());
    }

    let mut walk = Walk {
        entries,
        index,
        names,
        queued: vec![false; entries.len()],
        queue: VecDeque::new(),
        taken,
    };
    for e in entries {
        let base = camel(&e.name);
        match &e.kind {
            RawKind::Command { arg, ret, .. } => {
                walk.use_type(arg, &format!("{base}Arg"));
                walk.use_type(ret, &format!("{base}Reply"));
            }
            RawKind::Event { arg } => walk.use_type(arg, &format!("{base}EventData")),
            _ => {}
        }
    }
    walk.drain();
    // Types no command or event reaches: QEMU lists those used only under conditions
    // its build left out. Named in the order of their content, not of their position,
    // so that their names too do not depend on how QEMU numbered or ordered them.
    let mut unreached: Vec<(String, usize)> = (0..entries.len())
        .filter(|&i| !walk.queued[i] && !matches!(entries[i].kind, RawKind::Array { .. }))
        .map(|i| (walk.content_key(i), i))
        .collect();
    unreached.sort();
    for (_, i) in unreached {
        if walk.queued[i] {
            continue;
        }
        if walk.names[i].is_none() {
            walk.names[i] = Some(walk.taken.unique("UnusedType"));
        }
        walk.queued[i] = true;
        walk.queue.push_back(i);
        walk.drain();
    }

    // Arrays last, so that elements are named first.
    let mut names = walk.names;
    let mut taken = walk.taken;
    for i in 0..entries.len() {
        array_name(entries, index, &mut names, &mut taken, i, 0);
    }
    names
        .into_iter()
        .zip(entries)
        .map(|(n, e)| n.unwrap_or_else(|| e.name.clone()))
        .collect()
}

/// Names array `i` (and its element arrays) `ElementList`.
fn array_name(
    entries: &[RawEntry],
    index: &HashMap<&str, usize>,
    names: &mut [Option<String>],
    taken: &mut Taken,
    i: usize,
    depth: usize,
) -> Option<String> {
    if let Some(n) = &names[i] {
        return Some(n.clone());
    }
    let RawKind::Array { element } = &entries[i].kind else {
        return None;
    };
    let &e = index.get(element.as_str())?;
    if depth > entries.len() {
        return None;
    }
    let element_name = array_name(entries, index, names, taken, e, depth + 1)?;
    let name = taken.unique(&format!("{element_name}List"));
    names[i] = Some(name.clone());
    Some(name)
}

/// The breadth-first walk over type uses.
struct Walk<'a> {
    entries: &'a [RawEntry],
    index: &'a HashMap<&'a str, usize>,
    names: Vec<Option<String>>,
    queued: Vec<bool>,
    queue: VecDeque<usize>,
    taken: Taken,
}

impl Walk<'_> {
    /// The entry a use of `name` denotes once arrays are looked through.
    fn target(&self, name: &str) -> Option<usize> {
        let mut i = *self.index.get(name)?;
        for _ in 0..=self.entries.len() {
            match &self.entries[i].kind {
                RawKind::Array { element } => i = *self.index.get(element.as_str())?,
                _ => return Some(i),
            }
        }
        None
    }

    /// A description of entry `i` that names the types it refers to when they are
    /// named already (`?` otherwise), for ordering unreached types.
    fn content_key(&self, i: usize) -> String {
        let r = |name: &str| {
            let depth = name.bytes().take_while(|&b| b == b'[').count();
            let named = self
                .target(name)
                .and_then(|t| self.names[t].clone())
                .unwrap_or_else(|| "?".into());
            format!("{named}{}", "[]".repeat(depth))
        };
        let e = &self.entries[i];
        let mut key = format!("{} {:?}", e.kind.meta_type(), e.features);
        match &e.kind {
            RawKind::Object { members, variants } => {
                for m in members {
                    key += &format!(" {}:{}:{}", m.name, r(&m.ty), m.default.is_some());
                }
                for (case, ty) in variants.iter().flat_map(|(_, v)| v) {
                    key += &format!(" {case}={}", r(ty));
                }
            }
            RawKind::Enum(members) => {
                for m in members {
                    key += &format!(" {}{:?}", m.name, m.features);
                }
            }
            RawKind::Alternate(members) => {
                for ty in members {
                    key += &format!(" {}", r(ty));
                }
            }
            _ => key += &format!(" {}", e.name),
        }
        key
    }

    /// A use of type `name` at a place called `candidate`.
    fn use_type(&mut self, name: &str, candidate: &str) {
        let Some(i) = self.target(name) else { return };
        if self.names[i].is_none() {
            self.names[i] = Some(self.taken.unique(candidate));
        }
        if !self.queued[i] {
            self.queued[i] = true;
            self.queue.push_back(i);
        }
    }

    fn drain(&mut self) {
        while let Some(i) = self.queue.pop_front() {
            let prefix = self.names[i].clone().unwrap_or_default();
            let entries = self.entries;
            match &entries[i].kind {
                RawKind::Object { members, variants } => {
                    for m in members {
                        self.use_type(&m.ty, &format!("{prefix}{}", camel(&m.name)));
                    }
                    if let Some((_, variants)) = variants {
                        for (case, ty) in variants {
                            self.use_type(ty, &format!("{prefix}{}", camel(case)));
                        }
                    }
                }
                RawKind::Alternate(members) => {
                    for ty in members {
                        let suffix = match self.index.get(ty.as_str()).map(|&j| &entries[j].kind) {
                            Some(RawKind::Array { .. }) => "Array",
                            Some(RawKind::Enum(_)) => "Enum",
                            Some(RawKind::Alternate(_)) => "Alternate",
                            _ => "Object",
                        };
                        self.use_type(ty, &format!("{prefix}{suffix}"));
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case_rules() {
        for (input, want) in [
            ("query-block-jobs", "QueryBlockJobs"),
            ("BLOCK_JOB_READY", "BlockJobReady"),
            ("x-origin", "XOrigin"),
            ("__com.redhat_foo", "ComRedhatFoo"),
            ("node-name", "NodeName"),
            ("x86_64", "X8664"),
            ("iothread", "Iothread"),
            ("VNC_CONNECTED", "VncConnected"),
            ("blockdevOptions", "BlockdevOptions"),
            ("", ""),
            ("--", ""),
        ] {
            assert_eq!(camel(input), want, "{input}");
        }
    }

    #[test]
    fn masked_names_are_numbers() {
        assert!(is_masked("0"));
        assert!(is_masked("123"));
        assert!(!is_masked(""));
        assert!(!is_masked("q_empty"));
        assert!(!is_masked("[12]"));
    }

    #[test]
    fn unique_names_skip_case_and_punctuation_clashes() {
        let mut t = Taken::default();
        t.reserve("query-foo", false);
        t.reserve("Foo-bar", true);
        assert_eq!(t.unique("QueryFoo"), "QueryFoo");
        assert_eq!(t.unique("FooBar"), "FooBar2");
        assert_eq!(t.unique("FooBar"), "FooBar3");
        assert_eq!(t.unique(""), "Type");
        assert_eq!(t.unique("-"), "Type2");
    }
}
