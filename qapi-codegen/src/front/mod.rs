//! The QAPI source front end: reads `qapi-schema.json` and what it includes exactly as
//! QEMU 10.0's `scripts/qapi` does, and produces the checked [`Schema`] model.
//!
//! Passes, each in its own file:
//!
//! 1. [`lexer`]/[`parser`]: the JSON dialect, doc comments ([`doc`]), `include` and
//!    `pragma` → expressions with their source line.
//! 2. [`expr`]: per-expression shape checks (QEMU's `expr.py`) → typed definitions.
//! 3. [`schema`]: entities with QEMU's implicit types, semantic checks, doc
//!    connection, modules (QEMU's `schema.py`) → [`Schema`].
//!
//! One addition to QEMU's dialect, for definitions-only snapshots: comment lines that
//! begin with `# @qapi-codegen` carry a definition's module, manual module and `Since:`
//! version (`marker.rs`; QEMU reads them as comments).
//!
//! Errors ([`SchemaError`]) carry QEMU's exact text. Nothing here panics on any input:
//! nesting depth, include depth and file size are bounded, and files that are not
//! UTF-8 are reported as errors.
//!
//! ```no_run
//! let schema = qapi_codegen::front::parse_file("qapi/qapi-schema.json")?;
//! for (cmd, _) in schema.commands() {
//!     println!("{}", cmd.name);
//! }
//! # Ok::<(), qapi_codegen::front::SchemaError>(())
//! ```

mod doc;
mod error;
mod expr;
mod fxhash;
mod legacy;
mod lexer;
pub(crate) mod marker;
mod names;
mod parser;
mod paths;
mod schema;
mod source;

use std::io;
use std::path::Path;

pub use error::SchemaError;

use crate::model::{Dialect, Schema};

/// Read and check the schema rooted at `path` (relative names are relative to the
/// current directory, and error messages name files as QEMU would: `path` as given,
/// included files joined to their includer's folder).
///
/// # Errors
/// The first error QEMU would report, or an error saying why a file could not be read
/// (missing, unreadable, not UTF-8, too large).
pub fn parse_file(path: impl AsRef<Path>) -> Result<Schema, SchemaError> {
    let (fname, cwd) = file_name_and_cwd(path.as_ref())?;
    parse_with_loader(fname, &cwd, |f: &str| std::fs::read(f))
}

/// The name to open `path` by, as QEMU's front end takes it (UTF-8, or the error QEMU
/// words for a name it cannot open), and the current directory it resolves against
/// (`/` when that is unknown or not UTF-8).
pub(crate) fn file_name_and_cwd(path: &Path) -> Result<(&str, String), SchemaError> {
    let Some(fname) = path.to_str() else {
        return Err(SchemaError::plain(format!(
            "can't read schema file '{}': file name is not valid UTF-8",
            path.display()
        )));
    };
    let cwd = std::env::current_dir()
        .ok()
        .and_then(|p| p.to_str().map(str::to_owned))
        .unwrap_or_else(|| "/".to_owned());
    Ok((fname, cwd))
}

/// Like [`parse_file`], but files are read by `loader` (given each file name as QEMU
/// would open it), and `cwd` (an absolute path) stands for the current directory when
/// file names are compared or made relative. Needs no file system: tests and fuzzers
/// serve files from memory.
///
/// # Errors
/// As [`parse_file`]; an error of `loader` is reported as QEMU reports an `OSError`.
pub fn parse_with_loader<F>(fname: &str, cwd: &str, loader: F) -> Result<Schema, SchemaError>
where
    F: FnMut(&str) -> io::Result<Vec<u8>>,
{
    parse_with_loader_dialect(fname, cwd, loader, Dialect::Current)
}

/// Like [`parse_file`], reading the schema as written in `dialect`
/// ([`Dialect::Legacy`] for QEMU 3.1 to 7.x, see `legacy.rs`).
///
/// # Errors
/// As [`parse_file`].
pub fn parse_file_dialect(path: impl AsRef<Path>, dialect: Dialect) -> Result<Schema, SchemaError> {
    let (fname, cwd) = file_name_and_cwd(path.as_ref())?;
    parse_with_loader_dialect(fname, &cwd, |f: &str| std::fs::read(f), dialect)
}

