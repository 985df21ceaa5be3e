//! `qmp --ga` against the installed qemu-ga (tests come in the next commit).
