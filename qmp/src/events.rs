//! Event fan-out: [`RawEvent`] and the [`EventStream`]s subscribers read.
//!
//! The reader task wraps each event line once in a [`RawEvent`] (one shared
//! allocation holding the line and a small decode cache) and hands it, in batches, to
//! a bounded queue per subscriber (see `fanout.rs`; nothing is allocated when nobody
//! is subscribed). Each subscriber decodes lazily, in its own task, only the events it
//! asked for. A subscriber whose queue is full either misses the event and is told
//! how many it missed ([`Error::missed_events`], the default) or makes the reader wait
//! ([`Overflow::Backpressure`]); memory stays bounded under event floods either way.
//!
//! **Many subscribers of one type (issue 18).** [`crate::Client::subscribe`] and
//! [`crate::Client::subscribe_all`] yield owned values, so each of their subscribers
//! decodes each event itself: with 100 subscribers, 100 decodes. The `*_shared`
//! subscriptions ([`crate::Client::subscribe_all_shared`],
//! [`crate::Client::subscribe_shared`]) yield `Arc<T>` instead: the first subscriber
//! of type `T` to reach an event decodes it into a cache slot of that event (a
//! `OnceLock` keyed by `TypeId`; subscribers of the same type arriving meanwhile wait
//! for it rather than decode again), and every other subscriber of `T` gets a clone
//! of the `Arc`. Why this shape:
//!
//! - `Arc<T>` needs nothing of `T` (no `Clone`), so the [`Event`] and [`EventSet`]
//!   traits, and every existing implementation and caller, are unchanged; handing out a
//!   clone of a shared `T` would have needed a `Clone` bound on those traits (a
//!   breaking change) and would still allocate per subscriber (strings in `T`).
//! - Decoding stays in the subscribers' tasks (in parallel, only for events someone
//!   asked for), not in the reader task, which stays one pass over the line.
//! - A subscriber that holds the only reference to an event (one subscriber, the
//!   common case) decodes without touching the cache.
//! - Decode errors are not cached: each subscriber of an event that failed to decode
//!   decodes it again for its own error, with the same information (event name,
//!   failing member, line) as the owned subscriptions give. Errors are rare.
//!
//! The cache has [`SLOTS`] slots per event: when more distinct types than that decode
//! one event, the others decode it per subscriber, as the owned subscriptions do (still
//! correct, only slower). Decoded values live as long as the event is in some queue,
//! so memory stays bounded by the queues' capacities, as before.

use std::any::{Any, TypeId};
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use futures_core::Stream;
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::fanout::{Item, Overflow, Subscriber};
use crate::message::Timestamp;
use crate::{Event, EventSet};

/// One event as received: the line, with the positions of its name and data.
///
/// Cloning is cheap (one reference count): the reader makes one allocation per event,
/// however many subscribers there are.
#[derive(Clone)]
pub struct RawEvent {
    inner: Arc<Inner>,
}

/// How many decoded types one event can cache (see the module docs).
pub(crate) const SLOTS: usize = 2;

/// A decoded value of some type, or `None` when decoding failed.
type Decoded = (TypeId, Option<Arc<dyn Any + Send + Sync>>);

struct Inner {
    line: Box<str>,
    name: NameRepr,
    data: Option<Range<usize>>,
    timestamp: Timestamp,
    /// Values decoded by `*_shared` subscribers, one slot per type.
    decoded: [OnceLock<Decoded>; SLOTS],
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
            inner: Arc::new(Inner {
                line: Box::from(line),
                name,
                data,
                timestamp,
                decoded: Default::default(),
            }),
        }
    }

    /// The value `decode` makes of this event, decoded once for all the subscribers of
    /// type `T` that share this event (see the module docs); `None` if it failed.
    fn shared<T: Send + Sync + 'static>(
        &mut self,
        decode: impl Fn(&RawEvent) -> Result<T>,
    ) -> Option<Result<Arc<T>>> {
        if Arc::get_mut(&mut self.inner).is_some() {
            // Nobody else holds this event: no one to share with.
            return Some(decode(self).map(Arc::new));
        }
        let this: &RawEvent = self;
        let ty = TypeId::of::<T>();
        for slot in &this.inner.decoded {
            let (t, value) = slot.get_or_init(|| {
                let value = decode(this)
                    .ok()
                    .map(|v| Arc::new(v) as Arc<dyn Any + Send + Sync>);
                (ty, value)
            });
            if *t != ty {
                continue;
            }
            if let Some(Ok(v)) = value.clone().map(|v| v.downcast::<T>()) {
                return Some(Ok(v));
            }
            // Decoding failed: again, for this subscriber's own error.
            break;
        }
        Some(decode(this).map(Arc::new))
    }

    /// The event name, e.g. `"STOP"`.
    pub fn name(&self) -> &str {
        match &self.inner.name {
            NameRepr::InLine(r) => &self.inner.line[r.clone()],
            NameRepr::Owned(n) => n,
        }
    }

    /// The `data` member as JSON text, if present.
    pub fn data_json(&self) -> Option<&str> {
        self.inner
            .data
            .as_ref()
            .map(|r| &self.inner.line[r.clone()])
    }

    /// The timestamp QEMU put on the event.
    pub fn timestamp(&self) -> Timestamp {
        self.inner.timestamp
    }

    /// The whole event line, as received.
    pub fn json(&self) -> &str {
        &self.inner.line
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
            Error::decode(
                self.name(),
                path,
                self.inner.line.to_string(),
                e.into_inner(),
            )
        })
    }

    /// Decodes this event with an [`EventSet`] (e.g. the generated all-events enum).
    ///
    /// # Errors
    /// [`crate::ErrorKind::Decode`] when `data` does not match the set's type for
    /// this event name.
    pub fn decode_set<S: EventSet>(&self) -> Result<S> {
        S::decode(self.name(), self.data_json())
            .map_err(|e| Error::decode(self.name(), "data".into(), self.inner.line.to_string(), e))
    }

    /// The whole event as a `serde_json::Value`.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.inner.line).unwrap_or(serde_json::Value::Null)
    }
}

