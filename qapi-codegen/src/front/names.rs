//! QAPI name rules (QEMU's `common.c_name` and `expr.check_name_*`).

/// `c_name(name, protect)`: map a QAPI name to a C identifier. Used for clash checks.
pub(crate) fn c_name(name: &str, protect: bool) -> String {
    let mapped: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if protect && (is_c_word(&mapped) || mapped.chars().next().is_some_and(|c| c.is_numeric())) {
        return format!("q_{mapped}");
    }
    mapped
}

/// True when `c_name(name, true)` is `name` itself (most names): saves an allocation.
pub(crate) fn c_name_is_identity(name: &str) -> bool {
    name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && !is_c_word(name)
}

fn is_c_word(s: &str) -> bool {
    matches!(
        s,
        // C89
        "auto" | "break" | "case" | "char" | "const" | "continue" | "default" | "do"
            | "double" | "else" | "enum" | "extern" | "float" | "for" | "goto" | "if"
            | "int" | "long" | "register" | "return" | "short" | "signed" | "sizeof"
            | "static" | "struct" | "switch" | "typedef" | "union" | "unsigned" | "void"
            | "volatile" | "while"
            // C99
            | "inline" | "restrict" | "_Bool" | "_Complex" | "_Imaginary"
            // C11
            | "_Alignas" | "_Alignof" | "_Atomic" | "_Generic" | "_Noreturn"
            | "_Static_assert" | "_Thread_local"
            // GCC
            | "asm" | "typeof"
            // C++
            | "bool" | "catch" | "class" | "const_cast" | "delete" | "dynamic_cast"
            | "explicit" | "false" | "friend" | "mutable" | "namespace" | "new"
            | "operator" | "private" | "protected" | "public" | "reinterpret_cast"
            | "static_cast" | "template" | "this" | "throw" | "true" | "try" | "typeid"
            | "typename" | "using" | "virtual" | "wchar_t" | "and" | "and_eq" | "bitand"
            | "bitor" | "compl" | "not" | "not_eq" | "or" | "or_eq" | "xor" | "xor_eq"
            // namespace pollution
            | "unix" | "errno" | "mips" | "sparc" | "i386" | "linux"
    )
}

fn stem_ok(s: &str) -> bool {
    let mut it = s.chars();
    it.next().is_some_and(|c| c.is_ascii_alphabetic())
        && it.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `valid_name.match(name)`: the stem (group 3) of a valid name, if it is one.
///
/// The pattern is `(__[a-z0-9.-]+_)?(x-)?([a-z][a-z0-9_-]*)$`, case-insensitive.
pub(crate) fn valid_name_stem(name: &str) -> Option<&str> {
    let mut starts = Vec::with_capacity(2);
    // Optional downstream prefix: `__`, then at least one of [a-z0-9.-], then `_`.
    if let Some(rest) = name.strip_prefix("__") {
        let n = rest
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'-')
            .count();
        if n > 0 && rest.as_bytes().get(n) == Some(&b'_') {
            starts.push(2 + n + 1);
        }
    }
    starts.push(0);
    for start in starts {
        let rest = &name[start..];
        if let Some(stem) = rest.strip_prefix("x-").or_else(|| rest.strip_prefix("X-")) {
            if stem_ok(stem) {
                return Some(stem);
            }
        }
        if stem_ok(rest) {
            return Some(rest);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(valid_name_stem("__org.qemu_x-foo"), Some("foo"));
        assert_eq!(valid_name_stem("x-1"), Some("x-1"));
        assert_eq!(valid_name_stem("__a"), None);
        assert_eq!(valid_name_stem("a b"), None);
        assert_eq!(valid_name_stem("Foo"), Some("Foo"));
        assert_eq!(c_name("int", true), "q_int");
        assert_eq!(c_name("a-b.c", false), "a_b_c");
        assert_eq!(c_name("1x", true), "q_1x");
    }
}
