//! Schema errors, formatted exactly as QEMU's `scripts/qapi` formats them.

use std::fmt;

use crate::model::Pos;

/// An error in a schema (or in reading it).
///
/// [`Display`](fmt::Display) gives QEMU's exact text: for errors with a location, an
/// `In file included from FILE:LINE:` line per including file, then an optional
/// `FILE: In command 'x':` context line, then `FILE:LINE[:COL]: message`. Errors without
/// a location (the root file cannot be read) are just the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaError {
    pos: Option<Pos>,
    message: String,
    text: String,
}

impl SchemaError {
    /// An error with a fully formatted text and, optionally, the location it refers to.
    pub fn new(pos: Option<Pos>, message: impl Into<String>, text: impl Into<String>) -> Self {
        SchemaError {
            pos,
            message: message.into(),
            text: text.into(),
        }
    }

    /// An error without location: its text is the message.
    pub fn plain(message: impl Into<String>) -> Self {
        let message = message.into();
        SchemaError {
            pos: None,
            text: message.clone(),
            message,
        }
    }

    /// Where the error is, if it refers to a place in a schema file.
    pub fn pos(&self) -> Option<&Pos> {
        self.pos.as_ref()
    }

    /// The message alone, without location or context lines.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for SchemaError {}
