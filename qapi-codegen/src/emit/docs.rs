//! QAPI doc text (reStructuredText with QAPI's own roles) → rustdoc Markdown.
//!
//! The conversion is deliberately small and safe rather than complete:
//! * `@member`, `` :qapi:cmd:`x` `` (any `:role:`), ``` ``x`` ``` → code spans;
//! * `.. qmp-example::`, `.. code-block::` and `::` literal blocks → ```` ```text ````
//!   fences (never a bare fence or an indented block: rustdoc would compile those as
//!   Rust doctests);
//! * `.. note::`/`.. warning::`/`.. admonition::` → a bold label and the text;
//! * other lines are de-indented, and `[`, `]`, `<`, `>` outside code are escaped so
//!   rustdoc reads them as text.

/// Converts one QAPI doc section to Markdown lines.
pub fn to_markdown(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if let Some(directive) = trimmed.strip_prefix(".. ") {
            let (name, arg) = match directive.split_once("::") {
                Some((n, a)) => (n.trim(), a.trim()),
                None => {
                    // A comment (`.. text`): skip it and its indented body.
                    i = skip_block(&lines, i + 1, indent).0;
                    continue;
                }
            };
            let (next, body) = skip_block(&lines, i + 1, indent);
            i = next;
            match name {
                "qmp-example" | "code-block" | "code" | "parsed-literal" => {
                    let title = body
                        .iter()
                        .find_map(|l| l.trim().strip_prefix(":title:").map(str::trim));
                    if let Some(t) = title {
                        out.push(format!("*Example: {}*", inline(t)));
                        out.push(String::new());
                    }
                    let mut content: Vec<&str> = body
                        .iter()
                        .copied()
                        .filter(|l| !l.trim_start().starts_with(':'))
                        .collect();
                    // the options (`:title:`) were followed by a blank line
                    while content.first().is_some_and(|l| l.trim().is_empty()) {
                        content.remove(0);
                    }
                    push_fence(&mut out, &content);
                }
                _ => {
                    let label = match name {
                        "admonition" if !arg.is_empty() => inline(arg),
                        "admonition" => "Note".to_owned(),
                        other => {
                            let mut s = other.to_owned();
                            if let Some(f) = s.get_mut(0..1) {
                                f.make_ascii_uppercase();
                            }
                            s
                        }
                    };
                    let first = if name == "admonition" || arg.is_empty() {
                        String::new()
                    } else {
                        format!(" {}", inline(arg))
                    };
                    out.push(format!("**{label}:**{first}"));
                    for l in body.iter().filter(|l| !l.trim_start().starts_with(':')) {
                        out.push(inline(l.trim()));
                    }
                    out.push(String::new());
                }
            }
            continue;
        }
        if trimmed.ends_with("::") && !trimmed.starts_with("..") {
            // A literal block follows: "text::" keeps "text:", a lone "::" goes.
            let head = trimmed.trim_end_matches(':');
            if !head.trim().is_empty() {
                out.push(format!("{}:", inline(head)));
            }
            let (next, body) = skip_block(&lines, i + 1, indent);
            i = next;
            push_fence(&mut out, &body);
            continue;
        }
        out.push(inline(trimmed));
        i += 1;
    }
    while out.last().is_some_and(String::is_empty) {
        out.pop();
    }
    out
}

/// The lines after a directive that belong to it: blank lines and lines indented more
/// than `indent`. Returns the index after the block and the block's lines, with the
/// common indentation removed.
fn skip_block<'a>(lines: &[&'a str], start: usize, indent: usize) -> (usize, Vec<&'a str>) {
    let mut end = start;
    while end < lines.len() {
        let l = lines[end];
        let t = l.trim_start();
        if !t.is_empty() && l.len() - t.len() <= indent {
            break;
        }
        end += 1;
    }
    let body = &lines[start..end];
    let common = body
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut block: Vec<&str> = body
        .iter()
        .map(|l| if l.len() >= common { &l[common..] } else { "" })
        .collect();
    while block.first().is_some_and(|l| l.trim().is_empty()) {
        block.remove(0);
    }
    while block.last().is_some_and(|l| l.trim().is_empty()) {
        block.pop();
    }
    (end, block)
}

fn push_fence(out: &mut Vec<String>, content: &[&str]) {
    if content.is_empty() {
        return;
    }
    if out.last().is_some_and(|l| !l.is_empty()) {
        out.push(String::new());
    }
    out.push("```text".to_owned());
    for l in content {
        // A fence inside would end ours early.
        out.push(l.replace("```", "'''"));
    }
    out.push("```".to_owned());
    out.push(String::new());
}

