//! `qemu_qapi::guest` against a fake agent (tests come in the next commit).
