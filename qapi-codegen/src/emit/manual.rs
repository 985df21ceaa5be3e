//! Links into QEMU's reference manuals.
//!
//! Since QEMU 10.0 the manuals are built with a Sphinx domain for QAPI
//! (`docs/sphinx/qapi_domain.py`, fed by `docs/sphinx/qapidoc.py`), which gives every
//! documented definition an anchor. [`Manual::anchor`] computes it the way those two
//! files and Sphinx do:
//!
//! * `qapidoc.py` writes one directive per definition: `qapi:command`, `qapi:event`,
//!   `qapi:enum`, `qapi:alternate`, and `qapi:object` for structs and unions. The
//!   manual's `qapi-doc` directive sets the namespace (`QMP` for the system emulator,
//!   `QGA` for the guest agent, `QSD` for the storage daemon), and `qapidoc.py` opens a
//!   `qapi:module` section named after the file (without `.json`) at the first doc
//!   comment of each file (see [`crate::model::Entity::manual_module`]).
//! * `qapi_domain.py` names the definition `NAMESPACE:MODULE.NAME` and makes its id
//!   with Sphinx's `make_id(env, document, objtype, fullname)`, which is
//!   `_make_id(objtype + "-" + fullname)`: every run of characters other than ASCII
//!   letters, digits, `.` and `_` becomes one `-`, then leading `-`, digits, `.` and
//!   `_` and trailing `-` go, case is kept. So `block_resize` of `qapi/block-core.json`
//!   is `command-QMP-block-core.block_resize`.
//!
//! Sphinx numbers an id instead when the made one is already taken on the page; QAPI
//! names are unique within a schema and differ from the section ids docutils makes
//! (lower case, no dots), so that does not happen for QEMU's manuals.

use crate::model::{Entity, EntityKind};

/// Which of QEMU's reference manuals the generated docs link to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manual {
    /// The manual's page.
    pub url: String,
    /// The namespace of its anchors (`QMP`, `QGA`, `QSD`); empty for a manual built
    /// without one.
    pub namespace: String,
    /// What the docs call it in a link, e.g. `QEMU's QMP reference manual`.
    pub title: String,
}

impl Default for Manual {
    fn default() -> Self {
        Manual::qmp()
    }
}

impl Manual {
    /// The system emulator's: the QEMU QMP Reference Manual, namespace `QMP`.
    pub fn qmp() -> Self {
        Manual {
            url: "https://www.qemu.org/docs/master/interop/qemu-qmp-ref.html".to_owned(),
            namespace: "QMP".to_owned(),
            title: "QEMU's QMP reference manual".to_owned(),
        }
    }

    /// The guest agent's: the QEMU Guest Agent Protocol Reference, namespace `QGA`.
    pub fn guest_agent() -> Self {
        Manual {
            url: "https://www.qemu.org/docs/master/interop/qemu-ga-ref.html".to_owned(),
            namespace: "QGA".to_owned(),
            title: "QEMU's guest agent protocol reference".to_owned(),
        }
    }

    /// The storage daemon's: the QEMU Storage Daemon QMP Reference Manual, namespace
    /// `QSD`.
    pub fn storage_daemon() -> Self {
        Manual {
            url: "https://www.qemu.org/docs/master/interop/qemu-storage-daemon-qmp-ref.html"
                .to_owned(),
            namespace: "QSD".to_owned(),
            title: "QEMU's storage daemon QMP reference manual".to_owned(),
        }
    }

    /// The anchor of the entity's entry (`command-QMP-block-core.block_resize`), or
    /// `None` when it has none: no [`Entity::manual_module`], or not a command, event
    /// or named type.
    pub fn anchor(&self, e: &Entity) -> Option<String> {
        let module = e.manual_module.as_deref()?;
        let objtype = match &e.kind {
            EntityKind::Command(_) => "command",
            EntityKind::Event(_) => "event",
            EntityKind::Enum(_) => "enum",
            EntityKind::Object(_) => "object",
            EntityKind::Alternate(_) => "alternate",
            EntityKind::Builtin(_) | EntityKind::Array(_) => return None,
        };
        let mut fullname = String::new();
        if !self.namespace.is_empty() {
            fullname.push_str(&self.namespace);
            fullname.push(':');
        }
        if !module.is_empty() {
            fullname.push_str(module);
            fullname.push('.');
        }
        fullname.push_str(&e.name);
        let id = sphinx_id(&format!("{objtype}-{fullname}"));
        (id != objtype).then_some(id)
    }

    /// The address of the entity's entry: [`Manual::url`] with [`Manual::anchor`].
    pub fn entry_url(&self, e: &Entity) -> Option<String> {
        self.anchor(e).map(|a| format!("{}#{a}", self.url))
    }
}

/// Sphinx's `sphinx.util.nodes._make_id` for ASCII text (QAPI names are ASCII; other
/// characters are dropped, where Sphinx would first transliterate some).
fn sphinx_id(s: &str) -> String {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '_';
    let mut id = String::with_capacity(s.len());
    let mut gap = false;
    for c in s.chars().filter(char::is_ascii) {
        if ok(c) {
            if gap {
                id.push('-');
                gap = false;
            }
            id.push(c);
        } else {
            gap = true;
        }
    }
    // A gap at the end would be a trailing `-`, which Sphinx strips.
    let start = id
        .find(|c: char| !(c == '-' || c == '.' || c == '_' || c.is_ascii_digit()))
        .unwrap_or(id.len());
    id.split_off(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_like_sphinx() {
        assert_eq!(
            sphinx_id("command-QMP:block-core.block_resize"),
            "command-QMP-block-core.block_resize"
        );
        assert_eq!(
            sphinx_id("object-QGA:qapi-schema.GuestAgentInfo"),
            "object-QGA-qapi-schema.GuestAgentInfo"
        );
        assert_eq!(sphinx_id("a--b  c:-"), "a-b-c");
        assert_eq!(sphinx_id("-0._x"), "x");
        assert_eq!(sphinx_id("__org.qemu_x-y"), "org.qemu_x-y");
    }
}
