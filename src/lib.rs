//! Typed QMP bindings generated from QEMU's QAPI schema.
//!
//! Every command is a struct of its arguments implementing [`qmp::Command`] (with its
//! wire name and reply type), every event a struct implementing [`qmp::Event`] and a
//! variant of [`events::Event`], and every QAPI type a Rust type in [`types`]. The
//! compiler checks command names, argument types, reply types and `match` arms over
//! events for the QEMU version the bindings were built for.
//!
//! Quick start (the README's): a typed call, then a `match` over events.
//!
//! ```no_run
//! use qemu_qapi::events::Event;
//! use qemu_qapi::{commands, qmp};
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), qmp::Error> {
//!     let client = qmp::connect_unix("/tmp/qmp.sock").await?;
//!     let status = client.execute(&commands::QueryStatus {}).await?;
//!     println!("the VM is {:?}", status.status);
//!
//!     let mut events = client.subscribe_all::<Event>(); // before the command that causes them
//!     client.execute(&commands::Stop {}).await?;
//!     while let Some(event) = events.next().await {
//!         match event? {
//!             Event::Stop => println!("stopped"),
//!             Event::JobStatusChange(job) => println!("job {}: {:?}", job.id, job.status),
//!             other => println!("{}", other.name()),
//!         }
//!     }
//!     Ok(())
//! }
//! ```
//!
//! Structs are built with `new(required…)` and `with_*` setters:
//!
//! ```no_run
//! # async fn demo(client: &qemu_qapi::qmp::Client) -> Result<(), qemu_qapi::qmp::Error> {
//! use qemu_qapi::commands;
//!
//! let resize = commands::BlockResize::new(1 << 30).with_node_name("disk0");
//! client.execute(&resize).await?;
//! # Ok(()) }
//! ```
//!
//! The guides (`docs/` in the repository, listed in the README) cover calls and
//! errors, events, jobs, fd passing, the blocking client, building for your QEMU,
//! testing with `qmp::server`, and the `qmp` program; `examples/` has a runnable
//! program for each.
//!
//! # Which QEMU
//!
//! By default the bindings are built from `schema/qemu-system-10.0.json`, a
//! definitions-only snapshot of QEMU 10.0's system emulator schema written by
//! `qapi-codegen snapshot`. To build them for the QEMU you run, point `QMP_SCHEMA` at
//! its `qapi/qapi-schema.json` (the sources of any release from 3.1 on, read with no
//! flag; `QMP_SCHEMA_DIALECT=legacy|current` forces the dialect), or at a file holding
//! its `query-qmp-schema` output (`qmp schema > file`), whose types then take the
//! names QEMU's sources give them, recovered from the snapshots in `schema/`: code
//! written against these default bindings compiles against either. The kind is
//! detected from the content, and the crate is rebuilt when the variable or any file
//! read changes. Relative paths are relative to this crate's folder (give an absolute
//! one; an error names the absolute path tried).
//!
//! With the `qga` feature, [`ga`] holds the guest agent's bindings (from
//! `schema/qemu-ga-10.0.json`, or `QGA_SCHEMA`).
//!
//! For several releases at once, `QAPI_RELEASES=7.2..10.0` builds the union of the
//! snapshots of `schema/` in that range (or `QMP_SCHEMA` lists several schemas,
//! separated as in `PATH`): every command, event, type, member and enum value any of
//! them has, members optional unless every release requires them, and
//! `availability` saying which release has each item (`docs/building.md`, "One build
//! for a range of releases").
//!
//! # Compatibility with newer QEMU
//!
//! Enums keep values they do not know (`Unknown(String)`), unions keep branches they
//! do not know, and [`events::Event::Unknown`] keeps unknown events, so a newer QEMU
//! never makes decoding fail where it only added something. Structs are
//! `#[non_exhaustive]` and built with `new(required…)` and `with_*` setters, so code
//! keeps compiling when a newer schema adds optional members.
//!
// `ga` exists only with the `qga` feature: without it the link points at "Which QEMU".
#![cfg_attr(feature = "qga", doc = "[`ga`]: crate::ga")]
#![cfg_attr(not(feature = "qga"), doc = "[`ga`]: crate#which-qemu")]
#![deny(missing_docs)]
// Feature badges on docs.rs (`[package.metadata.docs.rs]` in Cargo.toml).
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use qmp;

mod generated {
    include!(concat!(env!("OUT_DIR"), "/qapi.rs"));
}

pub use generated::{commands, events, types};

/// Which of the releases the bindings were built for have each command, event, type,
/// member, enum value, branch and alternative: only in bindings built for several
/// releases (`QAPI_RELEASES=7.2..10.0`, or several schemas in `QMP_SCHEMA`).
///
/// ```ignore
/// let table = qemu_qapi::availability::TABLE;
/// assert_eq!(table.reply_member("query-status", "singlestep"), Some(&["7.2"][..]));
/// ```
#[cfg(qapi_availability)]
pub use generated::availability;

#[cfg(feature = "schema")]
pub use generated::SCHEMA_JSON;

/// The bindings' own schema ([`SCHEMA_JSON`]) indexed, once per process (on the first
/// call; feature `schema`): the bindings' side of [`drift`], and of
/// [`qmp::drift::Drift::between`] for a program that compares it otherwise.
///
/// # Errors
/// When [`SCHEMA_JSON`] cannot be indexed, which would be a bug of the generator; the
/// error is kept and returned by every call.
#[cfg(feature = "schema")]
pub fn bindings_schema() -> Result<&'static qmp::schema_check::Schema, qmp::drift::ReadError> {
    static INDEX: std::sync::OnceLock<Result<qmp::schema_check::Schema, qmp::drift::ReadError>> =
        std::sync::OnceLock::new();
    INDEX
        .get_or_init(|| {
            qmp::schema_check::Schema::from_json_str(SCHEMA_JSON)
                .map_err(|e| qmp::drift::ReadError::new(qmp::drift::Side::Bindings, e))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The differences between these bindings and the QEMU whose schema is `peer` (feature
/// `schema`): commands, events, members, branches and enumeration values only one
/// side has, members required on one side and optional on the other, and whether a
/// command is fully supported ([`qmp::drift`]).
///
/// `peer` is the schema the client keeps for the connection
/// ([`qmp::Client::peer_schema`], fetched once, shared with `supports` and the
/// refusal before sending), so the drift costs no request of its own; the bindings'
/// side is indexed once per process ([`bindings_schema`]).
///
/// ```no_run
/// # async fn demo(client: &qemu_qapi::qmp::Client) -> Result<(), Box<dyn std::error::Error>> {
/// let drift = qemu_qapi::drift(&*client.peer_schema().await?)?;
/// if !drift.is_fully_supported("blockdev-add") {
///     eprintln!("{}", drift.support("blockdev-add"));
/// }
/// print!("{drift}");
/// # Ok(()) }
/// ```
///
/// # Errors
/// Only when the bindings' own schema cannot be indexed ([`bindings_schema`]).
#[cfg(feature = "schema")]
pub fn drift(peer: &qmp::PeerSchema) -> Result<qmp::drift::Drift, qmp::drift::ReadError> {
    Ok(qmp::drift::Drift::between(bindings_schema()?, peer))
}

/// The guest agent's bindings (`qemu-ga`): `types`, `commands`, `events`.
#[cfg(feature = "qga")]
pub mod ga {
    include!(concat!(env!("OUT_DIR"), "/qga.rs"));
}

/// Helpers over a guest-agent connection: run a program, copy files, freeze file systems.
#[cfg(feature = "qga")]
pub mod guest;

/// Running a background job (`blockdev-create`, `drive-mirror`, …) to its end, with
/// QEMU's error when it fails: [`jobs::run`].
pub mod jobs;