impl fmt::Debug for RawEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawEvent")
            .field("line", &self.inner.line)
            .finish()
    }
}

/// Turns a shared raw event into a subscriber's item, or skips it (`None`).
/// Takes `&mut` so that a subscriber holding the only reference can skip the cache.
type Decoder<T> = fn(&mut RawEvent) -> Option<Result<T>>;

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
    /// [`subscribe_all_with`](crate::Client::subscribe_all_with),
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
                Some(Item::Event(mut ev)) => {
                    if let Some(item) = (this.decode)(&mut ev) {
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

pub(crate) fn decode_raw(ev: &mut RawEvent) -> Option<Result<RawEvent>> {
    Some(Ok(ev.clone()))
}

pub(crate) fn decode_one<E: Event>(ev: &mut RawEvent) -> Option<Result<E>> {
    (ev.name() == E::NAME).then(|| ev.decode_data::<E>())
}

pub(crate) fn decode_set<S: EventSet>(ev: &mut RawEvent) -> Option<Result<S>> {
    Some(ev.decode_set::<S>())
}

pub(crate) fn decode_one_shared<E: Event + Send + Sync + 'static>(
    ev: &mut RawEvent,
) -> Option<Result<Arc<E>>> {
    if ev.name() != E::NAME {
        return None;
    }
    ev.shared(RawEvent::decode_data::<E>)
}

pub(crate) fn decode_set_shared<S: EventSet + Send + Sync + 'static>(
    ev: &mut RawEvent,
) -> Option<Result<Arc<S>>> {
    ev.shared(RawEvent::decode_set::<S>)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Job {
        id: String,
    }
    impl Event for Job {
        const NAME: &'static str = "JOB";
    }

    #[derive(Debug, PartialEq)]
    struct Names(String);
    impl EventSet for Names {
        fn decode(name: &str, _data: Option<&str>) -> std::result::Result<Self, serde_json::Error> {
            Ok(Names(name.to_owned()))
        }
    }

    /// A second set type, to fill the cache slots with distinct types.
    #[derive(Debug, PartialEq)]
    struct Lens(usize);
    impl EventSet for Lens {
        fn decode(_name: &str, data: Option<&str>) -> std::result::Result<Self, serde_json::Error> {
            Ok(Lens(data.map_or(0, str::len)))
        }
    }

    fn event(line: &str) -> RawEvent {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let name = v["event"].as_str().unwrap();
        let start = line.find(&format!("\"{name}\"")).unwrap() + 1;
        let name = &line[start..start + name.len()];
        let data = line
            .find("\"data\": ")
            .map(|i| serde_json::from_str::<&RawValue>(&line[i + 8..line.len() - 1]).unwrap());
        RawEvent::new(line, name, data, Timestamp::default())
    }

    #[test]
    fn subscribers_of_one_type_share_one_decoded_value() {
        let ev = event(r#"{"event": "JOB", "data": {"id": "j1"}}"#);
        let (mut a, mut b) = (ev.clone(), ev.clone());
        let first = decode_one_shared::<Job>(&mut a).unwrap().unwrap();
        let second = decode_one_shared::<Job>(&mut b).unwrap().unwrap();
        assert_eq!(first.id, "j1");
        assert!(Arc::ptr_eq(&first, &second), "decoded twice");
        // Another type decodes into its own slot, not the first type's value.
        let names = decode_set_shared::<Names>(&mut a).unwrap().unwrap();
        assert_eq!(*names, Names("JOB".into()));
        // More types than slots: still decoded, each by itself.
        let lens = decode_set_shared::<Lens>(&mut b).unwrap().unwrap();
        assert_eq!(*lens, Lens(r#"{"id": "j1"}"#.len()));
        assert!(decode_one_shared::<Job>(&mut b).is_some_and(|j| j.is_ok()));
    }

    #[test]
    fn a_sole_holder_decodes_without_the_cache() {
        let mut ev = event(r#"{"event": "JOB", "data": {"id": "j2"}}"#);
        let job = decode_one_shared::<Job>(&mut ev).unwrap().unwrap();
        assert_eq!(job.id, "j2");
        assert!(ev.inner.decoded.iter().all(|s| s.get().is_none()));
        let other = event(r#"{"event": "OTHER"}"#);
        assert!(
            decode_one_shared::<Job>(&mut other.clone()).is_none(),
            "filtered by name"
        );
    }

    #[test]
    fn every_shared_subscriber_gets_the_decode_error_in_full() {
        let line = r#"{"event": "JOB", "data": {"id": 7}}"#;
        let ev = event(line);
        let (mut a, mut b) = (ev.clone(), ev.clone());
        for ev in [&mut a, &mut b] {
            let err = decode_one_shared::<Job>(ev).unwrap().unwrap_err();
            let owned = decode_one::<Job>(ev).unwrap().unwrap_err();
            assert_eq!(err.to_string(), owned.to_string());
            assert!(err.to_string().contains("JOB"), "{err}");
            assert!(err.to_string().contains("data.id"), "{err}");
        }
    }
}
