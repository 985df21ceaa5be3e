//! The QAPI schema lexer: QEMU's `QAPISchemaParser.accept`.
//!
//! The dialect is JSON with single-quoted strings of printable ASCII (the only escape
//! is `\\`), `true`/`false`, no numbers or `null`, and `#` comments to end of line.
//! A comment starting with `##` opens a doc comment; while reading one, the parser asks
//! for comments as tokens.
//!
//! Our own addition: a skipped comment line that begins with [`MARKER`] is a
//! `qapi-codegen` marker (see `parser.rs`); the lexer keeps its text for the parser,
//! and rejects one that sits inside an expression.

use super::source::Info;

/// The kind of the current token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tok {
    /// One of `{ } : , [ ]`.
    Punct(u8),
    /// A string; its value is [`Lexer::string`].
    Str,
    /// `true`.
    True,
    /// `false`.
    False,
    /// A comment (only when asked for); its text is [`Lexer::comment`].
    Comment,
    /// End of input.
    Eof,
}

/// How a `qapi-codegen` marker line begins (at column 1). QEMU reads it as a plain
/// comment.
pub(crate) const MARKER: &str = "# @qapi-codegen";

/// A marker line the lexer skipped: where it is and the text after [`MARKER`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct MarkerLine<'s> {
    pub info: Info,
    pub text: &'s str,
}

/// A lexical error: QEMU's `QAPIParseError`, not yet formatted.
#[derive(Debug)]
pub(crate) struct LexError {
    pub info: Info,
    pub col: usize,
    pub msg: String,
}

/// Python's `str.isspace` for one character.
pub(crate) fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// Lexer state over one file's text (which always ends with `\n`).
#[derive(Clone)]
pub(crate) struct Lexer<'s> {
    src: &'s str,
    /// The current token.
    pub tok: Tok,
    /// Byte offset of the current token.
    pub pos: usize,
    cursor: usize,
    line_pos: usize,
    /// The current token's line.
    pub info: Info,
    string: String,
    comment_end: usize,
    /// How many `{`/`[` are open (markers are only allowed outside expressions).
    depth: usize,
    /// Marker lines skipped since the parser last took them.
    pub markers: Vec<MarkerLine<'s>>,
}

impl<'s> Lexer<'s> {
    /// A lexer over `src`, which must end with `\n`. Call [`Lexer::accept`] to prime it.
    pub fn new(src: &'s str, info: Info) -> Self {
        Lexer {
            src,
            tok: Tok::Eof,
            pos: 0,
            cursor: 0,
            line_pos: 0,
            info,
            string: String::new(),
            comment_end: 0,
            depth: 0,
            markers: Vec::new(),
        }
    }

    /// The value of the current string token (taken: call once).
    pub fn take_string(&mut self) -> String {
        std::mem::take(&mut self.string)
    }

    /// The text of the current comment token, from its `#` to the end of its line.
    pub fn comment(&self) -> &'s str {
        &self.src[self.pos..self.comment_end]
    }

    /// An error at the current token, with QEMU's column (tabs to multiples of 8).
    pub fn error(&self, msg: impl Into<String>) -> LexError {
        let mut col = 1;
        for &b in &self.src.as_bytes()[self.line_pos..self.pos] {
            if b == b'\t' {
                col = (col + 7) % 8 + 1;
            } else if !(0x80..0xc0).contains(&b) {
                col += 1;
            }
        }
        LexError {
            info: self.info,
            col,
            msg: msg.into(),
        }
    }

    /// Read the next token. Comments are skipped unless `skip_comment` is false or the
    /// comment starts a doc comment (`##`).
    pub fn accept(&mut self, mut skip_comment: bool) -> Result<(), LexError> {
        let bytes = self.src.as_bytes();
        loop {
            if self.cursor >= bytes.len() {
                self.tok = Tok::Eof;
                return Ok(());
            }
            let b = bytes[self.cursor];
            self.pos = self.cursor;
            self.cursor += 1;
            match b {
                b' ' => {}
                b'#' => {
                    if bytes.get(self.cursor) == Some(&b'#') {
                        skip_comment = false;
                    }
                    self.cursor = find_nl(self.src, self.cursor);
                    if !skip_comment {
                        self.comment_end = self.cursor;
                        self.tok = Tok::Comment;
                        return Ok(());
                    }
                    if self.pos == self.line_pos {
                        self.marker()?;
                    }
                }
                b'{' | b'[' => {
                    self.depth += 1;
                    self.tok = Tok::Punct(b);
                    return Ok(());
                }
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    self.tok = Tok::Punct(b);
                    return Ok(());
                }
                b':' | b',' => {
                    self.tok = Tok::Punct(b);
                    return Ok(());
                }
                b'\'' => return self.lex_string(),
                b't' if bytes[self.pos..].starts_with(b"true") => {
                    self.tok = Tok::True;
                    self.cursor += 3;
                    return Ok(());
                }
                b'f' if bytes[self.pos..].starts_with(b"false") => {
                    self.tok = Tok::False;
                    self.cursor += 4;
                    return Ok(());
                }
                b'\n' => {
                    if self.cursor == bytes.len() {
                        self.tok = Tok::Eof;
                        return Ok(());
                    }
                    self.info.line += 1;
                    self.line_pos = self.cursor;
                }
                _ => {
                    let c = self.char_at(self.pos);
                    self.cursor = self.pos + c.len_utf8();
                    if !py_isspace(c) {
                        let rest = &self.src[self.pos..];
                        let end = rest
                            .char_indices()
                            .find(|&(_, c)| "[]{}:,'".contains(c) || py_isspace(c))
                            .map_or(rest.len(), |(i, _)| i);
                        return Err(self.error(format!("stray '{}'", &rest[..end])));
                    }
                }
            }
        }
    }

    /// Keeps the skipped comment line at `pos..cursor` if it is a marker.
    fn marker(&mut self) -> Result<(), LexError> {
        let line = &self.src[self.pos..self.cursor];
        let Some(text) = line.strip_prefix(MARKER) else {
            return Ok(());
        };
        // `# @qapi-codegenfoo` is an ordinary comment.
        if !(text.is_empty() || text.starts_with(' ')) {
            return Ok(());
        }
        if self.depth > 0 {
            return Err(self.error("qapi-codegen marker inside an expression"));
        }
        self.markers.push(MarkerLine {
            info: self.info,
            text,
        });
        Ok(())
    }

    fn char_at(&self, at: usize) -> char {
        self.src[at..].chars().next().unwrap_or('\n')
    }

    fn lex_string(&mut self) -> Result<(), LexError> {
        // Fast path: printable ASCII up to the closing quote, no escapes.
        let bytes = self.src.as_bytes();
        let start = self.cursor;
        let plain = bytes[start..]
            .iter()
            .position(|&b| b == b'\'' || b == b'\\' || !(32..127).contains(&b));
        if let Some(n) = plain {
            if bytes[start + n] == b'\'' {
                self.string = self.src[start..start + n].to_owned();
                self.cursor = start + n + 1;
                self.tok = Tok::Str;
                return Ok(());
            }
        }
        self.string.clear();
        let mut esc = false;
        loop {
            let ch = self.char_at(self.cursor);
            self.cursor += ch.len_utf8();
            if ch == '\n' {
                return Err(self.error("missing terminating \"'\""));
            }
            if esc {
                if ch != '\\' {
                    return Err(self.error(format!("unknown escape \\{ch}")));
                }
                esc = false;
            } else if ch == '\\' {
                esc = true;
                continue;
            } else if ch == '\'' {
                self.tok = Tok::Str;
                return Ok(());
            }
            if (ch as u32) < 32 || (ch as u32) >= 127 {
                return Err(self.error("funny character in string"));
            }
            self.string.push(ch);
        }
    }
}

