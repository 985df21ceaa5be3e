//! Reads QEMU's QAPI schemas and generates typed Rust bindings.
#![deny(missing_docs)]
