//! What `qmp shell` makes of a line: qmp-shell's `command key=value ...` shorthand
//! (its tokenizer, its value rules, its dotted keys, its `transaction(` sub-shell)
//! and raw JSON requests.
//!
//! Where this differs from qmp-shell (scripts/qmp/qmp-shell, `qemu.qmp.qmp_shell`),
//! it accepts more, never less:
//! - a value in double or single quotes (`id="1"`) is that string, unquoted (qmp-shell
//!   sends the quotes as part of the string, so a string that looks like a number
//!   cannot be given at all);
//! - a JSON number with a fraction or an exponent (`1.5`) is a number, and `null` is
//!   null (qmp-shell sends both as strings, which QEMU refuses where a number or null
//!   is wanted);
//! - a quote left open is an error naming it (qmp-shell silently drops the quote).

use serde_json::{Map, Value};

/// One request for the peer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Request {
    pub(crate) name: String,
    pub(crate) args: Map<String, Value>,
    /// `exec-oob` rather than `execute` (raw JSON input only).
    pub(crate) oob: bool,
}

impl Request {
    /// The request as it goes on the wire (without the id the client adds), for
    /// `--verbose`.
    pub(crate) fn to_json(&self) -> Value {
        let mut m = Map::new();
        let key = if self.oob { "exec-oob" } else { "execute" };
        m.insert(key.into(), Value::String(self.name.clone()));
        if !self.args.is_empty() {
            m.insert("arguments".into(), Value::Object(self.args.clone()));
        }
        Value::Object(m)
    }
}

/// The format reminder qmp-shell prints after a parse error.
pub(crate) const FORMAT: &str =
    "command format: <command-name> [arg-name1=arg1] ... [arg-nameN=argN], or a JSON \
     request {\"execute\": NAME, \"arguments\": {...}}";

/// The shorthand's state: qmp-shell's transaction sub-shell (`transaction(` ... `)`)
/// gathers actions over several lines.
#[derive(Debug, Default)]
pub(crate) struct Parser {
    actions: Option<Vec<Value>>,
}

impl Parser {
    /// Whether a `transaction(` is open (the prompt says `TRANS> `).
    pub(crate) fn in_transaction(&self) -> bool {
        self.actions.is_some()
    }

    /// Drops an open transaction (Ctrl-C).
    pub(crate) fn cancel(&mut self) -> bool {
        self.actions.take().is_some()
    }

    /// Reads one line: a request to send, or `None` (an empty line, or an action
    /// gathered for an open transaction).
    ///
    /// # Errors
    /// What is wrong with the line, in qmp-shell's words where it has them.
    pub(crate) fn line(&mut self, line: &str) -> Result<Option<Request>, String> {
        let trimmed = line.trim();
        if trimmed.starts_with('{') && !self.in_transaction() {
            return raw_json(trimmed).map(Some);
        }
        let mut tokens = tokens(line)?;
        if tokens.first().map(String::as_str) == Some("transaction(") {
            self.actions = Some(Vec::new());
            tokens.remove(0);
        }
        if tokens.first().map(String::as_str) == Some(")") && self.actions.is_some() {
            if tokens.len() > 1 {
                return Err("Unexpected input after close of Transaction sub-shell".into());
            }
            let actions = self.actions.take().unwrap_or_default();
            let mut args = Map::new();
            args.insert("actions".into(), Value::Array(actions));
            return Ok(Some(Request {
                name: "transaction".into(),
                args,
                oob: false,
            }));
        }
        let Some((first, rest)) = tokens.split_first() else {
            return Ok(None);
        };
        if let Some(actions) = &mut self.actions {
            let (rest, finalize) = match rest.split_last() {
                Some((last, init)) if last == ")" => (init, true),
                _ => (rest, false),
            };
            let mut data = Map::new();
            cli_expr(rest, &mut data)?;
            let mut action = Map::new();
            action.insert("type".into(), Value::String(first.clone()));
            action.insert("data".into(), Value::Object(data));
            actions.push(Value::Object(action));
            return if finalize { self.line(")") } else { Ok(None) };
        }
        let mut args = Map::new();
        cli_expr(rest, &mut args)?;
        Ok(Some(Request {
            name: first.clone(),
            args,
            oob: false,
        }))
    }
}

