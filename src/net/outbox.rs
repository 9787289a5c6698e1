//! Events on their way to the app. Lines are taken in turns per author, so
//! a member that floods a room does not queue everyone else's lines behind
//! its own; every other event keeps its place.

use std::collections::VecDeque;

use libp2p::PeerId;

/// Events waiting, in stretches: an event that must keep its place (a
/// member arriving or leaving, a hello, an acknowledgement: the app reads
/// them as one story, and an acknowledgement must not overtake the lines it
/// acknowledges) stands alone, and the lines between two of those form a
/// stretch with a queue per author, served round robin. Each author's lines
/// keep their order, and nothing crosses an event that keeps its place.
#[derive(Debug)]
pub(super) struct Outbox<T> {
    stretches: VecDeque<Stretch<T>>,
    len: usize,
}

#[derive(Debug)]
enum Stretch<T> {
    /// An event that keeps its place.
    Fixed(T),
    /// Authors with lines waiting, the next to be served first.
    Shared(VecDeque<(PeerId, VecDeque<T>)>),
}

impl<T> Default for Outbox<T> {
    fn default() -> Self {
        Self {
            stretches: VecDeque::new(),
            len: 0,
        }
    }
}

impl<T> Outbox<T> {
    /// Events waiting, all together.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues `event`: lines of `author` (shared out in turns with other
    /// authors' lines since the last event that keeps its place), or, for
    /// `None`, an event that keeps its place.
    pub(super) fn push(&mut self, author: Option<PeerId>, event: T) {
        self.len += 1;
        let Some(author) = author else {
            self.stretches.push_back(Stretch::Fixed(event));
            return;
        };
        if !matches!(self.stretches.back(), Some(Stretch::Shared(_))) {
            self.stretches.push_back(Stretch::Shared(VecDeque::new()));
        }
        if let Some(Stretch::Shared(queues)) = self.stretches.back_mut() {
            match queues.iter_mut().find(|(a, _)| *a == author) {
                Some((_, queue)) => queue.push_back(event),
                None => queues.push_back((author, VecDeque::from([event]))),
            }
        }
    }

    /// The next event: the first stretch's, in turn among its authors (the
    /// author served goes to the end of the turn if it has more).
    pub(super) fn pop(&mut self) -> Option<T> {
        let event = match self.stretches.front_mut()? {
            Stretch::Fixed(_) => match self.stretches.pop_front() {
                Some(Stretch::Fixed(event)) => Some(event),
                _ => None,
            },
            Stretch::Shared(queues) => {
                let event = queues.pop_front().and_then(|(author, mut queue)| {
                    let event = queue.pop_front();
                    if !queue.is_empty() {
                        queues.push_back((author, queue));
                    }
                    event
                });
                if queues.is_empty() {
                    self.stretches.pop_front();
                }
                event
            }
        };
        if event.is_some() {
            self.len -= 1;
        }
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(outbox: &mut Outbox<String>) -> Vec<String> {
        std::iter::from_fn(|| outbox.pop()).collect()
    }

    #[test]
    fn an_author_with_many_lines_waiting_does_not_hold_back_another_authors() {
        let (flood, honest) = (PeerId::random(), PeerId::random());
        let mut outbox = Outbox::default();
        for i in 0..10 {
            outbox.push(Some(flood), format!("f{i}"));
        }
        outbox.push(Some(honest), "h0".to_owned());
        outbox.push(Some(honest), "h1".to_owned());
        assert_eq!(outbox.len(), 12);
        let order = drain(&mut outbox);
        assert_eq!(
            order[..5],
            ["f0", "h0", "f1", "h1", "f2"].map(str::to_owned)
        );
        // Every event comes out once, each author's in order.
        let floods: Vec<String> = order.into_iter().filter(|e| e.starts_with('f')).collect();
        assert_eq!(floods, (0..10).map(|i| format!("f{i}")).collect::<Vec<_>>());
        assert!(outbox.is_empty());
        assert_eq!(outbox.pop(), None);
    }

    #[test]
    fn events_that_keep_their_place_are_crossed_by_nothing() {
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let mut outbox = Outbox::default();
        outbox.push(Some(a), "a0".to_owned());
        outbox.push(Some(a), "a1".to_owned());
        outbox.push(None, "c joined".to_owned());
        outbox.push(Some(b), "b0".to_owned());
        outbox.push(None, "b left".to_owned());
        outbox.push(Some(a), "a2".to_owned());
        outbox.push(Some(c), "c0".to_owned());
        outbox.push(Some(a), "a3".to_owned());
        assert_eq!(
            drain(&mut outbox),
            ["a0", "a1", "c joined", "b0", "b left", "a2", "c0", "a3"].map(str::to_owned)
        );
        assert_eq!(outbox.len(), 0);
    }
}
