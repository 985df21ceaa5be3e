//! Async QMP (QEMU Machine Protocol) transport.
#![deny(missing_docs)]

pub mod codec;
mod command;
pub mod message;
pub mod runtime;
pub mod schema_check;
pub mod server;

pub use command::{Command, Event, EventSet};