/// A raw JSON request: `{"execute": NAME, "arguments": {...}}` (or `exec-oob`). An
/// `id` is accepted and ignored: the client numbers its requests itself.
fn raw_json(text: &str) -> Result<Request, String> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| format!("the request is not valid JSON: {e}"))?;
    let Value::Object(mut m) = v else {
        return Err("a JSON request must be an object".into());
    };
    let (name, oob) = match (m.remove("execute"), m.remove("exec-oob")) {
        (Some(Value::String(n)), None) => (n, false),
        (None, Some(Value::String(n))) => (n, true),
        (Some(_), Some(_)) => {
            return Err("a JSON request has `execute` or `exec-oob`, not both".into())
        }
        (None, None) => return Err("a JSON request needs `execute` with the command name".into()),
        _ => return Err("the command name (`execute`) must be a string".into()),
    };
    let args = match m.remove("arguments") {
        None => Map::new(),
        Some(Value::Object(a)) => a,
        Some(_) => return Err(format!("the arguments of `{name}` must be a JSON object")),
    };
    m.remove("id");
    if let Some(other) = m.keys().next() {
        return Err(format!(
            "unexpected member `{other}` in the JSON request (it takes `execute` or \
             `exec-oob`, `arguments` and `id`)"
        ));
    }
    Ok(Request { name, args, oob })
}

/// Splits a line as qmp-shell's `argument_regex` does: runs of non-blank characters,
/// in which a `"…"` or `'…'` section (with backslash escapes) may hold blanks. The
/// quotes stay in the token.
///
/// # Errors
/// A quote that is never closed.
pub(crate) fn tokens(line: &str) -> Result<Vec<String>, String> {
    let spans = token_spans(line);
    let mut out = Vec::with_capacity(spans.len());
    for span in spans {
        let text = &line[span.start..span.end];
        if span.open_quote {
            return Err(format!("a quote is never closed in `{text}`"));
        }
        out.push(text.to_owned());
    }
    Ok(out)
}

/// Where a token is in its line, and whether it ends inside a quote.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Span {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) open_quote: bool,
}

/// The tokens' places in `line` ([`tokens`]); a quote left open runs to the end of
/// the line (completion reads a line being typed).
pub(crate) fn token_spans(line: &str) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut chars = line.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut end = start;
        let mut quote: Option<char> = None;
        while let Some(&(i, c)) = chars.peek() {
            match quote {
                None if c.is_whitespace() => break,
                None if c == '"' || c == '\'' => quote = Some(c),
                None => {}
                Some(_) if c == '\\' => {
                    chars.next();
                    end = i + 1;
                    if let Some(&(j, e)) = chars.peek() {
                        end = j + e.len_utf8();
                        chars.next();
                    }
                    continue;
                }
                Some(q) if c == q => quote = None,
                Some(_) => {}
            }
            end = i + c.len_utf8();
            chars.next();
        }
        spans.push(Span {
            start,
            end,
            open_quote: quote.is_some(),
        });
    }
    spans
}

