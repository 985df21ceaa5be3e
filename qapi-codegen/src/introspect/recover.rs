//! Recovering the names QEMU's sources give the types of a `query-qmp-schema` model,
//! from named reference schemas (see [`recover_names`] and the
//! [module docs](super#names-from-reference-schemas)).

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use super::names::Taken;
use crate::model::{Builtin, Entity, EntityId, EntityKind, Origin, Schema};

/// What [`recover_names`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Capture types that now carry a reference's name (implicit ones such as
    /// `q_obj_query-foo-arg` included).
    pub recovered: usize,
    /// For each reference, how many of its named (not implicit) types are found in the
    /// capture: reachable from a command or event of the same name along the same path.
    pub present: Vec<usize>,
    /// The types of [`Recovery::present`] whose name no capture type at their place
    /// got, in reference order, then by name.
    pub missed: Vec<Missed>,
}

/// A named type of a reference found in the capture but not given its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missed {
    /// Index of the reference in the slice given to [`recover_names`].
    pub reference: usize,
    /// The reference's name of the type.
    pub name: String,
    /// The name the capture type at its first place got instead.
    pub capture_name: String,
}

/// How well two types' shapes agree: `common` items of `total` (the union of both
/// sides' member, value, branch or alternative names, less the reference's conditional
/// items the capture lacks, since its build may have left them out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Score {
    common: u32,
    total: u32,
}

impl Score {
    /// At least half the items agree, and at least one does (unless both are empty).
    fn accepted(self) -> bool {
        2 * self.common >= self.total && (self.common > 0 || self.total == 0)
    }

    fn ratio_cmp(self, other: Score) -> Ordering {
        // common/total vs other.common/other.total; an empty pair counts as 1.
        let (a, b) = (self.norm(), other.norm());
        (u64::from(a.0) * u64::from(b.1)).cmp(&(u64::from(b.0) * u64::from(a.1)))
    }

    fn norm(self) -> (u32, u32) {
        if self.total == 0 {
            (1, 1)
        } else {
            (self.common, self.total)
        }
    }
}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.ratio_cmp(*other)
            .then(self.common.cmp(&other.common))
            .then(other.total.cmp(&self.total))
    }
}

/// One reference type found at a place of a capture type.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    score: Score,
    /// How many places pair the two.
    votes: u32,
    /// When the pair was first seen (walk order), for a stable last tie-break.
    first: usize,
}

/// Gives the types of `capture`, a model read from `query-qmp-schema`, the names the
/// `references` (models read from QAPI sources or snapshots) give the types at the
/// same places, where the shapes agree.
///
/// `references` are in order of preference: pass the newest release first; on a tie
/// of shape agreement the earlier reference's name wins. A model that is not from
/// introspection, or has no masked names, is left as it is.
///
/// Types are paired along uses: a command's (event's) arguments (data) and reply with
/// those of the command (event) of the same name in each reference, then members by
/// name, union branches by tag value, array elements, and alternate alternatives by
/// JSON kind. A pair counts when both are the same kind of type and at least half of
/// their member / value / branch / alternative names agree (the reference's
/// conditional items that the capture lacks are left out of that count); only then are
/// the types they use paired in turn. Each capture type takes the name of its best
/// pair (shape agreement, then reference order, then number of places, then walk
/// order), unless an earlier-decided type has it already or it would collide with
/// another name after folding (case and punctuation), in which case its next pair is
/// tried. Implicit reference types (`q_obj_…-arg`) make the capture type implicit too,
/// so the emitter treats it as it treats the sources' type. Types no pair names keep
/// their derived names (a derived name that now collides takes the next free
/// `Name2`, …), arrays are renamed after their elements (`ElementList`), and the
/// alternatives of a renamed alternate take the reference's alternative names.
/// [`Origin::Introspection`]'s masked-name mapping follows the new names.
pub fn recover_names(capture: &mut Schema, references: &[&Schema]) -> Recovery {
    let Origin::Introspection { masked_names } = &capture.origin else {
        return Recovery::default();
    };
    let masked: HashSet<&str> = masked_names
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| *n != "q_empty")
        .collect();
    if masked.is_empty() || references.is_empty() {
        return Recovery::default();
    }
    let renamable: Vec<bool> = capture
        .entities
        .iter()
        .map(|e| masked.contains(e.name.as_str()) && is_named_kind(&e.kind))
        .collect();

    let candidates = pair_up(capture, references, &renamable);
    let choice = choose(capture, references, &renamable, &candidates);
    let finals = final_names(capture, &renamable, &choice, references);
    let recovery = report(references, &candidates, &finals, &choice);
    apply(capture, references, &choice, &finals);
    recovery
}

