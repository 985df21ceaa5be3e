// `query-status` replies with a `StatusInfo`, not a `VersionInfo`.
use qemu_qapi::qmp::Command;
fn wants_version(_: qemu_qapi::types::VersionInfo) {}
fn main() {
    let reply: <qemu_qapi::commands::QueryStatus as Command>::Reply =
        serde_json::from_str("{}").unwrap();
    wants_version(reply);
}
