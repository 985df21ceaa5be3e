//! The QAPI schema parser: QEMU's `QAPISchemaParser`.
//!
//! Turns each file into expressions (JSON-like [`Value`] trees with the line they start
//! on) and doc comment blocks, and processes the `include` and `pragma` directives.
//! Shape checks of the expressions are left to [`super::expr`].

use std::collections::HashSet;
use std::io;
use std::sync::Arc;

use super::doc::QapiDoc;
use super::error::SchemaError;
use super::lexer::{LexError, Lexer, Tok};
use super::marker::{self, Marker, Marks, ModuleMark};
use super::paths;
use super::source::{Info, Sources};
use crate::model::Pragma;

/// How deeply `{`/`[` may nest before we give up (QEMU would overflow Python's stack).
pub(crate) const MAX_NESTING: usize = 256;
/// How deeply `include` directives may nest.
pub(crate) const MAX_INCLUDE_DEPTH: usize = 128;
/// The largest source file we read.
pub(crate) const MAX_FILE_SIZE: usize = 256 << 20;

/// A parsed value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Str(String),
    Bool(bool),
    List(Vec<Value>),
    Dict(Dict),
}

impl Value {
    /// Python truthiness.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Str(s) => !s.is_empty(),
            Value::Bool(b) => *b,
            Value::List(l) => !l.is_empty(),
            Value::Dict(d) => !d.0.is_empty(),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// A JSON object, keys in source order.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Dict(pub Vec<(String, Value)>);

impl Dict {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    pub fn contains(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// One top-level expression as the parser delivers it.
#[derive(Debug)]
pub(crate) enum ParsedExpr {
    /// `{ 'include': ... }`, with the file name joined to the includer's folder.
    Include { fname: String, info: Info },
    /// Anything else, with its doc comment block (index into the docs) and what the
    /// `qapi-codegen` markers before it say.
    Def {
        dict: Dict,
        info: Info,
        doc: Option<usize>,
        /// `None` when no marker applies (always, in QEMU's sources).
        marks: Option<Box<Marks>>,
    },
}

/// Reads a file: the caller-supplied loader.
pub(crate) type Loader<'l> = dyn FnMut(&str) -> io::Result<Vec<u8>> + 'l;

/// State shared by the parsers of all files of one schema.
pub(crate) struct ParseCtx<'l> {
    pub sources: Sources,
    pub exprs: Vec<ParsedExpr>,
    pub docs: Vec<QapiDoc>,
    pub pragma: Pragma,
    pub cwd: String,
    /// Read the legacy dialect (see `legacy.rs`).
    pub legacy: bool,
    /// Doc comments that cannot be understood are dropped with a warning instead of
    /// failing the schema (see [`super::DocMode`]).
    pub tolerant_docs: bool,
    /// The doc comments dropped, each with what was wrong and where.
    pub warnings: Vec<SchemaError>,
    /// The newest `Since: X.Y` in the comments (read only with `tolerant_docs`).
    pub newest_since: Option<(u32, u32)>,
    included: HashSet<String>,
    /// `os.path.abspath` of each file in `sources.files`, for the inclusion-loop check.
    abs_names: Vec<String>,
    loader: &'l mut Loader<'l>,
}

/// Python's `OSError.strerror` for an I/O error (Rust appends ` (os error N)`).
pub(crate) fn strerror(e: &io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) if s.ends_with(')') => s[..i].to_owned(),
        _ => s,
    }
}

/// Why a file could not be turned into text.
pub(crate) enum ReadError {
    Io(io::Error),
    Other(String),
}

impl ReadError {
    pub fn strerror(&self) -> String {
        match self {
            ReadError::Io(e) => strerror(e),
            ReadError::Other(s) => s.clone(),
        }
    }
}

impl<'l> ParseCtx<'l> {
    pub fn new(cwd: String, loader: &'l mut Loader<'l>) -> Self {
        ParseCtx {
            sources: Sources::default(),
            exprs: Vec::new(),
            docs: Vec::new(),
            pragma: Pragma::default(),
            cwd,
            legacy: false,
            tolerant_docs: false,
            warnings: Vec::new(),
            newest_since: None,
            included: HashSet::new(),
            abs_names: Vec::new(),
            loader,
        }
    }

