//! A plain, fast layout of generated tokens as source text, for builds without the
//! `format` feature (no `syn`, no `prettyplease`).
//!
//! Formatting the full system schema's bindings with `prettyplease` means parsing
//! ~90,000 lines back into a `syn` tree first; in a build script, which cargo compiles
//! without optimisation, that took 1.2-1.4 s of a 1.9 s run, on the critical path of
//! every clean build of the bindings, besides compiling `prettyplease` and `syn`'s
//! `full` feature. This layout walks the token tree once (~0.1 s): one statement, field,
//! match arm or attribute per line, indented by brace depth, tokens separated by
//! spaces (`pub fn new (size : i64) -> Self`). Not rustfmt's style, but every item is
//! on lines of its own, so compiler messages and "go to definition" land somewhere
//! readable. The tokens are the same as with `prettyplease`: only whitespace differs
//! (a test parses both and compares).

use std::fmt::Write as _;

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};

/// Lays `tokens` out as source text (appended to `out`), ending with a newline.
pub(crate) fn layout(tokens: TokenStream, out: &mut String) {
    let mut p = Printer { out, depth: 0 };
    p.stream(tokens, Delimiter::Brace);
    p.newline();
}

struct Printer<'a> {
    out: &'a mut String,
    /// Brace depth: the indentation of the next line.
    depth: usize,
}

