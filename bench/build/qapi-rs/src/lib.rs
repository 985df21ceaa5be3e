//! Uses one command so the bindings are really compiled in.
pub use qapi_qmp::query_version;
