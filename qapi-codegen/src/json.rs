//! The JSON the generator reads and writes: `query-qmp-schema` output, the
//! `@qapi-codegen` markers of a snapshot, and the introspection data it writes.
//!
//! A small JSON value with a strict RFC 8259 parser and a compact writer, instead of
//! `serde_json`: the generator runs in the bindings' build script, and a build
//! dependency on `serde_json` is compiled a second time, unoptimised, for the build
//! host in a release build (cargo's `build-override`), ~5 CPU-seconds of a clean
//! release build of the bindings (issue 3's build-time figures). The generated code
//! itself uses `serde_json`, through `qmp`.
//!
//! It behaves as `serde_json::Value` does where the generator could notice: numbers
//! keep integers exact (`u64`, `i64`) and others as `f64`; an object is a map sorted by
//! key in which a repeated key keeps its last value; nesting deeper than
//! [`MAX_DEPTH`] is an error rather than a stack overflow.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

/// An object: keys in sorted order.
pub type Map = BTreeMap<String, Value>;

/// Deepest nesting of arrays and objects [`parse`] accepts (as `serde_json`).
pub const MAX_DEPTH: usize = 128;

/// A JSON value.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Value {
    /// `null`.
    #[default]
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number.
    Number(Number),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object.
    Object(Map),
}

/// A JSON number: an integer that fits `u64` or `i64` is kept exactly, any other
/// number is an `f64`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Number(N);

#[derive(Clone, Copy, Debug, PartialEq)]
enum N {
    PosInt(u64),
    NegInt(i64),
    Float(f64),
}

impl Number {
    /// The number as an `i64`, if it is an integer in range.
    pub fn as_i64(&self) -> Option<i64> {
        match self.0 {
            N::PosInt(n) => i64::try_from(n).ok(),
            N::NegInt(n) => Some(n),
            N::Float(_) => None,
        }
    }

    /// The number as a `u64`, if it is a non-negative integer in range.
    pub fn as_u64(&self) -> Option<u64> {
        match self.0 {
            N::PosInt(n) => Some(n),
            N::NegInt(_) | N::Float(_) => None,
        }
    }

    /// The number as an `f64` (possibly rounded).
    pub fn as_f64(&self) -> f64 {
        match self.0 {
            N::PosInt(n) => n as f64,
            N::NegInt(n) => n as f64,
            N::Float(f) => f,
        }
    }

    /// A number from an `f64`; `None` for NaN and infinities, which JSON cannot hold.
    pub fn from_f64(f: f64) -> Option<Number> {
        f.is_finite().then_some(Number(N::Float(f)))
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            N::PosInt(n) => write!(f, "{n}"),
            N::NegInt(n) => write!(f, "{n}"),
            // `Debug` keeps a fraction or exponent (`1.0`, `1e300`), so the number
            // reads back as a float.
            N::Float(x) => write!(f, "{x:?}"),
        }
    }
}

impl Value {
    /// The member `key` of an object; `None` for a missing key or a non-object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_object().and_then(|m| m.get(key))
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&Vec<Value>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The members, if this is an object.
    pub fn as_object(&self) -> Option<&Map> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The number as an `i64`, if this is an integer in range.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    /// True for `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Value {
        match u64::try_from(n) {
            Ok(p) => Value::Number(Number(N::PosInt(p))),
            Err(_) => Value::Number(Number(N::NegInt(n))),
        }
    }
}

impl From<u64> for Value {
    fn from(n: u64) -> Value {
        Value::Number(Number(N::PosInt(n)))
    }
}

impl From<Vec<Value>> for Value {
    fn from(a: Vec<Value>) -> Value {
        Value::Array(a)
    }
}

impl From<Map> for Value {
    fn from(m: Map) -> Value {
        Value::Object(m)
    }
}

/// Compact JSON, as `serde_json::to_string` writes it (`{"a":[1,true]}`).
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Number(n) => write!(f, "{n}"),
            Value::String(s) => write_string(f, s),
            Value::Array(items) => {
                f.write_char('[')?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_char(']')
            }
            Value::Object(map) => {
                f.write_char('{')?;
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write_string(f, k)?;
                    write!(f, ":{v}")?;
                }
                f.write_char('}')
            }
        }
    }
}

/// `s` as a JSON string literal, quotes included.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    // Writing to a String cannot fail.
    let _ = write_string(&mut out, s);
    out
}

