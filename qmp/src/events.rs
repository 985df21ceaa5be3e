//! Event fan-out: [`RawEvent`] and the [`EventStream`]s subscribers read.
//!
//! The reader task wraps each event line once in a [`RawEvent`] (one shared
//! allocation holding the line and a small decode cache) and hands it, in batches
//! shared by all the subscribers, to a bounded queue per subscriber (see `fanout.rs`;
//! nothing is allocated when nobody is subscribed). Each subscriber decodes lazily, in its own task, only the events it
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
//!
//! **Tens of subscribers: [`EventStream::next_ref`].** Measured with 100 subscribers
//! of the generated `Event` enum on two threads, handing each an `Arc` cost more than
//! everything else: every subscriber increments and decrements the same reference
//! count of each event, from both threads, so the count's cache line moves between
//! processors about twice per subscriber and event. `next_ref` lends `&T` instead
//! (valid until the next call), and reads it from a vector decoded once per type for
//! the whole batch the reader shared ([`Batch`]): one subscriber decodes a batch (a
//! subscriber on another thread arriving at the same moment decodes too, rather than
//! block its thread; one result is kept), and each subscriber then reads the values
//! one after the other in memory. Every 64 events it yields to the runtime, so the
//! subscribers of a thread take turns on one part of a batch while it is in the
//! processor's cache. Per event and subscriber that leaves no atomic write, no
//! allocation and no lock; the `Arc` path ([`EventStream::next`]) stays for programs
//! that keep the events. Events a batch decode could not place (a decode error, more
//! types than slots) go through the per-event cache above.

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
use triomphe::HeaderSlice;

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
    /// What the reader found in the line, and the line, in one allocation
    /// (`triomphe`'s header-and-slice `Arc`: with `std`'s, an `Arc<Inner>` holding a
    /// `Box<str>` took two, and with many subscribers on a multi-thread runtime
    /// allocating and freeing cost as much as parsing).
    inner: triomphe::Arc<HeaderSlice<Inner, str>>,
}

/// How many decoded types one event can cache (see the module docs).
pub(crate) const SLOTS: usize = 2;

/// A decoded value of some type, or `None` when decoding failed.
type Decoded = (TypeId, Option<Arc<dyn Any + Send + Sync>>);

/// One type's values decoded from a [`Batch`]: the type, whether every event decoded,
/// and the `Vec<Option<S>>`.
type BatchValues = (TypeId, bool, Box<dyn Any + Send + Sync>);

/// Events the reader read in one go, shared by the subscribers (see `fanout.rs`),
/// with the values the `*_shared` subscriptions read through
/// [`EventStream::next_ref`] decoded from them: for each type, one vector for the
/// whole batch, so that each subscriber reads the values one after the other in
/// memory, rather than from one allocation per event.
pub(crate) struct Batch {
    events: Vec<RawEvent>,
    /// Per type: a `Vec<Option<S>>` (`None`: not decoded, see `decode_batch`), and
    /// whether every event decoded (then a reader need not check each one).
    decoded: [OnceLock<BatchValues>; SLOTS],
}

impl Batch {
    pub(crate) fn new(events: Vec<RawEvent>) -> Batch {
        Batch {
            events,
            decoded: Default::default(),
        }
    }

    /// The slot of the values of type `T` decoded from this batch by `decode` (`None`
    /// to leave an event to the per-event path), decoding them if no subscriber has
    /// yet, and whether every event decoded; `None` when every slot holds another type.
    fn cached<T: Send + Sync + 'static>(
        &self,
        decode: impl Fn(&RawEvent) -> Option<T>,
    ) -> Option<BatchSlot> {
        let ty = TypeId::of::<T>();
        for (i, slot) in self.decoded.iter().enumerate() {
            let (t, complete, _) = match slot.get() {
                Some(found) => found,
                None => {
                    // Not `get_or_init`: a subscriber on another thread that gets here
                    // at the same moment decodes too rather than block its thread; the
                    // first value stored is the one every subscriber reads.
                    let values: Vec<Option<T>> = self.events.iter().map(&decode).collect();
                    let complete = values.iter().all(Option::is_some);
                    let _ = slot.set((ty, complete, Box::new(values)));
                    let Some(found) = slot.get() else { continue };
                    found
                }
            };
            if *t == ty {
                return Some(BatchSlot {
                    slot: i,
                    complete: *complete,
                });
            }
        }
        None
    }

    /// The value of type `T` decoded from event `i`, from slot `slot`.
    fn value<T: 'static>(&self, slot: usize, i: usize) -> Option<&T> {
        let (_, _, values) = self.decoded.get(slot)?.get()?;
        values.downcast_ref::<Vec<Option<T>>>()?.get(i)?.as_ref()
    }
}

