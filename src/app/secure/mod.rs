//! Running the secure chat: rooms of any number of peers on rust-libp2p.
//!
//! Every secure chat is a room (`lobby` unless another is named). What is
//! delivered, in what order, what is fetched, stored and acknowledged, is
//! decided by the core's [`Delivery`] state machine; this module carries
//! its decisions out (the network, the store, the screen) and feeds the
//! results back. Two peers alone in a room see the classic lines
//! (`Peer: TEXT`, `Peer disconnected`); in a bigger room members are shown
//! by nick or short fingerprint, with join and leave lines.
//!
//! The parts, one file each: the session and its main loop
//! (`session.rs`), carrying out delivery (`delivery.rs`), members,
//! presence and trust (`members.rs`), slash commands (`commands.rs`),
//! direct messages (`direct.rs`) and answering other members' fetches
//! (`serve.rs`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::FuturesOrdered;
use libp2p::PeerId;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{Chat, Error, Role};
use crate::chat::delivery::{Delivery, FetchAsk, Fetched, Recent};
use crate::chat::membership::KeyRing;
use crate::chat::room::{check_nick, check_room_key, Roster};
use crate::chat::room_key::RoomAccess;
use crate::chat::ticket::Ticket;
use crate::chat::{DialTarget, Event};
use crate::identity::{self, Identity};
use crate::net::{self, Client};
use crate::store::{KnownPeers, PendingWrite, RoomKeys, Store};

mod commands;
mod delivery;
mod direct;
mod files;
mod kick;
mod members;
mod serve;
mod session;

pub use files::FileOptions;

/// Lines of history shown when a room is opened.
const HISTORY_ON_START: usize = 20;

/// What the secure protocol needs beyond the common options.
pub struct Secure {
    /// Our identity.
    pub identity: Identity,
    /// The peers we have met and trusted.
    pub known: KnownPeers,
    /// The keys of the private rooms we are in.
    pub room_keys: RoomKeys,
    /// `--expect`: the only peer ID or fingerprint to connect to.
    pub expect: Option<String>,
    /// Our nick.
    pub nick: Option<String>,
    /// The room to join first.
    pub room: String,
    /// Find peers on the LAN with mDNS.
    pub mdns: bool,
    /// A port to listen on as well when connecting (`--listen` with
    /// `--connect`).
    pub also_listen: Option<u16>,
    /// Where messages are kept (on disk, or in memory with `--no-history`).
    pub store: Store,
    /// How far back members reconcile what they hold when they meet.
    pub sync_window: Duration,
    /// Relays to hold a reservation at (`--relay`).
    pub relays: Vec<libp2p::Multiaddr>,
    /// Sending and receiving files.
    pub files: FileOptions,
    /// Whether our own lines come back as [`Event::Own`] as they go out,
    /// for a front end that shows them with their delivery state.
    ///
    /// [`Event::Own`]: crate::chat::Event::Own
    pub echo_own: bool,
}

/// The chat in rooms: carries out what [`Delivery`] decides, and keeps
/// what is about people rather than lines (who is in which room, by what
/// name, whom we trust).
struct RoomChat {
    client: Client,
    secure: Secure,
    role: Role,
    /// The longest line shown or sent.
    max_line: usize,
    /// Our session (kept with the store, so line numbers carry on).
    session: u64,
    /// What is delivered, fetched, stored and acknowledged.
    core: Delivery,
    /// Where the core's time starts.
    started: Instant,
    rooms: BTreeMap<String, Roster>,
    current: Option<String>,
    /// Peers whose identity was shown.
    introduced: HashSet<PeerId>,
    /// Lines never acknowledged when the wait after our input ended gave
    /// up; they were put back in the outbox.
    gave_up: Option<u64>,
    /// Peers that dialled our listener and have not joined the room we
    /// show yet, with where they came from.
    dialled_in: HashMap<PeerId, Event>,
    /// Whether the user was told that input waits (see
    /// [`Delivery::input_held`]) while alone.
    told_held: bool,
    /// Writes of our lines to the outbox, in the order asked: each comes
    /// back with its lines.
    recording: FuturesOrdered<PendingWrite>,
    /// The write of received lines on the store thread, if any.
    storing: Option<PendingWrite>,
    /// Fetches of missing lines on their way.
    fetches: JoinSet<(FetchAsk, Option<Fetched>)>,
    /// The tasks that answer other members (fetches, direct messages),
    /// ended with the chat.
    tasks: JoinSet<()>,
    /// Delivery marks on their way to the store: waited for at the end,
    /// not dropped, or the next run would send those lines again.
    marking: JoinSet<()>,
    /// `/quit` was typed: end once the lines typed before it are out.
    quitting: bool,
    /// Reconnecting to the peer we connected to, and where it says so.
    reconnect: Option<tokio::task::JoinHandle<()>>,
    reconnected_tx: mpsc::Sender<PeerId>,
    reconnected_rx: Option<mpsc::Receiver<PeerId>>,
    /// The address we connected to, as typed.
    label: Option<String>,
    /// The peer we connected to.
    first_peer: Option<PeerId>,
    /// "Type messages..." was shown.
    ready: bool,
    /// Nicks whose key changed from a trusted one: warned once.
    warned: HashSet<(String, PeerId)>,
    /// The member each private room's key came from, when one handed it
    /// to us: where we follow the room if that member moves.
    key_from: HashMap<String, PeerId>,
    /// Each private room's keys by epoch (see [`KeyRing`]).
    rings: HashMap<String, KeyRing>,
    /// The nick each peer last announced, in any room.
    nicks: HashMap<PeerId, String>,
    /// Members whose join is not shown yet, waiting for their nick.
    unannounced: HashMap<(String, PeerId), Instant>,
    /// Recent lines of every author, ours included, for members that
    /// missed some.
    recent: Arc<Mutex<Recent>>,
    /// Whether the store refuses direct messages (said once).
    direct_refused: direct::DirectRefused,
    /// Gives a burst's heap back once it is over.
    trimmer: super::trim::Trimmer,
    /// File transfers.
    files: files::Files,
}