/// qmp-shell's `_cli_expr`: `key=value` tokens into `parent`, a dotted key making
/// nested objects (`a.b=1` is `{"a": {"b": 1}}`).
///
/// # Errors
/// A token without `=`, a key set twice, a key used both as a value and as an object.
pub(crate) fn cli_expr(tokens: &[String], parent: &mut Map<String, Value>) -> Result<(), String> {
    for arg in tokens {
        let Some((key, val)) = arg.split_once('=') else {
            return Err(format!("Expected a key=value pair, got '{arg}'"));
        };
        let value = parse_value(val);
        let path: Vec<&str> = key.split('.').collect();
        let (last, init) = path.split_last().unwrap_or((&"", &[]));
        let mut obj = &mut *parent;
        for (depth, seg) in init.iter().enumerate() {
            let slot = obj
                .entry((*seg).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            obj = match slot {
                Value::Object(o) => o,
                _ => {
                    return Err(format!(
                        "Cannot use \"{}\" as both leaf and non-leaf key",
                        path[..=depth].join(".")
                    ))
                }
            };
        }
        match obj.get(*last) {
            Some(Value::Object(_)) => {
                return Err(format!(
                    "Cannot use \"{key}\" as both leaf and non-leaf key"
                ))
            }
            Some(_) => return Err(format!("Cannot set \"{key}\" multiple times")),
            None => {
                obj.insert((*last).to_owned(), value);
            }
        }
    }
    Ok(())
}

/// qmp-shell's `_parse_value`: an integer (Python's `int()`), `true`/`false` in any
/// case, JSON or a Python literal for a value starting with `{` or `[`, a string
/// otherwise; plus this shell's additions (module docs): quoted strings, JSON
/// numbers, `null`.
pub(crate) fn parse_value(val: &str) -> Value {
    if let Some(i) = python_int(val) {
        return i;
    }
    match val.to_ascii_lowercase().as_str() {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    if val == "null" {
        return Value::Null;
    }
    if val.starts_with('{') || val.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Value>(val) {
            return v;
        }
        if let Some(v) = python_literal(val) {
            return v;
        }
        return Value::String(val.to_owned());
    }
    if val.starts_with('"') || val.starts_with('\'') {
        if let Some(v @ Value::String(_)) = python_literal(val) {
            return v;
        }
    }
    if val.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        if let Ok(v @ Value::Number(_)) = serde_json::from_str::<Value>(val) {
            return v;
        }
    }
    Value::String(val.to_owned())
}

/// Python's `int(val)` for what a token can hold: a sign, then digits with single
/// underscores between them (leading zeros allowed). `None` beyond 64 bits (sent as
/// a string then, which QEMU refuses with the member's name).
fn python_int(val: &str) -> Option<Value> {
    let (neg, digits) = match val.as_bytes().first()? {
        b'-' => (true, &val[1..]),
        b'+' => (false, &val[1..]),
        _ => (false, val),
    };
    let b = digits.as_bytes();
    if b.is_empty()
        || !b[0].is_ascii_digit()
        || !b[b.len() - 1].is_ascii_digit()
        || digits.contains("__")
        || !b.iter().all(|c| c.is_ascii_digit() || *c == b'_')
    {
        return None;
    }
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    if neg {
        format!("-{clean}").parse::<i64>().ok().map(Value::from)
    } else {
        clean.parse::<u64>().ok().map(Value::from)
    }
}

/// A Python literal (what qmp-shell's `ast.literal_eval` of its `FuzzyJSON` takes
/// here): dicts with string keys, lists, tuples (as arrays), strings in either
/// quote, numbers, `True`/`False`/`None` and JSON's `true`/`false`/`null`.
pub(crate) fn python_literal(text: &str) -> Option<Value> {
    let mut p = Literal {
        chars: text.chars().collect(),
        at: 0,
    };
    let v = p.value(0)?;
    p.blanks();
    (p.at == p.chars.len()).then_some(v)
}

struct Literal {
    chars: Vec<char>,
    at: usize,
}

/// Nesting beyond this is refused rather than risk the stack on hostile input.
const MAX_DEPTH: usize = 64;

