//! Async QMP (QEMU Machine Protocol) transport.
#![deny(missing_docs)]