    fn read(&mut self, fname: &str) -> Result<String, ReadError> {
        let bytes = (self.loader)(fname).map_err(ReadError::Io)?;
        if bytes.len() > MAX_FILE_SIZE {
            return Err(ReadError::Other(format!(
                "file too large ({} bytes, limit {})",
                bytes.len(),
                MAX_FILE_SIZE
            )));
        }
        String::from_utf8(bytes).map_err(|e| {
            ReadError::Other(format!(
                "invalid UTF-8 at byte offset {}",
                e.utf8_error().valid_up_to()
            ))
        })
    }

    /// Parse `fname` (and what it includes). `Err(Ok(e))` is a schema error;
    /// `Err(Err(e))` means `fname` itself could not be read.
    pub fn parse_file(
        &mut self,
        fname: &str,
        parent: Option<Info>,
        depth: usize,
    ) -> Result<(), Result<SchemaError, ReadError>> {
        self.included.insert(paths::abspath(fname, &self.cwd));
        let mut src = self.read(fname).map_err(Err)?;
        if !src.ends_with('\n') {
            src.push('\n');
        }
        if self.tolerant_docs {
            self.newest_since = self.newest_since.max(newest_since(&src));
        }
        let name: Arc<str> = Arc::from(fname);
        let file = self.sources.add_file(name, parent);
        self.abs_names.push(paths::abspath(fname, &self.cwd));
        let mut p = FileParser {
            lx: Lexer::new(&src, Info { file, line: 1 }),
            ctx: self,
            fname,
            depth,
        };
        p.parse().map_err(Ok)
    }
}

/// The parser of one file.
pub(crate) struct FileParser<'a, 'l> {
    pub lx: Lexer<'a>,
    pub ctx: &'a mut ParseCtx<'l>,
    fname: &'a str,
    depth: usize,
}

impl FileParser<'_, '_> {
    /// A `QAPIParseError` at the current token.
    pub fn perr(&self, msg: impl Into<String>) -> SchemaError {
        self.lex_err(self.lx.error(msg))
    }

    pub fn lex_err(&self, e: LexError) -> SchemaError {
        self.ctx.sources.error_col(e.info, e.col, e.msg)
    }

    /// A `QAPISemError`.
    pub fn serr(&self, info: Info, msg: impl Into<String>) -> SchemaError {
        self.ctx.sources.error(info, msg)
    }

