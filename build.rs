//! Generates the bindings (see `qapi-codegen`'s `Config`).
//!
//! * `qapi.rs`: QMP, from `schema/qemu-system-10.0.json` (a definitions-only snapshot
//!   of QEMU 10.0's system emulator schema), or from the file the environment variable
//!   `QMP_SCHEMA` names: QAPI sources (`qapi-schema.json`) or `query-qmp-schema`
//!   output, detected from the content.
//! * `qga.rs` (feature `qga`): the guest agent, from `schema/qemu-ga-10.0.json`, or from
//!   `QGA_SCHEMA`.
//!
//! Each item's docs link to its entry in the manual of its program: QEMU's QMP
//! reference manual, or the guest agent protocol reference.
//!
//! A schema error fails the build with its `file:line: message`.
use std::process::ExitCode;

use qapi_codegen::emit::Manual;

fn main() -> ExitCode {
    println!("cargo:rerun-if-changed=build.rs");
    let mut jobs = vec![(
        "schema/qemu-system-10.0.json",
        "QMP_SCHEMA",
        "qapi.rs",
        Manual::qmp(),
    )];
    if std::env::var_os("CARGO_FEATURE_QGA").is_some() {
        jobs.push((
            "schema/qemu-ga-10.0.json",
            "QGA_SCHEMA",
            "qga.rs",
            Manual::guest_agent(),
        ));
    }
    for (schema, var, out, manual) in jobs {
        let result = qapi_codegen::Config::new()
            .check_arguments(std::env::var_os("CARGO_FEATURE_CHECK_ARGUMENTS").is_some())
            .schema(schema)
            .env_override(Some(var))
            .manual(manual)
            .generate_to_out_dir(out);
        if let Err(e) = result {
            // cargo shows a build script's stderr when it fails.
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
