//! QAPI names → Rust identifiers. Every rule lives here, with a test per rule.
//!
//! * Types, commands, events, enum values, branches and alternatives become
//!   `UpperCamelCase` (`query-status` → `QueryStatus`, `BLOCK_JOB_COMPLETED` →
//!   `BlockJobCompleted`, `q_obj_Foo-arg` → `QObjFooArg`, `x86_64` → `X86_64`);
//!   members become `snake_case` (`node-name` → `node_name`, `CPU` → `cpu`).
//! * A name that starts with a digit gets a leading `_` (`1080p` → `_1080p`).
//! * Keywords become raw identifiers (`type` → `r#type`), except those that cannot be
//!   raw (`self`, `Self`, `super`, `crate`, `_`), which get a trailing `_`.
//! * Names that collide once converted (`a-b` and `a_b`, or a generated name such as
//!   the `Unknown` catch-all) are told apart by [`Namer`] with trailing `_`s, in
//!   definition order, so the result is stable.
//!
//! The exact wire name is always kept next to the identifier (a `serde` rename or a
//! string in a `match`), so conversion never changes what goes on the wire.

use std::collections::BTreeSet;

/// Keywords that can be used as raw identifiers (`r#type`).
const RAW_KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "dyn", "else", "enum", "extern", "false",
    "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref",
    "return", "static", "struct", "trait", "true", "type", "unsafe", "use", "where", "while",
    "abstract", "become", "box", "do", "final", "gen", "macro", "override", "priv", "try",
    "typeof", "unsized", "virtual", "yield",
];

/// Keywords that cannot be raw identifiers.
const NON_RAW_KEYWORDS: &[&str] = &["self", "Self", "super", "crate", "_"];

/// Splits a QAPI name into words at `-`, `_`, `.` and other non-alphanumerics.
fn words(name: &str) -> impl Iterator<Item = &str> {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// `UpperCamelCase` for a QAPI name. A word that is all upper case and longer than one
/// letter (`BLOCK`, from an event name) is title-cased; other words keep their inner
/// case (`X86CPURegister32`, `QCryptoBlockFormat` stay as they are). Two words that
/// meet digit to digit keep an `_` between them (`x86_64` → `X86_64`).
pub fn camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for w in words(name) {
        if out.ends_with(|c: char| c.is_ascii_digit())
            && w.starts_with(|c: char| c.is_ascii_digit())
        {
            out.push('_');
        }
        let all_upper =
            w.chars().any(|c| c.is_ascii_uppercase()) && !w.chars().any(|c| c.is_ascii_lowercase());
        let mut chars = w.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            if all_upper {
                out.extend(chars.map(|c| c.to_ascii_lowercase()));
            } else {
                out.extend(chars);
            }
        }
    }
    if out.is_empty() {
        out.push('_');
    }
    fix_start(out)
}

/// `snake_case` for a QAPI member name: lower case, words joined by `_`, and an `_`
/// where a lower-case letter or digit is followed by an upper-case one (`vcpusCount`
/// → `vcpus_count`); runs of capitals stay one word (`CPU` → `cpu`).
pub fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for w in words(name) {
        if !out.is_empty() {
            out.push('_');
        }
        let mut prev: Option<char> = None;
        for c in w.chars() {
            if c.is_ascii_uppercase()
                && prev.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit())
            {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev = Some(c);
        }
    }
    if out.is_empty() {
        out.push('_');
    }
    fix_start(out)
}

/// [`snake`], with the suffix for keywords that cannot be raw already applied, so that
/// a [`Namer`] sees the final identifier (`self` and `Self` both want `self_`).
pub fn snake_ident(name: &str) -> String {
    no_raw_keyword(snake(name))
}

/// [`camel`], with the suffix for keywords that cannot be raw already applied.
pub fn camel_ident(name: &str) -> String {
    no_raw_keyword(camel(name))
}

fn no_raw_keyword(s: String) -> String {
    if NON_RAW_KEYWORDS.contains(&s.as_str()) {
        format!("{s}_")
    } else {
        s
    }
}

/// A leading digit cannot start an identifier: prefix `_`.
fn fix_start(s: String) -> String {
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{s}")
    } else {
        s
    }
}

/// The identifier to write for a converted name: `r#type` for keywords that can be raw,
/// `self_` for those that cannot, the name itself otherwise.
pub fn ident(name: &str) -> proc_macro2::Ident {
    if NON_RAW_KEYWORDS.contains(&name) {
        proc_macro2::Ident::new(&format!("{name}_"), proc_macro2::Span::call_site())
    } else if RAW_KEYWORDS.contains(&name) {
        proc_macro2::Ident::new_raw(name, proc_macro2::Span::call_site())
    } else {
        proc_macro2::Ident::new(name, proc_macro2::Span::call_site())
    }
}

