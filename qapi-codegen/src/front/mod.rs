//! The QAPI source front end: reads `qapi-schema.json` and what it includes exactly as
//! QEMU 10.0's `scripts/qapi` does, and produces the checked [`Schema`] model.
//!
//! Passes, each in its own file:
//!
//! 1. `lexer`/`parser`: the JSON dialect, doc comments (`doc`), `include` and
//!    `pragma` → expressions with their source line.
//! 2. `expr`: per-expression shape checks (QEMU's `expr.py`) → typed definitions.
//! 3. `schema`: entities with QEMU's implicit types, semantic checks, doc
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
pub mod load;
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
/// ([`Dialect::Legacy`] for QEMU 3.1 to 6.1, see `legacy.rs`; its doc comments are read
/// tolerantly).
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
    let docs = match dialect {
        Dialect::Legacy => DocMode::Tolerant,
        Dialect::Current => DocMode::Strict,
    };
    parse_dialect(fname, cwd, loader, dialect, docs).map(|read| read.schema)
}

/// How doc comments are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DocMode {
    /// As QEMU 10.0 reads them: any error fails the schema.
    Strict,
    /// A doc comment that cannot be understood, or does not fit its definition, is
    /// dropped with a warning ([`Schema::warnings`]); the definitions stand.
    Tolerant,
}

/// What one reading produced besides the schema.
struct Read {
    schema: Schema,
    /// The sources used a construct only the legacy dialect has (when read as legacy).
    used_legacy: bool,
    /// The newest `Since: X.Y` in the comments (tolerant reads only).
    newest_since: Option<(u32, u32)>,
}

/// The reader.
fn parse_dialect<F>(
    fname: &str,
    cwd: &str,
    mut loader: F,
    dialect: Dialect,
    doc_mode: DocMode,
) -> Result<Read, SchemaError>
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
    let tolerant = doc_mode == DocMode::Tolerant;
    ctx.tolerant_docs = tolerant;
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
        mut docs,
        mut pragma,
        mut warnings,
        newest_since,
    } = ctx.into_parts();
    let used_legacy = dialect == Dialect::Legacy && legacy::uses_legacy_constructs(&exprs);
    let implicit = match dialect {
        Dialect::Legacy => legacy::rewrite(&mut exprs, &mut pragma),
        Dialect::Current => Vec::new(),
    };
    if tolerant {
        // A definition without doc is no error when docs may have been dropped.
        pragma.doc_required = false;
    }
    let mut exprs = expr::check_exprs(
        exprs,
        &mut docs,
        &mut sources,
        &pragma,
        tolerant.then_some(&mut warnings),
    )?;
    legacy::insert_implicit(&mut exprs, implicit);
    let mut schema = schema::build(
        fname,
        cwd,
        exprs,
        docs,
        &sources,
        &pragma,
        tolerant.then_some(&mut warnings),
    )?;
    schema.origin = crate::model::Origin::Source { dialect };
    schema.warnings = warnings
        .into_iter()
        .map(|e| crate::model::Warning {
            pos: e.pos().cloned(),
            message: format!("doc comment dropped: {}", e.message()),
        })
        .collect();
    Ok(Read {
        schema,
        used_legacy,
        newest_since,
    })
}

/// Read a schema from `path`, whatever its kind (used by the `dump` command and by
/// tools): [`load::load`] without its list of files read, which decides the kind of
/// input for every reader of schema files.
///
/// `query-qmp-schema` output (a JSON array of objects, or a `{"return": ...}` reply;
/// see [`crate::introspect::looks_like_introspection`]) is read by
/// [`crate::introspect`]; anything else as QAPI sources, in the dialect
/// [`parse_sources`] decides.
///
/// # Errors
/// As [`parse_file`], or the introspection reader's error as plain text.
pub fn load_schema(path: impl AsRef<Path>) -> Result<Schema, SchemaError> {
    match load::load(path.as_ref(), None) {
        Ok(loaded) => Ok(loaded.schema),
        Err(load::LoadError::Schema(e)) => Err(e),
        Err(e) => Err(SchemaError::plain(e.to_string())),
    }
}

/// QEMU releases from this one on write their doc comments as QEMU 10.0 reads them,
/// or close to it; a `Since:` of an older release marks sources whose doc syntax
/// predates it.
const FIRST_RELEASE: (u32, u32) = (3, 0);

/// Reads QAPI sources in `dialect`, or, when `None`, decides the dialect:
///
/// 1. The current dialect with QEMU 10.0's doc rules: QEMU 10.0's sources, and its
///    own diagnostics for anything wrong (QEMU's test suite checks them).
/// 2. When that fails and the sources are those of a QEMU release (a comment says
///    `Since: X.Y` with X.Y 3.0 or later: every release's own additions do), the
///    current dialect again with tolerant docs: each doc comment that QEMU 10.0's rules
///    reject (releases before 9.1 wrote `Note:` sections and headings after text, 10.1
///    and later rST headings, …) is dropped with a warning in [`Schema::warnings`],
///    and the definitions stand.
/// 3. When that fails too, the legacy dialect (QEMU 3.1 to 6.1: simple unions,
///    C-expression conditions), with tolerant docs, if the sources use a construct
///    only it has or are those of a release.
///
/// Otherwise the error of step 1 stands. A given `dialect` reads in that dialect
/// alone, with tolerant docs. Files are read by `loader`, as in [`parse_with_loader`].
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
        // Whoever names the dialect knows the sources are not QEMU 10.0's own: their
        // doc comments are read as a release's.
        return parse_dialect(fname, cwd, &mut loader, d, DocMode::Tolerant).map(|r| r.schema);
    }
    let error = match parse_with_loader(fname, cwd, &mut loader) {
        Ok(schema) => return Ok(schema),
        Err(e) => e,
    };
    let is_release = |read: &Read| read.newest_since.is_some_and(|v| v >= FIRST_RELEASE);
    if let Ok(read) = parse_dialect(fname, cwd, &mut loader, Dialect::Current, DocMode::Tolerant) {
        if is_release(&read) {
            return Ok(read.schema);
        }
    }
    match parse_dialect(fname, cwd, &mut loader, Dialect::Legacy, DocMode::Tolerant) {
        Ok(read) if read.used_legacy || is_release(&read) => Ok(read.schema),
        _ => Err(error),
    }
}
