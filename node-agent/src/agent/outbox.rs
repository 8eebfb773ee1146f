//! The events sent to the controller and not yet acknowledged: numbered on entry, kept
//! until a cumulative acknowledgement covers them, resent in order after a reconnect.
//! Bounded by count and by bytes; when full, the agent stops taking events from the
//! watcher (which keeps them on disk) instead of growing.

use std::collections::VecDeque;

use jiff::Timestamp;
use prost::Message;
use tektite_proto::agent as pb;

/// How much the outbox may hold.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub events: usize,
    pub bytes: usize,
}

#[derive(Debug)]
struct Entry {
    event: pb::Event,
    bytes: usize,
    /// When the marker behind the event was written (the step's own timestamp).
    marked_at: Timestamp,
}

/// An acknowledged event, for latency metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acked {
    pub seq: u64,
    pub marked_at: Timestamp,
}

#[derive(Debug)]
pub struct Outbox {
    limits: Limits,
    next_seq: u64,
    entries: VecDeque<Entry>,
    bytes: usize,
}

impl Outbox {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            next_seq: 1,
            entries: VecDeque::new(),
            bytes: 0,
        }
    }

    /// Whether another event may enter. An empty outbox always takes one, however large,
    /// so a single big event cannot block the agent forever.
    pub fn has_room(&self) -> bool {
        self.entries.is_empty()
            || (self.entries.len() < self.limits.events && self.bytes < self.limits.bytes)
    }

    /// Numbers the event built by `build` and keeps it; returns it for sending.
    pub fn push(
        &mut self,
        marked_at: Timestamp,
        build: impl FnOnce(u64) -> pb::Event,
    ) -> &pb::Event {
        let event = build(self.next_seq);
        self.next_seq += 1;
        let bytes = event.encoded_len();
        self.bytes += bytes;
        self.entries.push_back(Entry {
            event,
            bytes,
            marked_at,
        });
        &self.entries.back().expect("just pushed").event
    }

    /// Forgets every event up to `up_to_seq`, returning them. An acknowledgement of a
    /// number never handed out only covers what was handed out.
    pub fn ack(&mut self, up_to_seq: u64) -> Vec<Acked> {
        let mut acked = Vec::new();
        while self
            .entries
            .front()
            .is_some_and(|e| e.event.seq <= up_to_seq)
        {
            let e = self.entries.pop_front().expect("front exists");
            self.bytes -= e.bytes;
            acked.push(Acked {
                seq: e.event.seq,
                marked_at: e.marked_at,
            });
        }
        acked
    }

    /// Whether `up_to_seq` names an event never handed out (a confused peer).
    pub fn is_beyond(&self, up_to_seq: u64) -> bool {
        up_to_seq >= self.next_seq
    }

    /// The unacknowledged events, oldest first.
    pub fn unacked(&self) -> impl ExactSizeIterator<Item = &pb::Event> {
        self.entries.iter().map(|e| &e.event)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gone(seq: u64, uid: &str) -> pb::Event {
        pb::Event {
            seq,
            kind: Some(pb::event::Kind::PodGone(pb::PodGone {
                pod_uid: uid.into(),
            })),
        }
    }

    fn outbox(events: usize, bytes: usize) -> Outbox {
        Outbox::new(Limits { events, bytes })
    }

    #[test]
    fn events_are_numbered_from_one_and_kept_until_acknowledged() {
        let mut o = outbox(10, 1 << 20);
        for uid in ["a", "b", "c"] {
            o.push(Timestamp::UNIX_EPOCH, |seq| gone(seq, uid));
        }
        let seqs: Vec<u64> = o.unacked().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2, 3]);
        let acked = o.ack(2);
        assert_eq!(acked.iter().map(|a| a.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(o.unacked().map(|e| e.seq).collect::<Vec<_>>(), [3]);
        assert!(
            o.ack(2).is_empty(),
            "an old acknowledgement again changes nothing"
        );
    }

    #[test]
    fn numbers_keep_rising_after_acknowledgements() {
        let mut o = outbox(10, 1 << 20);
        o.push(Timestamp::UNIX_EPOCH, |seq| gone(seq, "a"));
        o.ack(1);
        assert_eq!(o.push(Timestamp::UNIX_EPOCH, |seq| gone(seq, "b")).seq, 2);
    }

    #[test]
    fn the_outbox_fills_by_count() {
        let mut o = outbox(2, 1 << 20);
        o.push(Timestamp::UNIX_EPOCH, |seq| gone(seq, "a"));
        assert!(o.has_room());
        o.push(Timestamp::UNIX_EPOCH, |seq| gone(seq, "b"));
        assert!(!o.has_room());
        o.ack(1);
        assert!(o.has_room());
    }

    #[test]
    fn the_outbox_fills_by_bytes_but_always_takes_one_event() {
        let mut o = outbox(100, 10);
        assert!(o.has_room());
        o.push(Timestamp::UNIX_EPOCH, |seq| gone(seq, &"x".repeat(100)));
        assert!(o.bytes() > 10);
        assert!(!o.has_room());
        o.ack(1);
        assert_eq!((o.len(), o.bytes()), (0, 0));
    }

    #[test]
    fn an_acknowledgement_beyond_what_was_sent_is_recognised() {
        let mut o = outbox(10, 1 << 20);
        o.push(Timestamp::UNIX_EPOCH, |seq| gone(seq, "a"));
        assert!(!o.is_beyond(1));
        assert!(o.is_beyond(2));
        assert_eq!(o.ack(99).len(), 1);
    }
}
