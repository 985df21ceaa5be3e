//! The monitor's rules for one request, shared by the test server's sessions
//! (`session.rs`) and the proxy's (`crate::proxy`): how QEMU tells an out-of-band
//! request, checks a request's members, negotiates capabilities and words its errors.
//! Both answer as QEMU's `monitor/qmp.c` and `qapi/qmp-dispatch.c` do, with the same
//! texts, so a client cannot tell either from QEMU by its refusals.

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::handler::QmpError;
use super::json_stream::{parse_message, stray_text, Piece};
use crate::message::{write_error, write_return};
use crate::schema_check::{Schema, COMMAND_NOT_FOUND};

/// The one command every monitor client sends first.
pub(crate) const QMP_CAPABILITIES: &str = "qmp_capabilities";

/// The request a piece of input is: parsed as QEMU's parser does, with its error texts
/// (parse errors, a message over the size limit, a stray byte).
pub(crate) fn request_item(piece: &Piece) -> Result<Value, QmpError> {
    match piece {
        Piece::Message(bytes) => parse_message(bytes).map_err(QmpError::generic),
        Piece::TooLong => Err(QmpError::generic("JSON token size limit exceeded")),
        Piece::Stray(token) => Err(QmpError::generic(stray_text(token))),
    }
}

/// QEMU's `qmp_is_oob()`: `exec-oob` without `execute`. Such a request is dispatched at
/// once, whether or not `oob` was negotiated (without it, the check then refuses
/// `exec-oob` as an unexpected member).
pub(crate) fn is_oob(dict: &Map<String, Value>) -> bool {
    dict.contains_key("exec-oob") && !dict.contains_key("execute")
}

/// QEMU's `qmp_dispatch_check_obj()`, in our map's (sorted) member order: the command
/// name and whether it came as `exec-oob` (only accepted when `allow_oob_input`, i.e.
/// the client negotiated `oob`).
///
/// # Errors
/// QEMU's `GenericError` texts: a member of the wrong type, `execute` and `exec-oob`
/// together, an unexpected member, no command at all.
pub(crate) fn check_request(
    dict: &Map<String, Value>,
    allow_oob_input: bool,
) -> Result<(&str, bool), QmpError> {
    let mut exec_key: Option<&str> = None;
    for (k, v) in dict {
        let k = k.as_str();
        if k == "execute" || (k == "exec-oob" && allow_oob_input) {
            if !v.is_string() {
                return Err(QmpError::generic(format!(
                    "QMP input member '{k}' must be a string"
                )));
            }
            if let Some(prev) = exec_key {
                return Err(QmpError::generic(format!(
                    "QMP input member '{k}' clashes with '{prev}'"
                )));
            }
            exec_key = Some(k);
        } else if k == "arguments" {
            if !v.is_object() {
                return Err(QmpError::generic(
                    "QMP input member 'arguments' must be an object",
                ));
            }
        } else if k != "id" {
            return Err(QmpError::generic(format!(
                "QMP input member '{k}' is unexpected"
            )));
        }
    }
    let Some(exec_key) = exec_key else {
        return Err(QmpError::generic("QMP input lacks member 'execute'"));
    };
    let name = dict
        .get(exec_key)
        .and_then(Value::as_str)
        .unwrap_or_default();
    Ok((name, exec_key == "exec-oob"))
}

/// The error for a command sent before negotiation (QEMU's `CommandNotFound`, reworded
/// by `monitor_qmp_dispatch()`).
pub(crate) fn not_negotiated() -> QmpError {
    QmpError::command_not_found("Expecting capabilities negotiation with 'qmp_capabilities'")
}

/// `e` as a client that has not negotiated yet gets it: a `CommandNotFound` becomes
/// "Expecting capabilities negotiation", as `monitor_qmp_dispatch()` rewords it.
pub(crate) fn in_negotiation_mode(e: QmpError, negotiated: bool) -> QmpError {
    if !negotiated && e.class == COMMAND_NOT_FOUND {
        not_negotiated()
    } else {
        e
    }
}

/// The schema `qmp_capabilities` is checked against when no other schema describes it
/// (QEMU 10.0's: `enable` is an optional list of `QMPCapability`, which has `oob`).
pub(crate) fn capabilities_schema() -> Schema {
    Schema::from_introspection(&serde_json::json!([
        {"name": "QMPCapability", "meta-type": "enum", "values": ["oob"]},
        {"name": "[QMPCapability]", "meta-type": "array", "element-type": "QMPCapability"},
        {"name": "qmp_capabilities-arg", "meta-type": "object",
         "members": [{"name": "enable", "type": "[QMPCapability]", "default": null}]},
        {"name": "0", "meta-type": "object", "members": []},
        {"name": "qmp_capabilities", "meta-type": "command", "arg-type": "qmp_capabilities-arg", "ret-type": "0"}
    ]))
    .unwrap_or_default()
}

/// QEMU's `qmp_qmp_capabilities()` for one client: checks `args` against `schema`,
/// refuses a second negotiation and capabilities not in `offered`. Returns whether the
/// client enabled `oob`.
///
/// # Errors
/// QEMU's texts: "The command qmp_capabilities does not support OOB" (sent as
/// `exec-oob`), the schema's argument errors, "Capabilities negotiation is already
/// complete, command ignored", "Capability X not available".
pub(crate) fn negotiate(
    schema: &Schema,
    args: &Map<String, Value>,
    as_oob: bool,
    negotiated: bool,
    offered: &[String],
) -> Result<bool, QmpError> {
    if as_oob {
        return Err(QmpError::generic(format!(
            "The command {QMP_CAPABILITIES} does not support OOB"
        )));
    }
    schema.check_command(QMP_CAPABILITIES, Some(args))?;
    if negotiated {
        return Err(QmpError::command_not_found(
            "Capabilities negotiation is already complete, command ignored",
        ));
    }
    let enable: Vec<&str> = args
        .get("enable")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let unavailable: Vec<&str> = enable
        .iter()
        .copied()
        .filter(|c| !offered.iter().any(|o| o == c))
        .collect();
    if !unavailable.is_empty() {
        return Err(QmpError::generic(format!(
            "Capability {} not available",
            unavailable.join(", ")
        )));
    }
    Ok(enable.contains(&"oob"))
}

/// The request's `id` as raw JSON, to echo verbatim.
pub(crate) fn raw_id(dict: &Map<String, Value>) -> Option<Box<RawValue>> {
    dict.get("id")
        .and_then(|id| RawValue::from_string(id.to_string()).ok())
}

/// A reply line (without terminator): `{"return": …}` or `{"error": …}`, with `id`.
pub(crate) fn reply_line(result: Result<Value, QmpError>, id: Option<&RawValue>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    match result {
        Ok(v) => {
            // A Value always serializes.
            let _ = write_return(&mut out, &v, id);
        }
        Err(e) => write_error(&mut out, &e.class, &e.desc, id),
    }
    out
}
