//! Which members must be boxed: a type that contains itself by value (directly or
//! through other types) has no finite size. `Vec` already breaks a cycle, so only
//! by-value edges count (members, union branches, alternatives). Every by-value edge
//! inside a strongly connected component is boxed, and no other.
//!
//! Seen from a union, that is one rule, which each union's docs repeat: a branch is
//! boxed (`Box<T>`) exactly when its type contains the union again; the union's
//! `From<T>` conversions do the boxing, so users never write `Box::new`.

use std::collections::{HashMap, HashSet};

use crate::model::{EntityId, EntityKind, Schema};

/// The by-value edges `(container, contained)` that close a cycle.
pub(crate) fn boxed_edges(schema: &Schema, emitted: &[EntityId]) -> HashSet<(EntityId, EntityId)> {
    let edges: HashMap<EntityId, Vec<EntityId>> = emitted
        .iter()
        .map(|&id| (id, by_value(schema, id)))
        .collect();
    let scc = tarjan(emitted, &edges);
    let mut out = HashSet::new();
    for (&from, tos) in &edges {
        for &to in tos {
            if scc.get(&from).is_some_and(|c| scc.get(&to) == Some(c)) {
                out.insert((from, to));
            }
        }
    }
    out
}

/// The object and alternate types `id` holds by value.
fn by_value(schema: &Schema, id: EntityId) -> Vec<EntityId> {
    let targets: Vec<EntityId> = match &schema.entity(id).kind {
        EntityKind::Object(o) => o
            .members
            .iter()
            .map(|m| m.ty)
            .chain(
                o.branches
                    .iter()
                    .flat_map(|b| b.variants.iter().map(|v| v.ty)),
            )
            .collect(),
        EntityKind::Alternate(a) => a.alternatives.variants.iter().map(|v| v.ty).collect(),
        _ => Vec::new(),
    };
    targets
        .into_iter()
        .filter(|&t| {
            matches!(
                schema.entity(t).kind,
                EntityKind::Object(_) | EntityKind::Alternate(_)
            )
        })
        .collect()
}

/// Strongly connected components (Tarjan, iterative): node → component number.
fn tarjan(
    nodes: &[EntityId],
    edges: &HashMap<EntityId, Vec<EntityId>>,
) -> HashMap<EntityId, usize> {
    let mut index: HashMap<EntityId, usize> = HashMap::new();
    let mut low: HashMap<EntityId, usize> = HashMap::new();
    let mut on_stack: HashSet<EntityId> = HashSet::new();
    let mut stack: Vec<EntityId> = Vec::new();
    let mut comp: HashMap<EntityId, usize> = HashMap::new();
    let mut next = 0;
    let mut ncomp = 0;
    let empty = Vec::new();
    for &root in nodes {
        if index.contains_key(&root) {
            continue;
        }
        // (node, next edge to look at)
        let mut work: Vec<(EntityId, usize)> = vec![(root, 0)];
        index.insert(root, next);
        low.insert(root, next);
        next += 1;
        stack.push(root);
        on_stack.insert(root);
        while let Some(&mut (v, ref mut ei)) = work.last_mut() {
            let succ = edges.get(&v).unwrap_or(&empty);
            if *ei < succ.len() {
                let w = succ[*ei];
                *ei += 1;
                if let std::collections::hash_map::Entry::Vacant(slot) = index.entry(w) {
                    slot.insert(next);
                    low.insert(w, next);
                    next += 1;
                    stack.push(w);
                    on_stack.insert(w);
                    work.push((w, 0));
                } else if on_stack.contains(&w) {
                    let lw = index[&w];
                    let lv = low.get_mut(&v).expect("visited");
                    *lv = (*lv).min(lw);
                }
            } else {
                work.pop();
                if let Some(&(parent, _)) = work.last() {
                    let lv = low[&v];
                    let lp = low.get_mut(&parent).expect("visited");
                    *lp = (*lp).min(lv);
                }
                if low[&v] == index[&v] {
                    while let Some(w) = stack.pop() {
                        on_stack.remove(&w);
                        comp.insert(w, ncomp);
                        if w == v {
                            break;
                        }
                    }
                    ncomp += 1;
                }
            }
        }
    }
    comp
}
