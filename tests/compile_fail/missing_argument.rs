// `block_resize` needs its `size`; structs can only be built through `new`.
fn main() {
    let _ = qemu_qapi::commands::BlockResize::new();
    let _ = qemu_qapi::commands::BlockResize { device: None, node_name: None };
}
