//! Events on their way to the app, taken in turns per peer, so a member
//! that floods a room does not queue everyone else's lines behind its own.

use std::collections::VecDeque;

use libp2p::PeerId;

/// Events waiting, one queue per peer they concern (a room message's
/// author; `None` for events about no peer), served round robin: an event
/// of the next peer with any waiting, then the next. Each peer's events
/// keep their order; the order between peers is given up for fairness.
#[derive(Debug)]
pub(super) struct Outbox<T> {
    /// Peers with events waiting, the next to be served first.
    queues: VecDeque<(Option<PeerId>, VecDeque<T>)>,
    len: usize,
}

impl<T> Default for Outbox<T> {
    fn default() -> Self {
        Self {
            queues: VecDeque::new(),
            len: 0,
        }
    }
}

impl<T> Outbox<T> {
    /// Events waiting, all peers together.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues `event` behind `peer`'s others. A peer with none waiting
    /// joins the end of the turn.
    pub(super) fn push(&mut self, peer: Option<PeerId>, event: T) {
        self.len += 1;
        match self.queues.iter_mut().find(|(p, _)| *p == peer) {
            Some((_, queue)) => queue.push_back(event),
            None => self.queues.push_back((peer, VecDeque::from([event]))),
        }
    }

    /// The next peer's oldest event; that peer goes to the end of the turn
    /// if it has more.
    pub(super) fn pop(&mut self) -> Option<T> {
        let (peer, mut queue) = self.queues.pop_front()?;
        let event = queue.pop_front();
        if !queue.is_empty() {
            self.queues.push_back((peer, queue));
        }
        if event.is_some() {
            self.len -= 1;
        }
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_with_many_events_waiting_does_not_hold_back_another_peers_one() {
        let (flood, honest) = (PeerId::random(), PeerId::random());
        let mut outbox = Outbox::default();
        for i in 0..10 {
            outbox.push(Some(flood), format!("f{i}"));
        }
        outbox.push(Some(honest), "h0".to_owned());
        outbox.push(None, "n0".to_owned());
        outbox.push(Some(honest), "h1".to_owned());
        assert_eq!(outbox.len(), 13);
        let order: Vec<String> = std::iter::from_fn(|| outbox.pop()).collect();
        assert_eq!(
            order[..6],
            ["f0", "h0", "n0", "f1", "h1", "f2"].map(str::to_owned)
        );
        // Every event comes out once, each peer's in order.
        let floods: Vec<&String> = order.iter().filter(|e| e.starts_with('f')).collect();
        assert_eq!(
            floods,
            (0..10)
                .map(|i| format!("f{i}"))
                .collect::<Vec<_>>()
                .iter()
                .collect::<Vec<_>>()
        );
        assert!(outbox.is_empty());
        assert_eq!(outbox.len(), 0);
        assert_eq!(outbox.pop(), None);
    }
}
