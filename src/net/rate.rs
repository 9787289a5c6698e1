//! How fast each author may send room messages: two token buckets per
//! author, one for messages (each costs a signature check) and one for
//! what the lines in them count for (bytes, and a share per line, as our
//! own sender counts them), and what is done past either.

use std::time::Instant;

use super::behaviour::MESSAGE_HOLD;
#[cfg(doc)]
use crate::chat::delivery::LINE_OVERHEAD;
use crate::chat::delivery::PUBLISH_WINDOW;

/// Room messages (batches of lines) a peer may author per second,
/// sustained. Our own program sends at most a few hundred a second however
/// fast lines are typed, since it batches them.
pub const RATE_PER_SECOND: f64 = 5_000.0;
/// ... and in one burst.
pub const RATE_BURST: f64 = 20_000.0;
/// What an author's lines may count for per second, sustained (bytes of
/// room messages, and [`LINE_OVERHEAD`] per line): twice what our own
/// sender puts out at most ([`PUBLISH_WINDOW`] per [`MESSAGE_HOLD`]), so
/// an honest flood is never cut, while what one author can make us keep
/// in gossipsub's cache stays within [`RATE_BYTES_BURST`] and this rate
/// over [`MESSAGE_HOLD`].
pub const RATE_BYTES_PER_SECOND: f64 = 2.0 * PUBLISH_WINDOW as f64 / MESSAGE_HOLD.as_secs_f64();
/// ... and in one burst.
pub const RATE_BYTES_BURST: f64 = 2.0 * PUBLISH_WINDOW as f64;
/// Messages dropped over the limit before the peer is disconnected.
pub const RATE_STRIKES: u32 = 20_000;

/// What one author's room messages may keep in gossipsub's cache, in
/// bytes: what we passed on within [`MESSAGE_HOLD`], which the cache holds
/// to answer members that missed it. Past it a message is still taken
/// (shown, stored, acknowledged) but not passed on, and leaves the cache
/// at once; a member that needed it from us fetches it as any line it
/// missed, and in a room whose members are all connected to each other
/// each has it from its author already. So an author at its full rate
/// costs us this, not its rate over the hold (32 MiB at the full rate).
pub const FORWARD_BYTES: f64 = 2.0 * 1024.0 * 1024.0;

/// What a message counts for in [`FORWARD_BYTES`] beyond its data: what
/// the cache keeps beside it (its signature, author, topic and id, and the
/// cache's entries for it), so that many small messages are not free.
pub const FORWARD_OVERHEAD: usize = 512;

/// Tokens that fill at a rate up to a burst.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    rate: f64,
    burst: f64,
}

impl Bucket {
    fn new(rate: f64, burst: f64) -> Self {
        Self {
            tokens: burst,
            rate,
            burst,
        }
    }

    fn fill(&mut self, seconds: f64) {
        self.tokens = (self.tokens + seconds * self.rate).min(self.burst);
    }
}

/// An author's buckets.
#[derive(Debug)]
pub(super) struct Rate {
    messages: Bucket,
    bytes: Bucket,
    /// Bytes passed on: half of [`FORWARD_BYTES`] at once, and as much
    /// again over [`MESSAGE_HOLD`], so never more within it.
    forwarded: Bucket,
    last: Instant,
    strikes: u32,
}

impl Default for Rate {
    fn default() -> Self {
        Self {
            messages: Bucket::new(RATE_PER_SECOND, RATE_BURST),
            bytes: Bucket::new(RATE_BYTES_PER_SECOND, RATE_BYTES_BURST),
            forwarded: Bucket::new(
                FORWARD_BYTES / 2.0 / MESSAGE_HOLD.as_secs_f64(),
                FORWARD_BYTES / 2.0,
            ),
            last: Instant::now(),
            strikes: 0,
        }
    }
}

/// Whether a message is let through.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Admit {
    Yes,
    /// Over the limit, the first time in a while: tell the user.
    FirstDrop,
    Drop,
    /// Over the limit for too long: disconnect.
    Ban,
}

impl Rate {
    /// Whether a message that counts for at least `cost` bytes could be
    /// let through at `now`: if not, it is refused (with [`Rate::take`])
    /// before any work is spent on it.
    pub(super) fn has_room(&mut self, now: Instant, cost: usize) -> bool {
        self.fill(now);
        self.messages.tokens >= 1.0 && self.bytes.tokens >= cost as f64
    }

    fn fill(&mut self, now: Instant) {
        let seconds = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.messages.fill(seconds);
        self.bytes.fill(seconds);
        self.forwarded.fill(seconds);
    }

    /// Whether a message of `size` bytes, let through at `now`, is passed
    /// on (and kept in gossipsub's cache meanwhile): see [`FORWARD_BYTES`].
    pub(super) fn pass_on(&mut self, now: Instant, size: usize) -> bool {
        self.fill(now);
        let size = (size + FORWARD_OVERHEAD) as f64;
        if self.forwarded.tokens < size {
            return false;
        }
        self.forwarded.tokens -= size;
        true
    }