impl std::ops::Deref for Batch {
    type Target = [RawEvent];

    fn deref(&self) -> &[RawEvent] {
        &self.events
    }
}

/// Where a batch's values of one type are ([`Batch::cached`]).
#[derive(Clone, Copy)]
pub(crate) struct BatchSlot {
    slot: usize,
    /// Every event of the batch decoded: no per-event check needed.
    complete: bool,
}

/// Where [`RawEvent::cached`] put a decoded value.
pub(crate) enum Cached {
    /// In this slot of the event's cache.
    Slot(usize),
    /// Nowhere shared (every slot holds another type): here.
    Own(Arc<dyn Any + Send + Sync>),
}

/// How [`EventStream::next_ref`] decodes (the type is erased so that
/// `EventStream<Arc<S>>` can hold it).
#[derive(Clone, Copy)]
pub(crate) struct RefDecoder {
    /// Decodes an event into its own cache; `None` skips the event.
    event: fn(&RawEvent) -> Option<Result<Cached>>,
    /// Decodes a whole batch into its cache ([`Batch::cached`]).
    batch: fn(&Batch) -> Option<BatchSlot>,
}

struct Inner {
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
        let header = Inner {
            name,
            data,
            timestamp,
            decoded: Default::default(),
        };
        RawEvent {
            inner: triomphe::Arc::from_header_and_str(header, line),
        }
    }

    /// The value `decode` makes of this event, decoded once for all the subscribers of
    /// type `T` that share this event (see the module docs); `None` if it failed.
    /// `sole`: the caller holds the only reference to this event (see [`Decoder`]).
    fn shared<T: Send + Sync + 'static>(
        &self,
        sole: bool,
        decode: impl Fn(&RawEvent) -> Result<T>,
    ) -> Option<Result<Arc<T>>> {
        if sole {
            // Nobody else holds this event: no one to share with.
            return Some(decode(self).map(Arc::new));
        }
        let value = match self.cached(&decode) {
            Ok(Cached::Slot(i)) => self.slot(i).cloned(),
            Ok(Cached::Own(v)) => Some(v),
            Err(e) => return Some(Err(e)),
        };
        match value.map(|v| v.downcast::<T>()) {
            Some(Ok(v)) => Some(Ok(v)),
            _ => Some(decode(self).map(Arc::new)),
        }
    }

    /// Decodes this event into its cache (once for all the subscribers of type `T`)
    /// and says where the value is: in a slot of the cache, or, when every slot holds
    /// another type, in a value of the caller's own.
    fn cached<T: Send + Sync + 'static>(
        &self,
        decode: impl Fn(&RawEvent) -> Result<T>,
    ) -> Result<Cached> {
        let ty = TypeId::of::<T>();
        for (i, slot) in self.inner.header.decoded.iter().enumerate() {
            let (t, value) = slot.get_or_init(|| {
                let value = decode(self)
                    .ok()
                    .map(|v| Arc::new(v) as Arc<dyn Any + Send + Sync>);
                (ty, value)
            });
            if *t != ty {
                continue;
            }
            if value.is_some() {
                return Ok(Cached::Slot(i));
            }
            // Decoding failed: again, for this subscriber's own error.
            break;
        }
        decode(self).map(|v| Cached::Own(Arc::new(v)))
    }

    /// The value in slot `i` of the decode cache, if that slot holds one.
    fn slot(&self, i: usize) -> Option<&Arc<dyn Any + Send + Sync>> {
        self.inner.header.decoded.get(i)?.get()?.1.as_ref()
    }

    /// Whether this handle is the only one to the event (nobody else can then get
    /// one: a new handle is cloned from an existing one).
    pub(crate) fn is_sole(&self) -> bool {
        triomphe::Arc::strong_count(&self.inner) == 1
    }

    /// The event name, e.g. `"STOP"`.
    pub fn name(&self) -> &str {
        match &self.inner.header.name {
            NameRepr::InLine(r) => &self.inner.slice[r.clone()],
            NameRepr::Owned(n) => n,
        }
    }

    /// The `data` member as JSON text, if present.
    pub fn data_json(&self) -> Option<&str> {
        self.inner
            .header
            .data
            .as_ref()
            .map(|r| &self.inner.slice[r.clone()])
    }

    /// The timestamp QEMU put on the event.
    pub fn timestamp(&self) -> Timestamp {
        self.inner.header.timestamp
    }

    /// The whole event line, as received.
    pub fn json(&self) -> &str {
        &self.inner.slice
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
                self.inner.slice.to_string(),
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
            .map_err(|e| Error::decode(self.name(), "data".into(), self.inner.slice.to_string(), e))
    }

    /// The whole event as a `serde_json::Value`.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.inner.slice).unwrap_or(serde_json::Value::Null)
    }
}

