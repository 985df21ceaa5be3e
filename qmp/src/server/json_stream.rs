//! Splits the server's input into JSON messages the way QEMU's `json-streamer.c` does.
//!
//! QEMU does not read lines: its JSON parser is fed a byte stream and emits a message
//! whenever braces and brackets balance. Clients rely on that: QEMU's own Python
//! library (`qemu.qmp`) sends requests *without* a newline. So the server cannot use the
//! client's line codec for input; this splitter finds message boundaries instead and
//! also rewrites QEMU's single-quoted strings (and `\'` escapes) into standard JSON,
//! so that `serde_json` can parse what QEMU accepts.
//!
//! Like QEMU's lexer it rejects the bytes no token may contain (outside strings: what
//! starts no token; inside them: control characters; anywhere: 0xFE and 0xFF, which
//! cannot occur in UTF-8), drops the message they were in, and then skips input up to
//! the next bracket, control character or 0xFE/0xFF ("recovery"). Clients rely on
//! that too: the guest agent's clients send 0xFF to reset its parser.

/// One message found in the stream, or a message that exceeded the size limit.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    /// The bytes of one JSON value (strings rewritten to double quotes).
    Message(Vec<u8>),
    /// A message grew past the limit; input is skipped up to the next newline.
    TooLong,
    /// A token QEMU's lexer rejects, as it was read (its last byte is the one that made
    /// it invalid: a byte no token starts with, a control character or 0xFE/0xFF in a
    /// string, 0xFE/0xFF anywhere); the message it was in is dropped.
    Stray(Vec<u8>),
}

#[derive(Debug)]
pub(crate) struct JsonSplitter {
    buf: Vec<u8>,
    depth: usize,
    /// Inside a string opened by this quote character.
    quote: Option<u8>,
    escape: bool,
    /// Skipping the rest of an over-long message.
    skipping: bool,
    /// After a stray token: skipping up to a byte QEMU's lexer resynchronises on.
    recovering: bool,
    /// The current string token as read (for the text of a stray token; `buf` holds
    /// it rewritten to standard JSON).
    raw: Vec<u8>,
    max: usize,
}

impl JsonSplitter {
    pub(crate) fn new(max: usize) -> JsonSplitter {
        JsonSplitter {
            buf: Vec::new(),
            depth: 0,
            quote: None,
            escape: false,
            skipping: false,
            recovering: false,
            raw: Vec::new(),
            max: max.max(1),
        }
    }

    fn emit(&mut self, out: &mut Vec<Piece>) {
        let msg = std::mem::take(&mut self.buf);
        self.depth = 0;
        if self.buf.capacity() == 0 {
            self.buf.reserve(256);
        }
        out.push(Piece::Message(msg));
    }

    /// Drops the message in progress for stray token `token` (QEMU's lexer emits an
    /// error for it, and its streamer drops the tokens queued so far), and starts
    /// recovering.
    fn stray(&mut self, token: Vec<u8>, out: &mut Vec<Piece>) {
        self.buf.clear();
        self.raw.clear();
        self.depth = 0;
        self.quote = None;
        self.escape = false;
        self.recovering = true;
        out.push(Piece::Stray(token));
    }

