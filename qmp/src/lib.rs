//! Async QMP (QEMU Machine Protocol) transport.
#![deny(missing_docs)]

mod command;
pub mod schema_check;

pub use command::{Command, Event, EventSet};
