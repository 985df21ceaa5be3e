//! Replaying a recorded session ([`super::transcript`]) as a server.
//!
//! The transcript is cut into exchanges: each request the client sent, with the
//! messages the server sent after it until the next request (its reply, found by id
//! when the request had one, and the events). When a request arrives, the first unused
//! exchange with the same command name, the same `execute`/`exec-oob` form and equal
//! arguments (absent and `{}` are equal) answers it: its events are sent in recorded
//! order around the recorded reply, whose id is replaced by the incoming request's.
//! The greeting is the recorded one; `qmp_capabilities` is handled by the server
//! itself (so the handshake rules still hold), and events recorded with it are sent
//! before the first replayed reply. A request nothing matches gets a `GenericError`
//! saying so. Secret members recorded redacted ([`crate::secrets`]) match whatever
//! value the incoming request has there.
//!
//! # Sessions
//! By default ([`ReplayMode::EverySession`]) every connection is served the whole
//! transcript from its start, with its own cursor: the greeting, the negotiation, the
//! events recorded with it, then each recorded exchange once per connection, however
//! many connections come one after the other or at once (several test processes
//! sharing one `qmp serve --replay`, or two clients taking turns on it). With
//! [`ReplayMode::Once`] the exchanges are served once in all, shared by every
//! connection: what one connection used is gone for the next, which then gets the "no
//! recorded request matches" error.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Map, Value};

use super::handler::{Ctx, QmpError};
use super::transcript::{Direction, Entry};
use super::ClientId;

/// Which connections a [`Replay`] serves the transcript to (see the
/// [module docs](self#sessions)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplayMode {
    /// Every connection gets the transcript from its start, with its own cursor (the
    /// default, and what `qmp serve --replay` does).
    #[default]
    EverySession,
    /// The recorded exchanges are served once, shared by all connections: a request
    /// already answered on one connection is not answered again on another.
    Once,
}

#[derive(Debug, Clone)]
enum Recorded {
    Event(Value),
    Reply(Value),
}

#[derive(Debug)]
struct Exchange {
    command: String,
    oob: bool,
    arguments: Map<String, Value>,
    id: Option<Value>,
    messages: Vec<Recorded>,
    has_reply: bool,
}

/// Where one session (or, with [`ReplayMode::Once`], all of them) is in the transcript.
#[derive(Debug)]
struct Cursor {
    /// Whether the events recorded with `qmp_capabilities` were sent.
    preamble_sent: bool,
    /// Which exchanges were answered, by index.
    used: Vec<bool>,
}

impl Cursor {
    fn new(exchanges: usize) -> Cursor {
        Cursor {
            preamble_sent: false,
            used: vec![false; exchanges],
        }
    }

    fn remaining(&self) -> usize {
        self.used.iter().filter(|u| !**u).count()
    }
}

/// The cursors: one shared ([`ReplayMode::Once`]) or one per connection.
#[derive(Debug)]
struct Cursors {
    shared: Cursor,
    sessions: HashMap<ClientId, Cursor>,
    /// The connection that started last, for [`Replay::remaining`].
    latest: Option<ClientId>,
}

/// A recorded session, ready to serve (see [`super::ServerBuilder::replay`]).
#[derive(Debug)]
pub struct Replay {
    greeting: Option<String>,
    mode: ReplayMode,
    preamble: Vec<Value>,
    exchanges: Vec<Exchange>,
    cursors: Mutex<Cursors>,
}

impl Replay {
    /// Cuts a transcript into exchanges.
    pub fn new(entries: &[Entry]) -> Replay {
        let mut greeting = None;
        let mut exchanges: Vec<Exchange> = Vec::new();
        for e in entries {
            match e.dir {
                Direction::ToServer => {
                    let Some(obj) = e.msg.as_object() else {
                        continue;
                    };
                    let (command, oob) = match (obj.get("execute"), obj.get("exec-oob")) {
                        (Some(Value::String(c)), _) => (c.clone(), false),
                        (_, Some(Value::String(c))) => (c.clone(), true),
                        _ => continue,
                    };
                    exchanges.push(Exchange {
                        command,
                        oob,
                        arguments: obj
                            .get("arguments")
                            .and_then(Value::as_object)
                            .cloned()
                            .unwrap_or_default(),
                        id: obj.get("id").cloned(),
                        messages: Vec::new(),
                        has_reply: false,
                    });
                }
                Direction::ToClient => {
                    let Some(obj) = e.msg.as_object() else {
                        continue;
                    };
                    if obj.contains_key("QMP") {
                        if greeting.is_none() {
                            greeting = Some(e.msg.to_string());
                        }
                    } else if obj.contains_key("event") {
                        if let Some(x) = exchanges.last_mut() {
                            x.messages.push(Recorded::Event(e.msg.clone()));
                        }
                    } else if obj.contains_key("return") || obj.contains_key("error") {
                        let id = obj.get("id");
                        let target = match id {
                            Some(id) => exchanges
                                .iter_mut()
                                .rev()
                                .find(|x| !x.has_reply && x.id.as_ref() == Some(id)),
                            None => exchanges
                                .iter_mut()
                                .find(|x| !x.has_reply && x.id.is_none()),
                        };
                        if let Some(x) = target {
                            let mut reply = obj.clone();
                            reply.remove("id");
                            x.messages.push(Recorded::Reply(Value::Object(reply)));
                            x.has_reply = true;
                        }
                    }
                }
            }
        }
        // The server answers qmp_capabilities itself; keep its events for later.
        let mut preamble = Vec::new();
        exchanges.retain(|x| {
            if x.command == "qmp_capabilities" {
                preamble.extend(x.messages.iter().filter_map(|m| match m {
                    Recorded::Event(e) => Some(e.clone()),
                    Recorded::Reply(_) => None,
                }));
                false
            } else {
                true
            }
        });
        Replay {
            greeting,
            mode: ReplayMode::default(),
            preamble,
            cursors: Mutex::new(Cursors {
                shared: Cursor::new(exchanges.len()),
                sessions: HashMap::new(),
                latest: None,
            }),
            exchanges,
        }
    }