fn write_string(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let escape = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            '\u{8}' => "\\b",
            '\u{c}' => "\\f",
            c if c < ' ' => "",
            _ => continue,
        };
        w.write_str(&s[start..i])?;
        if escape.is_empty() {
            write!(w, "\\u{:04x}", c as u32)?;
        } else {
            w.write_str(escape)?;
        }
        start = i + c.len_utf8();
    }
    w.write_str(&s[start..])?;
    w.write_char('"')
}

/// Why [`parse`] rejected a text, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// 1-based line of the offending character (or of the end of the text).
    pub line: usize,
    /// 1-based column, in characters, of the offending character; the column after
    /// the last character for an unexpected end.
    pub column: usize,
    /// What is wrong, for example `expected value`.
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {} column {}",
            self.message, self.line, self.column
        )
    }
}

impl std::error::Error for Error {}

/// Parses one JSON value; whitespace may surround it, nothing else may follow.
///
/// # Errors
///
/// An [`Error`] with the line and column of the first thing that is not JSON.
pub fn parse(text: &str) -> Result<Value, Error> {
    let mut p = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    let value = p.value(0)?;
    p.skip_ws();
    if p.pos < p.bytes.len() {
        return Err(p.error_at(p.pos, "trailing characters"));
    }
    Ok(value)
}

struct Parser<'t> {
    text: &'t str,
    bytes: &'t [u8],
    pos: usize,
}