impl RoomChat {
    fn new(client: Client, secure: Secure, role: Role, max_line: usize, session: u64) -> Self {
        let (reconnected_tx, reconnected_rx) = mpsc::channel(1);
        let me = client.local_peer_id().to_string();
        Self {
            core: Delivery::new(
                me,
                session,
                max_line,
                super::random_session(),
                super::now_ms().saturating_mul(1024),
            )
            .holding_published(crate::net::MESSAGE_HOLD),
            started: Instant::now(),
            recording: FuturesOrdered::new(),
            storing: None,
            fetches: JoinSet::new(),
            tasks: JoinSet::new(),
            marking: JoinSet::new(),
            quitting: false,
            told_held: false,
            reconnect: None,
            reconnected_tx,
            reconnected_rx: Some(reconnected_rx),
            recent: Arc::new(Mutex::new(Recent::default())),
            direct_refused: direct::DirectRefused::default(),
            trimmer: super::trim::Trimmer::default(),
            files: files::Files::new(secure.files.clone()),
            client,
            secure,
            role,
            max_line,
            session,
            rooms: BTreeMap::new(),
            current: None,
            introduced: HashSet::new(),
            dialled_in: HashMap::new(),
            gave_up: None,
            label: None,
            first_peer: None,
            ready: false,
            warned: HashSet::new(),
            key_from: HashMap::new(),
            rings: HashMap::new(),
            nicks: HashMap::new(),
            unannounced: HashMap::new(),
        }
    }
}

pub(super) async fn run(
    role: Role,
    max_line: usize,
    mut secure: Secure,
    chat: &mut Chat<'_>,
) -> Result<(), Error> {
    if let Role::Connect(DialTarget::Invite(ticket)) = &role {
        accept_invite(&mut secure, ticket)?;
    }
    check_room_key(&secure.room).map_err(|e| Error::Usage(e.to_string()))?;
    if let Some(nick) = &secure.nick {
        check_nick(nick).map_err(|e| Error::Usage(e.to_string()))?;
    }
    let config = net::Config {
        max_message: max_line,
        mdns: secure.mdns,
        relays: secure.relays.clone(),
        ..net::Config::default()
    };
    let (client, net_events) = net::start(secure.identity.keypair().clone(), config)?;
    if !chat.show(own_identity(&secure.identity)).await {
        return Ok(());
    }
    let session = secure.store.session().await?;
    let mut room = RoomChat::new(client, secure, role.clone(), max_line, session);
    let direct = room.accept_direct()?;
    room.serve_fetches()?;
    room.accept_files()?;
    room.load_transfers().await;
    let listen_port = match &role {
        Role::Listen { port } => Some(*port),
        Role::Connect(_) => room.secure.also_listen,
    };
    match listen_port {
        Some(port) => {
            let bound = room.client.listen(port).await?;
            if !chat.show(Event::Listening { addr: bound }).await {
                return Ok(());
            }
        }
        // A connecting peer listens too, on any free port, so that other
        // members can connect to it and the room holds together.
        None => {
            room.client.listen(0).await?;
        }
    }
    let first_room = room.secure.room.clone();
    room.join(chat.events, &first_room).await?;
    if !room
        .show_history(chat.events, &first_room, HISTORY_ON_START)
        .await
    {
        return Ok(());
    }
    if let Role::Connect(target) = &role {
        if !room.connect(chat, target).await? {
            return Ok(());
        }
    } else if !chat.show(Event::Waiting).await {
        return Ok(());
    }
    room.run(chat, net_events, direct).await;
    room.settle(chat.events).await;
    room.client.shutdown().await;
    match room.gave_up {
        Some(lines) => Err(Error::Undelivered {
            lines,
            seconds: session::DRAIN_GIVE_UP.as_secs(),
        }),
        None => Ok(()),
    }
}

/// The store's name for a room's conversation.
fn conversation(room: &str) -> String {
    format!("room:{room}")
}

/// The known-peers label of a nick.
fn name_label(nick: &str) -> String {
    format!("name:{nick}")
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

fn short(fingerprint: &str) -> String {
    crate::chat::room::short_fingerprint(fingerprint)
}

/// Takes the room an invite is into as the one to join, with its key:
/// an invite we hold is never traded for another room of that name.
fn accept_invite(secure: &mut Secure, ticket: &Ticket) -> Result<(), Error> {
    let now = super::now_ms() / 1000;
    if ticket.expired(now) {
        return Err(Error::InviteExpired {
            at: super::history_when(u64::from(ticket.expires.unwrap_or(0)) * 1000),
        });
    }
    secure.room.clone_from(&ticket.room);
    let access = RoomAccess {
        key: ticket.key.clone(),
        invite_only: true,
    };
    secure.room_keys.set(&ticket.room, access)?;
    Ok(())
}

fn unexpected(expected: &str, peer: &PeerId) -> Error {
    Error::UnexpectedPeer {
        expected: crate::chat::sanitize::inert(expected),
        peer: peer.to_string(),
        fingerprint: fingerprint_of(peer),
    }
}
