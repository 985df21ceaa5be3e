//! Event fan-out from the reader task to subscribers: one bounded queue per
//! subscriber, filled in batches.
//!
//! **Cost per subscriber.** The reader shares each batch of events it read once
//! (`Arc<Batch>`) and puts one entry per batch in the queue of each subscription
//! to every event: a range of that shared batch. So the reader's work per batch is
//! one lock, one entry and one wake per such subscriber, whatever the batch's length,
//! and a subscriber reads the events by index, without touching their reference
//! counts. A subscription to one event type gets its events one entry each (as
//! before: it holds only the events it asked for). A range shorter than a quarter
//! of its batch (a queue nearly full) is copied as single events rather than pinning
//! the whole batch, so the events a queue keeps alive stay within four times its
//! capacity, plus one batch.
//!
//! **Accounting invariant.** Every event the reader routes while a subscription
//! exists is, for that subscription, either put in its queue (and so delivered, unless
//! the subscription is dropped) or counted in a [`Item::Missed`] marker at the place in
//! the queue where it would have been. Nothing is dropped uncounted. The same holds
//! for the events that arrive between negotiation and the client's first request
//! (when the program cannot have subscribed yet): they are kept in a bounded
//! backlog, with its own missed marker, and every subscription made before the first
//! request starts from a copy of it.
//!
//! **Memory.** A queue holds at most `capacity` events (plus missed markers, at
//! most one between two events); the stream on the other side holds at most one
//! queue's worth it has taken and not yet yielded. When nobody is subscribed (and the
//! backlog is closed) the reader allocates nothing for an event. Nothing is
//! allocated per connection until the first event is routed to someone.
//!
//! **Overflow.** When a queue is full, a [`Overflow::DropNewest`] subscription counts
//! the event as missed; an [`Overflow::Backpressure`] subscription makes the reader
//! wait until there is room (so the reader stops reading the socket, and replies
//! wait too).

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use tokio::sync::Notify;

use crate::events::{Batch, RawEvent};
use crate::latch::Latch;
use crate::race::{race, First};

/// What a subscription does when its buffer ([`crate::Config::event_capacity`]
/// events) is full because the program reads it more slowly than events arrive.
///
/// The default, [`DropNewest`](Self::DropNewest), never slows the connection down:
/// replies keep flowing whatever the subscribers do, and memory stays bounded; the
/// price is that a subscriber that falls far behind loses events — never silently:
/// its stream yields an [`crate::ErrorKind::Lagged`] error with the exact number at
/// the place where they are missing. [`Backpressure`](Self::Backpressure) loses
/// nothing, at the price of making the whole connection (replies included) wait for
/// that subscriber: use it for a subscriber that is always being read (QEMU then
/// buffers, and eventually drops, on its side).
///
/// For comparison: QEMU's Python library (`qemu.qmp`) queues events without bound
/// (nothing is lost, memory grows while nobody reads); tokio-postgres delivers
/// notifications through the connection future itself, so an unread notification
/// stalls the connection (back-pressure); a tokio `broadcast` channel drops the
/// oldest and reports the count. We keep memory bounded always, and let each
/// subscription choose between losing (counted) and waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Events that do not fit are dropped and counted; the stream then yields
    /// [`crate::ErrorKind::Lagged`] with their number (the default).
    #[default]
    DropNewest,
    /// The reader waits for room: nothing is lost, but the connection (replies
    /// included) stalls while this subscriber's buffer is full.
    Backpressure,
}

/// One entry of a subscriber queue.
#[derive(Clone)]
pub(crate) enum Item {
    Event(RawEvent),
    /// These events of a batch shared with the other subscribers.
    Batch(Arc<Batch>, Range<usize>),
    /// This many events were dropped here because the queue was full.
    Missed(u64),
}

/// A bounded queue of events with missed markers.
#[derive(Default, Clone)]
pub(crate) struct Queue {
    items: VecDeque<Item>,
    /// Events (not markers) in `items`.
    events: usize,
}

