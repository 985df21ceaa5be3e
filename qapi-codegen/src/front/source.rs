//! Source locations (QEMU's `QAPISourceInfo`) and the table of files read.
//!
//! QEMU creates one source-info object per line of each file and later records on it
//! which definition starts there (`set_defn`), which is what error messages print as
//! their `In command 'x':` context. An [`Info`] is (file, line), which identifies that
//! object exactly because each file is parsed at most once; the definition recorded
//! for a line lives in [`Sources`].

use std::sync::Arc;

use super::error::SchemaError;
use super::fxhash::FxHashMap;
use crate::model::Pos;

/// A line of a source file: QEMU's `QAPISourceInfo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Info {
    /// Index into [`Sources::files`].
    pub file: u32,
    /// 1-based line.
    pub line: u32,
}

/// A file that was read, and where it was included from.
#[derive(Debug)]
pub(crate) struct FileRec {
    pub name: Arc<str>,
    pub parent: Option<Info>,
}

/// Every file read, plus the definition recorded on each line.
#[derive(Debug, Default)]
pub(crate) struct Sources {
    pub files: Vec<FileRec>,
    defns: FxHashMap<Info, (&'static str, String)>,
}

impl Sources {
    pub fn add_file(&mut self, name: Arc<str>, parent: Option<Info>) -> u32 {
        self.files.push(FileRec { name, parent });
        (self.files.len() - 1) as u32
    }

    pub fn fname(&self, info: Info) -> &Arc<str> {
        &self.files[info.file as usize].name
    }

    /// `set_defn`: record the definition starting on this line.
    pub fn set_defn(&mut self, info: Info, meta: &'static str, name: &str) {
        self.defns.insert(info, (meta, name.to_owned()));
    }

    /// `info.defn_meta`.
    pub fn defn_meta(&self, info: Info) -> Option<&'static str> {
        self.defns.get(&info).map(|d| d.0)
    }

    /// `info.defn_name`.
    pub fn defn_name(&self, info: Info) -> Option<&str> {
        self.defns.get(&info).map(|d| d.1.as_str())
    }

    pub fn pos(&self, info: Info) -> Pos {
        Pos {
            file: self.fname(info).clone(),
            line: info.line,
        }
    }

    fn loc(&self, info: Info) -> String {
        format!("{}:{}", self.fname(info), info.line)
    }

    /// `str(info)`: include chain, definition context, `file:line`.
    pub fn describe(&self, info: Info) -> String {
        let mut chain = Vec::new();
        let mut parent = self.files[info.file as usize].parent;
        while let Some(p) = parent {
            chain.push(p);
            parent = self.files[p.file as usize].parent;
        }
        let mut out = String::new();
        for p in chain.iter().rev() {
            out.push_str("In file included from ");
            out.push_str(&self.loc(*p));
            out.push_str(":\n");
        }
        if let Some((meta, name)) = self.defns.get(&info) {
            out.push_str(&format!("{}: In {} '{}':\n", self.fname(info), meta, name));
        }
        out.push_str(&self.loc(info));
        out
    }

    /// `QAPISemError(info, msg)`.
    pub fn error(&self, info: Info, msg: impl Into<String>) -> SchemaError {
        let msg = msg.into();
        let text = format!("{}: {}", self.describe(info), msg);
        SchemaError::new(Some(self.pos(info)), msg, text)
    }

    /// `QAPIParseError`: like [`Sources::error`], with a column.
    pub fn error_col(&self, info: Info, col: usize, msg: impl Into<String>) -> SchemaError {
        let msg = msg.into();
        let text = format!("{}:{}: {}", self.describe(info), col, msg);
        SchemaError::new(Some(self.pos(info)), msg, text)
    }
}
