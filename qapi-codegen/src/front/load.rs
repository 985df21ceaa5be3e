//! Reading a schema file of any kind: QAPI sources (`qapi-schema.json` and what it
//! includes) or `query-qmp-schema` output, told apart by their content. Every reader of
//! schema files comes here: the build API ([`crate::Config`]), the command-line tool
//! and [`super::load_schema`].

use std::path::{Path, PathBuf};

use super::SchemaError;
use crate::introspect::IntrospectError;
use crate::model::{Dialect, Schema};

/// A schema read from disk, with every file that was read (for
/// `cargo:rerun-if-changed`).
#[derive(Debug)]
pub struct Loaded {
    /// The checked model.
    pub schema: Schema,
    /// Every file read, in the order read.
    pub files: Vec<PathBuf>,
}

/// Why a schema file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The QAPI sources have an error (or cannot be read), as QEMU words it.
    #[error("{0}")]
    Schema(#[from] SchemaError),
    /// The `query-qmp-schema` output has an error.
    #[error("{0}")]
    Introspect(#[from] IntrospectError),
}

/// Reads the schema at `path`: `query-qmp-schema` output (a JSON array, or a whole
/// `{"return": [...]}` reply; see [`crate::introspect::looks_like_introspection`]) or
/// QAPI sources, read in `dialect` (`None`: decided as [`super::parse_sources`] does).
/// A file that cannot be read goes to the source reader, which reports it as QEMU does.
///
/// # Errors
/// The file cannot be read, or the schema has an error (with its `file:line`).
pub fn load(path: &Path, dialect: Option<Dialect>) -> Result<Loaded, LoadError> {
    if starts_like_introspection(path) {
        return Ok(Loaded {
            schema: crate::introspect::read_file(path)?,
            files: vec![path.to_owned()],
        });
    }
    let (fname, cwd) = super::file_name_and_cwd(path)?;
    let mut files = Vec::new();
    let schema = super::parse_sources(
        fname,
        &cwd,
        |f: &str| {
            let f = PathBuf::from(f);
            if !files.contains(&f) {
                files.push(f.clone());
            }
            std::fs::read(f)
        },
        dialect,
    )?;
    Ok(Loaded { schema, files })
}

/// Whether the file starts like `query-qmp-schema` output (only its first 64 KiB are
/// read; a file that cannot be read is not).
fn starts_like_introspection(path: &Path) -> bool {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(64 * 1024).read_to_end(&mut head))
        .is_ok_and(|_| crate::introspect::looks_like_introspection(&head))
}
