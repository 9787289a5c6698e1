//! Reservations at relays (`--relay`): listening on a relay's circuit
//! address, so that peers that cannot dial us reach us through it.
//!
//! rust-libp2p's relay client renews a reservation while its connection
//! to the relay lasts, but does not come back by itself once the relay
//! goes away (restarted, or the link dropped): the circuit listener just
//! closes. So each relay asked for is listened on again, after 1 s, then
//! twice as long each time up to a minute, until it holds.
//!
//! The first time, a relay waits for one of our own listeners: hole
//! punching over TCP dials from the port we listen on, and the relay
//! tells the far side the address it sees our connection come from. A
//! connection to the relay made before the listener is up leaves from
//! another port, so the address the relay sees is one no punch can reach.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;

/// First wait before listening on a relay again.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// Longest wait between tries.
const MAX_RETRY: Duration = Duration::from_secs(60);

/// Longest a relay waits for a listener of ours before it is listened on
/// regardless (a node that does not listen, or only at addresses of
/// another kind than the relay's).
const PORT_WAIT: Duration = Duration::from_secs(2);

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
    /// Not tried yet: waiting for a listener whose port the connection
    /// to it can leave from (see [`Relays::port_ready`]).
    awaiting_port: bool,
}

/// Every relay asked for.
#[derive(Debug, Default)]
pub(super) struct Relays {
    relays: Vec<Relay>,
}

impl Relays {
    /// The relays at `addrs`, to be listened on once we listen ourselves
    /// (or [`PORT_WAIT`] from `now` at the latest).
    pub(super) fn new(addrs: &[Multiaddr], now: Instant) -> Relays {
        Relays {
            relays: addrs
                .iter()
                .map(|addr| Relay {
                    addr: addr.clone(),
                    listener: None,
                    retry_at: now + PORT_WAIT,
                    wait: FIRST_RETRY,
                    awaiting_port: true,
                })
                .collect(),
        }
    }

    /// We now listen at `local`, a direct address: the relays still
    /// waiting for a port that a connection to them would leave from are
    /// due at once. The TCP transport reuses a listener's port for a
    /// remote of the same IP version and the same loopback-ness, so those
    /// are the relays it serves; a relay named by DNS is served by any.
    pub(super) fn port_ready(&mut self, local: &Multiaddr, now: Instant) {
        let Some(ours) = ip_of(local).filter(|_| !super::is_relayed(local)) else {
            return;
        };
        for relay in &mut self.relays {
            let served = ip_of(&relay.addr).is_none_or(|theirs| {
                ours.is_ipv4() == theirs.is_ipv4() && ours.is_loopback() == theirs.is_loopback()
            });
            if relay.awaiting_port && served {
                relay.awaiting_port = false;
                relay.retry_at = now;
            }
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
            relay.awaiting_port = false;
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

/// The IP address of a TCP multiaddr, if it names one.
fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    super::socket_addr(addr).map(|a| a.ip())
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
        relays.port_ready(&"/ip4/10.0.0.2/tcp/5000".parse().unwrap(), t0);
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

    #[test]
    fn a_relay_waits_for_a_listener_whose_port_a_connection_to_it_reuses() {
        let t0 = Instant::now();
        let public: Multiaddr = "/ip4/203.0.113.7/tcp/4001".parse().unwrap();
        let local: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        let named: Multiaddr = "/dns4/relay.example/tcp/4001".parse().unwrap();
        let mut relays = Relays::new(&[public.clone(), local.clone(), named.clone()], t0);
        let due = |relays: &mut Relays, t: Instant| {
            let mut asked = Vec::new();
            relays.listen_due(t, |a| {
                asked.push(a);
                Some(ListenerId::next())
            });
            asked
        };
        assert!(due(&mut relays, t0).is_empty(), "nothing before we listen");
        // A relay's circuit, or a loopback port, serves no public relay.
        relays.port_ready(&public.clone().with(Protocol::P2pCircuit), t0);
        relays.port_ready(&"/ip4/127.0.0.1/tcp/5000".parse().unwrap(), t0);
        let asked = due(&mut relays, t0);
        assert_eq!(
            asked,
            vec![
                local.clone().with(Protocol::P2pCircuit),
                named.clone().with(Protocol::P2pCircuit)
            ]
        );
        relays.port_ready(&"/ip4/10.0.0.2/tcp/5000".parse().unwrap(), t0);
        let asked = due(&mut relays, t0);
        assert_eq!(asked, vec![public.clone().with(Protocol::P2pCircuit)]);

        // Never listening ourselves, or only at IPv6: each relay is
        // listened on once its wait is over.
        let mut relays = Relays::new(std::slice::from_ref(&public), t0);
        relays.port_ready(&"/ip6/2001:db8::2/tcp/5000".parse().unwrap(), t0);
        assert!(due(&mut relays, t0 + PORT_WAIT / 2).is_empty());
        assert_eq!(due(&mut relays, t0 + PORT_WAIT).len(), 1);
    }
}
