//! Command handlers: what the test server runs for each command, typed or raw.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use super::{ClientId, Server};
use crate::Command;

/// The error a handler answers with: the crate's one [`crate::QmpError`] (the type a
/// client receives), re-exported here as `qmp::server::QmpError`.
pub use crate::QmpError;

/// What a handler is told besides the arguments.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The connection the command came on.
    pub client: ClientId,
    /// The command name.
    pub command: String,
    /// Whether it came as `exec-oob`.
    pub oob: bool,
    /// The server, e.g. to emit events (an event emitted to this client before the
    /// handler returns is sent before the reply).
    pub server: Server,
    /// Events to send right after the reply ([`Ctx::emit_after_reply`]).
    pub(crate) trailing: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Ctx {
    /// Queues an event to be sent to this client right after the reply (or at once
    /// when the command sends no reply); `data` is omitted when `None`. Does nothing
    /// in guest-agent mode (qemu-ga sends no events).
    pub fn emit_after_reply(&self, name: &str, data: Option<Value>) {
        if self.server.shared().agent {
            return;
        }
        let line = super::encode_event(name, data.as_ref());
        self.trailing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(line);
    }
}

/// The future a raw handler returns: the `return` value (`None` to send no reply, as
/// for QEMU's `success-response: false` commands) or an error.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Option<Value>, QmpError>> + Send>>;

/// A raw handler: the `arguments` object (empty when absent) in, the reply out.
pub(crate) type RawHandler = Arc<dyn Fn(Ctx, Map<String, Value>) -> HandlerFuture + Send + Sync>;

/// A registered command.
#[derive(Clone)]
pub(crate) struct Registered {
    pub(crate) handler: RawHandler,
    pub(crate) allow_oob: bool,
}

/// Wraps a typed closure for command `C` into a raw handler: arguments are decoded into
/// `C`, the reply is `C::Reply` (so the compiler checks its type) and encoded back.
pub(crate) fn typed<C, F, Fut>(f: F) -> Registered
where
    C: Command + DeserializeOwned + Send + 'static,
    C::Reply: Serialize,
    F: Fn(C, Ctx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<C::Reply, QmpError>> + Send + 'static,
{
    let f = Arc::new(f);
    let handler: RawHandler = Arc::new(move |ctx, args| {
        let f = f.clone();
        Box::pin(async move {
            let cmd = decode_arguments::<C>(args)?;
            let reply = f(cmd, ctx).await?;
            if !C::SUCCESS_RESPONSE {
                return Ok(None);
            }
            serde_json::to_value(reply).map(Some).map_err(|e| {
                QmpError::generic(format!(
                    "qmp::server: the reply to {} failed to serialize: {e}",
                    C::NAME
                ))
            })
        })
    });
    Registered {
        handler,
        allow_oob: C::ALLOW_OOB,
    }
}

/// Decodes the arguments object into `C`; a command type without members may also be
/// unit-like, so `null` is tried when the object is empty.
fn decode_arguments<C: Command + DeserializeOwned>(
    args: Map<String, Value>,
) -> Result<C, QmpError> {
    let empty = args.is_empty();
    match serde_json::from_value::<C>(Value::Object(args)) {
        Ok(c) => Ok(c),
        Err(e) => {
            if empty {
                if let Ok(c) = serde_json::from_value::<C>(Value::Null) {
                    return Ok(c);
                }
            }
            Err(QmpError::generic(format!(
                "qmp::server: arguments of {} do not decode: {e}",
                C::NAME
            )))
        }
    }
}

/// Wraps a raw async closure that may decline to reply (`Ok(None)`).
pub(crate) fn raw_optional<F, Fut>(f: F, allow_oob: bool) -> Registered
where
    F: Fn(Ctx, Map<String, Value>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<Value>, QmpError>> + Send + 'static,
{
    let f = Arc::new(f);
    Registered {
        handler: Arc::new(move |ctx, args| Box::pin(f(ctx, args))),
        allow_oob,
    }
}

/// Wraps a raw async closure.
pub(crate) fn raw<F, Fut>(f: F, allow_oob: bool) -> Registered
where
    F: Fn(Ctx, Map<String, Value>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, QmpError>> + Send + 'static,
{
    let f = Arc::new(f);
    Registered {
        handler: Arc::new(move |ctx, args| {
            let fut = f(ctx, args);
            Box::pin(async move { fut.await.map(Some) })
        }),
        allow_oob,
    }
}
