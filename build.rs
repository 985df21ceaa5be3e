// Generates the bindings from `schema/` (see qapi-codegen). Filled in by the emitter.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
}
