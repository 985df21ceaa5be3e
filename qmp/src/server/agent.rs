//! The commands a server in guest-agent mode answers by itself, as qemu-ga does
//! (`qga/commands.c`): `guest-sync`, `guest-sync-delimited` and `guest-ping`, with the
//! argument checks (and texts) of qemu-ga's generated visitors.

use serde_json::{Map, Value};

use super::handler::{raw, QmpError, Registered};

/// The command whose (successful) reply the agent precedes with a 0xFF byte.
pub(crate) const SYNC_DELIMITED: &str = "guest-sync-delimited";

/// The built-in handlers, by command name.
pub(crate) fn builtins() -> [(&'static str, Registered); 3] {
    [
        ("guest-sync", sync_handler()),
        // The 0xFF is added by the session, for whichever handler answers.
        (SYNC_DELIMITED, sync_handler()),
        (
            "guest-ping",
            raw(
                |_ctx, args| async move {
                    only_members(&args, &[])?;
                    Ok(Value::Object(Map::new()))
                },
                false,
            ),
        ),
    ]
}

/// `guest-sync{,-delimited}`: returns its `id` (an `int`).
fn sync_handler() -> Registered {
    raw(
        |_ctx, args| async move {
            // qemu-ga's visitor: the member first, then the leftovers.
            let id = match args.get("id") {
                None => return Err(QmpError::generic("Parameter 'id' is missing")),
                // `int` is int64: a float or a number above i64::MAX is refused.
                Some(v) if v.as_i64().is_some() => v.clone(),
                Some(_) => {
                    return Err(QmpError::generic(
                        "Invalid parameter type for 'id', expected: integer",
                    ))
                }
            };
            only_members(&args, &["id"])?;
            Ok(id)
        },
        false,
    )
}

/// Refuses a member not in `known`, as qemu-ga's `visit_check_struct` does.
fn only_members(args: &Map<String, Value>, known: &[&str]) -> Result<(), QmpError> {
    match args.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(QmpError::generic(format!("Parameter '{k}' is unexpected"))),
        None => Ok(()),
    }
}