impl fmt::Debug for RawEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawEvent")
            .field("line", &self.json())
            .finish()
    }
}

/// Turns a shared raw event into a subscriber's item, or skips it (`None`). The flag
/// says the subscriber holds the only reference to the event, so that it can skip
/// the cache.
type Decoder<T> = fn(&RawEvent, bool) -> Option<Result<T>>;

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
    /// The shared batch being read, and the indices of it not yet read.
    batch: Option<(Arc<Batch>, Range<usize>)>,
    /// The events not yet read of a batch nobody else held.
    taken: Option<std::vec::IntoIter<RawEvent>>,
    /// The slot of `batch` that holds this stream's type, once `next_ref` looked.
    batch_slot: Option<Option<BatchSlot>>,
    /// The event last moved to (kept until the next one, for `next_ref`).
    current: Current,
    decode: Decoder<T>,
    /// For the `*_shared` subscriptions (`T` is `Arc<S>`).
    decode_ref: Option<RefDecoder>,
    /// The value `next_ref` lent last, when it is in no cache.
    own: Option<Arc<dyn Any + Send + Sync>>,
    /// Events `next_ref` has lent.
    lent: u64,
    _marker: PhantomData<fn() -> T>,
}

/// `next_ref` yields to the runtime after lending this many events. With many
/// subscribers reading one batch, each on its own task, a subscriber that read a
/// whole batch (256 events) before the next one starts would have pushed the first
/// events out of the processor's cache; in steps of this size, the subscribers of a
/// thread read each part of the batch in turn while it is in the cache.
const YIELD_EVERY: u64 = 64;

