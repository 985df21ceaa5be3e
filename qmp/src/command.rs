//! The traits generated bindings implement: [`Command`], [`Event`] and [`EventSet`].
//!
//! These are the contract between the transport and the code `qapi-codegen` emits. The
//! transport only needs a command's wire name and how to (de)serialize it; everything
//! else about a command lives in the generated type.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A QMP command: its arguments (the value of `arguments` on the wire) and the type of
/// its reply (the value of `return`).
///
/// Generated for every QAPI command. A command without arguments serializes to an
/// empty object or is unit-like; the transport omits `arguments` when it serializes to
/// `{}` or `null`.
pub trait Command: Serialize {
    /// The wire name, e.g. `"query-version"`.
    const NAME: &'static str;
    /// The decoded `return` value. `()`-like empty structs for commands that return `{}`.
    type Reply: DeserializeOwned;
    /// Whether QEMU allows this command with `exec-oob` (`allow-oob: true`).
    const ALLOW_OOB: bool = false;
    /// False for the commands QEMU never answers on success (`success-response: false`,
    /// e.g. the guest agent's `guest-shutdown`): the caller must not wait for a reply.
    const SUCCESS_RESPONSE: bool = true;
}

/// A QMP event type: its wire name and its `data` member.
pub trait Event: DeserializeOwned {
    /// The wire name, e.g. `"STOP"`.
    const NAME: &'static str;
}

/// A set of events decoded together, e.g. the generated `Event` enum over every event
/// of a schema, so that a `match` over it is checked by the compiler.
///
/// Implementations must not fail on an event they do not know: they keep it in a
/// catch-all variant (newer QEMU sends events older bindings lack).
pub trait EventSet: Sized {
    /// Decodes one event from its name and the JSON text of its `data` member (`None`
    /// when the message had no `data`). The text is a slice of the received line,
    /// not parsed again beforehand: decoding it is the only pass over it (a `RawValue`
    /// here cost a second, validating, pass per event).
    ///
    /// # Errors
    /// When `data` is not JSON or does not match the type the set has for `name`.
    fn decode(name: &str, data: Option<&str>) -> Result<Self, serde_json::Error>;
}
