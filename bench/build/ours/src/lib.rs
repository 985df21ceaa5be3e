//! Uses one command so the bindings are really compiled in.
pub use qemu_qapi::commands::QueryVersion;