    pub fn accept(&mut self, skip_comment: bool) -> Result<(), SchemaError> {
        match self.lx.accept(skip_comment) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.lex_err(e)),
        }
    }

    fn reject_expr_doc(&self, doc: Option<usize>) -> Result<(), SchemaError> {
        if let Some(d) = doc {
            let doc = &self.ctx.docs[d];
            if let Some(sym) = &doc.symbol {
                return Err(self.serr(
                    doc.info,
                    format!("documentation for '{sym}' is not followed by the definition"),
                ));
            }
        }
        Ok(())
    }

    fn parse(&mut self) -> Result<(), SchemaError> {
        let mut cur_doc: Option<usize> = None;
        let mut marks = MarkState::default();
        self.accept(true)?;
        while self.lx.tok != Tok::Eof {
            self.take_markers(&mut marks)?;
            let info = self.lx.info;
            if self.lx.tok == Tok::Comment {
                if let Some(m) = marks.first {
                    return Err(self.serr(
                        info,
                        format!(
                            "doc comment in a file with qapi-codegen markers (line {})",
                            m.line
                        ),
                    ));
                }
                marks.doc_seen = Some(info);
            }
            if self.lx.tok == Tok::Comment && self.ctx.tolerant_docs {
                self.reject_or_tolerate(cur_doc)?;
                // On an error the block is read again from its start, to be skipped.
                let start = self.lx.clone();
                match self.get_doc() {
                    Ok(doc) => {
                        self.ctx.docs.push(doc);
                        cur_doc = Some(self.ctx.docs.len() - 1);
                    }
                    Err(e) => {
                        self.ctx.warnings.push(e);
                        self.lx = start;
                        self.skip_doc()?;
                        cur_doc = None;
                    }
                }
                continue;
            }
            if self.lx.tok == Tok::Comment {
                self.reject_expr_doc(cur_doc)?;
                let doc = self.get_doc()?;
                self.ctx.docs.push(doc);
                cur_doc = Some(self.ctx.docs.len() - 1);
                continue;
            }
            let expr = self.get_expr(0)?;
            let Value::Dict(expr) = expr else {
                return Err(self.serr(info, "top-level expression must be an object"));
            };
            if expr.contains("include") || expr.contains("pragma") {
                marks.no_since(self)?;
            }
            if let Some(include) = expr.get("include") {
                self.reject_or_tolerate(cur_doc)?;
                if expr.len() != 1 {
                    return Err(self.serr(info, "invalid 'include' directive"));
                }
                let Some(include) = include.as_str() else {
                    return Err(self.serr(info, "value of 'include' must be a string"));
                };
                let incl_fname = paths::join(paths::dirname(self.fname), include);
                self.ctx.exprs.push(ParsedExpr::Include {
                    fname: incl_fname.clone(),
                    info,
                });
                self.include(include, info, &incl_fname)?;
            } else if let Some(pragma) = expr.get("pragma") {
                self.reject_or_tolerate(cur_doc)?;
                if expr.len() != 1 {
                    return Err(self.serr(info, "invalid 'pragma' directive"));
                }
                let Value::Dict(pragma) = pragma else {
                    return Err(self.serr(info, "value of 'pragma' must be an object"));
                };
                for (name, value) in &pragma.0 {
                    self.pragma(name, value, info)?;
                }
            } else {
                if let Some(d) = cur_doc {
                    let doc = &self.ctx.docs[d];
                    if doc.symbol.is_none() {
                        let e = self.serr(doc.info, "definition documentation required");
                        if !self.ctx.tolerant_docs {
                            return Err(e);
                        }
                        self.ctx.warnings.push(e);
                        self.ctx.docs[d].dropped = true;
                        cur_doc = None;
                    }
                }
                self.ctx.exprs.push(ParsedExpr::Def {
                    dict: expr,
                    info,
                    doc: cur_doc,
                    marks: marks.for_definition(),
                });
            }
            cur_doc = None;
        }
        self.take_markers(&mut marks)?;
        marks.no_since(self)?;
        self.reject_or_tolerate(cur_doc)
    }

    /// Skips a doc block whose doc could not be read (the current token is its opening
    /// `##`).
    fn skip_doc(&mut self) -> Result<(), SchemaError> {
        loop {
            self.accept(false)?;
            if self.lx.tok != Tok::Comment {
                return Err(self.perr("documentation comment must end with '##'"));
            }
            if self.lx.comment().starts_with("##") {
                break;
            }
        }
        self.accept(true)
    }

    /// [`Self::reject_expr_doc`]; with tolerant docs, its error is a warning and the
    /// stray doc is dropped.
    fn reject_or_tolerate(&mut self, doc: Option<usize>) -> Result<(), SchemaError> {
        match self.reject_expr_doc(doc) {
            Err(e) if self.ctx.tolerant_docs => {
                self.ctx.warnings.push(e);
                if let Some(d) = doc {
                    self.ctx.docs[d].dropped = true;
                }
                Ok(())
            }
            r => r,
        }
    }

    /// Reads the marker lines the lexer skipped to reach the current token.
    fn take_markers(&mut self, marks: &mut MarkState) -> Result<(), SchemaError> {
        if self.lx.markers.is_empty() {
            return Ok(());
        }
        for m in std::mem::take(&mut self.lx.markers) {
            if let Some(doc) = marks.doc_seen {
                return Err(self.serr(
                    m.info,
                    format!(
                        "qapi-codegen marker in a file with doc comments (line {})",
                        doc.line
                    ),
                ));
            }
            marks.first.get_or_insert(m.info);
            match marker::parse(m.text).map_err(|msg| self.serr(m.info, msg))? {
                Marker::Module(mm) => marks.module = Some(mm),
                Marker::Since(s) => {
                    marks.no_since(self)?;
                    marks.since = Some((m.info, s));
                }
            }
        }
        Ok(())
    }

    fn include(&mut self, include: &str, info: Info, incl_fname: &str) -> Result<(), SchemaError> {
        let incl_abs = paths::abspath(incl_fname, &self.ctx.cwd);
        let mut inf = Some(info);
        while let Some(i) = inf {
            if incl_abs == self.ctx.abs_names[i.file as usize] {
                return Err(self.serr(info, format!("inclusion loop for {include}")));
            }
            inf = self.ctx.sources.files[i.file as usize].parent;
        }
        if self.ctx.included.contains(&incl_abs) {
            return Ok(());
        }
        if self.depth >= MAX_INCLUDE_DEPTH {
            return Err(self.serr(
                info,
                format!("includes nested more than {MAX_INCLUDE_DEPTH} deep"),
            ));
        }
        match self.ctx.parse_file(incl_fname, Some(info), self.depth + 1) {
            Ok(()) => Ok(()),
            Err(Ok(e)) => Err(e),
            Err(Err(e)) => Err(self.serr(
                info,
                format!("can't read include file '{incl_fname}': {}", e.strerror()),
            )),
        }
    }

    fn pragma(&mut self, name: &str, value: &Value, info: Info) -> Result<(), SchemaError> {
        let name = if self.ctx.legacy {
            super::legacy::pragma_name(name)
        } else {
            name
        };
        let list = |p: &Self| -> Result<Vec<String>, SchemaError> {
            match value {
                Value::List(l) => l
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or(()),
                _ => Err(()),
            }
            .map_err(|()| p.serr(info, format!("pragma {name} must be a list of strings")))
        };
        match name {
            "doc-required" => {
                let Value::Bool(b) = value else {
                    return Err(self.serr(info, "pragma 'doc-required' must be boolean"));
                };
                self.ctx.pragma.doc_required = *b;
            }
            "command-name-exceptions" => self.ctx.pragma.command_name_exceptions = list(self)?,
            "command-returns-exceptions" => {
                self.ctx.pragma.command_returns_exceptions = list(self)?
            }
            "documentation-exceptions" => self.ctx.pragma.documentation_exceptions = list(self)?,
            "member-name-exceptions" => self.ctx.pragma.member_name_exceptions = list(self)?,
            _ => return Err(self.serr(info, format!("unknown pragma '{name}'"))),
        }
        Ok(())
    }

    fn get_members(&mut self, depth: usize) -> Result<Dict, SchemaError> {
        let mut expr = Dict::default();
        let mut seen: HashSet<String> = HashSet::new();
        if self.lx.tok == Tok::Punct(b'}') {
            self.accept(true)?;
            return Ok(expr);
        }
        if self.lx.tok != Tok::Str {
            return Err(self.perr("expected string or '}'"));
        }
        loop {
            let key = self.lx.take_string();
            self.accept(true)?;
            if self.lx.tok != Tok::Punct(b':') {
                return Err(self.perr("expected ':'"));
            }
            self.accept(true)?;
            let dup = if expr.0.len() < 16 {
                expr.contains(&key)
            } else {
                if seen.is_empty() {
                    seen.extend(expr.0.iter().map(|(k, _)| k.clone()));
                }
                !seen.insert(key.clone())
            };
            if dup {
                return Err(self.perr(format!("duplicate key '{key}'")));
            }
            let value = self.get_expr(depth + 1)?;
            expr.0.push((key, value));
            if self.lx.tok == Tok::Punct(b'}') {
                self.accept(true)?;
                return Ok(expr);
            }
            if self.lx.tok != Tok::Punct(b',') {
                return Err(self.perr("expected ',' or '}'"));
            }
            self.accept(true)?;
            if self.lx.tok != Tok::Str {
                return Err(self.perr("expected string"));
            }
        }
    }

    fn get_values(&mut self, depth: usize) -> Result<Vec<Value>, SchemaError> {
        let mut expr = Vec::new();
        if self.lx.tok == Tok::Punct(b']') {
            self.accept(true)?;
            return Ok(expr);
        }
        if !matches!(
            self.lx.tok,
            Tok::Punct(b'{') | Tok::Punct(b'[') | Tok::Str | Tok::True | Tok::False
        ) {
            return Err(self.perr("expected '{', '[', ']', string, or boolean"));
        }
        loop {
            expr.push(self.get_expr(depth + 1)?);
            if self.lx.tok == Tok::Punct(b']') {
                self.accept(true)?;
                return Ok(expr);
            }
            if self.lx.tok != Tok::Punct(b',') {
                return Err(self.perr("expected ',' or ']'"));
            }
            self.accept(true)?;
        }
    }

    fn get_expr(&mut self, depth: usize) -> Result<Value, SchemaError> {
        if depth > MAX_NESTING && matches!(self.lx.tok, Tok::Punct(b'{') | Tok::Punct(b'[')) {
            return Err(self.perr(format!("nesting too deep (more than {MAX_NESTING} levels)")));
        }
        let v = match self.lx.tok {
            Tok::Punct(b'{') => {
                self.accept(true)?;
                Value::Dict(self.get_members(depth)?)
            }
            Tok::Punct(b'[') => {
                self.accept(true)?;
                Value::List(self.get_values(depth)?)
            }
            Tok::Str => {
                let s = self.lx.take_string();
                self.accept(true)?;
                Value::Str(s)
            }
            Tok::True | Tok::False => {
                let b = self.lx.tok == Tok::True;
                self.accept(true)?;
                Value::Bool(b)
            }
            _ => return Err(self.perr("expected '{', '[', string, or boolean")),
        };
        Ok(v)
    }
}

