//! Reservations at relays (`--relay`): listening on a relay's circuit
//! address, so that peers that cannot dial us reach us through it.
//!
//! rust-libp2p's relay client renews a reservation while its connection
//! to the relay lasts, but does not come back by itself once the relay
//! goes away (restarted, or the link dropped): the circuit listener just
//! closes. So each relay asked for is listened on again, after 1 s, then
//! twice as long each time up to a minute, until it holds.

use std::time::{Duration, Instant};

use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;

/// First wait before listening on a relay again.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// Longest wait between tries.
const MAX_RETRY: Duration = Duration::from_secs(60);

/// One relay asked for.
#[derive(Debug)]
struct Relay {
    /// Its address, ending in `/p2p/ID`.
    addr: Multiaddr,
    /// Listening on its circuit address.
    listener: Option<ListenerId>,
    /// When to try again, while not listening.
    retry_at: Instant,
    /// How long the next wait after a failure is.
    wait: Duration,
}

/// Every relay asked for.
#[derive(Debug, Default)]
pub(super) struct Relays {
    relays: Vec<Relay>,
}

impl Relays {
    /// The relays at `addrs`, to be listened on at once.
    pub(super) fn new(addrs: &[Multiaddr], now: Instant) -> Relays {
        Relays {
            relays: addrs
                .iter()
                .map(|addr| Relay {
                    addr: addr.clone(),
                    listener: None,
                    retry_at: now,
                    wait: FIRST_RETRY,
                })
                .collect(),
        }
    }

    /// The circuit addresses of the relays due for another try, as
    /// `listen(addr)` takes them; it answers with the listener, or `None`
    /// when it could not start one.
    pub(super) fn listen_due(
        &mut self,
        now: Instant,
        mut listen: impl FnMut(Multiaddr) -> Option<ListenerId>,
    ) {
        for relay in &mut self.relays {
            if relay.listener.is_some() || relay.retry_at > now {
                continue;
            }
            relay.listener = listen(relay.addr.clone().with(Protocol::P2pCircuit));
            if relay.listener.is_none() {
                relay.retry_at = now + relay.wait;
                relay.wait = (relay.wait * 2).min(MAX_RETRY);
            }
        }
    }

    /// A listener now listens: the relay that is its, if any.
    pub(super) fn listening(&mut self, listener: ListenerId) -> Option<&Multiaddr> {
        let relay = self
            .relays
            .iter_mut()
            .find(|r| r.listener == Some(listener))?;
        relay.wait = FIRST_RETRY;
        Some(&relay.addr)
    }

    /// A listener closed: the relay that was its, to be listened on again
    /// after a wait.
    pub(super) fn closed(&mut self, listener: ListenerId, now: Instant) -> Option<&Multiaddr> {
        let relay = self
            .relays
            .iter_mut()
            .find(|r| r.listener == Some(listener))?;
        relay.listener = None;
        relay.retry_at = now + relay.wait;
        relay.wait = (relay.wait * 2).min(MAX_RETRY);
        Some(&relay.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relay_that_goes_away_is_listened_on_again_ever_later_up_to_a_minute() {
        let t0 = Instant::now();
        let addr: Multiaddr = "/ip4/203.0.113.7/tcp/4001".parse().unwrap();
        let mut relays = Relays::new(std::slice::from_ref(&addr), t0);
        let mut asked: Vec<Multiaddr> = Vec::new();
        relays.listen_due(t0, |a| {
            asked.push(a);
            Some(ListenerId::next())
        });
        assert_eq!(asked.len(), 1);
        assert!(asked[0].to_string().ends_with("/p2p-circuit"));
        let id = relays.relays[0].listener.unwrap();
        assert_eq!(relays.listening(id), Some(&addr));
        assert_eq!(relays.closed(id, t0), Some(&addr));
        relays.listen_due(t0, |a| {
            asked.push(a);
            Some(ListenerId::next())
        });
        assert_eq!(asked.len(), 1, "not before its wait");
        relays.listen_due(t0 + FIRST_RETRY, |a| {
            asked.push(a);
            Some(ListenerId::next())
        });
        assert_eq!(asked.len(), 2);
        // Failing to listen backs off, to at most a minute.
        let mut t = t0 + FIRST_RETRY;
        for _ in 0..10 {
            relays.relays[0].listener = None;
            relays.listen_due(t, |_| None);
            t = relays.relays[0].retry_at;
        }
        assert_eq!(relays.relays[0].wait, MAX_RETRY);
    }
}
