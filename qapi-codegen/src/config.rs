//! The build-script API: [`Config`], in the manner of `prost-build`.
//!
//! ```no_run
//! // in build.rs's main:
//! qapi_codegen::Config::new()
//!     .schema("schema/qapi-schema.json")
//!     .generate_to_out_dir("qapi.rs")
//!     .unwrap_or_else(|e| panic!("{e}"));
//! ```
//!
//! and in the crate: `include!(concat!(env!("OUT_DIR"), "/qapi.rs"));`.

use std::path::{Path, PathBuf};

use crate::emit::{self, Options};
use crate::model::Dialect;

/// Why bindings could not be generated. Its `Display` is the message to show: a schema
/// error reads `file:line: message`, as QEMU's own generator prints it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No schema was given (neither [`Config::schema`] nor the override variable).
    #[error("no schema given: call Config::schema or set {0}")]
    NoSchema(String),
    /// The QAPI sources have an error.
    #[error("{0}")]
    Schema(#[from] crate::front::SchemaError),
    /// The `query-qmp-schema` output has an error.
    #[error("{0}")]
    Introspect(#[from] crate::introspect::IntrospectError),
    /// The emitter failed (a bug).
    #[error("{0}")]
    Emit(#[from] emit::EmitError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The schema file does not exist or cannot be opened.
    #[error("can't read schema file '{}': {source} ({given})", path.display())]
    Unreadable {
        /// The absolute path tried.
        path: PathBuf,
        /// Where the path came from, and what to do.
        given: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The dialect variable (`QMP_SCHEMA_DIALECT`, …) has a value that is not a dialect.
    #[error("{var}={value:?}: expected `auto`, `current` or `legacy`")]
    BadDialect {
        /// The variable.
        var: String,
        /// Its value.
        value: String,
    },
    /// Several schemas were listed and cannot be merged.
    #[error("{0}")]
    Union(#[from] crate::union::UnionError),
    /// `generate` without `out_file`, or `generate_to_out_dir` outside a build script.
    #[error("no output file: call Config::out_file, or run from a build script (OUT_DIR unset)")]
    NoOutput,
}

pub use crate::front::load::Loaded;

impl From<crate::front::load::LoadError> for Error {
    fn from(e: crate::front::load::LoadError) -> Self {
        match e {
            crate::front::load::LoadError::Schema(e) => Error::Schema(e),
            crate::front::load::LoadError::Introspect(e) => Error::Introspect(e),
        }
    }
}

/// Reads a schema, whatever its kind: QAPI sources (`qapi-schema.json` and what it
/// includes) or a file of `query-qmp-schema` output (a JSON array, or a whole
/// `{"return": [...]}` reply), detected from the content ([`crate::front::load`]).
///
/// # Errors
/// The file cannot be read, or the schema has an error (with its `file:line`).
pub fn load(path: &Path) -> Result<Loaded, Error> {
    load_with(path, None)
}

/// Like [`load`], reading QAPI sources in `dialect` (`None`: decided as
/// [`crate::front::parse_sources`] does).
///
/// # Errors
/// As [`load`].
pub fn load_with(path: &Path, dialect: Option<Dialect>) -> Result<Loaded, Error> {
    Ok(crate::front::load::load(path, dialect)?)
}

/// Configures and runs code generation from a build script (or any program).
#[derive(Clone, Debug)]
pub struct Config {
    /// The schemas (more than one: their union), each with its label if given.
    schemas: Vec<(Option<String>, PathBuf)>,
    env_var: Option<String>,
    out_file: Option<PathBuf>,
    options: Options,
    cargo_directives: Option<bool>,
    dialect: Option<Dialect>,
    name_references: Vec<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            schemas: Vec::new(),
            env_var: Some("QMP_SCHEMA".to_owned()),
            out_file: None,
            options: Options::default(),
            cargo_directives: None,
            dialect: None,
            name_references: Vec::new(),
        }
    }
}

/// What [`Config::generate_string`] produced.
#[derive(Debug)]
pub struct Generated {
    /// The formatted Rust source.
    pub code: String,
    /// The schema file used (after the environment override); the first listed when
    /// several were.
    pub schema: PathBuf,
    /// Every schema file used, with the release each was labelled with (the labels of
    /// [`crate::model::Availability`]; for one schema, its label is not needed and not
    /// worked out: empty).
    pub schemas: Vec<(String, PathBuf)>,
    /// Every file read.
    pub files: Vec<PathBuf>,
    /// What was passed over while reading the schema (doc comments dropped).
    pub warnings: Vec<crate::model::Warning>,
}

impl Config {
    /// A configuration with defaults: no schema yet, `QMP_SCHEMA` overrides it, output
    /// to `OUT_DIR`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The schema to read: a QAPI source file (`qapi-schema.json`) or a file of
    /// `query-qmp-schema` output; the kind is detected from the content. Relative paths
    /// are relative to the current directory (a build script runs in its crate's
    /// folder).
    pub fn schema(&mut self, path: impl AsRef<Path>) -> &mut Self {
        self.schemas = vec![(None, path.as_ref().to_owned())];
        self
    }

    /// Several schemas, of different releases: the bindings are their union (see
    /// [`crate::union`]): every command, event, type, member, branch and enum value any
    /// of them has, with which of them has each in the docs and in the generated
    /// `availability` table. Each is QAPI sources, a snapshot or a capture, in any mix,
    /// labelled with its release as [`crate::union::release_label`] works it out; one
    /// path alone is the same as [`Config::schema`].
    pub fn schemas<P: AsRef<Path>>(&mut self, paths: impl IntoIterator<Item = P>) -> &mut Self {
        self.schemas = paths
            .into_iter()
            .map(|p| (None, p.as_ref().to_owned()))
            .collect();
        self
    }

    /// Like [`Config::schemas`], each schema with the label to use for its release
    /// (`7.2`, `10.0`).
    pub fn labelled_schemas<L: Into<String>, P: AsRef<Path>>(
        &mut self,
        schemas: impl IntoIterator<Item = (L, P)>,
    ) -> &mut Self {
        self.schemas = schemas
            .into_iter()
            .map(|(l, p)| (Some(l.into()), p.as_ref().to_owned()))
            .collect();
        self
    }

    /// The environment variable that, when set, names the schema instead
    /// (default `QMP_SCHEMA`; `None` to ignore the environment). It may list several,
    /// separated as in `PATH` (`:` on Unix), each optionally labelled `LABEL=PATH`
    /// (`7.2=/src/qemu-7.2/qapi/qapi-schema.json`): the bindings are then their union,
    /// as with [`Config::schemas`].
    pub fn env_override(&mut self, var: Option<&str>) -> &mut Self {
        self.env_var = var.map(str::to_owned);
        self
    }

    /// Where [`Config::generate`] writes the code.
    pub fn out_file(&mut self, path: impl AsRef<Path>) -> &mut Self {
        self.out_file = Some(path.as_ref().to_owned());
        self
    }

    /// Emit `commands::check_command_arguments` (default true).
    pub fn check_arguments(&mut self, on: bool) -> &mut Self {
        self.options.check_arguments = on;
        self
    }

    /// Emit `SCHEMA_JSON`, the schema in `query-qmp-schema` form, into the bindings
    /// (default false; see [`Options::schema_json`]).
    pub fn schema_json(&mut self, on: bool) -> &mut Self {
        self.options.schema_json = on;
        self
    }

    /// Include QAPI doc text in the generated docs (default true).
    pub fn docs(&mut self, on: bool) -> &mut Self {
        self.options.docs = on;
        self
    }

    /// The manual the generated docs link to (default [`emit::Manual::qmp`]; the guest
    /// agent's bindings want [`emit::Manual::guest_agent`], the storage daemon's
    /// [`emit::Manual::storage_daemon`]).
    pub fn manual(&mut self, manual: emit::Manual) -> &mut Self {
        self.options.manual = manual;
        self
    }

    /// Print `cargo:rerun-if-changed` and `cargo:rerun-if-env-changed` lines. By
    /// default they are printed when running in a build script (`OUT_DIR` is set).
    pub fn cargo_directives(&mut self, on: bool) -> &mut Self {
        self.cargo_directives = Some(on);
        self
    }

    fn directives(&self) -> bool {
        self.cargo_directives
            .unwrap_or_else(|| std::env::var_os("OUT_DIR").is_some())
    }

    /// Reads QAPI sources in `dialect` instead of deciding ([`crate::front::parse_sources`]
    /// says how the automatic choice reads every release from 3.1 on; this is the
    /// way out for sources it gets wrong). The variable `<env_override>_DIALECT`
    /// (`QMP_SCHEMA_DIALECT`: `auto`, `current` or `legacy`) overrides it. No effect on
    /// `query-qmp-schema` output.
    pub fn dialect(&mut self, dialect: Dialect) -> &mut Self {
        self.dialect = Some(dialect);
        self
    }

    /// Named schemas (QAPI sources or snapshots such as `schema/qemu-system-10.0.json`)
    /// whose type names a schema read from `query-qmp-schema` output takes where its
    /// types are theirs (see [`crate::introspect::recover_names`]), so that its
    /// bindings use the names QEMU's sources give instead of names derived from where
    /// each type is used. Newest release first: on a tie the name of the reference
    /// closest to the capture (its own release) wins, then the earlier one's.
    /// They are read only when the schema is `query-qmp-schema` output; QAPI sources
    /// keep their own names.
    pub fn name_references<P: AsRef<Path>>(
        &mut self,
        paths: impl IntoIterator<Item = P>,
    ) -> &mut Self {
        self.name_references = paths.into_iter().map(|p| p.as_ref().to_owned()).collect();
        self
    }

    /// Reads the schema and generates the code, without writing anything (cargo
    /// directives are still printed when enabled).
    ///
    /// # Errors
    /// No schema given, a file cannot be read, or the schema has an error.
    pub fn generate_string(&self) -> Result<Generated, Error> {
        let directives = self.directives();
        let from_env = self.env_var.as_deref().and_then(|v| {
            if directives {
                println!("cargo:rerun-if-env-changed={v}");
            }
            std::env::var_os(v)
                .filter(|s| !s.is_empty())
                .map(|p| (split_list(&p), v))
        });
        let dialect = self.env_dialect(directives)?.or(self.dialect);
        let (given, var) = match from_env {
            Some((list, v)) => (list, Some(v)),
            None if self.schemas.is_empty() => {
                return Err(Error::NoSchema(self.env_var.clone().unwrap_or_default()))
            }
            None => (self.schemas.clone(), None),
        };
        let mut loaded = Vec::with_capacity(given.len());
        // The name references, read once for every capture listed.
        let mut references = None;
        for (label, path) in given {
            let (path, one) = self.load_one(path, var, dialect, directives, &mut references)?;
            loaded.push((label, path, one));
        }
        let mut files = Vec::new();
        for (_, _, l) in &loaded {
            files.extend(l.files.iter().cloned());
        }
        let first = loaded[0].1.clone();
        let (schema, schemas) = if loaded.len() == 1 {
            let (label, path, one) = loaded.remove(0);
            (one.schema, vec![(label.unwrap_or_default(), path)])
        } else {
            let mut listed = Vec::with_capacity(loaded.len());
            let mut schemas = Vec::with_capacity(loaded.len());
            for (label, path, one) in loaded {
                let label =
                    label.unwrap_or_else(|| crate::union::release_label(&path, &one.schema));
                schemas.push((label.clone(), path));
                listed.push((label, one.schema));
            }
            (crate::union::merge(&listed)?, schemas)
        };
        if directives {
            warn_dropped(&schema.warnings);
        }
        let code = emit::generate(&schema, &self.options)?;
        Ok(Generated {
            code,
            schema: first,
            schemas,
            files,
            warnings: schema.warnings,
        })
    }

    /// Reads one schema (`given` as listed, from the variable `var` if it came from
    /// there), its types named after the name references when it is a capture
    /// (`references`: those already read, if any).
    fn load_one(
        &self,
        given: PathBuf,
        var: Option<&str>,
        dialect: Option<Dialect>,
        directives: bool,
        references: &mut Option<Vec<crate::model::Schema>>,
    ) -> Result<(PathBuf, Loaded), Error> {
        // Errors name the absolute path: a relative one is taken from the current
        // directory, which in a build script is the crate's folder, not the user's.
        let path = std::path::absolute(&given).unwrap_or_else(|_| given.clone());
        if let Err(source) = std::fs::metadata(&path) {
            let cwd = std::env::current_dir().unwrap_or_default();
            let given = match (var, given.is_relative()) {
                (Some(v), true) => format!(
                    "{v}={}: a relative path is taken from {}, the folder cargo runs the \
                     build script in; give an absolute path",
                    given.display(),
                    cwd.display()
                ),
                (Some(v), false) => format!("{v}={}", given.display()),
                (None, true) => format!("schema {} relative to {}", given.display(), cwd.display()),
                (None, false) => format!("schema {}", given.display()),
            };
            if directives {
                println!("cargo:rerun-if-changed={}", path.display());
            }
            return Err(Error::Unreadable {
                path,
                given,
                source,
            });
        }
        let loaded = load_with(&path, dialect);
        // Even on error, the files read so far are what a fix will change; the root
        // file at least.
        if directives {
            println!("cargo:rerun-if-changed={}", path.display());
        }
        let mut loaded = loaded?;
        if directives {
            for f in &loaded.files {
                println!("cargo:rerun-if-changed={}", f.display());
            }
        }
        self.recover_names(&mut loaded, directives, references)?;
        Ok((path, loaded))
    }

    /// The dialect the variable `<env_override>_DIALECT` names (`QMP_SCHEMA_DIALECT`):
    /// `current` or `legacy`; `auto` or unset decides (or takes [`Config::dialect`]).
    fn env_dialect(&self, directives: bool) -> Result<Option<Dialect>, Error> {
        let Some(var) = self.env_var.as_deref().map(|v| format!("{v}_DIALECT")) else {
            return Ok(None);
        };
        if directives {
            println!("cargo:rerun-if-env-changed={var}");
        }
        let Some(value) = std::env::var_os(&var) else {
            return Ok(None);
        };
        let value = value.to_string_lossy().into_owned();
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(None),
            "current" => Ok(Some(Dialect::Current)),
            "legacy" => Ok(Some(Dialect::Legacy)),
            _ => Err(Error::BadDialect { var, value }),
        }
    }

    /// Names a `query-qmp-schema` model's types after the [`Config::name_references`],
    /// reading them into `references` the first time.
    fn recover_names(
        &self,
        loaded: &mut Loaded,
        directives: bool,
        references: &mut Option<Vec<crate::model::Schema>>,
    ) -> Result<(), Error> {
        if directives {
            for path in &self.name_references {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
        let is_capture = matches!(
            loaded.schema.origin,
            crate::model::Origin::Introspection { .. }
        );
        if !is_capture || self.name_references.is_empty() {
            return Ok(());
        }
        let references = match references {
            Some(read) => read,
            None => references.insert(
                self.name_references
                    .iter()
                    .map(|p| load(p).map(|l| l.schema))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let references: Vec<&crate::model::Schema> = references.iter().collect();
        crate::introspect::recover_names(&mut loaded.schema, &references);
        Ok(())
    }

    /// Generates the code into the file set with [`Config::out_file`], writing only if
    /// its content changed (so its modification time does not force rebuilds).
    ///
    /// It is expected that this call be unwrapped in a build script: there is
    /// typically no reason to recover from a schema error during a build.
    ///
    /// # Errors
    /// As [`Config::generate_string`], or no output file, or it cannot be written.
    pub fn generate(&self) -> Result<PathBuf, Error> {
        let out = self.out_file.clone().ok_or(Error::NoOutput)?;
        let generated = self.generate_string()?;
        write_file_if_changed(&out, &generated.code)?;
        Ok(out)
    }

    /// Generates the code into `$OUT_DIR/name` (for `include!(concat!(env!("OUT_DIR"),
    /// "/name"))`).
    ///
    /// # Errors
    /// As [`Config::generate`]; `OUT_DIR` unset.
    pub fn generate_to_out_dir(&self, name: &str) -> Result<PathBuf, Error> {
        let dir = std::env::var_os("OUT_DIR").ok_or(Error::NoOutput)?;
        let mut c = self.clone();
        c.out_file = Some(Path::new(&dir).join(name));
        c.generate()
    }
}

/// A list of schemas as the variable gives it: separated as in `PATH`, each
/// `LABEL=PATH` or a path (a `=` after a `/` is part of the path).
fn split_list(value: &std::ffi::OsStr) -> Vec<(Option<String>, PathBuf)> {
    std::env::split_paths(value)
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| {
            let text = p.to_string_lossy();
            match text.split_once('=') {
                Some((label, path)) if !label.is_empty() && !label.contains('/') => {
                    (Some(label.to_owned()), PathBuf::from(path))
                }
                _ => (None, p),
            }
        })
        .collect()
}

/// Tells cargo (which shows `cargo:warning` lines) about the doc comments a tolerant
/// read dropped: the first few with their `file:line`, then how many more.
fn warn_dropped(warnings: &[crate::model::Warning]) {
    const SHOWN: usize = 5;
    if warnings.is_empty() {
        return;
    }
    println!(
        "cargo:warning={} doc comment(s) of the schema could not be understood and were \
         dropped (their items have no docs; the definitions are complete)",
        warnings.len()
    );
    for w in warnings.iter().take(SHOWN) {
        println!("cargo:warning={}", w.to_string().replace('\n', " "));
    }
    if warnings.len() > SHOWN {
        println!("cargo:warning=… and {} more", warnings.len() - SHOWN);
    }
}

/// Writes `content` to `path` unless it already holds exactly that.
///
/// # Errors
/// The file cannot be written.
pub fn write_file_if_changed(path: &Path, content: &str) -> Result<(), Error> {
    if std::fs::read(path).is_ok_and(|old| old == content.as_bytes()) {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_owned(),
            source,
        })?;
    }
    std::fs::write(path, content).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("qapi-config-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    #[test]
    fn reports_every_file_read_including_includes() {
        let d = temp_dir("includes");
        std::fs::write(
            d.join("main.json"),
            "{ 'include': 'sub.json' }\n{ 'command': 'a' }\n",
        )
        .expect("write");
        std::fs::write(d.join("sub.json"), "{ 'event': 'B' }\n").expect("write");
        let g = Config::new()
            .schema(d.join("main.json"))
            .env_override(None)
            .cargo_directives(false)
            .generate_string()
            .expect("generate");
        let names: Vec<String> = g
            .files
            .iter()
            .map(|f| {
                f.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(names, ["main.json", "sub.json"]);
        assert!(g.code.starts_with("// @generated by qapi-codegen"));
        assert!(g.code.contains("pub struct A;"));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn schema_error_names_file_and_line() {
        let d = temp_dir("error");
        let p = d.join("bad.json");
        std::fs::write(
            &p,
            "{ 'command': 'a' }\n{ 'struct': 'Thing', 'data': { 'x': 'Nope' } }\n",
        )
        .expect("write");
        let e = Config::new()
            .schema(&p)
            .env_override(None)
            .cargo_directives(false)
            .generate_string()
            .expect_err("bad schema");
        let msg = e.to_string();
        assert!(msg.contains("bad.json:2"), "{msg}");
        assert!(msg.contains("Nope"), "{msg}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn introspection_output_is_detected() {
        let d = temp_dir("introspect");
        let p = d.join("schema.json");
        std::fs::write(
            &p,
            r#"[{"name": "stop", "meta-type": "command", "arg-type": "0", "ret-type": "0"},
               {"name": "0", "meta-type": "object", "members": []}]"#,
        )
        .expect("write");
        let g = Config::new()
            .schema(&p)
            .env_override(None)
            .cargo_directives(false)
            .generate_string()
            .expect("generate");
        assert!(g.code.contains("const NAME: &'static str = \"stop\""));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn writes_only_when_changed() {
        let d = temp_dir("write");
        let p = d.join("out.rs");
        write_file_if_changed(&p, "a").expect("write");
        let t1 = std::fs::metadata(&p)
            .and_then(|m| m.modified())
            .expect("mtime");
        std::thread::sleep(std::time::Duration::from_millis(20));
        write_file_if_changed(&p, "a").expect("write");
        let t2 = std::fs::metadata(&p)
            .and_then(|m| m.modified())
            .expect("mtime");
        assert_eq!(t1, t2);
        write_file_if_changed(&p, "b").expect("write");
        assert_eq!(std::fs::read_to_string(&p).expect("read"), "b");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_missing_schema_names_the_absolute_path_tried() {
        // A variable of this test alone: tests run in parallel threads.
        let var = "QAPI_CODEGEN_TEST_MISSING_SCHEMA";
        std::env::set_var(var, "no/such/schema.json");
        let e = Config::new()
            .schema("unused.json")
            .env_override(Some(var))
            .cargo_directives(false)
            .generate_string()
            .expect_err("missing schema");
        std::env::remove_var(var);
        let msg = e.to_string();
        let abs = std::env::current_dir()
            .expect("cwd")
            .join("no/such/schema.json");
        assert!(msg.contains(&format!("'{}'", abs.display())), "{msg}");
        assert!(msg.contains(&format!("{var}=no/such/schema.json")), "{msg}");
        assert!(msg.contains("give an absolute path"), "{msg}");
        let Error::Unreadable { path, .. } = e else {
            panic!("{e:?}")
        };
        assert_eq!(path, abs);
    }

    #[test]
    fn the_dialect_variable_overrides_and_is_checked() {
        let d = temp_dir("dialect-var");
        // A simple union: only the legacy dialect reads it.
        let p = d.join("legacy.json");
        std::fs::write(
            &p,
            "{ 'struct': 'Abc', 'data': { 'x': 'int' } }\n\
             { 'union': 'Uni', 'data': { 'a': 'Abc' } }\n\
             { 'command': 'c', 'data': { 'arg': 'Uni' } }\n",
        )
        .expect("write");
        let var = "QAPI_CODEGEN_TEST_DIALECT_SCHEMA";
        let generate = |dialect: Option<&str>| {
            match dialect {
                Some(v) => std::env::set_var(format!("{var}_DIALECT"), v),
                None => std::env::remove_var(format!("{var}_DIALECT")),
            }
            Config::new()
                .schema(&p)
                .env_override(Some(var))
                .cargo_directives(false)
                .generate_string()
        };
        assert!(generate(None).is_ok(), "decided: legacy");
        assert!(generate(Some("legacy")).is_ok());
        let e = generate(Some("current")).expect_err("current dialect");
        assert!(e.to_string().contains("legacy.json:2"), "{e}");
        let e = generate(Some("ancient")).expect_err("bad value");
        assert!(
            e.to_string()
                .contains(&format!("{var}_DIALECT=\"ancient\": expected")),
            "{e}"
        );
        std::env::remove_var(format!("{var}_DIALECT"));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_list_of_schemas_is_their_union() {
        let d = temp_dir("union");
        let old = d.join("old.json");
        let new = d.join("new.json");
        std::fs::write(&old, "{ 'command': 'gone' }\n{ 'command': 'both' }\n").expect("write");
        std::fs::write(&new, "{ 'command': 'both' }\n{ 'command': 'added' }\n").expect("write");
        // Labelled in the variable, separated as in PATH.
        let var = "QAPI_CODEGEN_TEST_UNION_SCHEMA";
        let list = std::env::join_paths([
            format!("7.2={}", old.display()),
            format!("10.0={}", new.display()),
        ])
        .expect("join");
        std::env::set_var(var, &list);
        let g = Config::new()
            .schema("unused.json")
            .env_override(Some(var))
            .cargo_directives(false)
            .generate_string()
            .expect("generate");
        std::env::remove_var(var);
        let labels: Vec<&str> = g.schemas.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(labels, ["7.2", "10.0"]);
        assert_eq!(g.schema, old);
        for item in ["pub struct Gone;", "pub struct Both;", "pub struct Added;"] {
            assert!(g.code.contains(item), "{item}");
        }
        assert!(g.code.contains("pub mod availability"));
        assert!(g
            .code
            .contains("Only in QEMU 7.2 of the listed releases (7.2 and 10.0)."));
        // From Config, labelled by hand; a missing one names the path tried.
        let e = Config::new()
            .labelled_schemas([("1.0", &old), ("2.0", &d.join("none.json"))])
            .env_override(None)
            .cargo_directives(false)
            .generate_string()
            .expect_err("missing");
        assert!(e.to_string().contains("none.json"), "{e}");
        let e = Config::new()
            .labelled_schemas([("1.0", &old), ("1.0", &new)])
            .env_override(None)
            .cargo_directives(false)
            .generate_string()
            .expect_err("same label");
        assert!(e.to_string().contains("'1.0'"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn lists_split_as_path_with_labels() {
        let l = split_list(std::ffi::OsStr::new("7.2=/a/x.json:/b/c=d.json::/e.json"));
        assert_eq!(
            l,
            [
                (Some("7.2".to_owned()), PathBuf::from("/a/x.json")),
                (None, PathBuf::from("/b/c=d.json")),
                (None, PathBuf::from("/e.json")),
            ]
        );
    }

    #[test]
    fn no_schema_is_an_error() {
        let e = Config::new()
            .env_override(None)
            .cargo_directives(false)
            .generate_string()
            .expect_err("no schema");
        assert!(matches!(e, Error::NoSchema(_)));
    }
}