/// The `qapi-codegen` markers read so far in one file.
#[derive(Default)]
struct MarkState {
    /// The module marker in force.
    module: Option<ModuleMark>,
    /// A since marker waiting for its definition.
    since: Option<(Info, String)>,
    /// The first marker of the file.
    first: Option<Info>,
    /// The first doc comment of the file.
    doc_seen: Option<Info>,
}

impl MarkState {
    /// What the markers say about the definition that comes now.
    fn for_definition(&mut self) -> Option<Box<Marks>> {
        let since = self.since.take().map(|(_, s)| s);
        if self.module.is_none() && since.is_none() {
            return None;
        }
        Some(Box::new(Marks {
            module: self.module.clone(),
            since,
        }))
    }

    /// An error if a since marker is waiting (what comes next is not a definition).
    fn no_since(&self, p: &FileParser<'_, '_>) -> Result<(), SchemaError> {
        match &self.since {
            Some((info, _)) => Err(p.serr(
                *info,
                "qapi-codegen since marker not followed by a definition",
            )),
            None => Ok(()),
        }
    }
}

/// What parsing all files produced.
pub(crate) struct Parsed {
    pub sources: Sources,
    pub exprs: Vec<ParsedExpr>,
    pub docs: Vec<QapiDoc>,
    pub pragma: Pragma,
    pub warnings: Vec<SchemaError>,
    pub newest_since: Option<(u32, u32)>,
}

