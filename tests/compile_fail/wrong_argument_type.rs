// `size` of `block_resize` is an integer, not a string.
fn main() {
    let _ = qemu_qapi::commands::BlockResize::new("1G");
}