fn find_nl(src: &str, from: usize) -> usize {
    src[from..].find('\n').map_or(src.len(), |i| from + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Result<Vec<Tok>, LexError> {
        let mut lx = Lexer::new(src, Info { file: 0, line: 1 });
        let mut out = Vec::new();
        loop {
            lx.accept(true)?;
            out.push(lx.tok);
            if lx.tok == Tok::Eof {
                return Ok(out);
            }
        }
    }

    #[test]
    fn tokens_and_comments() {
        let t = toks("{ 'a': true, # c\n 'b': [false] }\n").unwrap();
        assert_eq!(
            t,
            vec![
                Tok::Punct(b'{'),
                Tok::Str,
                Tok::Punct(b':'),
                Tok::True,
                Tok::Punct(b','),
                Tok::Str,
                Tok::Punct(b':'),
                Tok::Punct(b'['),
                Tok::False,
                Tok::Punct(b']'),
                Tok::Punct(b'}'),
                Tok::Eof
            ]
        );
        // `##` starts a doc comment even when comments are skipped.
        assert_eq!(toks("## x\n").unwrap()[0], Tok::Comment);
    }

    #[test]
    fn marker_lines_are_kept_outside_expressions_only() {
        let src = "# @qapi-codegen {\"since\": \"1.0\"}\n  # @qapi-codegen indented\n\
                   # @qapi-codegenx\n{ 'a': 'b' } # @qapi-codegen trailing\n# @qapi-codegen\n";
        let mut lx = Lexer::new(src, Info { file: 0, line: 1 });
        loop {
            lx.accept(true).unwrap();
            if lx.tok == Tok::Eof {
                break;
            }
        }
        let got: Vec<(u32, &str)> = lx.markers.iter().map(|m| (m.info.line, m.text)).collect();
        assert_eq!(got, [(1, " {\"since\": \"1.0\"}"), (5, "")]);
        let e = toks("{ 'a':\n# @qapi-codegen {}\n'b' }\n").unwrap_err();
        assert_eq!(
            (e.info.line, e.col, e.msg.as_str()),
            (2, 1, "qapi-codegen marker inside an expression")
        );
    }

    #[test]
    fn escapes_and_columns() {
        let mut lx = Lexer::new("'a\\\\b'\n", Info { file: 0, line: 1 });
        lx.accept(true).unwrap();
        assert_eq!(lx.take_string(), "a\\b");
        // QEMU's tab rule, `col = (col + 7) % 8 + 1`, kept as is.
        let e = toks("\t 'a\\n'\n").unwrap_err();
        assert_eq!((e.col, e.msg.as_str()), (2, "unknown escape \\n"));
        let e = toks("'é'\n").unwrap_err();
        assert_eq!(e.msg, "funny character in string");
        let e = toks("é; x\n").unwrap_err();
        assert_eq!((e.col, e.msg.as_str()), (1, "stray 'é;'"));
        let e = toks("'abc\n").unwrap_err();
        assert_eq!(e.msg, "missing terminating \"'\"");
    }
}