/// Which event an [`EventStream`] last moved to.
enum Current {
    None,
    /// This index of the stream's batch.
    InBatch(usize),
    Single(RawEvent),
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
            batch: None,
            taken: None,
            batch_slot: None,
            current: Current::None,
            decode,
            decode_ref: None,
            own: None,
            lent: 0,
            _marker: PhantomData,
        }
    }

    /// The event last moved to.
    fn current(&self) -> Option<&RawEvent> {
        match &self.current {
            Current::None => None,
            Current::InBatch(i) => self.batch.as_ref()?.0.get(*i),
            Current::Single(ev) => Some(ev),
        }
    }

    /// Whether this stream holds the only reference to the event last moved to.
    fn current_is_sole(&self) -> bool {
        match &self.current {
            Current::None => false,
            Current::InBatch(i) => self.batch.as_ref().is_some_and(|(batch, _)| {
                Arc::strong_count(batch) == 1 && batch.get(*i).is_some_and(RawEvent::is_sole)
            }),
            Current::Single(ev) => ev.is_sole(),
        }
    }

    /// Moves to the next event (`Ok`), or yields the next missed count (`Err`);
    /// `None` at the end.
    fn advance(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<()>>> {
        loop {
            if let Some(events) = &mut self.taken {
                if let Some(ev) = events.next() {
                    // The event before it is dropped here, just after it was read.
                    self.current = Current::Single(ev);
                    return Poll::Ready(Some(Ok(())));
                }
                self.taken = None;
            }
            if let Some((_, range)) = &mut self.batch {
                if let Some(i) = range.next() {
                    self.current = Current::InBatch(i);
                    return Poll::Ready(Some(Ok(())));
                }
                self.batch = None;
            }
            self.current = Current::None;
            match self.local.pop_front() {
                Some(Item::Event(ev)) => {
                    self.current = Current::Single(ev);
                    return Poll::Ready(Some(Ok(())));
                }
                Some(Item::Batch(mut batch, range)) => match Arc::get_mut(&mut batch) {
                    // The only holder of the batch (one subscriber, the common case):
                    // take its events, so that each is freed right after it is read,
                    // while it is still in the processor's cache, rather than all of
                    // them when the batch is dropped.
                    Some(batch) => {
                        let mut events = std::mem::take(&mut batch.events);
                        events.truncate(range.end);
                        events.drain(..range.start.min(events.len()));
                        self.taken = Some(events.into_iter());
                    }
                    None => {
                        self.batch = Some((batch, range));
                        self.batch_slot = None;
                    }
                },
                Some(Item::Missed(n)) => {
                    tracing::warn!(target: "qmp::events", missed = n, "event subscriber lagged");
                    return Poll::Ready(Some(Err(Error::lagged(n))));
                }
                None => {
                    let Some(sub) = &self.sub else {
                        return Poll::Ready(None);
                    };
                    match sub.take_all(&mut self.local, cx.waker()) {
                        Ok(true) => {}
                        Ok(false) => return Poll::Pending,
                        Err(()) => return Poll::Ready(None),
                    }
                }
            }
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

    /// As [`next`](Self::next), with the time QEMU stamped on the event (its
    /// `timestamp` member): one subscription gives both, for every kind of
    /// subscription (one event type, every event, shared, raw). Lag and decode
    /// errors are the same `Err` items as `next` yields (a missed event has no
    /// timestamp to give).
    pub async fn next_stamped(&mut self) -> Option<Result<Stamped<T>>> {
        std::future::poll_fn(|cx| {
            self.poll_with(cx, |event, ev| Stamped {
                timestamp: ev.timestamp(),
                event,
            })
        })
        .await
    }

    /// The next item, made by `wrap` from the decoded value and its event.
    #[inline]
    fn poll_with<R>(
        &mut self,
        cx: &mut Context<'_>,
        wrap: impl FnOnce(T, &RawEvent) -> R,
    ) -> Poll<Option<Result<R>>> {
        loop {
            match std::task::ready!(self.advance(cx)) {
                None => return Poll::Ready(None),
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                Some(Ok(())) => {
                    let sole = self.current_is_sole();
                    if let Some(ev) = self.current() {
                        if let Some(item) = (self.decode)(ev, sole) {
                            return Poll::Ready(Some(item.map(|value| wrap(value, ev))));
                        }
                    }
                }
            }
        }
    }
}

/// An event with the time QEMU stamped on it, from [`EventStream::next_stamped`] (or
/// [`EventStream::next_ref_stamped`], with `T` a reference).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamped<T> {
    /// The event's `timestamp` member: QEMU's host clock when it emitted the event
    /// (zero when the peer sent none).
    pub timestamp: Timestamp,
    /// The event, as [`EventStream::next`] would have yielded it.
    pub event: T,
}

impl<T: 'static + Send> Stream for EventStream<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_with(cx, |value, _| value)
    }
}

