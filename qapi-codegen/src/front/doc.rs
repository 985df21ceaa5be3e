//! Doc comments: QEMU's `QAPIDoc` and the parser's `get_doc`.
//!
//! A doc block is `##` … `##`. A definition doc starts with `@NAME:` and has a body,
//! member sections (`@member: text`), a `Features:` block of feature sections, and
//! tagged sections (`Returns:`, `Errors:`, `Since:`, `TODO:`) or plain paragraphs.
//! Anything else is a free-form doc. Texts are kept as QEMU keeps them.

use super::error::SchemaError;
use super::lexer::{py_isspace, Tok};
use super::parser::FileParser;
use super::source::{Info, Sources};
use crate::model::DocSectionKind as Kind;

/// One section of a doc block while it is being checked.
#[derive(Clone, Debug)]
pub(crate) struct Section {
    pub info: Info,
    pub kind: Kind,
    pub text: String,
    /// Set once a member or feature section is connected to what it documents.
    pub connected: bool,
}

impl Section {
    fn new(info: Info, kind: Kind) -> Self {
        Section {
            info,
            kind,
            text: String::new(),
            connected: false,
        }
    }
}

/// A doc comment block (QEMU's `QAPIDoc`).
#[derive(Clone, Debug)]
pub(crate) struct QapiDoc {
    /// Where the block starts.
    pub info: Info,
    /// The documented symbol; `None` for free-form docs.
    pub symbol: Option<String>,
    /// Every section in textual order; `all[0]` is the body.
    pub all: Vec<Section>,
    /// Member sections by name, in insertion order (indexes into `all`).
    pub args: Vec<(String, usize)>,
    /// Feature sections by name (indexes into `all`).
    pub features: Vec<(String, usize)>,
    returns: Option<usize>,
    errors: Option<usize>,
    since: Option<usize>,
    /// The other sections (indexes into `all`).
    pub sections: Vec<usize>,
    /// Dropped for an error, with tolerant docs: connected to nothing, left out of the
    /// model.
    pub dropped: bool,
    /// Read with tolerant docs: what older releases allowed is no error (undocumented
    /// members and features, a `Returns:` of a command that returns nothing).
    pub lenient: bool,
}

/// `@NAME: ` at the start of a line: the name and where the text after it starts.
fn match_at_name_colon(line: &str) -> Option<(&str, usize)> {
    let rest = line.strip_prefix('@')?;
    let colon = rest.find(':')?;
    let mut end = 1 + colon + 1;
    while line.as_bytes().get(end) == Some(&b' ') {
        end += 1;
    }
    Some((&rest[..colon], end))
}

/// `(Returns|Errors|Since|Notes?|Examples?|TODO)(?!::): *` at the start of a line.
fn match_tag(line: &str) -> Option<(&'static str, usize)> {
    for tag in [
        "Returns", "Errors", "Since", "Notes", "Note", "Examples", "Example", "TODO",
    ] {
        if let Some(rest) = line.strip_prefix(tag) {
            if rest.starts_with(':') && !rest.starts_with("::") {
                let mut end = tag.len() + 1;
                while line.as_bytes().get(end) == Some(&b' ') {
                    end += 1;
                }
                return Some((tag, end));
            }
        }
    }
    None
}

/// Length in characters of the leading whitespace (`re.match(r'\s*')`).
fn indent_of(line: &str) -> usize {
    line.chars().take_while(|&c| py_isspace(c)).count()
}

impl QapiDoc {
    fn new(info: Info, symbol: Option<String>) -> Self {
        QapiDoc {
            info,
            symbol,
            all: vec![Section::new(info, Kind::Plain)],
            args: Vec::new(),
            features: Vec::new(),
            returns: None,
            errors: None,
            since: None,
            sections: Vec::new(),
            dropped: false,
            lenient: false,
        }
    }

    /// The text of the `Since:` section, if any.
    pub fn since(&self) -> Option<&str> {
        self.since
            .and_then(|i| self.all.get(i))
            .map(|s| s.text.as_str())
    }

    /// `tolerant`: an empty tagged section (8.1 wrote a bare `Returns:`) is no error.
    fn end(&mut self, sources: &Sources, tolerant: bool) -> Result<(), SchemaError> {
        for s in &mut self.all {
            // `text.strip('\n')`, in place.
            let end = s.text.trim_end_matches('\n').len();
            s.text.truncate(end);
            let lead = s.text.len() - s.text.trim_start_matches('\n').len();
            if lead > 0 {
                s.text.drain(..lead);
            }
            if s.kind != Kind::Plain && s.text.is_empty() && !tolerant {
                return Err(
                    sources.error(s.info, format!("text required after '{}:'", s.kind.title()))
                );
            }
        }
        Ok(())
    }