impl Queue {
    /// Adds `batch[range]` as far as there is room, and counts the rest as missed.
    fn push_range_or_count(&mut self, batch: &Arc<Batch>, range: Range<usize>, capacity: usize) {
        let room = capacity.saturating_sub(self.events);
        let fit = range.len().min(room);
        self.push_range(batch, range.start..range.start + fit);
        if fit < range.len() {
            self.count_missed((range.len() - fit) as u64);
        }
    }

    /// Adds `batch[range]` (there is room): as one shared entry, or as single events
    /// when the range is a small part of the batch (see the module docs).
    fn push_range(&mut self, batch: &Arc<Batch>, range: Range<usize>) {
        if range.is_empty() {
            return;
        }
        self.events += range.len();
        if range.len() * 4 < batch.len() {
            for ev in &batch[range] {
                self.items.push_back(Item::Event(ev.clone()));
            }
        } else {
            self.items.push_back(Item::Batch(batch.clone(), range));
        }
    }

    /// Adds `ev` if there is room, else counts it as missed.
    fn push_or_count(&mut self, ev: &RawEvent, capacity: usize) {
        if self.events < capacity {
            self.items.push_back(Item::Event(ev.clone()));
            self.events += 1;
        } else {
            self.count_missed(1);
        }
    }

    fn count_missed(&mut self, n: u64) {
        match self.items.back_mut() {
            Some(Item::Missed(m)) => *m += n,
            _ => self.items.push_back(Item::Missed(n)),
        }
    }
}

/// The part of a subscription the reader and the stream share.
pub(crate) struct Subscriber {
    state: Mutex<SubState>,
    /// Wakes the reader waiting for room (back-pressure).
    room: Notify,
    /// Only events with this name are queued (`None`: all).
    filter: Option<&'static str>,
    capacity: usize,
    /// The fan-out's count of live streams.
    live: Arc<AtomicUsize>,
}

struct SubState {
    queue: Queue,
    overflow: Overflow,
    /// The stream waiting for events.
    waker: Option<Waker>,
    /// The reader is waiting for room in this queue.
    reader_waiting: bool,
    /// No more events will come (connection closed).
    ended: bool,
    /// The stream was dropped: the reader forgets this subscriber.
    dropped: bool,
}