/// Hands out unique names within one namespace (a module, a struct's fields, an enum's
/// variants): a name already taken gets trailing `_`s until it is free. Reserve the
/// names of generated items first so QAPI names yield to them.
#[derive(Default, Debug)]
pub struct Namer {
    taken: BTreeSet<String>,
}

impl Namer {
    /// A namer with these names already taken.
    pub fn with_reserved(names: &[&str]) -> Self {
        Namer {
            taken: names.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Takes `name`, or the first free `name_`, `name__`, ….
    pub fn unique(&mut self, name: String) -> String {
        let mut name = name;
        while self.taken.contains(&name) {
            name.push('_');
        }
        self.taken.insert(name.clone());
        name
    }

    /// True if `name` is taken.
    pub fn is_taken(&self, name: &str) -> bool {
        self.taken.contains(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> String {
        ident(s).to_string()
    }

    #[test]
    fn commands_dashes_and_underscores_become_camel() {
        assert_eq!(camel("query-status"), "QueryStatus");
        assert_eq!(camel("block_resize"), "BlockResize");
        assert_eq!(camel("x-debug-query-block-graph"), "XDebugQueryBlockGraph");
    }

    #[test]
    fn events_upper_snake_becomes_camel() {
        assert_eq!(camel("BLOCK_JOB_COMPLETED"), "BlockJobCompleted");
        assert_eq!(camel("STOP"), "Stop");
        // the `STOP` event and the `stop` command meet in the same Rust name; they live
        // in different modules (`events`, `commands`), so both keep it.
        assert_eq!(camel("stop"), camel("STOP"));
    }

    #[test]
    fn type_names_keep_inner_case() {
        assert_eq!(camel("X86CPURegister32"), "X86CPURegister32");
        assert_eq!(camel("QCryptoBlockFormat"), "QCryptoBlockFormat");
        assert_eq!(camel("BlockdevOptions"), "BlockdevOptions");
    }

    #[test]
    fn implicit_q_obj_names() {
        assert_eq!(camel("q_obj_block_resize-arg"), "QObjBlockResizeArg");
        assert_eq!(
            camel("q_obj_BlockdevOptions-base"),
            "QObjBlockdevOptionsBase"
        );
        assert_eq!(camel("q_empty"), "QEmpty");
    }

    #[test]
    fn digits_meeting_digits_keep_a_separator() {
        assert_eq!(camel("x86_64"), "X86_64");
        assert_eq!(camel("aes-128"), "Aes128");
        assert_eq!(camel("kp_0"), "Kp0");
    }

    #[test]
    fn leading_digits_get_an_underscore() {
        assert_eq!(camel("1080p"), "_1080p");
        assert_eq!(camel("0"), "_0");
        assert_eq!(snake("3d-mode"), "_3d_mode");
    }

    #[test]
    fn dots_are_word_breaks() {
        assert_eq!(camel("com.redhat.foo"), "ComRedhatFoo");
        assert_eq!(snake("com.redhat_foo"), "com_redhat_foo");
    }

    #[test]
    fn members_become_snake() {
        assert_eq!(snake("node-name"), "node_name");
        assert_eq!(snake("CPU"), "cpu");
        assert_eq!(snake("vcpusCount"), "vcpus_count");
        assert_eq!(snake("cpuid-input-eax"), "cpuid_input_eax");
        assert_eq!(snake("ACPI-ssdt"), "acpi_ssdt");
    }

    #[test]
    fn keywords_become_raw_identifiers() {
        assert_eq!(id("type"), "r#type");
        assert_eq!(id("match"), "r#match");
        assert_eq!(id("async"), "r#async");
        assert_eq!(id("gen"), "r#gen");
        assert_eq!(id("name"), "name");
    }

    #[test]
    fn keywords_that_cannot_be_raw_get_a_suffix() {
        assert_eq!(id("self"), "self_");
        assert_eq!(id("Self"), "Self_");
        assert_eq!(id("super"), "super_");
        assert_eq!(id("crate"), "crate_");
        assert_eq!(id(&snake("_")), "__");
    }

    #[test]
    fn self_and_self_type_do_not_meet_after_suffixing() {
        let mut n = Namer::default();
        assert_eq!(n.unique(snake_ident("self")), "self_");
        assert_eq!(n.unique(snake_ident("Self")), "self__");
        assert_eq!(camel_ident("self"), "Self_");
    }

    #[test]
    fn names_without_letters_stay_identifiers() {
        assert_eq!(camel("-"), "_");
        assert_eq!(snake("--"), "_");
    }

    #[test]
    fn collisions_get_trailing_underscores_in_order() {
        let mut n = Namer::with_reserved(&["Unknown"]);
        assert_eq!(n.unique(camel("a-b")), "AB");
        assert_eq!(n.unique(camel("a_b")), "AB_");
        assert_eq!(n.unique(camel("unknown")), "Unknown_");
        assert!(n.is_taken("AB_"));
    }
}