    fn ensure_untagged_section(&mut self, info: Info) {
        if let Some(last) = self.all.last_mut() {
            if last.kind == Kind::Plain {
                if last.text.is_empty() {
                    last.info = info;
                }
                last.text.push('\n');
                return;
            }
        }
        self.all.push(Section::new(info, Kind::Plain));
        self.sections.push(self.all.len() - 1);
    }

    fn new_tagged_section(
        &mut self,
        sources: &Sources,
        info: Info,
        kind: Kind,
    ) -> Result<(), SchemaError> {
        let idx = self.all.len();
        let slot = match kind {
            Kind::Returns => Some(&mut self.returns),
            Kind::Errors => Some(&mut self.errors),
            Kind::Since => Some(&mut self.since),
            _ => None,
        };
        if let Some(slot) = slot {
            if slot.is_some() {
                return Err(sources.error(info, format!("duplicated '{}' section", kind.title())));
            }
            *slot = Some(idx);
        }
        self.all.push(Section::new(info, kind));
        self.sections.push(idx);
        Ok(())
    }

    fn new_description(
        &mut self,
        sources: &Sources,
        info: Info,
        name: &str,
        kind: Kind,
    ) -> Result<(), SchemaError> {
        if name.is_empty() {
            return Err(sources.error(info, "invalid parameter name"));
        }
        let desc = if kind == Kind::Member {
            &self.args
        } else {
            &self.features
        };
        if desc.iter().any(|(n, _)| n == name) {
            return Err(sources.error(info, format!("'{name}' parameter name duplicated")));
        }
        self.all.push(Section::new(info, kind));
        let idx = self.all.len() - 1;
        if kind == Kind::Member {
            self.args.push((name.to_owned(), idx));
        } else {
            self.features.push((name.to_owned(), idx));
        }
        Ok(())
    }

    fn append_line(&mut self, line: &str) {
        if let Some(last) = self.all.last_mut() {
            last.text.push_str(line);
            last.text.push('\n');
        }
    }

    /// `connect_member`: the member `name` (with `role` and `info` for the error) is
    /// documented here; with the `documentation-exceptions` pragma an undocumented
    /// member gets an empty stub section.
    pub fn connect_member(
        &mut self,
        sources: &Sources,
        exceptions: &[String],
        role: &str,
        name: &str,
        info: Option<Info>,
    ) -> Result<(), SchemaError> {
        let idx = match self.args.iter().find(|(n, _)| n == name) {
            Some(&(_, idx)) => idx,
            None => {
                let exempt = self
                    .symbol
                    .as_ref()
                    .is_some_and(|s| exceptions.iter().any(|e| e == s));
                if !exempt && !self.lenient {
                    let info = info.unwrap_or(self.info);
                    return Err(sources.error(info, format!("{role} '{name}' lacks documentation")));
                }
                self.all.push(Section::new(self.info, Kind::Member));
                let idx = self.all.len() - 1;
                self.args.push((name.to_owned(), idx));
                idx
            }
        };
        self.all[idx].connected = true;
        Ok(())
    }

    /// `connect_feature`.
    pub fn connect_feature(
        &mut self,
        sources: &Sources,
        name: &str,
        info: Option<Info>,
    ) -> Result<(), SchemaError> {
        match self.features.iter().find(|(n, _)| n == name) {
            Some(&(_, idx)) => {
                self.all[idx].connected = true;
                Ok(())
            }
            None if self.lenient => Ok(()),
            None => Err(sources.error(
                info.unwrap_or(self.info),
                format!("feature '{name}' lacks documentation"),
            )),
        }
    }

    /// `check_expr`: Returns/Errors sections only where they make sense.
    pub fn check_expr(
        &self,
        sources: &Sources,
        is_command: bool,
        has_returns: bool,
    ) -> Result<(), SchemaError> {
        if self.lenient {
            return Ok(());
        }
        if is_command {
            if let (Some(r), false) = (self.returns, has_returns) {
                return Err(sources.error(
                    self.all[r].info,
                    "'Returns' section, but command doesn't return anything",
                ));
            }
        } else {
            if let Some(r) = self.returns {
                return Err(sources.error(
                    self.all[r].info,
                    "'Returns' section is only valid for commands",
                ));
            }
            if let Some(r) = self.errors {
                return Err(sources.error(
                    self.all[r].info,
                    "'Errors' section is only valid for commands",
                ));
            }
        }
        Ok(())
    }

