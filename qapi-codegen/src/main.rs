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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Dump { file } => cmd_dump(&file),
    }
}

/// `dump FILE`.
fn cmd_dump(file: &std::path::Path) -> ExitCode {
    match qapi_codegen::front::load_schema(file) {
        Ok(schema) => {
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
