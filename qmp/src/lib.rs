//! Async QMP (QEMU Machine Protocol) transport.
#![deny(missing_docs)]

mod command;

pub use command::{Command, Event, EventSet};