impl Literal {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn blanks(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.blanks();
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.blanks();
        match self.peek()? {
            '{' => {
                self.at += 1;
                let mut m = Map::new();
                loop {
                    if self.eat('}') {
                        return Some(Value::Object(m));
                    }
                    let Value::String(k) = self.value(depth + 1)? else {
                        return None;
                    };
                    if !self.eat(':') {
                        return None;
                    }
                    let v = self.value(depth + 1)?;
                    m.insert(k, v);
                    if !self.eat(',') {
                        return self.eat('}').then_some(Value::Object(m));
                    }
                }
            }
            open @ ('[' | '(') => {
                let close = if open == '[' { ']' } else { ')' };
                self.at += 1;
                let mut a = Vec::new();
                loop {
                    if self.eat(close) {
                        return Some(Value::Array(a));
                    }
                    a.push(self.value(depth + 1)?);
                    if !self.eat(',') {
                        return self.eat(close).then_some(Value::Array(a));
                    }
                }
            }
            q @ ('"' | '\'') => {
                self.at += 1;
                self.string(q).map(Value::String)
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => self.number(),
            c if c.is_alphabetic() || c == '_' => {
                let start = self.at;
                while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    self.at += 1;
                }
                let word: String = self.chars[start..self.at].iter().collect();
                match word.as_str() {
                    "True" | "true" => Some(Value::Bool(true)),
                    "False" | "false" => Some(Value::Bool(false)),
                    "None" | "null" => Some(Value::Null),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    fn string(&mut self, quote: char) -> Option<String> {
        let mut s = String::new();
        loop {
            let c = self.peek()?;
            self.at += 1;
            if c == quote {
                return Some(s);
            }
            if c != '\\' {
                s.push(c);
                continue;
            }
            let e = self.peek()?;
            self.at += 1;
            match e {
                'n' => s.push('\n'),
                't' => s.push('\t'),
                'r' => s.push('\r'),
                'b' => s.push('\u{8}'),
                'f' => s.push('\u{c}'),
                '0' => s.push('\0'),
                '\\' | '\'' | '"' | '/' => s.push(e),
                'x' | 'u' | 'U' => {
                    let n = match e {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let hex: String = self.chars.get(self.at..self.at + n)?.iter().collect();
                    self.at += n;
                    s.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                // Python keeps an unknown escape as written.
                other => {
                    s.push('\\');
                    s.push(other);
                }
            }
        }
    }

    fn number(&mut self) -> Option<Value> {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | '_' | 'e' | 'E'))
        {
            self.at += 1;
        }
        let text: String = self.chars[start..self.at]
            .iter()
            .filter(|c| **c != '_')
            .collect();
        if let Ok(i) = text.parse::<i64>() {
            return Some(Value::from(i));
        }
        if let Ok(u) = text.parse::<u64>() {
            return Some(Value::from(u));
        }
        let f: f64 = text.parse().ok()?;
        serde_json::Number::from_f64(f).map(Value::Number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(line: &str) -> Result<Option<Request>, String> {
        Parser::default().line(line)
    }

    fn args(line: &str) -> Value {
        Value::Object(parse(line).unwrap().unwrap().args)
    }

    #[test]
    fn values_follow_qmp_shell() {
        assert_eq!(parse_value("12"), json!(12));
        assert_eq!(parse_value("-3"), json!(-3));
        assert_eq!(parse_value("+1_000"), json!(1000));
        assert_eq!(parse_value("007"), json!(7));
        assert_eq!(parse_value("TRUE"), json!(true));
        assert_eq!(parse_value("False"), json!(false));
        assert_eq!(parse_value("/machine"), json!("/machine"));
        assert_eq!(parse_value("1_"), json!("1_"));
        assert_eq!(parse_value(r#"{"a": [1, 2]}"#), json!({"a": [1, 2]}));
        assert_eq!(
            parse_value("{'key':'value','n':None,'t':True,'l':(1,2.5)}"),
            json!({"key": "value", "n": null, "t": true, "l": [1, 2.5]})
        );
        assert_eq!(parse_value("[true,null]"), json!([true, null]));
        // Not a literal: sent as written, as qmp-shell does.
        assert_eq!(parse_value("{oops"), json!("{oops"));
        // This shell's additions.
        assert_eq!(parse_value("1.5"), json!(1.5));
        assert_eq!(parse_value("null"), Value::Null);
        assert_eq!(parse_value("\"42\""), json!("42"));
        assert_eq!(parse_value("'a b'"), json!("a b"));
        assert_eq!(parse_value("99999999999999999999999"), json!(1e23));
        assert_eq!(parse_value("1.2.3"), json!("1.2.3"));
        // Deep nesting is refused, not a stack overflow.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(python_literal(&deep), None);
    }

    #[test]
    fn commands_and_dotted_keys() {
        let r = parse("qom-list path=/machine").unwrap().unwrap();
        assert_eq!(r.name, "qom-list");
        assert_eq!(Value::Object(r.args), json!({"path": "/machine"}));
        assert_eq!(
            args("blockdev-add driver=null-co node-name=n0 cache.direct=true cache.no-flush=false"),
            json!({"driver": "null-co", "node-name": "n0",
                   "cache": {"direct": true, "no-flush": false}})
        );
        assert_eq!(
            args(r#"x s="a b c" t='d e'"#),
            json!({"s": "a b c", "t": "d e"})
        );
        assert_eq!(parse("   ").unwrap(), None);
        let e = parse("qom-list path").unwrap_err();
        assert_eq!(e, "Expected a key=value pair, got 'path'");
        let e = parse("x a=1 a=2").unwrap_err();
        assert_eq!(e, "Cannot set \"a\" multiple times");
        let e = parse("x a=1 a.b=2").unwrap_err();
        assert!(e.contains("both leaf and non-leaf"), "{e}");
        let e = parse("x a.b=1 a=2").unwrap_err();
        assert!(e.contains("both leaf and non-leaf"), "{e}");
        let e = parse("x a=\"b c").unwrap_err();
        assert!(e.contains("never closed"), "{e}");
    }

    #[test]
    fn raw_json_requests() {
        let r = parse(r#" {"execute": "qom-list", "arguments": {"path": "/"}, "id": 7}"#)
            .unwrap()
            .unwrap();
        assert_eq!(r.name, "qom-list");
        assert!(!r.oob);
        assert_eq!(
            r.to_json(),
            json!({"execute": "qom-list", "arguments": {"path": "/"}})
        );
        assert!(parse(r#"{"exec-oob": "x-oob-test"}"#).unwrap().unwrap().oob);
        for (bad, says) in [
            ("{", "not valid JSON"),
            (r#"{"arguments": {}}"#, "needs `execute`"),
            (r#"{"execute": 1}"#, "must be a string"),
            (
                r#"{"execute": "a", "arguments": []}"#,
                "must be a JSON object",
            ),
            (
                r#"{"execute": "a", "argumnets": {}}"#,
                "unexpected member `argumnets`",
            ),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn transactions_gather_actions() {
        let mut p = Parser::default();
        assert_eq!(p.line("transaction(").unwrap(), None);
        assert!(p.in_transaction());
        assert_eq!(
            p.line("block-dirty-bitmap-add node=d0 name=b1").unwrap(),
            None
        );
        assert_eq!(
            p.line("block-dirty-bitmap-clear node=d0 name=b0").unwrap(),
            None
        );
        let r = p.line(")").unwrap().unwrap();
        assert!(!p.in_transaction());
        assert_eq!(r.name, "transaction");
        assert_eq!(
            Value::Object(r.args),
            json!({"actions": [
                {"type": "block-dirty-bitmap-add", "data": {"node": "d0", "name": "b1"}},
                {"type": "block-dirty-bitmap-clear", "data": {"node": "d0", "name": "b0"}}
            ]})
        );
        let r = p.line("transaction( abort )").unwrap().unwrap();
        assert_eq!(
            Value::Object(r.args),
            json!({"actions": [{"type": "abort", "data": {}}]})
        );
        p.line("transaction(").unwrap();
        assert!(p.line(") x").is_err());
        assert!(p.cancel());
        assert!(!p.in_transaction());
    }

    #[test]
    fn spans_mark_open_quotes() {
        let s = token_spans(r#"a  b="c d" e='f"#);
        assert_eq!(s.len(), 3);
        assert_eq!((s[1].start, s[1].end, s[1].open_quote), (3, 10, false));
        assert!(s[2].open_quote);
        assert_eq!(
            tokens(r#"x k="a\" b""#).unwrap(),
            vec!["x".to_owned(), r#"k="a\" b""#.to_owned()]
        );
    }
}
