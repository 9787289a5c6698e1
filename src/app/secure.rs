//! Running a chat over the secure protocol (the default).
//!
//! The flow and the words are the classic mode's; on top, each side shows
//! who the peer is (proven by the Noise handshake), warns loudly before
//! anything is shown when an address the user trusted now answers with
//! another key, refuses a peer that `--expect` does not name, and handles
//! `/verify` and `/trust`.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use libp2p::PeerId;
use tokio::sync::{mpsc, Semaphore};

use super::{
    parse_command, Chat, Commands, End, Error, Handled, Inbound, Outbound, Role, SendError,
};
use crate::chat::safety::safety_number;
use crate::chat::{DialTarget, Event, Notice, Received};
use crate::identity::{self, Identity};
use crate::net::{self, ChatStreams, Client, Incoming, Outgoing, Session};
use crate::store::{Check, KnownPeers};

/// At most this many peers are being turned away at once.
const MAX_TURNING_AWAY: usize = 8;

/// What the secure protocol needs beyond the common options.
pub struct Secure {
    /// Our identity.
    pub identity: Identity,
    /// The peers we have met and trusted.
    pub known: KnownPeers,
    /// `--expect`: the only peer ID or fingerprint to chat with.
    pub expect: Option<String>,
}

pub(super) async fn run(
    role: Role,
    max_line: usize,
    mut secure: Secure,
    chat: &mut Chat<'_>,
) -> Result<(), Error> {
    let config = net::Config {
        max_message: max_line,
        ..net::Config::default()
    };
    let mut client = net::start(secure.identity.keypair().clone(), config)?;
    if !chat.show(own_identity(&secure.identity)).await {
        return Ok(());
    }
    match role {
        Role::Connect(target) => {
            if !chat
                .show(Event::Connecting {
                    to: target.to_string(),
                })
                .await
            {
                return Ok(());
            }
            let addr = match &target {
                DialTarget::Address(addr) => net::resolve(addr).await?,
                DialTarget::Multiaddr(addr) => net::parse_multiaddr(addr)?,
            };
            let peer = tokio::select! {
                peer = client.dial(&addr) => peer?,
                _ = chat.stopped() => return Ok(()),
            };
            if let Some(expected) = &secure.expect {
                if !identity::matches_expected(expected, &peer) {
                    client.disconnect(peer).await;
                    return Err(unexpected(expected, &peer));
                }
            }
            let session = tokio::select! {
                session = client.open_chat(peer) => session?,
                _ = chat.stopped() => return Ok(()),
            };
            if !chat.show(Event::Connected).await {
                return Ok(());
            }
            let label = target.to_string();
            if !introduce(&mut secure, chat, peer, Some(&label)).await {
                return Ok(());
            }
            chat_with(
                session,
                &mut secure,
                Some(label),
                chat,
                std::future::pending(),
            )
            .await;
            Ok(())
        }
        Role::Listen { port } => {
            let mut chats = client.accept_chats()?;
            let bound = client.listen(port).await?;
            if !chat.show(Event::Listening { addr: bound }).await {
                return Ok(());
            }
            loop {
                if !chat.show(Event::Waiting).await {
                    return Ok(());
                }
                let session = loop {
                    let session = tokio::select! {
                        session = chats.next() => session.ok_or(net::Error::Stopped)?,
                        _ = chat.stopped() => return Ok(()),
                    };
                    match &secure.expect {
                        Some(expected)
                            if !identity::matches_expected(expected, &session.peer()) =>
                        {
                            let peer_id = session.peer().to_string();
                            tokio::spawn(session.turn_away());
                            chat.show(Event::Notice(Notice::Unexpected { peer_id }))
                                .await;
                        }
                        _ => break session,
                    }
                };
                let peer = session.peer();
                let from = peer_socket(&client, peer).await;
                if !chat.show(Event::PeerConnected { from }).await {
                    return Ok(());
                }
                if !introduce(&mut secure, chat, peer, None).await {
                    return Ok(());
                }
                let others = turn_away_others(&mut chats, &client, chat.events);
                match chat_with(session, &mut secure, None, chat, others).await {
                    End::PeerLeft => continue,
                    End::InputClosed | End::Stopped => return Ok(()),
                }
            }
        }
    }
}

/// Runs one chat on a session.
async fn chat_with(
    session: Session,
    secure: &mut Secure,
    label: Option<String>,
    chat: &mut Chat<'_>,
    others: impl std::future::Future<Output = ()>,
) -> End {
    let peer = session.peer();
    let (mut incoming, mut outgoing) = session.split();
    let mut context = ChatContext {
        secure,
        peer,
        label,
    };
    chat.run(&mut incoming, &mut outgoing, &mut context, others)
        .await
}