    /// The number at the end of `buf` if it is one QEMU's lexer is still reading and
    /// that needs another digit (`-`, `1.`, `1e`, `1e+`): a stray byte then belongs to
    /// its token. After a complete number or a keyword, the byte is a token of its own.
    fn incomplete_number(&self) -> &[u8] {
        let start = self
            .buf
            .iter()
            .rposition(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-')))
            .map_or(0, |p| p + 1);
        let run = &self.buf[start..];
        match (run.first(), run.last()) {
            (Some(first), Some(last))
                if (first.is_ascii_digit() || *first == b'-')
                    && matches!(last, b'-' | b'+' | b'.' | b'e' | b'E') =>
            {
                run
            }
            _ => &[],
        }
    }

    /// Feeds bytes; complete messages are appended to `out` in order.
    pub(crate) fn push(&mut self, bytes: &[u8], out: &mut Vec<Piece>) {
        for &b in bytes {
            if self.skipping {
                if b == b'\n' {
                    self.skipping = false;
                }
                continue;
            }
            if self.recovering {
                // QEMU's IN_RECOVERY: structural characters, control characters (but
                // tab) and the impossible UTF-8 bytes resynchronise; the rest is skipped.
                let resync =
                    matches!(b, b'{' | b'}' | b'[' | b']') || (b < 0x20 && b != b'\t') || b >= 0xFE;
                if !resync {
                    continue;
                }
                self.recovering = false;
            }
            if let Some(q) = self.quote {
                if !(0x20..0xFE).contains(&b) {
                    // No string may contain these, escaped or not.
                    let mut token = std::mem::take(&mut self.raw);
                    token.push(b);
                    self.stray(token, out);
                    continue;
                }
                self.raw.push(b);
                if self.escape {
                    self.escape = false;
                    if b == b'\'' {
                        // `\'` is QEMU's escape for a single quote; JSON has none.
                        self.buf.pop();
                    }
                    self.buf.push(b);
                } else if b == b'\\' {
                    self.escape = true;
                    self.buf.push(b);
                } else if b == q {
                    self.quote = None;
                    self.raw.clear();
                    self.buf.push(b'"');
                    if self.depth == 0 {
                        self.emit(out);
                    }
                } else if q == b'\'' && b == b'"' {
                    self.buf.extend_from_slice(b"\\\"");
                } else {
                    self.buf.push(b);
                }
            } else {
                match b {
                    b'"' | b'\'' => {
                        self.quote = Some(b);
                        self.raw.clear();
                        self.raw.push(b);
                        self.buf.push(b'"');
                    }
                    b'{' | b'[' => {
                        self.depth += 1;
                        self.buf.push(b);
                    }
                    b'}' | b']' => {
                        self.buf.push(b);
                        self.depth = self.depth.saturating_sub(1);
                        if self.depth == 0 {
                            self.emit(out);
                        }
                    }
                    _ if is_stray(b) => {
                        let mut token = self.incomplete_number().to_vec();
                        token.push(b);
                        self.stray(token, out);
                        continue;
                    }
                    b' ' | b'\t' | b'\r' | b'\n' => {
                        if self.depth == 0 {
                            // A bare scalar at top level ends at whitespace.
                            if !self.buf.is_empty() {
                                self.emit(out);
                            }
                        } else {
                            self.buf.push(b);
                        }
                    }
                    _ => self.buf.push(b),
                }
            }
            if self.buf.len() > self.max {
                self.buf = Vec::new();
                self.raw = Vec::new();
                self.depth = 0;
                self.quote = None;
                self.escape = false;
                self.skipping = b != b'\n';
                out.push(Piece::TooLong);
            }
        }
    }
}

/// Whether QEMU's JSON lexer has no token starting with (or containing) `b` outside
/// strings: anything but structure, whitespace, numbers and keywords.
fn is_stray(b: u8) -> bool {
    !(b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'{' | b'}'
                | b'['
                | b']'
                | b','
                | b':'
                | b'-'
                | b'+'
                | b'.'
                | b' '
                | b'\t'
                | b'\r'
                | b'\n'
        ))
}

/// QEMU's text for a stray token: bytes that are not UTF-8 (0xFF, the 0xFE/0xFF
/// after a partial string) read as U+FFFD, as QEMU's JSON writer shows them.
pub(crate) fn stray_text(token: &[u8]) -> String {
    format!(
        "JSON parse error, stray '{}'",
        String::from_utf8_lossy(token)
    )
}

/// Parses one message as QEMU's JSON parser would, with its error texts
/// (`JSON parse error, ...`), including the duplicate keys and bad keywords that
/// `serde_json` alone would accept or word differently.
pub(crate) fn parse_message(bytes: &[u8]) -> Result<serde_json::Value, String> {
    let value: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return Err(json_error_text(bytes, &e)),
    };
    if let Err(e) = serde_json::from_slice::<NoDuplicateKeys>(bytes) {
        if e.to_string().starts_with("duplicate key") {
            return Err("JSON parse error, duplicate key".into());
        }
    }
    Ok(value)
}

