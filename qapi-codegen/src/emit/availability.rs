//! Availability of bindings built from several releases' schemas (a union model, see
//! [`crate::union`]): rendered once into the docs ([`notes`]) and once into the
//! run-time table ([`emit`], the generated `availability` module), both from
//! [`crate::model::Availability`]. A model read from one schema has none, and nothing
//! here adds to its bindings.

use proc_macro2::TokenStream;
use quote::quote;

use super::Ctx;
use crate::model::{Availability, EntityId, EntityKind, Part, Presence, Releases, Schema};

/// The doc lines on where part `part` of entity `id` is, for bindings of several
/// releases: which of them have it (always said of a whole command, event or type;
/// of a member, value, branch or alternative only when not every release has it),
/// where a member is required, and which release sends which type where they differ.
/// Nothing for bindings of one release.
pub(crate) fn notes(schema: &Schema, id: Option<EntityId>, part: &Part) -> Vec<String> {
    let (Some(av), Some(id)) = (&schema.availability, id) else {
        return Vec::new();
    };
    let Some(p) = av.get(id, part) else {
        return Vec::new();
    };
    presence_lines(av, p, matches!(part, Part::Whole))
}

fn presence_lines(av: &Availability, p: &Presence, whole: bool) -> Vec<String> {
    let all = av.all();
    let listed = join(&av.names(all));
    let mut lines = Vec::new();
    let n = av.releases().len();
    if p.releases == all {
        if whole {
            lines.push(format!("In QEMU {listed} (every listed release)."));
        }
    } else {
        let idx: Vec<usize> = p.releases.indices().collect();
        let names = join(&av.names(p.releases));
        let contiguous = idx.windows(2).all(|w| w[1] == w[0] + 1);
        let first = idx.first().copied().unwrap_or(0);
        let last = idx.last().copied().unwrap_or(0);
        let text = if idx.len() == 1 {
            format!("Only in QEMU {names} of the listed releases ({listed}).")
        } else if contiguous && last + 1 == n {
            format!(
                "Since QEMU {} of the listed releases ({listed}).",
                av.names(Releases::one(first)).join("")
            )
        } else if contiguous && first == 0 {
            format!(
                "Until QEMU {} of the listed releases ({listed}).",
                av.names(Releases::one(last)).join("")
            )
        } else {
            format!("In QEMU {names} of the listed releases ({listed}).")
        };
        lines.push(String::new());
        lines.push(text);
    }
    if !whole && !p.required.is_empty() && p.required != p.releases {
        let optional = !p.required & p.releases;
        lines.push(String::new());
        lines.push(format!(
            "Required in QEMU {}; optional in QEMU {}.",
            join(&av.names(p.required)),
            join(&av.names(optional))
        ));
    }
    if !p.types.is_empty() {
        let each: Vec<String> = p
            .types
            .iter()
            .map(|(r, t)| format!("`{t}` in QEMU {}", join(&av.names(*r))))
            .collect();
        lines.push(String::new());
        lines.push(format!(
            "Its type differs between releases: {}.",
            each.join(", ")
        ));
    }
    if whole && !lines.is_empty() && !lines[0].is_empty() {
        lines.insert(0, String::new());
    }
    lines
}

/// `a`, `a and b`, `a, b and c`.
fn join(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The generated `availability` module (bindings of several releases only): the
/// releases, and a table from each command, event and named type, and each member,
/// enum value, branch and alternative of them, to the releases that have it, read
/// through `qmp::runtime::Availability`.
pub(crate) fn emit(ctx: &Ctx) -> TokenStream {
    let schema = ctx.schema;
    let Some(av) = &schema.availability else {
        return TokenStream::new();
    };
    let mut sets: Vec<Releases> = Vec::new();
    let mut items: Vec<(String, usize)> = Vec::new();
    let mut set_index = |r: Releases| match sets.iter().position(|s| *s == r) {
        Some(i) => i,
        None => {
            sets.push(r);
            sets.len() - 1
        }
    };
    for (k, e) in schema.entities.iter().enumerate() {
        let id = EntityId(k as u32);
        let named = match &e.kind {
            EntityKind::Command(_) | EntityKind::Event(_) => true,
            EntityKind::Enum(_) | EntityKind::Object(_) | EntityKind::Alternate(_) => !e.implicit,
            _ => false,
        };
        if !named {
            continue;
        }
        let Some(whole) = av.get(id, &Part::Whole).map(|p| p.releases) else {
            continue;
        };
        items.push((e.name.clone(), set_index(whole)));
        // A command's arguments and an event's data are its members, and its reply's
        // members are `reply member`s: each only in the releases that have the
        // command or event (a type outlives a command that no longer uses it).
        let (holder, reply) = match &e.kind {
            EntityKind::Command(c) => (c.arg_type, c.ret_type.map(|t| element(schema, t))),
            EntityKind::Event(ev) => (ev.arg_type, None),
            _ => (Some(id), None),
        };
        let mut add = |holder: EntityId, prefix: &str, only_members: bool| {
            for (part, p) in av.parts(holder) {
                let key = match part {
                    Part::Member(m) => format!("{} {prefix}member {m}", e.name),
                    _ if only_members => continue,
                    Part::Value(v) => format!("{} value {v}", e.name),
                    Part::Branch(b) => format!("{} branch {b}", e.name),
                    Part::Alternative(a) => format!("{} alternative {a}", e.name),
                    Part::Whole => continue,
                };
                items.push((key, set_index(p.releases & whole)));
            }
        };
        if let Some(h) = holder {
            add(h, "", holder != Some(id));
        }
        if let Some(r) = reply {
            add(r, "reply ", true);
        }
    }
    items.sort();
    items.dedup_by(|a, b| a.0 == b.0);
    let releases: Vec<&str> = av.releases().iter().map(String::as_str).collect();
    let set_tokens = sets.iter().map(|s| {
        let names = av.names(*s);
        quote!(&[#(#names),*],)
    });
    let item_tokens = items.iter().map(|(k, i)| {
        let i = *i as u16;
        quote!((#k, #i),)
    });
    let list = join(&releases);
    let doc = format!(
        " Which of the releases these bindings were built for ({list}) have each \
         command, event, type, member, enum value, branch and alternative."
    );
    quote! {
        #[doc = #doc]
        ///
        /// Ask [`TABLE`]: `TABLE.lookup("query-status", "singlestep")` is the releases
        /// whose `query-status` has an argument or reply member `singlestep`.
        pub mod availability {
            /// The releases these bindings were built for, oldest first.
            pub const RELEASES: &[&str] = &[#(#releases),*];
            /// Which releases have each item (see `qmp::runtime::Availability`).
            pub const TABLE: ::qmp::runtime::Availability = ::qmp::runtime::Availability {
                releases: RELEASES,
                sets: &[#(#set_tokens)*],
                items: &[#(#item_tokens)*],
            };
        }
    }
}

/// The element type of (nested) arrays, or `id` itself.
fn element(schema: &Schema, mut id: EntityId) -> EntityId {
    for _ in 0..16 {
        match &schema.entity(id).kind {
            EntityKind::Array(a) => id = a.element,
            _ => break,
        }
    }
    id
}
