//! Reads QEMU's QAPI schemas and generates typed Rust bindings.
//!
//! The pipeline runs in passes with an explicit model between them:
//! sources or `query-qmp-schema` output → [`model::Schema`] (checked, resolved) → Rust.
//!
//! Needs Rust 1.85 (the `cli` feature's clap 4.6; the library alone would build with
//! 1.82), checked by compiling with 1.85 in CI (scripts/msrv-check).
#![deny(missing_docs)]
// Feature badges on docs.rs (`[package.metadata.docs.rs]` in Cargo.toml).
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod config;
pub mod diff;
pub mod dump;
pub mod emit;
pub mod front;
pub mod introspect;
pub mod json;
pub mod model;
pub mod snapshot;
pub mod union;

pub use config::Config;
