//! What the swarm reports: listeners, connections and their paths,
//! relays, hole punching, discovery and the behaviours' events, each
//! turned into the loop's state and the app's [`NetEvent`]s.

use super::*;

impl EventLoop {
    pub(super) fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                if let Some(pending) = self.listens.remove(&listener_id) {
                    let port = socket_addr(&address).map_or(pending.port, |a| a.port());
                    let bound = SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port));
                    let _ = pending.reply.send(Ok(bound));
                }
                self.relays.port_ready(&address, Instant::now());
                self.listen_on_relays();
                if let Some(relay) = self.relays.listening(listener_id).cloned() {
                    self.emit(NetEvent::Relayed {
                        relay,
                        addr: address,
                    });
                }
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                if let Some(relay) = self.relays.closed(listener_id, Instant::now()).cloned() {
                    let cause = match &reason {
                        Err(e) => describe_io(e),
                        Ok(()) => "the relay closed the reservation".into(),
                    };
                    self.emit(NetEvent::RelayLost { relay, cause });
                }
                if let Some(pending) = self.listens.remove(&listener_id) {
                    let cause = match reason {
                        Err(e) => describe_io(&e),
                        Ok(()) => "the listener closed".into(),
                    };
                    let _ = pending.reply.send(Err(Error::Listen {
                        port: pending.port,
                        cause,
                    }));
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                let addr = match &endpoint {
                    ConnectedPoint::Dialer { address, .. } => address.clone(),
                    // A peer that came through a relay has only its ID as
                    // an address; the circuit we listen on says which relay.
                    ConnectedPoint::Listener { local_addr, .. }
                        if crate::net::is_relayed(local_addr) =>
                    {
                        local_addr.clone()
                    }
                    ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr.clone(),
                };
                if self.banned.contains(&peer_id) {
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                // Back after a drop (the old connection may still be
                // closing): slow again, it is dropped and told again.
                self.slow_dropped.remove(&peer_id);
                let first = !self.addresses.contains_key(&peer_id);
                let conns = self.connections.entry(peer_id).or_default();
                conns.push((connection_id, addr.clone()));
                // A direct address is where the peer is, over a relayed one.
                if first || !crate::net::is_relayed(&addr) {
                    self.addresses.insert(peer_id, addr.clone());
                }
                self.presence.send_modify(|peers| {
                    peers.insert(peer_id);
                });
                if let Some(pending) = self.dials.remove(&connection_id) {
                    let _ = pending.reply.send(Ok(peer_id));
                }
                if first {
                    let inbound = endpoint.is_listener();
                    self.emit(NetEvent::Connected {
                        peer: peer_id,
                        addr,
                        inbound,
                    });
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } if num_established > 0 => {
                if let Some(conns) = self.connections.get_mut(&peer_id) {
                    conns.retain(|(id, _)| *id != connection_id);
                    if let Some((_, addr)) = conns.iter().find(|(_, a)| !crate::net::is_relayed(a))
                    {
                        self.addresses.insert(peer_id, addr.clone());
                    }
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.connections.remove(&peer_id);
                self.punched.remove(&peer_id);
                self.addresses.remove(&peer_id);
                self.rtts.remove(&peer_id);
                self.slow.remove(&peer_id);
                self.slow_dropped.remove(&peer_id);
                self.presence.send_modify(|peers| {
                    peers.remove(&peer_id);
                });
                self.emit(NetEvent::Disconnected { peer: peer_id });
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                if let Some(pending) = self.dials.remove(&connection_id) {
                    // The peer answered, but a connection to it is open
                    // already (it dialled us at the same moment, or we
                    // met it another way) and a further one is over the
                    // per-peer limit: the user's dial reached whom it was
                    // meant for, so it succeeded.
                    if let (DialError::Denied { .. }, Some(peer)) = (&error, peer_id) {
                        if self.swarm.is_connected(&peer) {
                            let _ = pending.reply.send(Ok(peer));
                            return;
                        }
                    }
                    let _ = pending.reply.send(Err(Error::Dial {
                        addr: pending.addr.to_string(),
                        cause: describe_dial(&error),
                    }));
                }
            }
            // A plain client (nc), a scanner, or a peer over the limits
            // fails its handshake and is dropped: nothing else is disturbed,
            // and the user, who can do nothing about it, is not told.
            SwarmEvent::IncomingConnectionError { .. } => {}
            SwarmEvent::Behaviour(BehaviourEvent::Ping(libp2p::ping::Event {
                peer,
                result: Ok(rtt),
                ..
            })) => {
                self.rtts.insert(peer, rtt);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(libp2p::dcutr::Event {
                remote_peer_id,
                result: Ok(_),
            })) => {
                self.punched.insert(remote_peer_id);
                self.emit(NetEvent::HolePunched {
                    peer: remote_peer_id,
                });
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => match event {
                gossipsub::Event::Message {
                    propagation_source,
                    message_id,
                    message,
                } => self.on_room_message(propagation_source, message_id, message),
                gossipsub::Event::Subscribed { peer_id, topic, .. } => {
                    if let Some(room) = self.topic_rooms.get(&topic).cloned() {
                        self.emit(NetEvent::Subscribed {
                            peer: peer_id,
                            room,
                        });
                    }
                }
                gossipsub::Event::SlowPeer { peer_id, .. } => self.on_slow_peer(peer_id),
                gossipsub::Event::Unsubscribed { peer_id, topic } => {
                    if let Some(room) = self.topic_rooms.get(&topic).cloned() {
                        self.emit(NetEvent::Unsubscribed {
                            peer: peer_id,
                            room,
                        });
                    }
                }
                _ => {}
            },
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Expired(gone))) => {
                for (peer, _) in gone {
                    self.lan_addrs.remove(&peer);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, addr) in &found {
                    if self.lan_addrs.len() < MAX_LAN_PEERS || self.lan_addrs.contains_key(peer) {
                        self.lan_addrs.insert(*peer, addr.clone());
                    }
                }
                if !self.in_public_room() {
                    return;
                }
                let local = *self.swarm.local_peer_id();
                for (peer, addr) in found {
                    if peer == local
                        || self.swarm.is_connected(&peer)
                        || self.banned.contains(&peer)
                    {
                        continue;
                    }
                    let opts = DialOpts::peer_id(peer)
                        .addresses(vec![addr])
                        .condition(PeerCondition::DisconnectedAndNotDialing)
                        .build();
                    let _ = self.swarm.dial(opts);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(libp2p::ping::Event {
                connection,
                result: Err(_),
                ..
            })) => {
                // Two pings in a row went unanswered: the peer is gone even
                // if the connection looks open. Closing it ends the chat
                // stream, which reports the disconnect.
                self.swarm.close_connection(connection);
            }
            _ => {}
        }
    }
}