    /// Takes one message that counts for `cost` bytes, at `now`.
    pub(super) fn take(&mut self, now: Instant, cost: usize) -> Admit {
        self.fill(now);
        let cost = cost as f64;
        if self.messages.tokens >= 1.0 && self.bytes.tokens >= cost {
            self.messages.tokens -= 1.0;
            self.bytes.tokens -= cost;
            if self.messages.tokens >= self.messages.burst / 2.0
                && self.bytes.tokens >= self.bytes.burst / 2.0
            {
                self.strikes = 0;
            }
            return Admit::Yes;
        }
        self.strikes += 1;
        match self.strikes {
            1 => Admit::FirstDrop,
            n if n >= RATE_STRIKES => Admit::Ban,
            _ => Admit::Drop,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Offers `count` messages of `cost` bytes, one every `every`, from
    /// `start`; returns the distinct answers in the order first seen and
    /// how many were let through.
    fn offer(
        rate: &mut Rate,
        start: Instant,
        count: usize,
        cost: usize,
        every: Duration,
    ) -> (Vec<Admit>, usize) {
        let mut seen = Vec::new();
        let mut passed = 0;
        for i in 0..count {
            let admit = rate.take(start + every * i as u32, cost);
            passed += usize::from(admit == Admit::Yes);
            if seen.last() != Some(&admit) {
                seen.push(admit);
            }
        }
        (seen, passed)
    }

    #[test]
    fn the_rate_limit_throttles_then_bans_a_flood_of_messages() {
        let mut rate = Rate::default();
        let start = rate.last;
        // Small messages all at once: the burst passes, then the first
        // drop is reported, then drops, then a ban.
        let (seen, passed) = offer(
            &mut rate,
            start,
            RATE_BURST as usize + RATE_STRIKES as usize * 2,
            1,
            Duration::ZERO,
        );
        assert_eq!(passed, RATE_BURST as usize);
        assert_eq!(
            seen,
            [Admit::Yes, Admit::FirstDrop, Admit::Drop, Admit::Ban],
            "{seen:?}"
        );
    }

    #[test]
    fn the_rate_limit_counts_bytes_so_a_few_big_messages_cannot_pass_it() {
        let mut rate = Rate::default();
        let start = rate.last;
        // Messages of 1 MiB, 100 a second: far under the message rate,
        // far over the byte rate.
        let big = 1024 * 1024;
        let every = Duration::from_millis(10);
        let count = 2_000;
        let (seen, passed) = offer(&mut rate, start, count, big, every);
        let seconds = (every * count as u32).as_secs_f64();
        let allowed = (RATE_BYTES_BURST + RATE_BYTES_PER_SECOND * seconds) / big as f64;
        assert!(passed as f64 <= allowed + 1.0, "{passed} > {allowed}");
        assert!(passed as f64 >= allowed * 0.9, "{passed} < {allowed}");
        assert_eq!(seen[..2], [Admit::Yes, Admit::FirstDrop], "{seen:?}");
    }

    #[test]
    fn what_is_passed_on_within_the_hold_stays_within_its_bound() {
        let mut rate = Rate::default();
        let start = rate.last;
        // Messages of 128 KiB, one a millisecond, for 3 s: what was passed
        // on within any hold never exceeds the bound.
        let size = 128 * 1024;
        let cost = size + FORWARD_OVERHEAD;
        let mut passed: Vec<Instant> = Vec::new();
        for i in 0..3_000 {
            let now = start + Duration::from_millis(i);
            if rate.pass_on(now, size) {
                passed.push(now);
            }
            let within = passed.iter().filter(|&&at| at + MESSAGE_HOLD > now).count();
            assert!(
                (within * cost) as f64 <= FORWARD_BYTES,
                "{within} at {i} ms"
            );
        }
        // ... and about that much is passed on in each hold.
        let holds = 3.0 / MESSAGE_HOLD.as_secs_f64();
        let expected = FORWARD_BYTES / 2.0 * (holds + 1.0) / cost as f64;
        assert!(
            (passed.len() as f64 - expected).abs() <= 2.0,
            "{} passed",
            passed.len()
        );
    }

    #[test]
    fn a_sender_at_the_rate_is_never_refused() {
        let mut rate = Rate::default();
        let start = rate.last;
        // At nine tenths of the byte rate, for a minute: all pass.
        let cost = 64 * 1024;
        let every = Duration::from_secs_f64(cost as f64 / (RATE_BYTES_PER_SECOND * 0.9));
        let count = (60.0 / every.as_secs_f64()) as usize;
        let (seen, passed) = offer(&mut rate, start, count, cost, every);
        assert_eq!(passed, count);
        assert_eq!(seen, [Admit::Yes]);
    }

    #[test]
    fn a_message_without_room_is_known_before_it_is_looked_at() {
        let start = Instant::now();
        let mut rate = Rate::default();
        let big = RATE_BYTES_BURST as usize;
        assert!(rate.has_room(start, big));
        assert_eq!(rate.take(start, big), Admit::Yes);
        // The bytes are spent: not even the bytes alone fit now, ...
        assert!(!rate.has_room(start, 1024));
        assert_eq!(rate.take(start, 1024), Admit::FirstDrop);
        // ... and they come back at the rate.
        let later = start + Duration::from_millis(100);
        assert!(rate.has_room(later, 1024));
        assert!(!rate.has_room(later, RATE_BYTES_BURST as usize));
    }
}