    /// `check`: every documented member and feature exists.
    pub fn check(&self, sources: &Sources) -> Result<(), SchemaError> {
        for (desc, what) in [(&self.args, "member"), (&self.features, "feature")] {
            let bogus: Vec<&(String, usize)> = desc
                .iter()
                .filter(|(_, i)| !self.all[*i].connected)
                .collect();
            if let Some(first) = bogus.first() {
                let names: Vec<&str> = bogus.iter().map(|(n, _)| n.as_str()).collect();
                let many = bogus.len() > 1;
                return Err(sources.error(
                    self.all[first.1].info,
                    format!(
                        "documented {what}{} '{}' {} not exist",
                        if many { "s" } else { "" },
                        names.join("', '"),
                        if many { "do" } else { "does" }
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl<'a> FileParser<'a, '_> {
    /// `get_doc_line`: the current comment as a doc line; `None` at the closing `##`.
    fn get_doc_line(&self) -> Result<Option<&'a str>, SchemaError> {
        if self.lx.tok != Tok::Comment {
            return Err(self.perr("documentation comment must end with '##'"));
        }
        let val = self.lx.comment();
        if val.starts_with("##") {
            if val != "##" {
                return Err(self.perr("junk after '##' at end of documentation comment"));
            }
            return Ok(None);
        }
        if val == "#" {
            return Ok(Some(""));
        }
        if !val[1..].starts_with(' ') {
            return Err(self.perr("missing space after #"));
        }
        Ok(Some(val[2..].trim_end_matches(py_isspace)))
    }

    fn next_doc_line(&mut self) -> Result<Option<&'a str>, SchemaError> {
        self.accept(false)?;
        self.get_doc_line()
    }

    fn get_doc_indented(&mut self, doc: &mut QapiDoc) -> Result<Option<&'a str>, SchemaError> {
        let mut line = self.next_doc_line()?;
        while line == Some("") {
            doc.append_line("");
            line = self.next_doc_line()?;
        }
        let Some(first) = line else { return Ok(None) };
        let indent = indent_of(first);
        if indent == 0 {
            return Ok(Some(first));
        }
        doc.append_line(first);
        let mut prev_line_blank = false;
        loop {
            let Some(line) = self.next_doc_line()? else {
                return Ok(None);
            };
            if match_at_name_colon(line).is_some() {
                return Ok(Some(line));
            }
            let cur_indent = indent_of(line);
            if !line.is_empty() && cur_indent < indent {
                if prev_line_blank {
                    return Ok(Some(line));
                }
                return Err(self.perr(format!(
                    "unexpected de-indent (expected at least {indent} spaces)"
                )));
            }
            doc.append_line(line);
            prev_line_blank = true;
        }
    }

    fn get_doc_paragraph(&mut self, doc: &mut QapiDoc) -> Result<Option<&'a str>, SchemaError> {
        loop {
            match self.next_doc_line()? {
                None => return Ok(None),
                Some(l) if l.is_empty() => return Ok(Some(l)),
                Some(l) => doc.append_line(l),
            }
        }
    }

    /// `get_doc`: read a doc block; the current token is its opening `##` comment.
    pub fn get_doc(&mut self) -> Result<QapiDoc, SchemaError> {
        if self.lx.comment() != "##" {
            return Err(self.perr("junk after '##' at start of documentation comment"));
        }
        let info = self.lx.info;
        let tolerant = self.ctx.tolerant_docs;
        let mut line = self.next_doc_line()?;
        let mut doc;
        if let Some(first) = line.filter(|l| l.starts_with('@')) {
            if !first.ends_with(':') {
                return Err(self.perr("line should end with ':'"));
            }
            let symbol = &first[1..first.len() - 1];
            if symbol.is_empty() {
                return Err(self.perr("name required after '@'"));
            }
            doc = QapiDoc::new(info, Some(symbol.to_owned()));
            line = self.next_doc_line()?;
            let mut no_more_args = false;
            while line.is_some() {
                while line == Some("") {
                    line = self.next_doc_line()?;
                }
                let Some(l) = line.take() else { break };
                if l == "Features:" {
                    if !doc.features.is_empty() {
                        return Err(self.perr("duplicated 'Features:' line"));
                    }
                    line = self.next_doc_line()?;
                    while line == Some("") {
                        line = self.next_doc_line()?;
                    }
                    while let Some((name, end)) = line.and_then(match_at_name_colon) {
                        let l = line.unwrap_or_default();
                        doc.new_description(&self.ctx.sources, self.lx.info, name, Kind::Feature)?;
                        if end < l.len() {
                            doc.append_line(&l[end..]);
                        }
                        line = self.get_doc_indented(&mut doc)?;
                    }
                    if doc.features.is_empty() {
                        return Err(self.perr("feature descriptions expected"));
                    }
                    no_more_args = true;
                } else if let Some((name, _)) = match_at_name_colon(l) {
                    if no_more_args {
                        return Err(
                            self.perr(format!("description of '@{name}:' follows a section"))
                        );
                    }
                    line = Some(l);
                    while let Some((name, end)) = line.and_then(match_at_name_colon) {
                        let l = line.unwrap_or_default();
                        // Releases before 6.0 wrote `@name :` at times.
                        let name = if tolerant { name.trim_end() } else { name };
                        doc.new_description(&self.ctx.sources, self.lx.info, name, Kind::Member)?;
                        if end < l.len() {
                            doc.append_line(&l[end..]);
                        }
                        line = self.get_doc_indented(&mut doc)?;
                    }
                    no_more_args = true;
                } else if let Some((tag, end)) = match_tag(l).filter(|(tag, _)| {
                    // Older releases' `Note:` and `Example:` sections read as text.
                    !(tolerant && (tag.contains("Note") || tag.contains("Example")))
                }) {
                    if tag.contains("Note") {
                        return Err(self.perr(format!(
                            "The '{tag}' section is no longer supported. Please use rST's \
                             '.. note::' or '.. admonition:: notes' directives, or another \
                             suitable admonition instead."
                        )));
                    }
                    if tag.contains("Example") {
                        return Err(self.perr(format!(
                            "The '{tag}' section is no longer supported. Please use the \
                             '.. qmp-example::' directive, or other suitable markup instead."
                        )));
                    }
                    let kind = match tag {
                        "Returns" => Kind::Returns,
                        "Errors" => Kind::Errors,
                        "Since" => Kind::Since,
                        _ => Kind::Todo,
                    };
                    doc.new_tagged_section(&self.ctx.sources, self.lx.info, kind)?;
                    if end < l.len() {
                        doc.append_line(&l[end..]);
                    }
                    line = self.get_doc_indented(&mut doc)?;
                    no_more_args = true;
                } else if l.starts_with('=') && !tolerant {
                    return Err(self.perr("unexpected '=' markup in definition documentation"));
                } else {
                    doc.ensure_untagged_section(self.lx.info);
                    doc.append_line(l);
                    line = self.get_doc_paragraph(&mut doc)?;
                }
            }
        } else {
            doc = QapiDoc::new(info, None);
            doc.ensure_untagged_section(self.lx.info);
            let mut first = true;
            while let Some(l) = line {
                if let Some((name, _)) = match_at_name_colon(l) {
                    return Err(
                        self.perr(format!("'@{name}:' not allowed in free-form documentation"))
                    );
                }
                // Headings after text: releases before 9.1 wrote them so; 10.1 and
                // later write rST headings ("Title" over "=====") the same way.
                if l.starts_with('=') && !first && !tolerant {
                    return Err(self.perr("'=' heading must come first in a comment block"));
                }
                doc.append_line(l);
                line = self.next_doc_line()?;
                first = false;
            }
        }
        self.accept(true)?;
        doc.end(&self.ctx.sources, tolerant)?;
        doc.lenient = tolerant;
        Ok(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers() {
        assert_eq!(match_at_name_colon("@foo:  bar"), Some(("foo", 7)));
        assert_eq!(match_at_name_colon("@: x"), Some(("", 3)));
        assert_eq!(match_at_name_colon("@foo bar"), None);
        assert_eq!(match_tag("Since: 1.0"), Some(("Since", 7)));
        assert_eq!(match_tag("Notes: x"), Some(("Notes", 7)));
        assert_eq!(match_tag("Note:: x"), None);
        assert_eq!(match_tag("Returns x"), None);
        assert_eq!(indent_of("  \tx"), 3);
    }
}
