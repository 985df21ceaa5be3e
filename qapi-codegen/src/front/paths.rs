//! The few `os.path` operations QEMU's front end uses on file names, done on strings
//! exactly as Python's `posixpath` does them, so that module names and messages match.

/// `os.path.dirname`.
pub(crate) fn dirname(p: &str) -> &str {
    let i = p.rfind('/').map_or(0, |i| i + 1);
    let head = &p[..i];
    if !head.is_empty() && head.bytes().any(|b| b != b'/') {
        head.trim_end_matches('/')
    } else {
        head
    }
}

/// `os.path.join(a, b)`.
pub(crate) fn join(a: &str, b: &str) -> String {
    if b.starts_with('/') || a.is_empty() {
        b.to_owned()
    } else if a.ends_with('/') {
        format!("{a}{b}")
    } else {
        format!("{a}/{b}")
    }
}

/// `os.path.normpath`.
pub(crate) fn normpath(p: &str) -> String {
    if p.is_empty() {
        return ".".to_owned();
    }
    // POSIX allows one or two leading slashes to be kept, but not three or more.
    let initial = if p.starts_with('/') {
        if p.starts_with("//") && !p.starts_with("///") {
            2
        } else {
            1
        }
    } else {
        0
    };
    let mut parts: Vec<&str> = Vec::new();
    for comp in p.split('/') {
        if comp.is_empty() || comp == "." {
            continue;
        }
        if comp != ".." || (initial == 0 && parts.is_empty()) || parts.last() == Some(&"..") {
            parts.push(comp);
        } else if !parts.is_empty() {
            parts.pop();
        }
    }
    let mut out = "/".repeat(initial);
    out.push_str(&parts.join("/"));
    if out.is_empty() {
        ".".to_owned()
    } else {
        out
    }
}

/// `os.path.abspath`, relative to `cwd` (itself absolute).
pub(crate) fn abspath(p: &str, cwd: &str) -> String {
    if p.starts_with('/') {
        normpath(p)
    } else {
        normpath(&join(cwd, p))
    }
}

/// `os.path.relpath(path, start)`, relative to `cwd`.
pub(crate) fn relpath(path: &str, start: &str, cwd: &str) -> String {
    let a = abspath(start, cwd);
    let b = abspath(path, cwd);
    let start_list: Vec<&str> = a.split('/').filter(|s| !s.is_empty()).collect();
    let path_list: Vec<&str> = b.split('/').filter(|s| !s.is_empty()).collect();
    let common = start_list
        .iter()
        .zip(&path_list)
        .take_while(|(x, y)| x == y)
        .count();
    let mut rel: Vec<&str> = vec![".."; start_list.len() - common];
    rel.extend_from_slice(&path_list[common..]);
    if rel.is_empty() {
        ".".to_owned()
    } else {
        rel.join("/")
    }
}

/// `pathlib.PurePosixPath(p).stem`: the last component without its last suffix.
pub(crate) fn stem(p: &str) -> &str {
    let p = p.trim_end_matches('/');
    let name = &p[p.rfind('/').map_or(0, |i| i + 1)..];
    match name.rfind('.') {
        Some(i) if 0 < i && i + 1 < name.len() => &name[..i],
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_posixpath() {
        assert_eq!(dirname("a/b.json"), "a");
        assert_eq!(dirname("b.json"), "");
        assert_eq!(dirname("/b.json"), "/");
        assert_eq!(dirname("a//b"), "a");
        assert_eq!(join("", "x.json"), "x.json");
        assert_eq!(join("a", "/x"), "/x");
        assert_eq!(join("a/", "x"), "a/x");
        assert_eq!(normpath("a/./b/../c"), "a/c");
        assert_eq!(normpath("../a"), "../a");
        assert_eq!(normpath("/../a"), "/a");
        assert_eq!(normpath("//a"), "//a");
        assert_eq!(relpath("sub/../x.json", "", "/w"), "x.json");
        assert_eq!(relpath("../x.json", "", "/w/d"), "../x.json");
        assert_eq!(relpath("a/b.json", "a", "/w"), "b.json");
        assert_eq!(stem("../../qapi/block-core.json"), "block-core");
        assert_eq!(stem("qapi-schema.json"), "qapi-schema");
        assert_eq!(stem("a.b.json"), "a.b");
        assert_eq!(stem("dir/.json"), ".json");
        assert_eq!(stem("x."), "x.");
        assert_eq!(stem("noext"), "noext");
    }
}