/// The newest `Since: X.Y` (or `since X.Y`) on a comment line of `src`: in QEMU's
/// sources, the release they come from (each release's additions say "since" it).
fn newest_since(src: &str) -> Option<(u32, u32)> {
    let mut newest = None;
    for line in src.lines() {
        let line = line.trim_start();
        if !line.starts_with('#') {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("ince") {
            let before = rest[..i].chars().next_back();
            rest = &rest[i + 4..];
            if !matches!(before, Some('S' | 's')) {
                continue;
            }
            let v = rest.trim_start_matches(':').trim_start();
            let major: String = v.chars().take_while(char::is_ascii_digit).collect();
            let Some(v) = v[major.len()..].strip_prefix('.') else {
                continue;
            };
            let minor: String = v.chars().take_while(char::is_ascii_digit).collect();
            if let (Ok(a), Ok(b)) = (major.parse::<u32>(), minor.parse::<u32>()) {
                newest = newest.max(Some((a, b)));
            }
        }
    }
    newest
}

impl ParseCtx<'_> {
    /// The results, once every file is parsed.
    pub fn into_parts(self) -> Parsed {
        Parsed {
            sources: self.sources,
            exprs: self.exprs,
            docs: self.docs,
            pragma: self.pragma,
            warnings: self.warnings,
            newest_since: self.newest_since,
        }
    }
}