/// Shows who the peer is, after a loud warning if its key changed.
/// False when the front end is gone.
async fn introduce(
    secure: &mut Secure,
    chat: &Chat<'_>,
    peer: PeerId,
    label: Option<&str>,
) -> bool {
    if let Check::Changed {
        label,
        previous,
        was_trusted: true,
    } = secure.known.check(label, &peer)
    {
        let warning = Event::KeyChanged {
            label,
            previous: previous.to_string(),
            now: peer.to_string(),
        };
        if !chat.show(warning).await {
            return false;
        }
    }
    let identity = Event::PeerIdentity {
        peer_id: peer.to_string(),
        fingerprint: fingerprint_of(&peer),
        verified: secure.known.is_trusted(&peer),
    };
    if !chat.show(identity).await || !chat.show(Event::Encrypted).await {
        return false;
    }
    if let Err(e) = secure.known.record_seen(label, &peer) {
        return chat.show(Event::Notice(Notice::Store(e.to_string()))).await;
    }
    true
}

fn own_identity(identity: &Identity) -> Event {
    Event::OwnIdentity {
        peer_id: identity.peer_id().to_string(),
        fingerprint: identity.fingerprint(),
    }
}

fn fingerprint_of(peer: &PeerId) -> String {
    identity::peer_fingerprint(peer).unwrap_or_else(|| "unavailable".into())
}

fn unexpected(expected: &str, peer: &PeerId) -> Error {
    Error::UnexpectedPeer {
        expected: crate::chat::sanitize::inert(expected),
        peer: peer.to_string(),
        fingerprint: fingerprint_of(peer),
    }
}

/// Where a connected peer is, for the `Peer connected from:` line.
async fn peer_socket(client: &Client, peer: PeerId) -> SocketAddr {
    client
        .peer_address(peer)
        .await
        .and_then(|addr| net::socket_addr(&addr))
        .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
}

/// Turns away every peer that opens a chat while one runs. Never returns
/// while the front end is open.
async fn turn_away_others(chats: &mut ChatStreams, client: &Client, events: &mpsc::Sender<Event>) {
    let slots = Arc::new(Semaphore::new(MAX_TURNING_AWAY));
    while let Some(session) = chats.next().await {
        let from = peer_socket(client, session.peer()).await;
        if let Ok(slot) = Arc::clone(&slots).try_acquire_owned() {
            tokio::spawn(async move {
                session.turn_away().await;
                drop(slot);
            });
        }
        if events
            .send(Event::Notice(Notice::TurnedAway { from }))
            .await
            .is_err()
        {
            return;
        }
    }
    std::future::pending::<()>().await;
}

/// What the commands of one chat act on.
pub(super) struct ChatContext<'a> {
    secure: &'a mut Secure,
    peer: PeerId,
    label: Option<String>,
}

impl ChatContext<'_> {
    pub(super) fn safety_number(&self) -> Event {
        match identity::peer_key_bytes(&self.peer) {
            Some(theirs) => Event::SafetyNumber {
                number: safety_number(&self.secure.identity.public_key_bytes(), &theirs),
            },
            None => Event::Help("This peer's key type has no safety number.".into()),
        }
    }

    pub(super) fn trust(&mut self) -> Event {
        match self.secure.known.trust(self.label.as_deref(), &self.peer) {
            Ok(()) => Event::Trusted {
                peer_id: self.peer.to_string(),
            },
            Err(e) => Event::Notice(Notice::Store(e.to_string())),
        }
    }

    pub(super) fn own_identity(&self) -> Event {
        own_identity(&self.secure.identity)
    }
}

impl Commands for ChatContext<'_> {
    fn handle<'a>(&mut self, line: &'a str) -> Handled<'a> {
        parse_command(line, self)
    }
}

impl Inbound for Incoming {
    async fn next(&mut self) -> Result<Received, String> {
        Incoming::next(self).await.map_err(|e| e.to_string())
    }

    fn try_next(&mut self) -> Option<Received> {
        Incoming::try_next(self)
    }
}

impl Outbound for Outgoing {
    async fn queue(&mut self, text: &str) -> Result<(), SendError> {
        Outgoing::queue(self, text).await.map_err(send_error)
    }

    async fn flush(&mut self) -> Result<(), SendError> {
        Outgoing::flush(self).await.map_err(send_error)
    }

    async fn close(&mut self) -> Result<(), SendError> {
        Outgoing::close(self).await.map_err(send_error)
    }
}

fn send_error(error: net::Error) -> SendError {
    match error {
        net::Error::MessageTooLong { limit, .. } => SendError::TooLong { limit },
        other => SendError::Failed(other.to_string()),
    }
}