/// Maps serde_json's parse errors to the texts of QEMU's `json-parser.c` where they
/// correspond.
fn json_error_text(bytes: &[u8], e: &serde_json::Error) -> String {
    if let Some(word) = bad_keyword(bytes) {
        return format!("JSON parse error, invalid keyword '{word}'");
    }
    let msg = e.to_string();
    let what = if e.is_eof() {
        "premature EOI"
    } else if msg.starts_with("key must be a string") {
        // QEMU parses the key as a value first: a token that is no value at all (`,`
        // `}` `]` `:`) is "expecting value"; a value that is not a string is this.
        match byte_at(bytes, e.line(), e.column()) {
            Some(b',' | b'}' | b']' | b':') => "expecting value",
            _ => "key is not a string in object",
        }
    } else if msg.starts_with("expected `:`") {
        "missing : in object pair"
    } else if msg.starts_with("expected `,` or `}`") {
        "expected separator in dict"
    } else if msg.starts_with("expected `,` or `]`") {
        "expected separator in list"
    } else if msg.starts_with("invalid escape") || msg.starts_with("invalid unicode") {
        "invalid escape sequence in string"
    } else {
        // Includes trailing text: QEMU parses a stream, so it is a second bad message.
        "expecting value"
    };
    format!("JSON parse error, {what}")
}

/// The byte at serde_json's 1-based line and column.
fn byte_at(bytes: &[u8], line: usize, column: usize) -> Option<u8> {
    let start = if line <= 1 {
        0
    } else {
        let mut seen = 1;
        let nl = bytes.iter().position(|&b| {
            if b == b'\n' {
                seen += 1;
            }
            seen == line
        })?;
        nl + 1
    };
    bytes.get(start + column.checked_sub(1)?).copied()
}

/// The first bare word outside strings that is not `true`, `false` or `null`.
fn bad_keyword(bytes: &[u8]) -> Option<String> {
    let mut in_str = false;
    let mut escape = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_str {
            if escape {
                escape = false;
            } else if b == b'\\' {
                escape = true;
            } else if b == b'"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_str = true;
        } else if b.is_ascii_alphabetic() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
                i += 1;
            }
            let word = &bytes[start..i];
            if !matches!(word, b"true" | b"false" | b"null") {
                return Some(String::from_utf8_lossy(word).into_owned());
            }
            continue;
        }
        i += 1;
    }
    None
}

/// Deserializes any JSON, failing on an object with a repeated key.
struct NoDuplicateKeys;

impl<'de> serde::Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDuplicateKeysVisitor)
    }
}

struct NoDuplicateKeysVisitor;