impl Subscriber {
    fn lock(&self) -> MutexGuard<'_, SubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wants(&self, ev: &RawEvent) -> bool {
        self.filter.is_none_or(|f| ev.name() == f)
    }

    /// Moves every queued item into `into` (which must be empty); `Err(())` when the
    /// queue is empty and no more will come; `Ok(false)` when empty for now (the
    /// waker is registered).
    pub(crate) fn take_all(&self, into: &mut VecDeque<Item>, waker: &Waker) -> Result<bool, ()> {
        let mut st = self.lock();
        if st.queue.items.is_empty() {
            if st.ended {
                return Err(());
            }
            if !st.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                st.waker = Some(waker.clone());
            }
            return Ok(false);
        }
        std::mem::swap(&mut st.queue.items, into);
        st.queue.events = 0;
        let notify = std::mem::take(&mut st.reader_waiting);
        drop(st);
        if notify {
            self.room.notify_one();
        }
        Ok(true)
    }

    pub(crate) fn set_overflow(&self, overflow: Overflow) {
        self.lock().overflow = overflow;
        // A reader waiting for room must re-check under the new mode.
        self.room.notify_one();
    }

    /// The stream was dropped.
    pub(crate) fn drop_stream(&self) {
        let mut st = self.lock();
        st.dropped = true;
        st.queue = Queue::default();
        drop(st);
        self.live.fetch_sub(1, Ordering::AcqRel);
        self.room.notify_one();
    }

    /// Delivers `batch[from..]`; returns how far it got (less than `batch.len()` only
    /// when a back-pressure queue is full). The stream's wake-up goes to `wakes`
    /// unless it cannot wait.
    fn deliver(&self, batch: &Arc<Batch>, from: usize, wakes: &mut Wakes) -> usize {
        let mut st = self.lock();
        if st.dropped {
            return batch.len();
        }
        let i = match self.filter {
            None => {
                let rest = from..batch.len();
                let room = self.capacity.saturating_sub(st.queue.events);
                if rest.len() > room && st.overflow == Overflow::Backpressure {
                    st.queue.push_range(batch, from..from + room);
                    st.reader_waiting = true;
                    from + room
                } else {
                    st.queue.push_range_or_count(batch, rest, self.capacity);
                    batch.len()
                }
            }
            Some(_) => {
                let mut i = from;
                while i < batch.len() {
                    let ev = &batch[i];
                    if !self.wants(ev) {
                        i += 1;
                        continue;
                    }
                    if st.queue.events >= self.capacity && st.overflow == Overflow::Backpressure {
                        st.reader_waiting = true;
                        break;
                    }
                    st.queue.push_or_count(ev, self.capacity);
                    i += 1;
                }
                i
            }
        };
        // A registered waker means the stream found the queue empty: anything in it
        // now (events, or a missed count) is news. The wake is left to `wakes`
        // (see `Wakes`) unless the queue is half full, or the reader stops here.
        let waker = if st.queue.items.is_empty() {
            None
        } else {
            st.waker.take()
        };
        let urgent = i < batch.len() || st.queue.events * 2 >= self.capacity;
        drop(st);
        if let Some(w) = waker {
            if urgent {
                w.wake();
            } else {
                wakes.defer(w);
            }
        }
        i
    }

    fn end(&self) {
        let mut st = self.lock();
        st.ended = true;
        let waker = st.waker.take();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Streams with new events whose wake-up the reader put off.
///
/// **Why.** While more lines are already buffered, waking every subscriber after
/// each batch makes each of them run, find a few hundred events, and sleep again:
/// on a multi-thread runtime each round also wakes a second worker thread that
/// steals half of them. Fewer rounds cost less (measured with ten subscribers: a
/// small gain, bench/README.md, "Events for many subscribers"). So a wake-up waits
/// until the reader is about to wait itself (for the peer, or for room in a full
/// queue), is about to hand a reply to its caller, or has put half a queue's
/// capacity in that queue, whichever comes first: no event waits for the peer (the
/// reader reaches a wait point at least once per read of the socket), and a
/// subscriber that drops events when full
/// ([`Overflow::DropNewest`]) is woken by the time its queue is half full (plus the
/// rest of the batch that crossed the mark: with the default 1,024 and batches of at
/// most 256, a quarter of the queue is still free then), so it gets to read long
/// before it would lose anything.
///
/// Dropping it wakes what it holds, so no path out of the reader (a shutdown, an
/// error, a panic) can leave a stream asleep on events it was given.
#[derive(Default)]
pub(crate) struct Wakes(Vec<Waker>);

impl Wakes {
    fn defer(&mut self, waker: Waker) {
        self.0.push(waker);
    }

    /// Wakes every stream put off so far.
    pub(crate) fn wake_all(&mut self) {
        for w in self.0.drain(..) {
            w.wake();
        }
    }
}

impl Drop for Wakes {
    fn drop(&mut self) {
        self.wake_all();
    }
}

/// The reader's side of the fan-out, shared with the client handles (which subscribe).
pub(crate) struct Fanout {
    state: Mutex<FanoutState>,
    /// Subscriptions whose stream still exists (a hint for the reader: when zero and
    /// the backlog is closed, events are not even wrapped).
    live: Arc<AtomicUsize>,
    /// Whether events are still kept for subscriptions made before the first request.
    backlog_open: AtomicBool,
    capacity: usize,
    overflow: Overflow,
}

struct FanoutState {
    subs: Vec<Arc<Subscriber>>,
    /// Bumped on every change of `subs`, so the reader re-copies the list only then.
    generation: u64,
    /// Events since negotiation, while `backlog_open`.
    backlog: Option<Queue>,
    closed: bool,
}

/// The reader task's copy of the subscriber list.
#[derive(Default)]
pub(crate) struct ReaderView {
    subs: Vec<Arc<Subscriber>>,
    generation: u64,
    /// Batches handed out, kept so that the reader frees them once every
    /// subscriber is done with them (see `RETIRED`).
    retired: VecDeque<Arc<Batch>>,
}

/// How many delivered batches the reader keeps to free them itself.
///
/// **Why.** The reader allocates every event of a batch (one allocation each, two
/// when this was measured). If the last subscriber to read a batch frees it, on a
/// multi-thread runtime that is often another thread, and the allocator (glibc's) then
/// takes the reader's arena lock for each of those frees while the reader allocates
/// the next batch from it: with ten subscribers (issue 18's `events10`), a sixth of
/// the run was spent in that lock and the futex calls around it. Freed by the
/// reader, the memory goes back where it came from, uncontended and still in the
/// caches. Only batches shared by several
/// subscribers are kept (a lone subscriber takes a batch's events and frees each as
/// it reads it, see events.rs).
///
/// **How many.** Enough for the batches the subscribers are still reading, few enough
/// that the kept memory stays in the caches: measured with ten subscribers, keeping
/// 8 beat 4, 16 and 32 (bench/README.md). When the list is full, a new batch is not
/// kept (whoever drops it last frees it, as without this list), so a slow subscriber
/// never makes the reader hold more; and once the peer is quiet for a moment the
/// reader lets go of the list (connection.rs, `RELEASE_RETIRED_AFTER`), so an idle
/// connection holds no batch.
const RETIRED: usize = 8;

impl ReaderView {
    /// Frees the batches nobody else holds any more.
    fn free_retired(&mut self) {
        self.retired.retain(|b| Arc::strong_count(b) > 1);
    }

    /// Whether the reader keeps delivered batches to free them.
    pub(crate) fn holds_retired(&self) -> bool {
        !self.retired.is_empty()
    }

    /// The peer is quiet: let go of the kept batches (each is freed now, or by the
    /// last subscriber to drop it), so that an idle connection holds none.
    pub(crate) fn release_retired(&mut self) {
        self.retired.clear();
    }
}

impl Fanout {
    pub(crate) fn new(capacity: usize, overflow: Overflow) -> Fanout {
        Fanout {
            state: Mutex::new(FanoutState {
                subs: Vec::new(),
                generation: 0,
                backlog: None,
                closed: false,
            }),
            live: Arc::new(AtomicUsize::new(0)),
            backlog_open: AtomicBool::new(true),
            capacity: capacity.max(1),
            overflow,
        }
    }

    fn lock(&self) -> MutexGuard<'_, FanoutState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether an event now would go anywhere (if not, the reader skips it).
    pub(crate) fn wanted(&self) -> bool {
        self.live.load(Ordering::Acquire) > 0 || self.backlog_open.load(Ordering::Acquire)
    }

    /// The client is sending its first request: from now on, new subscriptions see
    /// only events that arrive after they subscribed.
    pub(crate) fn close_backlog(&self) {
        if self.backlog_open.swap(false, Ordering::AcqRel) {
            self.lock().backlog = None;
        }
    }

    /// A new subscription to events named `filter` (`None`: all), starting with what
    /// the backlog holds. `overflow` is its mode from the start (`None`: the
    /// connection's default), so no event can meet a full queue under another mode.
    pub(crate) fn subscribe(
        &self,
        filter: Option<&'static str>,
        overflow: Option<Overflow>,
    ) -> Arc<Subscriber> {
        let mut st = self.lock();
        let mut queue = Queue::default();
        if let Some(backlog) = &st.backlog {
            for item in &backlog.items {
                match item {
                    Item::Event(ev) if filter.is_none_or(|f| ev.name() == f) => {
                        queue.items.push_back(item.clone());
                        queue.events += 1;
                    }
                    Item::Event(_) => {}
                    Item::Batch(batch, range) if filter.is_none() => {
                        queue.push_range(batch, range.clone());
                    }
                    Item::Batch(batch, range) => {
                        for ev in &batch[range.clone()] {
                            if filter.is_none_or(|f| ev.name() == f) {
                                queue.items.push_back(Item::Event(ev.clone()));
                                queue.events += 1;
                            }
                        }
                    }
                    Item::Missed(n) => queue.count_missed(*n),
                }
            }
        }
        let sub = Arc::new(Subscriber {
            state: Mutex::new(SubState {
                queue,
                overflow: overflow.unwrap_or(self.overflow),
                waker: None,
                reader_waiting: false,
                ended: st.closed,
                dropped: false,
            }),
            room: Notify::new(),
            filter,
            capacity: self.capacity,
            live: self.live.clone(),
        });
        if !st.closed {
            st.subs.push(sub.clone());
            st.generation += 1;
        }
        self.live.fetch_add(1, Ordering::AcqRel);
        sub
    }

    /// Hands `batch` to every subscriber (and the backlog), then empties it. Waits
    /// while a back-pressure subscriber's queue is full; returns `Err(())` if
    /// `shutdown` fires meanwhile. The streams to wake are added to `wakes`, for the
    /// reader to wake before it waits (see [`Wakes`]).
    pub(crate) async fn deliver(
        &self,
        view: &mut ReaderView,
        batch: &mut Vec<RawEvent>,
        shutdown: &Latch,
        wakes: &mut Wakes,
    ) -> Result<(), ()> {
        // Shared by every subscriber (and the backlog); the reader's vector keeps its
        // capacity for the next batch.
        view.free_retired();
        let shared = Arc::new(Batch::new(std::mem::replace(
            batch,
            Vec::with_capacity(batch.capacity()),
        )));
        let batch = &shared;
        {
            // Under one lock: the list to deliver to and the backlog, so a concurrent
            // subscription either gets this batch directly or in its backlog copy.
            let mut st = self.lock();
            if self.backlog_open.load(Ordering::Acquire) && !st.closed {
                let backlog = st.backlog.get_or_insert_with(Queue::default);
                backlog.push_range_or_count(batch, 0..batch.len(), self.capacity);
            }
            if st.generation != view.generation {
                st.subs.retain(|s| !s.lock().dropped);
                view.subs.clone_from(&st.subs);
                view.generation = st.generation;
            }
        }
        // With one subscriber the batch is not shared: it takes the events as it
        // reads them, and frees each while it is in the cache (events.rs), which
        // a copy kept here would prevent.
        if view.subs.len() > 1 && view.retired.len() < RETIRED {
            view.retired.push_back(shared.clone());
        }
        let mut pruned = false;
        for sub in &view.subs {
            let mut from = 0;
            loop {
                from = sub.deliver(batch, from, wakes);
                if from == batch.len() {
                    break;
                }
                // The reader waits: whoever could make room must be able to run.
                wakes.wake_all();
                if let First::A(()) = race(shutdown.wait(), sub.room.notified()).await {
                    return Err(());
                }
            }
            pruned |= sub.lock().dropped;
        }
        if pruned {
            let mut st = self.lock();
            let before = st.subs.len();
            st.subs.retain(|s| !s.lock().dropped);
            if st.subs.len() != before {
                st.generation += 1;
            }
        }
        Ok(())
    }

    /// The connection closed: every stream ends once it has yielded what it holds.
    pub(crate) fn close(&self) {
        let subs = {
            let mut st = self.lock();
            st.closed = true;
            st.backlog = None;
            st.generation += 1;
            std::mem::take(&mut st.subs)
        };
        self.backlog_open.store(false, Ordering::Release);
        for s in subs {
            s.end();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Timestamp;

    fn events(n: usize) -> Arc<Batch> {
        let events = (0..n)
            .map(|i| {
                let line = format!(r#"{{"event": "E", "data": {{"n": {i}}}}}"#);
                RawEvent::new(&line, "E", None, Timestamp::default())
            })
            .collect();
        Arc::new(Batch::new(events))
    }

    /// The mode given at subscription holds from the first event: a back-pressure
    /// subscription made on a lossy connection stops the reader at a full queue
    /// instead of counting the event as missed.
    #[test]
    fn overflow_chosen_at_subscription_applies_from_the_first_event() {
        let fanout = Fanout::new(2, Overflow::DropNewest);
        let batch = events(3);

        let lossless = fanout.subscribe(None, Some(Overflow::Backpressure));
        assert_eq!(
            lossless.deliver(&batch, 0, &mut Wakes::default()),
            2,
            "the reader waits at the third"
        );
        assert!(lossless.lock().reader_waiting);
        assert_eq!(lossless.lock().queue.events, 2);

        let lossy = fanout.subscribe(None, None);
        assert_eq!(
            lossy.deliver(&batch, 0, &mut Wakes::default()),
            3,
            "the connection's default drops"
        );
        assert!(!lossy.lock().reader_waiting);
    }

    /// A shared batch goes into a queue as one range; what does not fit is counted
    /// right after it (lossy) or waits (back-pressure); a range that is a small part of
    /// its batch is copied as single events, so a queue never pins a batch for a few
    /// events.
    #[test]
    fn batches_are_queued_as_ranges_and_the_rest_counted_or_held() {
        let fanout = Fanout::new(100, Overflow::DropNewest);
        let lossy = fanout.subscribe(None, None);
        let first = events(80);
        assert_eq!(lossy.deliver(&first, 0, &mut Wakes::default()), 80);
        let second = events(80);
        assert_eq!(lossy.deliver(&second, 0, &mut Wakes::default()), 80);
        {
            let st = lossy.lock();
            assert_eq!(st.queue.events, 100);
            let shapes: Vec<String> = st
                .queue
                .items
                .iter()
                .map(|i| match i {
                    Item::Batch(_, r) => format!("batch {r:?}"),
                    Item::Event(_) => "event".into(),
                    Item::Missed(n) => format!("missed {n}"),
                })
                .collect();
            // 20 of the second 80 fit: a quarter, so still one range.
            assert_eq!(shapes, ["batch 0..80", "batch 0..20", "missed 60"]);
        }

        let waiting = fanout.subscribe(None, Some(Overflow::Backpressure));
        assert_eq!(waiting.deliver(&events(95), 0, &mut Wakes::default()), 95);
        let big = events(40);
        assert_eq!(
            waiting.deliver(&big, 0, &mut Wakes::default()),
            5,
            "room for 5, then the reader waits"
        );
        let st = waiting.lock();
        assert!(st.reader_waiting);
        assert_eq!(st.queue.events, 100);
        // 5 of 40 is less than a quarter: copied as single events.
        let singles = st
            .queue
            .items
            .iter()
            .filter(|i| matches!(i, Item::Event(_)))
            .count();
        assert_eq!(singles, 5);
    }

    /// A waker that counts its wake-ups.
    struct Count(AtomicUsize);

    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    fn woken(c: &Count) -> usize {
        c.0.load(Ordering::SeqCst)
    }

    /// A stream waiting for events is woken when the reader is about to wait
    /// (`wake_all`), or at once when its queue is half full or full for the reader:
    /// never left asleep on events, whatever path the reader takes (dropping the list
    /// wakes too).
    #[test]
    fn a_waiting_stream_is_woken_before_the_reader_waits_or_at_half_a_queue() {
        let fanout = Fanout::new(100, Overflow::DropNewest);
        let sub = fanout.subscribe(None, None);
        let (count, waker) = counting();
        let mut local = VecDeque::new();
        assert_eq!(sub.take_all(&mut local, &waker), Ok(false), "waits");

        let mut wakes = Wakes::default();
        sub.deliver(&events(10), 0, &mut wakes);
        assert_eq!(woken(&count), 0, "put off while the reader goes on");
        wakes.wake_all();
        assert_eq!(woken(&count), 1, "woken before the reader waits");

        assert_eq!(sub.take_all(&mut local, &waker), Ok(true));
        local.clear();
        assert_eq!(sub.take_all(&mut local, &waker), Ok(false));
        sub.deliver(&events(50), 0, &mut wakes);
        assert_eq!(woken(&count), 2, "half the capacity: at once");
        wakes.wake_all();
        assert_eq!(woken(&count), 2, "once");

        let held = fanout.subscribe(None, Some(Overflow::Backpressure));
        let (held_count, held_waker) = counting();
        assert_eq!(held.take_all(&mut local, &held_waker), Ok(false));
        let mut wakes = Wakes::default();
        sub.deliver(&events(1), 0, &mut wakes);
        held.deliver(&events(150), 0, &mut wakes);
        assert_eq!(
            woken(&held_count),
            1,
            "the reader stops at a full queue: at once"
        );

        let (late_count, late_waker) = counting();
        let late = fanout.subscribe(None, None);
        assert_eq!(late.take_all(&mut local, &late_waker), Ok(false));
        late.deliver(&events(1), 0, &mut wakes);
        drop(wakes);
        assert_eq!(
            woken(&late_count),
            1,
            "dropping the list wakes what it holds"
        );
    }

    /// The reader keeps the batches it shared among several subscribers and frees
    /// them once they let go (not while one is still reading), never more than
    /// `RETIRED`, none for a lone subscriber, and lets go of all of them on
    /// `release_retired`.
    #[tokio::test]
    async fn the_reader_frees_shared_batches_once_their_subscribers_let_go() {
        let fanout = Fanout::new(1000, Overflow::DropNewest);
        // As once the client has sent its first request (the backlog holds batches too).
        fanout.close_backlog();
        let shutdown = Latch::new();
        let mut view = ReaderView::default();
        let mut wakes = Wakes::default();
        let batch_of = |n: usize| -> Vec<RawEvent> { events(n).iter().cloned().collect() };

        let alone = fanout.subscribe(None, None);
        fanout
            .deliver(&mut view, &mut batch_of(3), &shutdown, &mut wakes)
            .await
            .unwrap();
        assert!(!view.holds_retired(), "one subscriber: nothing kept");
        let other = fanout.subscribe(None, None);

        fanout
            .deliver(&mut view, &mut batch_of(3), &shutdown, &mut wakes)
            .await
            .unwrap();
        assert_eq!(view.retired.len(), 1);
        let kept = Arc::downgrade(&view.retired[0]);
        // Both subscribers still hold it: the next delivery keeps it.
        fanout
            .deliver(&mut view, &mut batch_of(3), &shutdown, &mut wakes)
            .await
            .unwrap();
        assert!(kept.upgrade().is_some());
        assert_eq!(view.retired.len(), 2);

        // Both read everything (their queues emptied): freed at the next delivery.
        let (_, waker) = counting();
        for sub in [&alone, &other] {
            let mut local = VecDeque::new();
            assert_eq!(sub.take_all(&mut local, &waker), Ok(true));
        }
        fanout
            .deliver(&mut view, &mut batch_of(3), &shutdown, &mut wakes)
            .await
            .unwrap();
        assert!(kept.upgrade().is_none(), "freed by the reader");
        assert_eq!(view.retired.len(), 1, "only the new one");

        for _ in 0..2 * RETIRED {
            fanout
                .deliver(&mut view, &mut batch_of(3), &shutdown, &mut wakes)
                .await
                .unwrap();
        }
        assert_eq!(view.retired.len(), RETIRED, "bounded");
        view.release_retired();
        assert!(!view.holds_retired());
    }
}