    /// Sets which connections are served the transcript (default
    /// [`ReplayMode::EverySession`]).
    pub fn mode(mut self, mode: ReplayMode) -> Replay {
        self.mode = mode;
        self
    }

    /// Which connections are served the transcript.
    pub fn replay_mode(&self) -> ReplayMode {
        self.mode
    }

    /// Reads a transcript file and cuts it into exchanges.
    ///
    /// # Errors
    /// As [`super::transcript::read`].
    pub fn from_file(
        path: impl AsRef<std::path::Path>,
    ) -> Result<Replay, super::transcript::TranscriptError> {
        Ok(Replay::new(&super::transcript::read(path)?))
    }

    /// The recorded greeting line, if the transcript has one.
    pub fn greeting_line(&self) -> Option<String> {
        self.greeting.clone()
    }

    /// How many recorded requests have not been replayed yet: in all with
    /// [`ReplayMode::Once`]; with [`ReplayMode::EverySession`], on the connection that
    /// sent its first request last (all of them before any has).
    pub fn remaining(&self) -> usize {
        let cursors = self.lock_cursors();
        match self.mode {
            ReplayMode::Once => cursors.shared.remaining(),
            ReplayMode::EverySession => cursors
                .latest
                .and_then(|id| cursors.sessions.get(&id))
                .map_or(self.exchanges.len(), Cursor::remaining),
        }
    }

    fn lock_cursors(&self) -> std::sync::MutexGuard<'_, Cursors> {
        self.cursors.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cursor of the connection `ctx` came on, made at its first request.
    fn cursor<'a>(&self, cursors: &'a mut Cursors, ctx: &Ctx) -> &'a mut Cursor {
        if self.mode == ReplayMode::Once {
            return &mut cursors.shared;
        }
        if !cursors.sessions.contains_key(&ctx.client) {
            // Forget the connections that have ended: a server replaying to many
            // connections one after the other keeps only the live ones' cursors.
            // (`clients` lists the negotiated ones, sorted; a connection has a cursor
            // only once it sent a command, so after negotiating.)
            let live = ctx.server.clients();
            cursors
                .sessions
                .retain(|id, _| live.binary_search(id).is_ok());
            cursors.latest = Some(ctx.client);
        }
        let n = self.exchanges.len();
        cursors
            .sessions
            .entry(ctx.client)
            .or_insert_with(|| Cursor::new(n))
    }

    /// Answers one request; `Ok(None)` when the recording has no reply for it.
    pub(crate) async fn answer(
        &self,
        ctx: Ctx,
        args: Map<String, Value>,
    ) -> Result<Option<Value>, QmpError> {
        let (preamble, messages) = {
            let mut cursors = self.lock_cursors();
            let cursor = self.cursor(&mut cursors, &ctx);
            let preamble = !std::mem::replace(&mut cursor.preamble_sent, true);
            // A transcript records secret members redacted (super::transcript): such a
            // request matches the incoming one with the same members redacted. The
            // redacted copy is only made when the transcript has a redaction for
            // this command.
            let mut redacted = None;
            let found = self.exchanges.iter().enumerate().find(|(i, x)| {
                if cursor.used[*i] || x.command != ctx.command || x.oob != ctx.oob {
                    return false;
                }
                if x.arguments == args {
                    return true;
                }
                let redacted = redacted.get_or_insert_with(|| {
                    let mut a = args.clone();
                    crate::secrets::redact_arguments(&ctx.command, &mut a).then_some(a)
                });
                redacted.as_ref() == Some(&x.arguments)
            });
            match found {
                Some((i, x)) => {
                    cursor.used[i] = true;
                    (preamble, Ok(x.messages.clone()))
                }
                None => (preamble, Err(())),
            }
        };
        if preamble {
            for ev in &self.preamble {
                emit_recorded(&ctx, ev, false).await;
            }
        }
        let Ok(messages) = messages else {
            return Err(QmpError::generic(format!(
                "qmp::server replay: no recorded request matches {} {}",
                ctx.command,
                Value::Object(args)
            )));
        };
        let mut reply = None;
        for m in messages {
            match m {
                Recorded::Event(ev) => emit_recorded(&ctx, &ev, reply.is_some()).await,
                Recorded::Reply(r) => reply = Some(r),
            }
        }
        match reply {
            None => Ok(None),
            Some(Value::Object(mut r)) => match r.remove("return") {
                Some(v) => Ok(Some(v)),
                None => {
                    let err = r.remove("error").unwrap_or_default();
                    Err(QmpError::new(
                        err.get("class")
                            .and_then(Value::as_str)
                            .unwrap_or("GenericError"),
                        err.get("desc").and_then(Value::as_str).unwrap_or_default(),
                    ))
                }
            },
            Some(_) => Ok(None),
        }
    }
}

/// Sends a recorded event to the requesting client, before the reply or after it.
async fn emit_recorded(ctx: &Ctx, ev: &Value, after_reply: bool) {
    let name = ev.get("event").and_then(Value::as_str).unwrap_or_default();
    let data = ev.get("data").cloned();
    if after_reply {
        ctx.emit_after_reply(name, data);
    } else {
        ctx.server.emit_raw_to(ctx.client, name, data).await;
    }
}