impl<S: Send + Sync + 'static> EventStream<Arc<S>> {
    pub(crate) fn new_shared(
        sub: Arc<Subscriber>,
        decode: Decoder<Arc<S>>,
        decode_ref: RefDecoder,
    ) -> Self {
        let mut stream = EventStream::new(sub, decode);
        stream.decode_ref = Some(decode_ref);
        stream
    }

    /// As [`next`](Self::next), but lends the decoded event instead of handing out an
    /// `Arc` of it: `&S` is valid until the next call. For many subscribers of one
    /// connection, each reading every event: an `Arc` handed to each is a reference
    /// count that all of them increment and decrement, on every event, from every
    /// thread, and with tens of subscribers that shared count costs more than
    /// decoding (issue 18). Lending needs no count: the event's decoded value stays
    /// in the batch this stream holds.
    ///
    /// Lag counts, decode errors, ordering and the end of the stream are those of
    /// [`next`](Self::next).
    pub async fn next_ref(&mut self) -> Option<Result<&S>> {
        let found = self.next_found().await?;
        Some(self.lend(found))
    }

    /// As [`next_ref`](Self::next_ref), with the time QEMU stamped on the event (see
    /// [`next_stamped`](Self::next_stamped)).
    pub async fn next_ref_stamped(&mut self) -> Option<Result<Stamped<&S>>> {
        let found = self.next_found().await?;
        let timestamp = self.current().map(RawEvent::timestamp).unwrap_or_default();
        Some(self.lend(found).map(|event| Stamped { timestamp, event }))
    }

    /// Moves to the next event `next_ref` lends and says where its value is.
    async fn next_found(&mut self) -> Option<Result<Found>> {
        let found = loop {
            self.lent += 1;
            if self.lent % YIELD_EVERY == 0 {
                // Let the other subscribers of this thread read these events while
                // they are still in the processor's cache (see `YIELD_EVERY`).
                tokio::task::yield_now().await;
            }
            if let Err(e) = std::future::poll_fn(|cx| self.advance(cx)).await? {
                return Some(Err(e));
            }
            let Some(decode_ref) = self.decode_ref else {
                // Not made by a `*_shared` subscription: decode as `next` does.
                let Some(ev) = self.current() else { continue };
                match (self.decode)(ev, false) {
                    None => continue,
                    Some(Err(e)) => return Some(Err(e)),
                    Some(Ok(v)) => break Found::Own(v as Arc<dyn Any + Send + Sync>),
                }
            };
            if let (Current::InBatch(i), Some((batch, _))) = (&self.current, &self.batch) {
                let slot = *self
                    .batch_slot
                    .get_or_insert_with(|| (decode_ref.batch)(batch));
                if let Some(BatchSlot { slot, complete }) = slot {
                    // `lend` looks the value up: checked here only when some event of
                    // the batch did not decode.
                    if complete || batch.value::<S>(slot, *i).is_some() {
                        break Found::InBatch(slot, *i);
                    }
                }
            }
            // Not decoded with the batch (a single event, a failed decode, or no slot
            // left): the event's own cache, which also makes the error.
            let Some(ev) = self.current() else { continue };
            match (decode_ref.event)(ev) {
                None => continue,
                Some(Err(e)) => return Some(Err(e)),
                Some(Ok(Cached::Slot(slot))) => break Found::InEvent(slot),
                Some(Ok(Cached::Own(v))) => break Found::Own(v),
            }
        };
        if let Found::Own(v) = &found {
            self.own = Some(v.clone());
        }
        Some(Ok(found))
    }

    /// The value `next_found` found.
    fn lend(&self, found: Result<Found>) -> Result<&S> {
        let value = match found? {
            Found::InBatch(slot, i) => self.batch.as_ref().and_then(|(b, _)| b.value(slot, i)),
            Found::InEvent(slot) => self
                .current()
                .and_then(|ev| ev.slot(slot))
                .and_then(|v| v.downcast_ref::<S>()),
            Found::Own(_) => self.own.as_ref().and_then(|v| v.downcast_ref::<S>()),
        };
        match value {
            Some(v) => Ok(v),
            // Not reached: each decoder stores `S` where it says it did.
            None => Err(Error::protocol(
                "internal error: a decoded event was not where the decoder put it".into(),
            )),
        }
    }
}

/// Where `next_ref` found the value it lends.
enum Found {
    /// In this slot of the stream's batch, at this index.
    InBatch(usize, usize),
    /// In this slot of the current event's cache.
    InEvent(usize),
    /// Decoded for this stream alone (also kept in the stream's `own`).
    Own(Arc<dyn Any + Send + Sync>),
}

