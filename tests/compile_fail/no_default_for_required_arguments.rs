// A command with a required argument has no `Default` (it would send `block_resize`
// without its `size`), and a union with required members besides its discriminator
// (`CpuInfoFast`) has no `From` a branch's value: only its branch enum does.
fn main() {
    let _ = qemu_qapi::commands::BlockResize::default();
    let s390 = qemu_qapi::types::CpuInfoS390::new(qemu_qapi::types::S390CpuState::Operating);
    let _ = qemu_qapi::types::CpuInfoFast::from(s390);
}
