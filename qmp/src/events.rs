//! Event fan-out: [`RawEvent`] and the [`EventStream`]s subscribers read.
//!
//! The reader task wraps each event line once in a [`RawEvent`] (the line in an `Arc`)
//! and hands it, in batches, to a bounded queue per subscriber (see `fanout.rs`;
//! nothing is allocated when nobody is subscribed). Each subscriber decodes lazily,
//! in its own task, only the events it asked for. A subscriber whose queue is full
//! either misses the event and is told how many it missed ([`Error::missed_events`],
//! the default) or makes the reader wait ([`Overflow::Backpressure`]); memory stays
//! bounded under event floods either way.

use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::fanout::{Item, Overflow, Subscriber};
use crate::message::Timestamp;
use crate::{Event, EventSet};

/// One event as received: the line, with the positions of its name and data.
///
/// Cloning is cheap (the line is shared): the reader makes one allocation per event,
/// however many subscribers there are.
#[derive(Clone)]
pub struct RawEvent {
    line: Arc<str>,
    name: NameRepr,
    data: Option<Range<usize>>,
    timestamp: Timestamp,
}

#[derive(Clone)]
enum NameRepr {
    InLine(Range<usize>),
    /// The name had JSON escapes, so it is not a slice of the line.
    Owned(Arc<str>),
}

fn offset_in(line: &str, part: &str) -> Range<usize> {
    let start = part.as_ptr() as usize - line.as_ptr() as usize;
    start..start + part.len()
}

impl RawEvent {
    /// Builds an event from a line and the parts [`crate::message::Incoming::parse`]
    /// found in it (`name` and `data` must borrow from `line`, unless `name` is owned).
    pub(crate) fn new(
        line: &str,
        name: &str,
        data: Option<&RawValue>,
        timestamp: Timestamp,
    ) -> RawEvent {
        let line_range = line.as_ptr() as usize..line.as_ptr() as usize + line.len();
        let name = if line_range.contains(&(name.as_ptr() as usize)) {
            NameRepr::InLine(offset_in(line, name))
        } else {
            // Unescaped copy of a name that had escapes in the line.
            NameRepr::Owned(Arc::from(name))
        };
        let data = data.map(|d| offset_in(line, d.get()));
        RawEvent {
            line: Arc::from(line),
            name,
            data,
            timestamp,
        }
    }

    /// The event name, e.g. `"STOP"`.
    pub fn name(&self) -> &str {
        match &self.name {
            NameRepr::InLine(r) => &self.line[r.clone()],
            NameRepr::Owned(n) => n,
        }
    }

    /// The `data` member as JSON text, if present.
    pub fn data_json(&self) -> Option<&str> {
        self.data.as_ref().map(|r| &self.line[r.clone()])
    }

    /// The timestamp QEMU put on the event.
    pub fn timestamp(&self) -> Timestamp {
        self.timestamp
    }

    /// The whole event line, as received.
    pub fn json(&self) -> &str {
        &self.line
    }

    /// Decodes `data` into `T` (from `{}` when the event has no `data`).
    ///
    /// # Errors
    /// [`crate::ErrorKind::Decode`] naming the event and the failing member.
    pub fn decode_data<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        let text = self.data_json().unwrap_or("{}");
        let mut de = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = format!("data.{}", e.path());
            Error::decode(self.name(), path, self.line.to_string(), e.into_inner())
        })
    }

    /// Decodes this event with an [`EventSet`] (e.g. the generated all-events enum).
    ///
    /// # Errors
    /// [`crate::ErrorKind::Decode`] when `data` does not match the set's type for
    /// this event name.
    pub fn decode_set<S: EventSet>(&self) -> Result<S> {
        S::decode(self.name(), self.data_json())
            .map_err(|e| Error::decode(self.name(), "data".into(), self.line.to_string(), e))
    }

    /// The whole event as a `serde_json::Value`.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.line).unwrap_or(serde_json::Value::Null)
    }
}

impl fmt::Debug for RawEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawEvent")
            .field("line", &self.line)
            .finish()
    }
}