impl Printer<'_> {
    fn at_line_start(&self) -> bool {
        self.out.is_empty() || self.out.ends_with('\n')
    }

    /// Ends the current line, if it has anything on it.
    fn newline(&mut self) {
        if !self.at_line_start() {
            self.out.push('\n');
        }
    }

    /// Starts a token: indentation at the start of a line, else a separating space
    /// unless the previous token asked to be joined (like `:` in `::`) or follows an
    /// opening bracket or parenthesis.
    fn start_token(&mut self, joined: bool) {
        if self.at_line_start() {
            for _ in 0..self.depth {
                self.out.push_str("    ");
            }
        } else if !joined && !self.out.ends_with(['(', '[']) {
            self.out.push(' ');
        }
    }

    /// Whether the last thing written ends a word (an identifier, keyword or literal).
    fn after_word(&self) -> bool {
        self.out
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '"')
    }

    /// The tokens of a stream directly inside a group delimited by `inside` (a brace
    /// group, or the file, breaks lines; brackets and parentheses keep one line).
    fn stream(&mut self, tokens: TokenStream, inside: Delimiter) {
        let breaks = inside == Delimiter::Brace;
        // The previous token asked to be joined to the next (`::`, `.`, `<`, `&`).
        let mut joined = false;
        // Open `<` of generics in this stream: no line breaks at their commas.
        let mut angles = 0usize;
        // The last token was the `>` closing generics (`Vec<T>::new`, `f<T>(x)`).
        let mut closed_generic = false;
        let mut iter = tokens.into_iter().peekable();
        while let Some(tt) = iter.next() {
            match tt {
                TokenTree::Punct(p) if p.as_char() == '#' && is_attribute(iter.peek()) => {
                    // An attribute, `#[..]` or `#![..]`, takes a line of its own; an
                    // outer doc attribute is written as the `///` comment it was.
                    if breaks {
                        self.newline();
                    }
                    self.start_token(joined);
                    joined = false;
                    if let Some(TokenTree::Group(g)) = iter.peek() {
                        if let Some(text) = doc_comment(g.stream()).filter(|_| breaks) {
                            self.out.push_str("///");
                            self.out.push_str(&text);
                            self.out.push('\n');
                            iter.next();
                            continue;
                        }
                    }
                    self.out.push('#');
                    if let Some(TokenTree::Punct(bang)) = iter.peek() {
                        if bang.as_char() == '!' {
                            self.out.push('!');
                            iter.next();
                        }
                    }
                    if let Some(TokenTree::Group(g)) = iter.next() {
                        self.group(g.delimiter(), g.stream());
                    }
                    if breaks {
                        self.newline();
                    }
                }
                TokenTree::Punct(p) => {
                    let c = p.as_char();
                    let after_word = self.after_word();
                    let arrow = self.out.ends_with(['-', '=']);
                    let generic_open = c == '<' && (after_word || self.out.ends_with("::"));
                    let generic_close = c == '>' && angles > 0 && !arrow;
                    let clings = match c {
                        ',' | ';' | '.' | '?' => true,
                        // `a: T`, `Foo::bar`, `Vec<T>::new`; not `impl ::qmp::X`,
                        // `-> ::std::…` nor `x: ::std` (a `:::`).
                        ':' => {
                            (after_word && !after_keyword(self.out) || closed_generic)
                                && !self.out.ends_with(':')
                        }
                        '!' => after_word && matches!(iter.peek(), Some(TokenTree::Group(_))),
                        _ => generic_open || generic_close,
                    };
                    let unary_ref = c == '&' && !after_word && !self.out.ends_with([')', ']']);
                    self.start_token(joined || (clings && !self.at_line_start()));
                    self.out.push(c);
                    closed_generic = generic_close;
                    if generic_open {
                        angles += 1;
                    } else if generic_close {
                        angles -= 1;
                    }
                    joined = p.spacing() == Spacing::Joint
                        || c == '.'
                        || c == ':' && self.out.ends_with("::")
                        || generic_open
                        || unary_ref && p.spacing() == Spacing::Alone;
                    if c == ';' {
                        angles = 0;
                    }
                    if breaks && angles == 0 && (c == ';' || c == ',') {
                        self.newline();
                        joined = false;
                    }
                }
                TokenTree::Group(g) => {
                    if g.delimiter() == Delimiter::Brace {
                        angles = 0;
                    }
                    // `f(x)`, `a[i]`, `name!(…)`: parentheses and brackets cling to
                    // the word or `!` before them.
                    let clings = g.delimiter() != Delimiter::Brace
                        && (self.after_word() || self.out.ends_with('!') || closed_generic);
                    closed_generic = false;
                    self.start_token(joined || clings);
                    joined = false;
                    let brace = g.delimiter() == Delimiter::Brace;
                    self.group(g.delimiter(), g.stream());
                    if brace && breaks {
                        self.newline();
                    }
                }
                TokenTree::Ident(i) => {
                    closed_generic = false;
                    self.start_token(joined);
                    joined = false;
                    // Written in place: a `to_string` per token allocated ~1 million
                    // times for the system schema.
                    let _ = write!(self.out, "{i}");
                }
                TokenTree::Literal(l) => {
                    closed_generic = false;
                    self.start_token(joined);
                    joined = false;
                    let _ = write!(self.out, "{l}");
                }
            }
        }
    }

    /// A group, its delimiters included (the caller has spaced or indented the place
    /// of the opening one).
    fn group(&mut self, delimiter: Delimiter, inner: TokenStream) {
        let (open, close) = match delimiter {
            Delimiter::Brace => ("{", "}"),
            Delimiter::Bracket => ("[", "]"),
            Delimiter::Parenthesis => ("(", ")"),
            Delimiter::None => ("", ""),
        };
        self.out.push_str(open);
        if delimiter == Delimiter::Brace {
            if inner.is_empty() {
                self.out.push_str(close);
                return;
            }
            self.depth += 1;
            self.newline();
            self.stream(inner, Delimiter::Brace);
            self.newline();
            self.depth -= 1;
            self.start_token(false);
            self.out.push_str(close);
        } else {
            self.stream(inner, delimiter);
            self.out.push_str(close);
        }
    }
}

/// Whether `out` ends with a keyword after which a path starts (`impl ::qmp::X`).
fn after_keyword(out: &str) -> bool {
    let word = out
        .rsplit(|c: char| !(c.is_alphanumeric() || c == '_'))
        .next()
        .unwrap_or("");
    matches!(
        word,
        "impl" | "for" | "as" | "dyn" | "in" | "return" | "where" | "mut" | "type" | "else"
    )
}

