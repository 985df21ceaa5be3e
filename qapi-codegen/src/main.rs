//! The `qapi-codegen` command-line tool.
//!
//! Each subcommand's body is its own function; add new subcommands to [`Cmd`] and
//! [`main`]'s match.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Reads QEMU QAPI schemas and generates typed Rust bindings.
#[derive(Parser)]
#[command(name = "qapi-codegen", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the schema model as QEMU's tests/qapi-schema/test-qapi.py prints it
    /// (the visitor dump, then the doc dump). On a schema error, print QEMU's
    /// error text to stderr and exit with status 1.
    Dump {
        /// The schema file (e.g. qapi-schema.json).
        file: PathBuf,
    },
    /// Generate the Rust bindings for a schema (QAPI sources or a file of
    /// `query-qmp-schema` output, detected from the content).
    Generate {
        /// The schema file.
        schema: PathBuf,
        /// Where to write the Rust file (written only if it changed).
        #[arg(short, long)]
        out: PathBuf,
        /// How to read QAPI sources, for sources the automatic choice gets wrong
        /// (default: decided from the sources; every release from 3.1 on is read
        /// without it). Doc comments are then read tolerantly.
        #[arg(long, value_enum)]
        dialect: Option<DialectArg>,
        /// The QEMU manual the docs link to.
        #[arg(long, value_enum, default_value = "qmp")]
        manual: ManualArg,
        /// A named schema (QAPI sources or a snapshot such as
        /// schema/qemu-system-10.0.json) whose type names `query-qmp-schema` output
        /// takes where its types are the snapshot's (repeatable; newest release first:
        /// on a tie the capture's own release wins, then the earlier one). Types it does not know, and all types
        /// without it, are named after where they are used; QAPI sources keep their
        /// own names.
        #[arg(long = "names-from", value_name = "SNAPSHOT")]
        names_from: Vec<PathBuf>,
    },
    /// Write a definitions-only snapshot of a schema (one QAPI source file, no
    /// includes, no doc text) that this tool reads back like the sources.
    Snapshot {
        /// The schema file.
        schema: PathBuf,
        /// Where to write the snapshot.
        #[arg(short, long)]
        out: PathBuf,
        /// A line for the snapshot's leading comment (e.g. the QEMU version).
        #[arg(long, default_value = "")]
        title: String,
    },
    /// Print what changed between two schemas (QAPI sources, snapshots or
    /// `query-qmp-schema` output, in any combination), one change per line. Exit
    /// status: 0 when nothing differs, 1 when something does, 2 on an error.
    Diff {
        /// The old schema.
        old: PathBuf,
        /// The new schema.
        new: PathBuf,
        /// Print the changes as JSON (an array of objects, one per line).
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Dump { file } => cmd_dump(&file),
        Cmd::Generate {
            schema,
            out,
            dialect,
            manual,
            names_from,
        } => cmd_generate(&schema, &out, dialect, manual, &names_from),
        Cmd::Snapshot { schema, out, title } => cmd_snapshot(&schema, &out, &title),
        Cmd::Diff { old, new, json } => cmd_diff(&old, &new, json),
    }
}

/// `--dialect`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum DialectArg {
    /// QEMU 6.2 and later.
    Current,
    /// QEMU 3.1 to 6.1 (simple unions, C-expression conditions).
    Legacy,
}

/// `--manual`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ManualArg {
    /// The system emulator's QMP reference manual.
    Qmp,
    /// The guest agent's protocol reference.
    Ga,
    /// The storage daemon's QMP reference manual.
    Qsd,
}

/// `generate SCHEMA -o FILE`.
fn cmd_generate(
    schema: &std::path::Path,
    out: &std::path::Path,
    dialect: Option<DialectArg>,
    manual: ManualArg,
    names_from: &[PathBuf],
) -> ExitCode {
    use qapi_codegen::emit::Manual;
    let mut config = qapi_codegen::Config::new();
    config
        .schema(schema)
        .name_references(names_from)
        .env_override(None)
        .cargo_directives(false)
        .out_file(out)
        .manual(match manual {
            ManualArg::Qmp => Manual::qmp(),
            ManualArg::Ga => Manual::guest_agent(),
            ManualArg::Qsd => Manual::storage_daemon(),
        });
    match dialect {
        Some(DialectArg::Current) => config.dialect(qapi_codegen::model::Dialect::Current),
        Some(DialectArg::Legacy) => config.dialect(qapi_codegen::model::Dialect::Legacy),
        None => &mut config,
    };
    let result = config.generate();
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `snapshot SCHEMA -o FILE`.
fn cmd_snapshot(schema: &std::path::Path, out: &std::path::Path, title: &str) -> ExitCode {
    let loaded = match qapi_codegen::config::load(schema) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let text = qapi_codegen::snapshot::write(&loaded.schema, title);
    match qapi_codegen::config::write_file_if_changed(out, &text) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `dump FILE`.
fn cmd_dump(file: &std::path::Path) -> ExitCode {
    match qapi_codegen::front::load_schema(file) {
        Ok(schema) => {
            // Only a tolerant read of a release's sources has warnings (never QEMU's
            // test cases, whose stderr is compared).
            for w in &schema.warnings {
                eprintln!("warning: {w}");
            }
            let text = qapi_codegen::dump::dump(&schema);
            // The process ends here: freeing the model would only cost time.
            std::mem::forget(schema);
            let mut stdout = std::io::stdout().lock();
            if stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `diff OLD NEW [--json]`.
fn cmd_diff(old: &std::path::Path, new: &std::path::Path, json: bool) -> ExitCode {
    // Status 1 means "they differ", as diff(1) has it; errors get 2.
    let read =
        |p: &std::path::Path| qapi_codegen::front::load_schema(p).map_err(|e| eprintln!("{e}"));
    let (Ok(old), Ok(new)) = (read(old), read(new)) else {
        return ExitCode::from(2);
    };
    let diff = qapi_codegen::diff::diff(&old, &new);
    let text = if json {
        diff.to_json_text()
    } else {
        diff.to_string()
    };
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::from(2);
    }
    if diff.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