/// Like [`parse_with_loader`], reading the schema as written in `dialect`.
///
/// # Errors
/// As [`parse_file`].
pub fn parse_with_loader_dialect<F>(
    fname: &str,
    cwd: &str,
    loader: F,
    dialect: Dialect,
) -> Result<Schema, SchemaError>
where
    F: FnMut(&str) -> io::Result<Vec<u8>>,
{
    parse_dialect(fname, cwd, loader, dialect).map(|(schema, _)| schema)
}

/// The reader: the schema, and whether it used a construct only the legacy dialect
/// has (when read as legacy).
fn parse_dialect<F>(
    fname: &str,
    cwd: &str,
    mut loader: F,
    dialect: Dialect,
) -> Result<(Schema, bool), SchemaError>
where
    F: FnMut(&str) -> io::Result<Vec<u8>>,
{
    let cwd = if cwd.starts_with('/') {
        cwd.to_owned()
    } else {
        format!("/{cwd}")
    };
    let loader: &mut parser::Loader<'_> = &mut loader;
    let mut ctx = parser::ParseCtx::new(cwd.clone(), loader);
    ctx.legacy = dialect == Dialect::Legacy;
    match ctx.parse_file(fname, None, 0) {
        Ok(()) => {}
        Err(Ok(e)) => return Err(e),
        Err(Err(e)) => {
            return Err(SchemaError::plain(format!(
                "can't read schema file '{fname}': {}",
                e.strerror()
            )))
        }
    }
    let parser::Parsed {
        mut sources,
        mut exprs,
        docs,
        mut pragma,
    } = ctx.into_parts();
    let used_legacy = dialect == Dialect::Legacy && legacy::uses_legacy_constructs(&exprs);
    let implicit = match dialect {
        Dialect::Legacy => legacy::rewrite(&mut exprs, &mut pragma),
        Dialect::Current => Vec::new(),
    };
    let mut exprs = expr::check_exprs(exprs, &docs, &mut sources, &pragma)?;
    legacy::insert_implicit(&mut exprs, implicit);
    let mut schema = schema::build(fname, cwd, exprs, docs, &sources, &pragma)?;
    schema.origin = crate::model::Origin::Source { dialect };
    Ok((schema, used_legacy))
}

/// Read a schema from `path`, whatever its kind (used by the `dump` command and by
/// tools): [`crate::config::load_with`] without its list of files read, which decides
/// the kind of input for every reader of schema files.
///
/// `query-qmp-schema` output (a JSON array of objects, or a `{"return": ...}` reply;
/// see [`crate::introspect::looks_like_introspection`]) is read by
/// [`crate::introspect`]; anything else as QAPI sources, in the current dialect or, when
/// that fails and the sources use a construct only the legacy dialect has (simple
/// unions, C-expression conditions), in [`Dialect::Legacy`].
///
/// # Errors
/// As [`parse_file`], or the introspection reader's error as plain text.
pub fn load_schema(path: impl AsRef<Path>) -> Result<Schema, SchemaError> {
    match crate::config::load_with(path.as_ref(), None) {
        Ok(loaded) => Ok(loaded.schema),
        Err(crate::config::Error::Schema(e)) => Err(e),
        Err(e) => Err(SchemaError::plain(e.to_string())),
    }
}

/// Reads QAPI sources in `dialect`, or, when `None`, in the current dialect and, when
/// that fails and the sources use a construct only the legacy dialect has (simple
/// unions, C-expression conditions), in [`Dialect::Legacy`] (sources of QEMU 3.1 to
/// 5.2). The current dialect's error stands otherwise, so that diagnostics are QEMU
/// 10.0's. Files are read by `loader`, as in [`parse_with_loader`].
///
/// # Errors
/// As [`parse_file`].
pub fn parse_sources<F>(
    fname: &str,
    cwd: &str,
    mut loader: F,
    dialect: Option<Dialect>,
) -> Result<Schema, SchemaError>
where
    F: FnMut(&str) -> io::Result<Vec<u8>>,
{
    if let Some(d) = dialect {
        return parse_with_loader_dialect(fname, cwd, &mut loader, d);
    }
    let error = match parse_with_loader(fname, cwd, &mut loader) {
        Ok(schema) => return Ok(schema),
        Err(e) => e,
    };
    match parse_dialect(fname, cwd, &mut loader, Dialect::Legacy) {
        Ok((schema, true)) => Ok(schema),
        _ => Err(error),
    }
}
