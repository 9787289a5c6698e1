//! How fast each author may send room messages: a token bucket per
//! author, and what is done past it.

use std::time::Instant;

use super::event_loop::{RATE_BURST, RATE_PER_SECOND, RATE_STRIKES};

/// A token bucket per author.
#[derive(Debug)]
pub(super) struct Rate {
    tokens: f64,
    last: Instant,
    strikes: u32,
}

impl Default for Rate {
    fn default() -> Self {
        Self {
            tokens: RATE_BURST,
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
    pub(super) fn take(&mut self) -> Admit {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * RATE_PER_SECOND).min(RATE_BURST);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            if self.tokens >= RATE_BURST / 2.0 {
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
    use super::*;

    #[test]
    fn the_rate_limit_throttles_then_bans_a_flood() {
        let mut rate = Rate::default();
        for _ in 0..RATE_BURST as usize {
            assert_eq!(rate.take(), Admit::Yes);
        }
        // A flood far above the sustained rate: the first drop is
        // reported, then drops, then a ban.
        let mut seen = Vec::new();
        for _ in 0..(RATE_STRIKES as usize * 2) {
            let admit = rate.take();
            if seen.last() != Some(&admit) {
                seen.push(admit);
            }
        }
        let first_drop = seen.iter().position(|a| *a == Admit::FirstDrop);
        let ban = seen.iter().position(|a| *a == Admit::Ban);
        assert!(first_drop.is_some() && first_drop < ban, "{seen:?}");
    }
}