impl Parser<'_> {
    fn error_at(&self, pos: usize, message: &str) -> Error {
        let before = &self.text[..floor_char_boundary(self.text, pos)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Error {
            line,
            column: before[line_start..].chars().count() + 1,
            message: message.to_string(),
        }
    }

    fn eof(&self, what: &str) -> Error {
        self.error_at(self.bytes.len(), &format!("EOF while parsing {what}"))
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, Error> {
        self.skip_ws();
        let Some(&b) = self.bytes.get(self.pos) else {
            return Err(self.eof("a value"));
        };
        match b {
            b'n' => self.literal("null", Value::Null),
            b't' => self.literal("true", Value::Bool(true)),
            b'f' => self.literal("false", Value::Bool(false)),
            b'"' => self.string().map(Value::String),
            b'-' | b'0'..=b'9' => self.number(),
            b'[' | b'{' if depth >= MAX_DEPTH => {
                Err(self.error_at(self.pos, "recursion limit exceeded"))
            }
            b'[' => {
                self.pos += 1;
                self.array(depth + 1)
            }
            b'{' => {
                self.pos += 1;
                self.object(depth + 1)
            }
            _ => Err(self.error_at(self.pos, "expected value")),
        }
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, Error> {
        for (i, &want) in word.as_bytes().iter().enumerate() {
            match self.bytes.get(self.pos + i) {
                Some(&got) if got == want => {}
                Some(_) => return Err(self.error_at(self.pos + i, "expected value")),
                None => return Err(self.eof("a value")),
            }
        }
        self.pos += word.len();
        Ok(value)
    }

    /// The elements of a list; `pos` is after its `[`.
    fn array(&mut self, depth: usize) -> Result<Value, Error> {
        let mut items = Vec::new();
        if self.close(b']') {
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value(depth)?);
            if self.comma_or_close(b']', "a list")? {
                return Ok(Value::Array(items));
            }
        }
    }

    /// The members of an object; `pos` is after its `{`.
    fn object(&mut self, depth: usize) -> Result<Value, Error> {
        let mut map = Map::new();
        if self.close(b'}') {
            return Ok(Value::Object(map));
        }
        loop {
            self.skip_ws();
            match self.bytes.get(self.pos) {
                Some(b'"') => {}
                Some(_) => return Err(self.error_at(self.pos, "key must be a string")),
                None => return Err(self.eof("an object")),
            }
            let key = self.string()?;
            self.skip_ws();
            match self.bytes.get(self.pos) {
                Some(b':') => self.pos += 1,
                Some(_) => return Err(self.error_at(self.pos, "expected `:`")),
                None => return Err(self.eof("an object")),
            }
            let value = self.value(depth)?;
            map.insert(key, value);
            if self.comma_or_close(b'}', "an object")? {
                return Ok(Value::Object(map));
            }
        }
    }

    /// Consumes `close` (after whitespace) if it comes next: an empty list or object.
    fn close(&mut self, close: u8) -> bool {
        self.skip_ws();
        let found = self.bytes.get(self.pos) == Some(&close);
        if found {
            self.pos += 1;
        }
        found
    }

    /// After an element of a list or object (`inside`, for the error at the end of
    /// the text): consumes a `,` (false) or the closing `close` (true).
    fn comma_or_close(&mut self, close: u8, inside: &str) -> Result<bool, Error> {
        if self.close(close) {
            return Ok(true);
        }
        match self.bytes.get(self.pos) {
            Some(b',') => {
                self.pos += 1;
                Ok(false)
            }
            Some(_) => Err(self.error_at(
                self.pos,
                &format!("expected `,` or `{}`", char::from(close)),
            )),
            None => Err(self.eof(inside)),
        }
    }

    /// A string literal; `pos` is at its opening quote.
    fn string(&mut self) -> Result<String, Error> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let start = self.pos;
            while let Some(&b) = self.bytes.get(self.pos) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // `start` and `pos` are at ASCII bytes (or the end), so char boundaries.
            out.push_str(&self.text[start..self.pos]);
            match self.bytes.get(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let c = self.escape()?;
                    out.push(c);
                }
                Some(_) => {
                    return Err(
                        self.error_at(self.pos, "control character (\\u0000-\\u001F) in string")
                    )
                }
                None => return Err(self.eof("a string")),
            }
        }
    }

    /// The character of an escape; `pos` is after the backslash.
    fn escape(&mut self) -> Result<char, Error> {
        let Some(&b) = self.bytes.get(self.pos) else {
            return Err(self.eof("a string"));
        };
        self.pos += 1;
        Ok(match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let at = self.pos - 2;
                let hi = self.hex4()?;
                if !(0xD800..0xE000).contains(&hi) {
                    // Not a surrogate: a character of its own.
                    return char::from_u32(hi)
                        .ok_or_else(|| self.error_at(at, "invalid unicode code point"));
                }
                if hi >= 0xDC00 || self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                    return Err(self.error_at(at, "lone surrogate in hex escape"));
                }
                self.pos += 2;
                let lo = self.hex4()?;
                if !(0xDC00..0xE000).contains(&lo) {
                    return Err(self.error_at(at, "lone surrogate in hex escape"));
                }
                let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                char::from_u32(c).ok_or_else(|| self.error_at(at, "invalid unicode code point"))?
            }
            _ => return Err(self.error_at(self.pos - 1, "invalid escape")),
        })
    }

    fn hex4(&mut self) -> Result<u32, Error> {
        let mut n = 0;
        for _ in 0..4 {
            let Some(&b) = self.bytes.get(self.pos) else {
                return Err(self.eof("a string"));
            };
            let d = (b as char)
                .to_digit(16)
                .ok_or_else(|| self.error_at(self.pos, "invalid escape"))?;
            n = n * 16 + d;
            self.pos += 1;
        }
        Ok(n)
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Value, Error> {
        let start = self.pos;
        let negative = self.bytes[self.pos] == b'-';
        if negative {
            self.pos += 1;
        }
        let int_start = self.pos;
        match self.digits() {
            0 if self.pos >= self.bytes.len() => return Err(self.eof("a value")),
            0 => return Err(self.error_at(self.pos, "invalid number")),
            n if n > 1 && self.bytes[int_start] == b'0' => {
                return Err(self.error_at(int_start + 1, "invalid number"))
            }
            _ => {}
        }
        let mut float = false;
        if self.bytes.get(self.pos) == Some(&b'.') {
            float = true;
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.number_error());
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.pos) {
            float = true;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.number_error());
            }
        }
        let text = &self.text[start..self.pos];
        if !float {
            // `-0` is a float (`-0.0`), as in serde_json: `NegInt` holds only
            // negative numbers, so that equal integers compare equal.
            let exact = if negative {
                text.parse::<i64>().ok().filter(|&n| n < 0).map(N::NegInt)
            } else {
                text.parse::<u64>().ok().map(N::PosInt)
            };
            if let Some(n) = exact {
                return Ok(Value::Number(Number(n)));
            }
        }
        match text.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(Value::Number(Number(N::Float(x)))),
            _ => Err(self.error_at(start, "number out of range")),
        }
    }

    fn number_error(&self) -> Error {
        if self.pos >= self.bytes.len() {
            self.eof("a value")
        } else {
            self.error_at(self.pos, "invalid number")
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn parses_every_kind() {
        let v = parse(" {\"a\": [null, true, false, 0, -1, 1.5, \"x\"], \"b\": {}} ").unwrap();
        assert_eq!(
            v.to_string(),
            r#"{"a":[null,true,false,0,-1,1.5,"x"],"b":{}}"#
        );
        assert_eq!(v.get("a").and_then(|a| a.as_array()).map(Vec::len), Some(7));
        assert_eq!(v.get("b"), Some(&Value::Object(Map::new())));
        assert_eq!(v.get("c"), None);
    }

    #[test]
    fn integers_stay_exact_and_floats_stay_floats() {
        let v =
            parse("[18446744073709551615, -9223372036854775808, 18446744073709551616, 1e2, 1.0]")
                .unwrap();
        let a = v.as_array().unwrap();
        assert_eq!(a[0], Value::from(u64::MAX));
        assert_eq!(a[1], Value::from(i64::MIN));
        assert_eq!(a[2].to_string(), "1.8446744073709552e19");
        assert_eq!(a[3].to_string(), "100.0");
        assert_eq!(a[4].to_string(), "1.0");
        assert_eq!(parse(&a[2].to_string()).unwrap(), a[2]);
        assert_eq!(parse("-0").unwrap().to_string(), "-0.0");
        assert_eq!(parse("0").unwrap(), Value::from(0_i64));
    }

    #[test]
    fn strings_escape_and_unescape() {
        let v = parse(r#""a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00\u0001""#).unwrap();
        assert_eq!(v.as_str(), Some("a\"b\\c/d\u{8}\u{c}\n\r\té😀\u{1}"));
        assert_eq!(v.to_string(), r#""a\"b\\c/d\b\f\n\r\té😀\u0001""#);
        assert_eq!(parse(&v.to_string()).unwrap(), v);
        assert_eq!(quote("é\""), "\"é\\\"\"");
    }

    #[test]
    fn last_duplicate_key_wins() {
        let v = parse(r#"{"a": 1, "a": 2}"#).unwrap();
        assert_eq!(v.get("a"), Some(&Value::from(2_i64)));
    }

    #[test]
    fn errors_say_what_and_where() {
        assert_eq!(err(""), "EOF while parsing a value at line 1 column 1");
        assert_eq!(err("x"), "expected value at line 1 column 1");
        assert_eq!(err("[1,\n 2,,]"), "expected value at line 2 column 4");
        assert_eq!(err("{\"a\" 1}"), "expected `:` at line 1 column 6");
        assert_eq!(err("{1: 2}"), "key must be a string at line 1 column 2");
        assert_eq!(err("[1] 2"), "trailing characters at line 1 column 5");
        assert_eq!(err("[1"), "EOF while parsing a list at line 1 column 3");
        assert_eq!(
            err("\"é\u{1}\""),
            "control character (\\u0000-\\u001F) in string at line 1 column 3"
        );
        assert_eq!(
            err(r#""\ud800""#),
            "lone surrogate in hex escape at line 1 column 2"
        );
        assert_eq!(err(r#""\x""#), "invalid escape at line 1 column 3");
        assert_eq!(err("01"), "invalid number at line 1 column 2");
        assert_eq!(err("1."), "EOF while parsing a value at line 1 column 3");
        assert_eq!(err("-"), "EOF while parsing a value at line 1 column 2");
        assert_eq!(err("1e999"), "number out of range at line 1 column 1");
        assert_eq!(err("tru"), "EOF while parsing a value at line 1 column 4");
        assert_eq!(err("nul!"), "expected value at line 1 column 4");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(&ok).is_ok());
        let deep = "[".repeat(100_000);
        assert_eq!(
            err(&deep),
            format!(
                "recursion limit exceeded at line 1 column {}",
                MAX_DEPTH + 1
            )
        );
    }

    #[test]
    fn agrees_with_serde_json_on_what_is_json() {
        // Texts near the edges of the grammar: each is accepted by both or by neither.
        for text in [
            "0",
            "-0",
            "-0.0e+1",
            "1E5",
            "1e-5",
            ".5",
            "+1",
            "1.e5",
            "0x1",
            "[1,]",
            "{\"a\":1,}",
            "[] []",
            "\u{feff}1",
            "\"\\u0000\"",
            "\"\t\"",
            "  null  ",
            "NaN",
            "[01]",
            "\"\\uDC00\"",
            "\"\\uD800\\u0041\"",
            "{\"a\"}",
            "[\"\u{7f}\"]",
        ] {
            let ours = parse(text).is_ok();
            let theirs = serde_json::from_str::<serde_json::Value>(text).is_ok();
            assert_eq!(ours, theirs, "{text:?}");
        }
    }
}