pub(crate) fn decode_raw(ev: &RawEvent, _sole: bool) -> Option<Result<RawEvent>> {
    Some(Ok(ev.clone()))
}

pub(crate) fn decode_one<E: Event>(ev: &RawEvent, _sole: bool) -> Option<Result<E>> {
    (ev.name() == E::NAME).then(|| ev.decode_data::<E>())
}

pub(crate) fn decode_set<S: EventSet>(ev: &RawEvent, _sole: bool) -> Option<Result<S>> {
    Some(ev.decode_set::<S>())
}

pub(crate) fn decode_one_shared<E: Event + Send + Sync + 'static>(
    ev: &RawEvent,
    sole: bool,
) -> Option<Result<Arc<E>>> {
    if ev.name() != E::NAME {
        return None;
    }
    ev.shared(sole, RawEvent::decode_data::<E>)
}

pub(crate) fn decode_set_shared<S: EventSet + Send + Sync + 'static>(
    ev: &RawEvent,
    sole: bool,
) -> Option<Result<Arc<S>>> {
    ev.shared(sole, RawEvent::decode_set::<S>)
}

/// How `next_ref` decodes events of type `E`.
pub(crate) fn cache_one<E: Event + Send + Sync + 'static>() -> RefDecoder {
    RefDecoder {
        event: |ev| (ev.name() == E::NAME).then(|| ev.cached(RawEvent::decode_data::<E>)),
        batch: |batch| {
            batch.cached(|ev| {
                if ev.name() == E::NAME {
                    ev.decode_data::<E>().ok()
                } else {
                    None
                }
            })
        },
    }
}

/// How `next_ref` decodes the events of set `S`.
pub(crate) fn cache_set<S: EventSet + Send + Sync + 'static>() -> RefDecoder {
    RefDecoder {
        event: |ev| Some(ev.cached(RawEvent::decode_set::<S>)),
        batch: |batch| batch.cached(|ev| ev.decode_set::<S>().ok()),
    }
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
        let (a, b) = (ev.clone(), ev.clone());
        let first = decode_one_shared::<Job>(&a, a.is_sole()).unwrap().unwrap();
        let second = decode_one_shared::<Job>(&b, b.is_sole()).unwrap().unwrap();
        assert_eq!(first.id, "j1");
        assert!(Arc::ptr_eq(&first, &second), "decoded twice");
        // Another type decodes into its own slot, not the first type's value.
        let names = decode_set_shared::<Names>(&a, false).unwrap().unwrap();
        assert_eq!(*names, Names("JOB".into()));
        // More types than slots: still decoded, each by itself.
        let lens = decode_set_shared::<Lens>(&b, false).unwrap().unwrap();
        assert_eq!(*lens, Lens(r#"{"id": "j1"}"#.len()));
        assert!(decode_one_shared::<Job>(&b, false).is_some_and(|j| j.is_ok()));
    }

    #[test]
    fn a_sole_holder_decodes_without_the_cache() {
        let ev = event(r#"{"event": "JOB", "data": {"id": "j2"}}"#);
        assert!(ev.is_sole());
        let job = decode_one_shared::<Job>(&ev, true).unwrap().unwrap();
        assert_eq!(job.id, "j2");
        assert!(ev.inner.header.decoded.iter().all(|s| s.get().is_none()));
        let other = event(r#"{"event": "OTHER"}"#);
        assert!(
            decode_one_shared::<Job>(&other.clone(), true).is_none(),
            "filtered by name"
        );
    }

    #[test]
    fn every_shared_subscriber_gets_the_decode_error_in_full() {
        let line = r#"{"event": "JOB", "data": {"id": 7}}"#;
        let ev = event(line);
        let (a, b) = (ev.clone(), ev.clone());
        for ev in [&a, &b] {
            let err = decode_one_shared::<Job>(ev, false).unwrap().unwrap_err();
            let owned = decode_one::<Job>(ev, false).unwrap().unwrap_err();
            assert_eq!(err.to_string(), owned.to_string());
            assert!(err.to_string().contains("JOB"), "{err}");
            assert!(err.to_string().contains("data.id"), "{err}");
        }
    }
}