fn is_named_kind(kind: &EntityKind) -> bool {
    matches!(
        kind,
        EntityKind::Enum(_) | EntityKind::Object(_) | EntityKind::Alternate(_)
    )
}

type Pairs = BTreeMap<EntityId, BTreeMap<(usize, EntityId), Candidate>>;

/// Walks the capture and every reference side by side from the commands and events,
/// collecting for each renamable capture type the reference types found at its places.
fn pair_up(capture: &Schema, references: &[&Schema], renamable: &[bool]) -> Pairs {
    let mut walk = PairWalk {
        capture,
        references,
        renamable,
        pairs: BTreeMap::new(),
        seen: HashSet::new(),
        queue: VecDeque::new(),
        next: 0,
    };
    for e in &capture.entities {
        for (k, r) in references.iter().enumerate() {
            let Some(re) = r.lookup(&e.name) else {
                continue;
            };
            match (&e.kind, &re.kind) {
                (EntityKind::Command(c), EntityKind::Command(rc)) => {
                    walk.pair_opt(c.arg_type, k, rc.arg_type);
                    walk.pair_opt(c.ret_type, k, rc.ret_type);
                }
                (EntityKind::Event(c), EntityKind::Event(rc)) => {
                    walk.pair_opt(c.arg_type, k, rc.arg_type);
                }
                _ => {}
            }
        }
        walk.drain();
    }
    walk.pairs
}

struct PairWalk<'a> {
    capture: &'a Schema,
    references: &'a [&'a Schema],
    renamable: &'a [bool],
    pairs: Pairs,
    seen: HashSet<(EntityId, usize, EntityId)>,
    queue: VecDeque<(EntityId, usize, EntityId)>,
    next: usize,
}

