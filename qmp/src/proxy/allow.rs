//! Which commands a listening socket lets through.

use std::fmt;

/// The commands a listening socket forwards to QEMU; the rest are refused by the proxy
/// with a `GenericError` (see [the module docs](super#allow-lists)).
///
/// A pattern is a command name (`qom-get`) or a prefix ending in `*` (`query-*`).
/// `qmp_capabilities` is always allowed (the proxy answers it itself).
///
/// ```
/// use qmp::proxy::Allow;
///
/// let ro = Allow::read_only();
/// assert!(ro.allows("query-status"));
/// assert!(!ro.allows("stop"));
/// let some = Allow::parse("query-*, qom-get").unwrap();
/// assert!(some.allows("qom-get") && !some.allows("qom-set"));
/// assert!(Allow::all().allows("stop"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allow {
    /// `None`: everything.
    patterns: Option<Vec<Pattern>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Exact(String),
    Prefix(String),
}

impl Allow {
    /// Every command.
    pub fn all() -> Allow {
        Allow { patterns: None }
    }

    /// `query-*` only: the commands that only read QEMU's state.
    pub fn read_only() -> Allow {
        Allow {
            patterns: Some(vec![Pattern::Prefix("query-".into())]),
        }
    }

    /// The commands matching any of `patterns` (names, or prefixes ending in `*`).
    /// An empty list allows nothing but `qmp_capabilities`.
    pub fn only<I, S>(patterns: I) -> Allow
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Allow {
            patterns: Some(
                patterns
                    .into_iter()
                    .map(|p| {
                        let p = p.as_ref();
                        match p.strip_suffix('*') {
                            Some(prefix) => Pattern::Prefix(prefix.to_string()),
                            None => Pattern::Exact(p.to_string()),
                        }
                    })
                    .collect(),
            ),
        }
    }

    /// A comma-separated list of patterns (`query-*,qom-get`; spaces around names are
    /// ignored), or `*` for every command.
    ///
    /// # Errors
    /// An empty entry, a `*` inside a name, or characters no QMP command name has
    /// (QAPI names are letters, digits, `-`, `_` and `.`); the message names the entry.
    pub fn parse(spec: &str) -> Result<Allow, String> {
        let mut patterns = Vec::new();
        for entry in spec.split(',') {
            let entry = entry.trim();
            if entry == "*" {
                return Ok(Allow::all());
            }
            let name = entry.strip_suffix('*').unwrap_or(entry);
            if entry.is_empty() {
                return Err(format!(
                    "allow-list {spec:?}: an empty entry (write names or prefixes ending in *, separated by commas)"
                ));
            }
            if !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(format!(
                    "allow-list {spec:?}: {entry:?} is not a command name or a prefix ending in * \
                     (letters, digits, '-', '_', '.')"
                ));
            }
            patterns.push(entry.to_string());
        }
        Ok(Allow::only(patterns))
    }

    /// Whether `command` is forwarded.
    pub fn allows(&self, command: &str) -> bool {
        match &self.patterns {
            None => true,
            Some(_) if command == crate::server::protocol::QMP_CAPABILITIES => true,
            Some(patterns) => patterns.iter().any(|p| match p {
                Pattern::Exact(name) => name == command,
                Pattern::Prefix(prefix) => command.starts_with(prefix.as_str()),
            }),
        }
    }

    /// Whether this allows every command.
    pub fn is_all(&self) -> bool {
        self.patterns.is_none()
    }
}

impl Default for Allow {
    /// [`Allow::all`].
    fn default() -> Allow {
        Allow::all()
    }
}

impl fmt::Display for Allow {
    /// The patterns as [`Allow::parse`] reads them (`*` for all, `none` for none).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.patterns {
            None => f.write_str("*"),
            Some(p) if p.is_empty() => f.write_str("none"),
            Some(patterns) => {
                for (i, p) in patterns.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    match p {
                        Pattern::Exact(name) => f.write_str(name)?,
                        Pattern::Prefix(prefix) => write!(f, "{prefix}*")?,
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let a = Allow::parse("query-*, qom-get").unwrap();
        assert!(a.allows("query-version"));
        assert!(a.allows("qom-get"));
        assert!(a.allows("qmp_capabilities"));
        assert!(!a.allows("qom-getx"));
        assert!(!a.allows("stop"));
        assert_eq!(a.to_string(), "query-*, qom-get");
        assert!(Allow::parse("*").unwrap().is_all());
        assert!(Allow::parse("query-*,")
            .unwrap_err()
            .contains("empty entry"));
        assert!(Allow::parse("qu*ery").unwrap_err().contains("qu*ery"));
        assert!(Allow::parse("a b").is_err());
        assert!(!Allow::only::<_, &str>([]).allows("query-status"));
    }
}