fn is_attribute(next: Option<&TokenTree>) -> bool {
    match next {
        Some(TokenTree::Group(g)) => g.delimiter() == Delimiter::Bracket,
        Some(TokenTree::Punct(p)) => p.as_char() == '!',
        _ => false,
    }
}

/// The text of `doc = "…"` (the inside of an outer doc attribute) when it can be
/// written as a `///` line: a string literal without line breaks, not starting
/// with `/`.
fn doc_comment(attr: TokenStream) -> Option<String> {
    let mut it = attr.into_iter();
    match (it.next(), it.next(), it.next(), it.next()) {
        (
            Some(TokenTree::Ident(doc)),
            Some(TokenTree::Punct(eq)),
            Some(TokenTree::Literal(lit)),
            None,
        ) if doc == "doc" && eq.as_char() == '=' => {
            // `////…` would be a plain comment.
            string_value(&lit.to_string())
                .filter(|t| !t.contains(['\n', '\r']) && !t.starts_with('/'))
        }
        _ => None,
    }
}

/// The value of a string literal as the emitter writes them: raw (`r"…"`, `r#"…"#`,
/// from `///` comments in `quote!`) or with the escapes of `Literal::string`. `None`
/// for anything else (the attribute is then printed as it is).
fn string_value(lit: &str) -> Option<String> {
    if let Some(raw) = lit.strip_prefix('r') {
        let hashes = raw.len() - raw.trim_start_matches('#').len();
        let body = raw.get(hashes..raw.len().checked_sub(hashes)?)?;
        return Some(body.strip_prefix('"')?.strip_suffix('"')?.to_owned());
    }
    let body = lit.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            '0' => '\0',
            '\\' => '\\',
            '"' => '"',
            '\'' => '\'',
            'u' => {
                let rest = chars.as_str().strip_prefix('{')?;
                let end = rest.find('}')?;
                let c = char::from_u32(u32::from_str_radix(&rest[..end], 16).ok()?)?;
                chars = rest[end + 1..].chars();
                c
            }
            _ => return None,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn laid_out(tokens: TokenStream) -> String {
        let mut out = String::new();
        layout(tokens, &mut out);
        out
    }

    #[test]
    fn items_fields_and_attributes_take_lines_of_their_own() {
        let text = laid_out(quote! {
            #![allow(deprecated)]
            /// A struct.
            #[derive(Clone)]
            pub struct S { pub a: ::std::option::Option<u8>, b: [u8; 4] }
            impl S { fn f(&self) -> u8 { match self.a { Some(x) => x, None => 0 } } }
        });
        assert_eq!(
            text,
            "#![allow(deprecated)]\n\
             /// A struct.\n\
             #[derive(Clone)]\n\
             pub struct S {\n    pub a: ::std::option::Option<u8>,\n    b: [u8; 4]\n}\n\
             impl S {\n    fn f(&self) -> u8 {\n        match self.a {\n            \
             Some(x) => x,\n            None => 0\n        }\n    }\n}\n"
        );
    }

    #[test]
    fn doc_attributes_become_doc_comments_when_they_can() {
        let text = String::from(" quote \" and \\ and \u{7f}");
        let multi = "two\nlines";
        let slash = "/ not a doc comment as ////";
        let out = laid_out(quote! {
            #[doc = #text]
            #[doc = #multi]
            #[doc = #slash]
            struct S;
        });
        assert_eq!(
            out,
            "/// quote \" and \\ and \u{7f}\n#[doc = \"two\\nlines\"]\n\
             #[doc = \"/ not a doc comment as ////\"]\nstruct S;\n"
        );
        assert_eq!(string_value(r##"r#"a"b"#"##).as_deref(), Some("a\"b"));
        assert_eq!(string_value("\"\\x41\"").as_deref(), None);
    }

    #[test]
    fn joined_punctuation_stays_joined() {
        let text = laid_out(quote! { fn f<'a>(x: &'a str) -> ::std::string::String { x.into() } });
        assert!(text.contains("'a"), "{text}");
        assert!(text.contains("::std::string::String"), "{text}");
        assert!(text.contains("->"), "{text}");
    }
}