impl<'de> serde::de::Visitor<'de> for NoDuplicateKeysVisitor {
    type Value = NoDuplicateKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<NoDuplicateKeys, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_i64<E>(self, _: i64) -> Result<NoDuplicateKeys, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_u64<E>(self, _: u64) -> Result<NoDuplicateKeys, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_f64<E>(self, _: f64) -> Result<NoDuplicateKeys, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_str<E>(self, _: &str) -> Result<NoDuplicateKeys, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_unit<E>(self) -> Result<NoDuplicateKeys, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> Result<NoDuplicateKeys, A::Error> {
        while seq.next_element::<NoDuplicateKeys>()?.is_some() {}
        Ok(NoDuplicateKeys)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> Result<NoDuplicateKeys, A::Error> {
        let mut keys = std::collections::HashSet::new();
        while let Some(k) = map.next_key::<String>()? {
            if !keys.insert(k) {
                return Err(serde::de::Error::custom("duplicate key"));
            }
            map.next_value::<NoDuplicateKeys>()?;
        }
        Ok(NoDuplicateKeys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]], max: usize) -> Vec<Piece> {
        let mut s = JsonSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
        }
        out
    }

    fn msg(s: &str) -> Piece {
        Piece::Message(s.as_bytes().to_vec())
    }

    #[test]
    fn messages_without_newlines_and_split_across_chunks() {
        let got = split(
            &[
                b"{\"execute\": \"a\"}{\"exec",
                b"ute\": \"b\", \"x\": [1, {}]}",
            ],
            1000,
        );
        assert_eq!(
            got,
            vec![
                msg("{\"execute\": \"a\"}"),
                msg("{\"execute\": \"b\", \"x\": [1, {}]}")
            ]
        );
    }

    #[test]
    fn braces_inside_strings_do_not_count() {
        let got = split(&[br#"{"a": "}{\"", "b": "]"}"#], 1000);
        assert_eq!(got, vec![msg(r#"{"a": "}{\"", "b": "]"}"#)]);
    }

    #[test]
    fn single_quotes_become_json() {
        let got = split(&[br#"{'execute': 'it\'s "x"'}"#], 1000);
        assert_eq!(got, vec![msg(r#"{"execute": "it's \"x\""}"#)]);
        let v: serde_json::Value = match &got[0] {
            Piece::Message(m) => serde_json::from_slice(m).unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(v["execute"], "it's \"x\"");
    }

    #[test]
    fn scalars_and_malformed_input_are_emitted() {
        let got = split(&[b"\"str\"\n42\n{\"execute\": }\n]"], 1000);
        assert_eq!(
            got,
            vec![msg("\"str\""), msg("42"), msg("{\"execute\": }"), msg("]")]
        );
    }

    #[test]
    fn too_long_skips_to_newline() {
        let mut big = b"{\"a\": \"".to_vec();
        big.extend(std::iter::repeat_n(b'x', 100));
        big.extend_from_slice(b"\"}\n{\"ok\": 1}");
        let got = split(&[&big], 50);
        assert_eq!(got, vec![Piece::TooLong, msg("{\"ok\": 1}")]);
    }

    fn stray(s: &[u8]) -> Piece {
        Piece::Stray(s.to_vec())
    }

    /// The tokens and texts qemu-ga 10.0 reports (its lexer is QEMU's): found by
    /// sending these bytes to a real qemu-ga.
    #[test]
    fn impossible_bytes_reset_the_parser_as_qemu_does() {
        assert_eq!(split(&[b"\xff"], 1000), vec![stray(b"\xff")]);
        assert_eq!(
            split(&[b"{\"execute\": \"guest-pi", b"\xff{\"id\": 1}"], 1000),
            vec![stray(b"\"guest-pi\xff"), msg("{\"id\": 1}")]
        );
        assert_eq!(
            split(&[b"{'a': 'it\\'s \"x\xff"], 1000),
            vec![stray(b"'it\\'s \"x\xff")]
        );
        assert_eq!(
            split(&[b"{\"id\": -1.5e\xff"], 1000),
            vec![stray(b"-1.5e\xff")]
        );
        assert_eq!(split(&[b"{\"id\": 12\xff"], 1000), vec![stray(b"\xff")]);
        assert_eq!(split(&[b"{\"a\": tru\xfe"], 1000), vec![stray(b"\xfe")]);
        // Each 0xFF is an error of its own.
        assert_eq!(
            split(&[b"\xff\xff"], 1000),
            vec![stray(b"\xff"), stray(b"\xff")]
        );
        // A control character ends a string too; recovery then skips to the `}`.
        assert_eq!(
            split(&[b"{\"a\": \"x\ny\"}"], 1000),
            vec![stray(b"\"x\n"), msg("}")]
        );
        // Recovery skips everything up to a bracket or a control character.
        assert_eq!(
            split(&[b"%% not json %%\n{\"id\": 2}"], 1000),
            vec![stray(b"%"), msg("{\"id\": 2}")]
        );
        assert_eq!(
            stray_text(b"\"guest-pi\xff"),
            "JSON parse error, stray '\"guest-pi\u{FFFD}'"
        );
        assert_eq!(stray_text(b"\x01"), "JSON parse error, stray '\u{1}'");
    }

    proptest::proptest! {
        /// Cutting the same input anywhere gives the same messages.
        #[test]
        fn splits_do_not_matter(cuts in proptest::collection::vec(0usize..200, 0..8)) {
            let input: &[u8] = br#"{"execute": "a", "arguments": {"s": "}{]['\"", 'q': 'it\'s'}} [1, [2]]
                "str" {'x': "y"}{"id": {"n": [null, true]}}"#;
            let whole = split(&[input], 1000);
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c % (input.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in points {
                chunks.push(&input[last..p]);
                last = p;
            }
            chunks.push(&input[last..]);
            proptest::prop_assert_eq!(split(&chunks, 1000), whole);
        }

        /// Arbitrary bytes never panic, and nothing longer than the limit comes out.
        #[test]
        fn arbitrary_bytes_are_bounded(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            for piece in split(&[&bytes], 50) {
                if let Piece::Message(m) = piece {
                    proptest::prop_assert!(m.len() <= 51);
                }
            }
        }
    }
}
