//! A required member under a condition (`if`) is optional in the bindings: the QEMU
//! builds that leave it out do not send it. `query-cpu-model-expansion`'s reply has
//! `deprecated-props`, required but only on s390x (`TARGET_S390X`): against the
//! installed x86_64 QEMU 10.0 the typed call decodes, without it.

#[path = "support/skip.rs"]
mod skip;

use std::time::Duration;

use qemu_qapi::commands::QueryCpuModelExpansion;
use qemu_qapi::qmp;
use qemu_qapi::types::{CpuModelExpansionType, CpuModelInfo};
use qmp::local::LocalQemu;

#[test]
fn a_reply_without_a_conditional_required_member_decodes() {
    if !qmp::local::installed("qemu-system-x86_64") {
        skip::skipping("qemu-system-x86_64 is not installed (scripts/setup-qemu)");
        return;
    }
    let mut qemu = LocalQemu::system_none().expect("QEMU 10.0");
    qemu.wait_for_socket(Duration::from_secs(10))
        .expect("QEMU listening");
    let client = qmp::blocking::Client::connect_unix(&qmp::Config::new(), qemu.socket())
        .expect("connecting");
    let reply = client
        .execute(&QueryCpuModelExpansion::new(
            CpuModelExpansionType::Full,
            CpuModelInfo::new("qemu64"),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reply.model.name, "qemu64");
    assert!(reply.model.props.is_some());
    assert_eq!(reply.deprecated_props, None, "x86_64 does not send it");
}
