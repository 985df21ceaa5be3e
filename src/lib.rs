//! Typed QMP bindings generated from QEMU's QAPI schema.
#![deny(missing_docs)]
pub use qmp;