/// Converts inline markup of one line.
pub fn inline(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 8);
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            // ``literal``
            '`' if chars.get(i + 1) == Some(&'`') => {
                if let Some(end) = find(&chars, i + 2, "``") {
                    code(&mut out, &chars[i + 2..end].iter().collect::<String>());
                    i = end + 2;
                    continue;
                }
                out.push_str("\\`");
                i += 2;
            }
            // `interpreted text` (QEMU's default role is a cross-reference)
            '`' => {
                if let Some(end) = find(&chars, i + 1, "`") {
                    let inner: String = chars[i + 1..end].iter().collect();
                    code(&mut out, role_target(&inner));
                    i = end + 1;
                    // a trailing `_` makes it a link in rST
                    if chars.get(i) == Some(&'_') {
                        i += 1;
                    }
                    continue;
                }
                out.push_str("\\`");
                i += 1;
            }
            // :role:`text`
            ':' if chars.get(i + 1).is_some_and(|c| c.is_ascii_alphabetic()) => {
                let mut j = i + 1;
                while j < chars.len()
                    && (chars[j].is_ascii_alphanumeric() || chars[j] == ':' || chars[j] == '-')
                {
                    j += 1;
                }
                if j < chars.len() && chars[j] == '`' && chars[j - 1] == ':' {
                    if let Some(end) = find(&chars, j + 1, "`") {
                        let inner: String = chars[j + 1..end].iter().collect();
                        code(&mut out, role_target(&inner));
                        i = end + 1;
                        continue;
                    }
                }
                out.push(':');
                i += 1;
            }
            // @member
            '@' if chars
                .get(i + 1)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
                && (i == 0 || !chars[i - 1].is_ascii_alphanumeric()) =>
            {
                let mut j = i + 1;
                while j < chars.len()
                    && (chars[j].is_ascii_alphanumeric() || matches!(chars[j], '-' | '_' | '.'))
                {
                    j += 1;
                }
                // a sentence-ending dot is not part of the name
                while j > i + 1 && chars[j - 1] == '.' {
                    j -= 1;
                }
                code(&mut out, &chars[i + 1..j].iter().collect::<String>());
                i = j;
            }
            '[' | ']' => {
                out.push('\\');
                out.push(c);
                i += 1;
            }
            '<' => {
                out.push_str("&lt;");
                i += 1;
            }
            '>' => {
                out.push_str("&gt;");
                i += 1;
            }
            '\\' => {
                out.push_str("\\\\");
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// `title <target>` → `title`; a leading `~` or `!` (rST shorthands) is dropped.
fn role_target(inner: &str) -> &str {
    let inner = inner.trim_start_matches(['~', '!']);
    match inner.find(" <") {
        Some(p) if inner.ends_with('>') => inner[..p].trim(),
        _ => inner,
    }
}

fn code(out: &mut String, text: &str) {
    let text = text.replace('`', "'");
    out.push('`');
    out.push_str(&text);
    out.push('`');
}

fn find(chars: &[char], from: usize, pat: &str) -> Option<usize> {
    let pat: Vec<char> = pat.chars().collect();
    (from..chars.len().saturating_sub(pat.len() - 1)).find(|&k| chars[k..k + pat.len()] == pat[..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_and_roles_become_code() {
        assert_eq!(inline("Set @node-name."), "Set `node-name`.");
        assert_eq!(inline("See :qapi:cmd:`query-block`."), "See `query-block`.");
        assert_eq!(
            inline("Use ``on`` or `BlockdevOptions`."),
            "Use `on` or `BlockdevOptions`."
        );
        assert_eq!(inline(":ref:`the manual <qmp-ref>`"), "`the manual`");
        assert_eq!(inline("mail a@b"), "mail a@b");
    }

    #[test]
    fn markdown_specials_are_escaped() {
        assert_eq!(inline("a [b] <c>"), "a \\[b\\] &lt;c&gt;");
    }

    #[test]
    fn examples_become_text_fences() {
        let md = to_markdown(
            "Intro.\n\n.. qmp-example::\n   :title: Hi\n\n   -> { \"execute\": \"stop\" }\n   <- { \"return\": {} }\n\nAfter.",
        );
        assert_eq!(
            md,
            [
                "Intro.",
                "",
                "*Example: Hi*",
                "",
                "```text",
                "-> { \"execute\": \"stop\" }",
                "<- { \"return\": {} }",
                "```",
                "",
                "After."
            ]
        );
    }

    #[test]
    fn literal_blocks_and_notes() {
        let md = to_markdown("Like this::\n\n    a b\n\n.. note:: Be careful\n   with @x.");
        assert_eq!(
            md,
            [
                "Like this:",
                "",
                "```text",
                "a b",
                "```",
                "",
                "**Note:** Be careful",
                "with `x`."
            ]
        );
    }

    #[test]
    fn indentation_never_makes_a_code_block() {
        let md = to_markdown("Text\n\n        indented text");
        assert_eq!(md, ["Text", "", "indented text"]);
    }
}