impl PairWalk<'_> {
    fn pair_opt(&mut self, c: Option<EntityId>, k: usize, r: Option<EntityId>) {
        if let (Some(c), Some(r)) = (c, r) {
            self.pair(c, k, r);
        }
    }

    /// Capture type `c` and type `r` of reference `k` are found at the same place.
    fn pair(&mut self, c: EntityId, k: usize, r: EntityId) {
        let reference = self.references[k];
        let (c, cd) = strip_arrays(self.capture, c);
        let (r, rd) = strip_arrays(reference, r);
        if cd != rd || !self.renamable[c.0 as usize] {
            return;
        }
        let re = reference.entity(r);
        if !is_named_kind(&re.kind) || (re.implicit && (re.name == "q_empty" || re.name == "QType"))
        {
            return;
        }
        let Some(score) = shape(self.capture, self.capture.entity(c), reference, re) else {
            return;
        };
        if !score.accepted() {
            return;
        }
        let first = self.next;
        self.next += 1;
        self.pairs
            .entry(c)
            .or_default()
            .entry((k, r))
            .and_modify(|cand| cand.votes += 1)
            .or_insert(Candidate {
                score,
                votes: 1,
                first,
            });
        if self.seen.insert((c, k, r)) {
            self.queue.push_back((c, k, r));
        }
    }

    /// Pairs what accepted pairs use, breadth first.
    fn drain(&mut self) {
        while let Some((c, k, r)) = self.queue.pop_front() {
            let reference = self.references[k];
            let capture = self.capture;
            match (&capture.entity(c).kind, &reference.entity(r).kind) {
                (EntityKind::Object(co), EntityKind::Object(ro)) => {
                    for m in &co.members {
                        if let Some(rm) = ro.members.iter().find(|rm| rm.name == m.name) {
                            self.pair(m.ty, k, rm.ty);
                        }
                    }
                    if let (Some(cb), Some(rb)) = (&co.branches, &ro.branches) {
                        for v in &cb.variants {
                            if let Some(rv) = rb.variants.iter().find(|rv| rv.name == v.name) {
                                self.pair(v.ty, k, rv.ty);
                            }
                        }
                    }
                }
                (EntityKind::Alternate(ca), EntityKind::Alternate(ra)) => {
                    for v in &ca.alternatives.variants {
                        let class = json_class(capture, v.ty);
                        if let Some(rv) = ra
                            .alternatives
                            .variants
                            .iter()
                            .find(|rv| json_class(reference, rv.ty) == class)
                        {
                            self.pair(v.ty, k, rv.ty);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// The type an array chain ends in, and how many arrays deep it is.
fn strip_arrays(schema: &Schema, mut id: EntityId) -> (EntityId, usize) {
    let mut depth = 0;
    while let EntityKind::Array(a) = &schema.entity(id).kind {
        if depth > schema.entities.len() {
            break;
        }
        id = a.element;
        depth += 1;
    }
    (id, depth)
}

/// The JSON kind an alternative is told apart by.
fn json_class(schema: &Schema, id: EntityId) -> &'static str {
    match &schema.entity(id).kind {
        EntityKind::Builtin(b) => Builtin::ALL
            .iter()
            .find(|(x, _, _)| x == b)
            .map_or("value", |(_, _, json)| json),
        EntityKind::Enum(_) => "string",
        EntityKind::Array(_) => "array",
        EntityKind::Object(_) => "object",
        EntityKind::Alternate(_) => "alternate",
        EntityKind::Command(_) | EntityKind::Event(_) => "",
    }
}

/// The items compared for shape agreement, each with whether the reference has it
/// only under a condition.
fn items(schema: &Schema, e: &Entity) -> Vec<(String, bool)> {
    match &e.kind {
        EntityKind::Enum(en) => en
            .members
            .iter()
            .map(|v| (format!("value {}", v.name), v.ifcond.is_some()))
            .collect(),
        EntityKind::Object(o) => {
            let mut out: Vec<(String, bool)> = o
                .members
                .iter()
                .map(|m| (format!("member {}", m.name), m.ifcond.is_some()))
                .collect();
            if let Some(b) = &o.branches {
                out.push((format!("tag {}", b.tag_member.name), false));
                out.extend(
                    b.variants
                        .iter()
                        .map(|v| (format!("branch {}", v.name), v.ifcond.is_some())),
                );
            }
            out
        }
        EntityKind::Alternate(a) => a
            .alternatives
            .variants
            .iter()
            .map(|v| {
                (
                    format!("alternative {}", json_class(schema, v.ty)),
                    v.ifcond.is_some(),
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Shape agreement of capture type `c` and reference type `r`, `None` when they are not
/// the same kind of type.
fn shape(capture: &Schema, c: &Entity, reference: &Schema, r: &Entity) -> Option<Score> {
    let same_kind = matches!(
        (&c.kind, &r.kind),
        (EntityKind::Enum(_), EntityKind::Enum(_))
            | (EntityKind::Object(_), EntityKind::Object(_))
            | (EntityKind::Alternate(_), EntityKind::Alternate(_))
    );
    if !same_kind {
        return None;
    }
    let ours: HashSet<String> = items(capture, c).into_iter().map(|(i, _)| i).collect();
    Some(agreement(&ours, &items(reference, r)))
}

fn agreement(ours: &HashSet<String>, theirs: &[(String, bool)]) -> Score {
    let mut common = 0u32;
    let mut only_theirs = 0u32;
    let mut seen = HashSet::new();
    for (item, conditional) in theirs {
        if !seen.insert(item) {
            continue;
        }
        if ours.contains(item) {
            common += 1;
        } else if !conditional {
            only_theirs += 1;
        }
    }
    let total = ours.len() as u32 + only_theirs;
    Score { common, total }
}

/// The reference type each capture type is named after: best pairs first, each name
/// given once.
fn choose(
    capture: &Schema,
    references: &[&Schema],
    renamable: &[bool],
    pairs: &Pairs,
) -> BTreeMap<EntityId, (usize, EntityId)> {
    let mut all: Vec<(Score, usize, u32, usize, EntityId, EntityId)> = Vec::new();
    for (&c, cands) in pairs {
        for (&(k, r), cand) in cands {
            all.push((cand.score, k, cand.votes, cand.first, c, r));
        }
    }
    all.sort_by_key(|&(score, k, votes, first, c, r)| {
        (Reverse(score), k, Reverse(votes), first, c, r)
    });
    let mut taken = Taken::default();
    reserve_fixed(capture, renamable, &mut taken);
    let mut choice = BTreeMap::new();
    for (_, k, _, _, c, r) in all {
        if choice.contains_key(&c) {
            continue;
        }
        let name = &references[k].entity(r).name;
        if taken.is_free(name) {
            taken.reserve(name, true);
            choice.insert(c, (k, r));
        }
    }
    choice
}

/// Reserves the names that do not change: commands, events, builtins and the types
/// whose names were not masked, and the source reader's implicit names.
fn reserve_fixed(capture: &Schema, renamable: &[bool], taken: &mut Taken) {
    for (i, e) in capture.entities.iter().enumerate() {
        if renamable[i] || matches!(e.kind, EntityKind::Array(_)) {
            continue;
        }
        let is_type = !matches!(e.kind, EntityKind::Command(_) | EntityKind::Event(_));
        taken.reserve(&e.name, is_type);
    }
    taken.reserve("q_empty", true);
    taken.reserve("QType", true);
}

/// The final name of every entity.
fn final_names(
    capture: &Schema,
    renamable: &[bool],
    choice: &BTreeMap<EntityId, (usize, EntityId)>,
    references: &[&Schema],
) -> Vec<String> {
    let mut taken = Taken::default();
    reserve_fixed(capture, renamable, &mut taken);
    let mut names: Vec<Option<String>> = vec![None; capture.entities.len()];
    for (&c, &(k, r)) in choice {
        let name = references[k].entity(r).name.clone();
        taken.reserve(&name, true);
        names[c.0 as usize] = Some(name);
    }
    // Derived names stay where they are free, then the others take the next free one.
    let mut clashing = Vec::new();
    for (i, e) in capture.entities.iter().enumerate() {
        if renamable[i] && names[i].is_none() {
            if taken.is_free(&e.name) {
                taken.reserve(&e.name, true);
                names[i] = Some(e.name.clone());
            } else {
                clashing.push(i);
            }
        }
    }
    for i in clashing {
        names[i] = Some(taken.unique(&capture.entities[i].name));
    }
    // Arrays after their elements, shallowest first.
    let mut arrays: Vec<(usize, usize)> = capture
        .entities
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e.kind, EntityKind::Array(_)))
        .map(|(i, _)| (strip_arrays(capture, EntityId(i as u32)).1, i))
        .collect();
    arrays.sort();
    for (_, i) in arrays {
        let EntityKind::Array(a) = &capture.entities[i].kind else {
            continue;
        };
        let el = a.element.0 as usize;
        let old_element = &capture.entities[el].name;
        let element = names[el].clone().unwrap_or_else(|| old_element.clone());
        let current = &capture.entities[i].name;
        names[i] = Some(if &element == old_element && taken.is_free(current) {
            taken.reserve(current, true);
            current.clone()
        } else {
            taken.unique(&format!("{element}List"))
        });
    }
    names
        .into_iter()
        .zip(&capture.entities)
        .map(|(n, e)| n.unwrap_or_else(|| e.name.clone()))
        .collect()
}

fn report(
    references: &[&Schema],
    pairs: &Pairs,
    finals: &[String],
    choice: &BTreeMap<EntityId, (usize, EntityId)>,
) -> Recovery {
    // Reference (index, name) → the capture types found at its places, in walk order.
    let mut present: BTreeMap<(usize, &str), Vec<(usize, EntityId)>> = BTreeMap::new();
    for (&c, cands) in pairs {
        for (&(k, r), cand) in cands {
            let re = references[k].entity(r);
            if !re.implicit {
                present
                    .entry((k, re.name.as_str()))
                    .or_default()
                    .push((cand.first, c));
            }
        }
    }
    let mut missed = Vec::new();
    for ((k, name), mut at) in present.iter().map(|(k, v)| (*k, v.clone())) {
        at.sort();
        if at.iter().any(|&(_, c)| finals[c.0 as usize] == name) {
            continue;
        }
        missed.push(Missed {
            reference: k,
            name: name.to_string(),
            capture_name: finals[at[0].1 .0 as usize].clone(),
        });
    }
    let mut counts = vec![0; references.len()];
    for &(k, _) in present.keys() {
        counts[k] += 1;
    }
    Recovery {
        recovered: choice.len(),
        present: counts,
        missed,
    }
}

/// Writes the new names into the model.
fn apply(
    capture: &mut Schema,
    references: &[&Schema],
    choice: &BTreeMap<EntityId, (usize, EntityId)>,
    finals: &[String],
) {
    let renamed: HashMap<String, String> = capture
        .entities
        .iter()
        .zip(finals)
        .filter(|(e, n)| &e.name != *n)
        .map(|(e, n)| (e.name.clone(), n.clone()))
        .collect();
    // Alternatives' names: the reference's for a recovered alternate, else the name of
    // the alternative's type (the reader's rule).
    let mut alternative_names: HashMap<usize, Vec<String>> = HashMap::new();
    for (i, e) in capture.entities.iter().enumerate() {
        let EntityKind::Alternate(a) = &e.kind else {
            continue;
        };
        let from_ref = choice.get(&EntityId(i as u32)).and_then(|&(k, r)| {
            match &references[k].entity(r).kind {
                EntityKind::Alternate(ra) => Some((references[k], ra)),
                _ => None,
            }
        });
        let names = a
            .alternatives
            .variants
            .iter()
            .map(|v| {
                let class = json_class(capture, v.ty);
                from_ref
                    .and_then(|(reference, ra)| {
                        ra.alternatives
                            .variants
                            .iter()
                            .find(|rv| json_class(reference, rv.ty) == class)
                            .map(|rv| rv.name.clone())
                    })
                    .unwrap_or_else(|| finals[v.ty.0 as usize].clone())
            })
            .collect();
        alternative_names.insert(i, names);
    }
    let map = |s: &mut String| {
        if let Some(n) = renamed.get(s.as_str()) {
            *s = n.clone();
        }
    };
    for (i, e) in capture.entities.iter_mut().enumerate() {
        e.name = finals[i].clone();
        if let Some(&(k, r)) = choice.get(&EntityId(i as u32)) {
            if references[k].entity(r).implicit {
                e.implicit = true;
            }
        }
        match &mut e.kind {
            EntityKind::Object(o) => {
                for m in o.members.iter_mut().chain(o.local_members.iter_mut()) {
                    map(&mut m.defined_in);
                }
                if let Some(b) = &mut o.branches {
                    map(&mut b.tag_member.defined_in);
                }
            }
            EntityKind::Alternate(a) => {
                map(&mut a.alternatives.tag_member.defined_in);
                if let Some(names) = alternative_names.remove(&i) {
                    for (v, n) in a.alternatives.variants.iter_mut().zip(names) {
                        v.name = n;
                    }
                }
            }
            _ => {}
        }
    }
    copy_command_flags(capture, references);
    capture.by_name = capture
        .entities
        .iter()
        .enumerate()
        .map(|(n, e)| (e.name.clone(), EntityId(n as u32)))
        .collect();
    if let Origin::Introspection { masked_names } = &mut capture.origin {
        for (name, _) in masked_names.iter_mut() {
            map(name);
        }
    }
}

/// Takes what introspection does not say about a command or event (`boxed`, and a
/// command's `gen`, `success-response`, `allow-preconfig` and `coroutine`) from the
/// first reference that has it with the same argument and reply types, now that they
/// have the reference's names: a command the sources box takes its argument type
/// whole (`AnnounceSelf::new(AnnounceParameters)`), as in bindings built from them.
fn copy_command_flags(capture: &mut Schema, references: &[&Schema]) {
    let type_name = |s: &Schema, id: Option<EntityId>| id.map(|id| s.entity(id).name.clone());
    let mut updates = Vec::new();
    for (i, e) in capture.entities.iter().enumerate() {
        for reference in references {
            let Some(re) = reference.lookup(&e.name) else {
                continue;
            };
            let same = match (&e.kind, &re.kind) {
                (EntityKind::Command(c), EntityKind::Command(rc)) => {
                    type_name(capture, c.arg_type) == type_name(reference, rc.arg_type)
                        && type_name(capture, c.ret_type) == type_name(reference, rc.ret_type)
                }
                (EntityKind::Event(c), EntityKind::Event(rc)) => {
                    type_name(capture, c.arg_type) == type_name(reference, rc.arg_type)
                }
                _ => false,
            };
            if same {
                updates.push((i, re.kind.clone()));
            }
            break;
        }
    }
    for (i, kind) in updates {
        match (&mut capture.entities[i].kind, kind) {
            (EntityKind::Command(c), EntityKind::Command(rc)) => {
                c.boxed = rc.boxed;
                c.gen = rc.gen;
                c.success_response = rc.success_response;
                c.allow_preconfig = rc.allow_preconfig;
                c.coroutine = rc.coroutine;
            }
            (EntityKind::Event(ev), EntityKind::Event(rev)) => ev.boxed = rev.boxed,
            _ => {}
        }
    }
}