/// Turns a shared raw event into a subscriber's item, or skips it (`None`).
type Decoder<T> = fn(&RawEvent) -> Option<Result<T>>;

/// A subscription to events: a [`Stream`] of `Result<T, Error>`.
///
/// Items are `Err` when the subscriber missed events ([`Error::is_lagged`], with
/// the exact number, at the place where they are missing; the stream goes on after
/// it) or when an event did not decode. The stream ends when the connection is
/// closed, after the events it holds.
///
/// Every event routed while the subscription exists is either yielded or counted in
/// a lagged error: nothing is lost silently. What happens when the subscription's
/// buffer ([`crate::Config::event_capacity`]) is full is set by [`Overflow`]
/// (by default the events that do not fit are counted as missed; see
/// [`overflow`](Self::overflow)). A subscription to one event type
/// ([`crate::Client::subscribe`]) buffers, and misses, only events of that type.
///
/// Events that arrive before a reply are kept in the subscription, so subscribing
/// before sending a command never misses the events that command causes.
/// Subscriptions made before the client's first request also start with the events
/// that arrived since negotiation (so subscribing right after connecting misses
/// nothing, even if QEMU sends events at once).
pub struct EventStream<T> {
    sub: Option<Arc<Subscriber>>,
    /// Items taken from the subscriber's queue in one go, not yet yielded.
    local: VecDeque<Item>,
    decode: Decoder<T>,
    _marker: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for EventStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EventStream")
    }
}

impl<T> Drop for EventStream<T> {
    fn drop(&mut self) {
        if let Some(sub) = self.sub.take() {
            sub.drop_stream();
        }
    }
}

impl<T: 'static + Send> EventStream<T> {
    pub(crate) fn new(sub: Arc<Subscriber>, decode: Decoder<T>) -> Self {
        EventStream {
            sub: Some(sub),
            local: VecDeque::new(),
            decode,
            _marker: PhantomData,
        }
    }

    /// Changes what happens when this subscription's buffer is full (default: the
    /// [`crate::Config::event_overflow`] of the connection, itself
    /// [`Overflow::DropNewest`] by default). With [`Overflow::Backpressure`] nothing is
    /// lost, but the connection stops reading (replies included) while this
    /// subscription is full: keep reading it, or drop it.
    ///
    /// The new mode applies from this call on: events that met a full buffer before it
    /// were handled under the old one. To have a mode from the very first event,
    /// subscribe with it ([`crate::Client::subscribe_with`],
    /// [`subscribe_set_with`](crate::Client::subscribe_set_with),
    /// [`subscribe_raw_with`](crate::Client::subscribe_raw_with)).
    pub fn overflow(self, overflow: Overflow) -> Self {
        if let Some(sub) = &self.sub {
            sub.set_overflow(overflow);
        }
        self
    }

    /// The next item, or `None` when the connection has closed.
    pub async fn next(&mut self) -> Option<Result<T>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl<T: 'static + Send> Stream for EventStream<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            match this.local.pop_front() {
                Some(Item::Event(ev)) => {
                    if let Some(item) = (this.decode)(&ev) {
                        return Poll::Ready(Some(item));
                    }
                }
                Some(Item::Missed(n)) => {
                    tracing::warn!(target: "qmp::events", missed = n, "event subscriber lagged");
                    return Poll::Ready(Some(Err(Error::lagged(n))));
                }
                None => {
                    let Some(sub) = &this.sub else {
                        return Poll::Ready(None);
                    };
                    match sub.take_all(&mut this.local, cx.waker()) {
                        Ok(true) => {}
                        Ok(false) => return Poll::Pending,
                        Err(()) => return Poll::Ready(None),
                    }
                }
            }
        }
    }
}

pub(crate) fn decode_raw(ev: &RawEvent) -> Option<Result<RawEvent>> {
    Some(Ok(ev.clone()))
}

pub(crate) fn decode_one<E: Event>(ev: &RawEvent) -> Option<Result<E>> {
    (ev.name() == E::NAME).then(|| ev.decode_data::<E>())
}

pub(crate) fn decode_set<S: EventSet>(ev: &RawEvent) -> Option<Result<S>> {
    Some(ev.decode_set::<S>())
}
