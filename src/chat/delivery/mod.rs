//! Delivery in rooms, as a state machine that does no I/O.
//!
//! Everything about getting every member's lines to every other member,
//! each once and in its author's order, lives here: numbering our lines and
//! keeping them until a member holds them (the outbox), putting what
//! arrives back in order, waiting for and fetching what is missing, giving
//! up on it and taking it late, what is stored and acknowledged, and the
//! hellos and summaries ("haves") that let members that were apart learn
//! what they missed.
//!
//! It is shaped after the `proto` modules of iroh-gossip and quinn: a
//! [`Delivery`] takes typed [`Input`]s with the time they happen
//! ([`Delivery::handle`]) and answers with typed [`Action`]s
//! ([`Delivery::poll`]) that the app carries out: publish, fetch, store,
//! show, report. Results come back as inputs (a store write finished, a
//! fetch answered). It reads no clock (the time is passed in), opens no
//! socket, runs no query and draws its randomness from a seed it is given,
//! so a run is a function of its inputs: the simulator in
//! `tests/delivery.rs` drives many members through lossy, partitioned
//! networks and restarts from the same seed, exactly and repeatably.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use super::Notice;

mod incoming;
pub mod order;
mod outgoing;
pub mod recent;
pub mod refused;
mod rooms;
#[cfg(test)]
mod tests;

pub use incoming::time_runs;
pub use order::{Accepted, Ordering};
pub use outgoing::{line_cost, LINE_OVERHEAD, PUBLISH_WINDOW, SEND_WINDOW};
pub use recent::{Recent, Take};
use refused::Refused;

/// How long a gap in a member's lines is waited for (and fetched) before
/// what came after it is shown anyway and the rest reported lost. As long
/// as a message may wait in a queue on its way (the network layer keeps a
/// publish that long, and waits that long for a slow member before
/// dropping it): in a flooded room a member that reads slowly gets lines
/// by one path well after later ones by another, and they are late, not
/// lost. A holder that has them answers a fetch long before.
pub const GAP_WAIT: Duration = Duration::from_secs(30);

/// Missing lines are asked for again this often while waited for.
pub const FETCH_RETRY: Duration = Duration::from_secs(1);

/// At most one hello per room in this time, however many members arrive:
/// a newcomer is answered once the interval since our last hello has
/// passed, together with every other newcomer of that interval. In a room
/// that forms quickly each hello is checked by every member, so answering
/// each arrival on its own would cost more than everything said.
pub const HELLO_INTERVAL: Duration = Duration::from_millis(500);

/// Every member says hello this often (plus [`HELLO_PERIOD_PER_MEMBER`]),
/// so members that missed one still learn of each other, and a lost last
/// batch is noticed.
pub const HELLO_PERIOD: Duration = Duration::from_secs(4);

/// What each other member of the biggest room adds to [`HELLO_PERIOD`]:
/// every hello is checked by every member, so a room's hellos cost it the
/// square of its size; this keeps the cost of a quiet room near linear.
pub const HELLO_PERIOD_PER_MEMBER: Duration = Duration::from_millis(150);

/// After storing what arrived, a member says so (see [`Said::Have`]) this
/// long after, plus [`ACK_DELAY_PER_MEMBER`] per other member: every
/// acknowledgement is checked by the whole room.
pub const ACK_DELAY: Duration = Duration::from_millis(50);

/// See [`ACK_DELAY`].
pub const ACK_DELAY_PER_MEMBER: Duration = Duration::from_millis(50);

/// A member that takes none of our lines for this long, plus the spread
/// of its acknowledgements ([`ACK_DELAY_PER_MEMBER`] per other member,
/// twice), is no longer waited for: the window goes on at the pace of
/// the others, and the member catches up by fetching.
pub const PACE_PATIENCE: Duration = Duration::from_secs(2);

/// Our lines unacknowledged this long are reported as not yet delivered.
pub const UNDELIVERED_NOTICE: Duration = Duration::from_secs(3);

/// Lines of an author's session fetched at most when it is first met.
pub const SYNC_BACKLOG: u64 = 10_000;

/// Writes refused by the store are tried again this often.
pub const STORE_RETRY: Duration = Duration::from_secs(1);

/// Runs stored beyond a hole remembered per author session at most.
pub const MAX_STORED_AHEAD: usize = 1024;

/// Received lines gathered while a write of earlier ones is on its way,
/// at most; past that [`Delivery::must_wait_for_store`] says so, and the
/// app waits for that write (and the network with it), so a store slower
/// than the network holds back the network, not memory.
pub const MAX_GATHERED_LINES: usize = 16_384;

/// Gaps waited for at once, at most, in every room: summaries naming
/// streams nobody is in cannot make more.
pub const MAX_GAPS: usize = 1024;

/// Holes of one stream asked for at once, at most, when repairing.
pub const MAX_REPAIR_FETCHES: usize = 4;

/// Authors' sessions one hello or have lists as held, at most.
pub const MAX_HOLDINGS: usize = 64;

/// Line numbers beyond this are taken for a hostile peer's: what names
/// them is dropped, so no arithmetic on them can overflow. Numbering from
/// 1, a member would need thousands of years of lines to reach it.
pub const MAX_LINE_NUMBER: u64 = 1 << 48;

/// A point in time: how long after some start the app chose, on a clock
/// that never goes back. Only differences between them mean anything.
pub type Time = Duration;

/// The time of an input: the monotonic time timers are measured on, and
/// the wall clock (milliseconds since 1970) that lines are stamped with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// For timers.
    pub at: Time,
    /// For stamps.
    pub wall_ms: u64,
}

/// One author's lines in one room, in one session of its store: the unit
/// that is numbered, ordered and acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    /// The room.
    pub room: String,
    /// The author, as its peer ID in text.
    pub author: String,
    /// The author's session.
    pub session: u64,
}

impl StreamId {
    /// The stream of `author`'s `session` in `room`.
    pub fn new(room: impl Into<String>, author: impl Into<String>, session: u64) -> Self {
        StreamId {
            room: room.into(),
            author: author.into(),
            session,
        }
    }
}

/// Consecutive lines of one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lines {
    /// Whose, where.
    pub stream: StreamId,
    /// The first line's number.
    pub first: u64,
    /// The lines.
    pub texts: Vec<String>,
    /// The nick the author gave with them.
    pub nick: Option<String>,
    /// When they were written, by the author's clock (ms since 1970).
    pub ts_ms: u64,
}

impl Lines {
    /// The number after the last line.
    pub fn end(&self) -> u64 {
        self.first.saturating_add(self.texts.len() as u64)
    }
}

/// "Every line of this session below `next` is held".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The author, as its peer ID in text.
    pub author: String,
    /// Its session.
    pub session: u64,
    /// The first line not held.
    pub next: u64,
}

/// What members say to a room about delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Said {
    /// Lines, numbered from `first`.
    Lines {
        /// The author's session.
        session: u64,
        /// The first line's number.
        first: u64,
        /// The author's clock when it wrote them.
        sent_ms: u64,
        /// The author's nick.
        nick: Option<String>,
        /// The lines.
        texts: Vec<String>,
    },
    /// "I am here": the number of the author's next line, and what it
    /// holds of others. (The app adds the nick and addresses to ours.)
    Hello {
        /// The author's session.
        session: u64,
        /// A counter of the author's hellos and haves.
        seq: u64,
        /// The nick it gives.
        nick: Option<String>,
        /// The number its next line will have.
        next: u64,
        /// What it holds.
        have: Vec<Held>,
    },
    /// "I have stored these": an acknowledgement, and a summary others
    /// catch up from.
    Have {
        /// The author's session.
        session: u64,
        /// A counter of the author's hellos and haves.
        seq: u64,
        /// What it holds.
        have: Vec<Held>,
    },
    /// "I am leaving this room."
    Leave {
        /// The author's session.
        session: u64,
        /// A counter of the author's hellos and haves.
        seq: u64,
    },
}

/// A request for missing lines `from..=to` of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchAsk {
    /// Whose lines.
    pub stream: StreamId,
    /// The first wanted.
    pub from: u64,
    /// The last wanted.
    pub to: u64,
    /// Whom to ask, in turn: the author (it has all it sent), then the
    /// member that passed later lines on.
    pub ask: [String; 2],
}

/// What a fetch brought.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fetched {
    /// The first line's number.
    pub first: u64,
    /// The lines.
    pub texts: Vec<String>,
    /// When each was written; the app fills in the arrival time where the
    /// answer said none.
    pub sent_ms: Vec<u64>,
    /// The author's nick as the app knows it, else as the answer said.
    pub nick: Option<String>,
}

impl Fetched {
    /// Keeps only lines `from..to`, with their times.
    pub fn keep(&mut self, from: u64, to: u64) {
        let end = self.first.saturating_add(self.texts.len() as u64);
        let (from, to) = (from.max(self.first), to.min(end));
        if from >= to {
            self.texts.clear();
            self.sent_ms.clear();
            self.first = from;
            return;
        }
        let (skip, take) = ((from - self.first) as usize, (to - from) as usize);
        self.texts.truncate(skip + take);
        self.texts.drain(..skip);
        self.sent_ms.truncate(skip + take);
        self.sent_ms.drain(..skip.min(self.sent_ms.len()));
        self.first = from;
    }
}

/// Why the store did not write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The disk is full: space freed ends it.
    pub disk_full: bool,
    /// What the store said.
    pub cause: String,
}

/// What the store holds of a room when it is joined.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resume {
    /// How far each other author's session is held.
    pub streams: Vec<StoredStream>,
    /// One more than our highest line stored (0 when none).
    pub next_line: u64,
    /// Our lines stored and never acknowledged, to send.
    pub unsent: Vec<Lines>,
    /// Our lines below this are held by a member.
    pub delivered: u64,
    /// When we first joined the room (ms since 1970).
    pub joined_ms: u64,
}

/// How far one author's session is held in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredStream {
    /// The author.
    pub author: String,
    /// Its session.
    pub session: u64,
    /// One more than the highest line held.
    pub next: u64,
    /// Lines below `next` that are not held (first, end), lowest first,
    /// from line 0: the store cannot tell lines never held from lines
    /// whose write was lost.
    pub missing: Vec<(u64, u64)>,
    /// Whether `missing` is only the first of them: what follows the last
    /// one listed may have holes too, and is not taken as held.
    pub truncated: bool,
}

/// Something to tell the user about delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// Lines of a stream never came and were given up on.
    Lost {
        /// Whose.
        stream: StreamId,
        /// How many.
        count: u64,
    },
    /// Lines given up on came after all; they follow.
    Recovered {
        /// Whose.
        stream: StreamId,
        /// How many (within the line limit).
        count: u64,
    },
    /// A line was typed while nobody else is in the room: kept until
    /// someone comes.
    Queued {
        /// The room.
        room: String,
    },
    /// Our lines wait too long for an acknowledgement.
    Undelivered {
        /// The room.
        room: String,
        /// How many.
        waiting: u64,
    },
    /// Every line of ours in a room reported undelivered now is.
    Delivered {
        /// The room.
        room: String,
    },
    /// The store refuses writes, or stores again.
    Store(Notice),
}

/// What the app is to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Say this in a room.
    Publish {
        /// The room.
        room: String,
        /// What.
        said: Said,
    },
    /// Fetch missing lines; answer with [`Input::Fetched`].
    Fetch(FetchAsk),
    /// Write our lines to the outbox, queued; answer with
    /// [`Input::Recorded`], in the order asked.
    Record(Lines),
    /// Write received lines; answer with [`Input::Stored`]. At most one is
    /// on its way at a time.
    Store(Vec<Lines>),
    /// Our lines of a room below `through` are held by a member.
    MarkDelivered {
        /// The room.
        room: String,
        /// The first line not known held.
        through: u64,
    },
    /// Show a member's lines (they were written to the store, or it
    /// refused them): history (said before we first came to the room and
    /// fetched since) when `earlier`, else live.
    Show {
        /// The lines.
        lines: Lines,
        /// Said before we came.
        earlier: bool,
    },
    /// Tell the user.
    Report(Report),
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// We joined a room; the store holds this of it.
    Joined {
        /// The room.
        room: String,
        /// What the store holds.
        resume: Resume,
    },
    /// We left a room.
    Left {
        /// The room.
        room: String,
    },
    /// The user typed lines to a room.
    Typed {
        /// The room.
        room: String,
        /// The lines.
        texts: Vec<String>,
        /// Our nick now.
        nick: Option<String>,
    },
    /// A [`Action::Record`] ended.
    Recorded {
        /// The lines it was given.
        lines: Lines,
        /// Whether they were written.
        result: Result<(), Failure>,
    },
    /// Say hello in a room now: we joined it, or our nick changed.
    Hello {
        /// The room.
        room: String,
    },
    /// A member is in a room.
    MemberJoined {
        /// The room.
        room: String,
        /// Its peer ID in text.
        peer: String,
    },
    /// A member left a room, or its connection went.
    MemberLeft {
        /// The room.
        room: String,
        /// Its peer ID in text.
        peer: String,
    },
    /// A member said something in a room.
    Received {
        /// The room.
        room: String,
        /// Who said it.
        from: String,
        /// Who passed it on.
        via: String,
        /// What.
        said: Said,
    },
    /// A [`Action::Fetch`] was answered (`None`: by nobody).
    Fetched {
        /// What was asked.
        ask: FetchAsk,
        /// The answer.
        reply: Option<Fetched>,
    },
    /// A [`Action::Store`] ended.
    Stored {
        /// The lines it was given.
        lines: Vec<Lines>,
        /// Whether they were written.
        result: Result<(), Failure>,
    },
    /// Time passed ([`Delivery::next_wake`] came).
    Tick,
}

/// What follows the write of received lines, in order.
#[derive(Debug)]
enum Then {
    /// New lines: shown once written (stored or not).
    Show { earlier: bool },
    /// Lines the store refused before (they were shown then).
    Retry,
    /// A report that comes after the lines before it.
    Report(Report),
}

impl Then {
    fn has_lines(&self) -> bool {
        !matches!(self, Then::Report(_))
    }
}

/// A gap waited for.
#[derive(Debug)]
struct Gap {
    /// When to stop waiting and report the lines lost.
    give_up: Time,
    /// When to ask again.
    retry: Time,
    from: u64,
    to: u64,
    via: String,
}

/// Our state in one room.
#[derive(Debug, Default)]
struct Room {
    members: BTreeSet<String>,
    /// The number of our next line.
    next_seq: u64,
    /// One more than our last line written to the outbox.
    recorded: u64,
    /// Our lines below this are held by a member.
    acked: u64,
    /// Each member that said what it holds of our lines: the first line it
    /// lacks, and when it last took some (or held all we had sent when we
    /// sent more). The window waits for the slowest of those that take
    /// lines (see [`Delivery::pace`]).
    held_by: BTreeMap<String, (u64, Time)>,
    /// When the window was last looked at (see [`Delivery::pace`]).
    paced_at: Time,
    /// Since when our oldest unacknowledged line waits, and whether that
    /// was reported.
    unacked_since: Option<(Time, bool)>,
    /// Our lines kept while nobody else is here.
    pending: Vec<Lines>,
    /// Our lines not acknowledged yet, batch by batch as typed: one more
    /// than the batch's last line, and what it counts for in the window.
    unacked: VecDeque<(u64, usize)>,
    /// Said that lines typed are kept, since last alone with nobody
    /// arriving.
    told_queued: bool,
    /// When we first joined (ms since 1970): what was said before is
    /// history to us.
    joined_ms: u64,
    last_hello: Option<Time>,
    hello_due: Option<Time>,
    /// Lines stored since we last said what we hold.
    have_dirty: bool,
}

/// A small, seeded random generator (SplitMix64): the only randomness
/// here, so a run repeats from its seed. The simulator draws from it too.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// One member's delivery state in every room it is in; see the module
/// notes.
#[derive(Debug)]
pub struct Delivery {
    me: String,
    session: u64,
    /// The longest line shown: recovered lines are counted within it.
    max_line: usize,
    rng: Rng,
    rooms: BTreeMap<String, Room>,
    /// Lines kept in every room's `pending`.
    pending_lines: usize,
    /// What every room's `unacked` counts for.
    unacked_bytes: usize,
    /// Our lines published, oldest first: when, and what they count for
    /// in [`PUBLISH_WINDOW`]; only those within `publish_hold`.
    published: VecDeque<(Time, usize)>,
    /// What `published` counts for.
    published_bytes: usize,
    /// How long the network keeps what we publish.
    publish_hold: Time,
    order: Ordering,
    gaps: BTreeMap<StreamId, Gap>,
    /// Per stream: every line below this (from the first we stored) is
    /// stored.
    stored: BTreeMap<StreamId, u64>,
    /// Per stream: runs stored beyond a hole, first to end.
    stored_ahead: BTreeMap<StreamId, BTreeMap<u64, u64>>,
    /// Per stream we hold: the most another member said it holds.
    heard: BTreeMap<StreamId, u64>,
    /// The nick each member last gave.
    nicks: BTreeMap<String, Option<String>>,
    have_due: Option<Time>,
    /// Where the next list of what we hold starts, when there is more
    /// than one message lists (see [`Delivery::holdings`]).
    holdings_from: usize,
    hello_seq: u64,
    next_hello: Option<Time>,
    /// Our batches handed to the outbox and not yet back.
    writing: usize,
    /// Received lines gathered for the next write, with what follows.
    to_store: Vec<Lines>,
    to_store_lines: usize,
    thens: Vec<Then>,
    /// What follows the write on its way, if one is.
    storing: Option<Vec<Then>>,
    refused: Refused<Lines>,
    retry_store_at: Option<Time>,
    actions: VecDeque<Action>,
}

impl Delivery {
    /// The delivery state of `me` (its peer ID in text) in `session`,
    /// showing lines up to `max_line` bytes, with randomness from `seed`.
    ///
    /// Our hellos, haves and goodbyes are numbered from `said_from`, which
    /// must be above any number an earlier run of this session used: a
    /// message is known to the network by author, session, kind and that
    /// number, and members drop one whose id they have seen, so a restart
    /// that counted from 1 again would go unheard for a while. The app
    /// passes its wall clock in milliseconds times 1,024.
    pub fn new(
        me: impl Into<String>,
        session: u64,
        max_line: usize,
        seed: u64,
        said_from: u64,
    ) -> Self {
        Delivery {
            me: me.into(),
            session,
            max_line,
            rng: Rng(seed),
            rooms: BTreeMap::new(),
            pending_lines: 0,
            unacked_bytes: 0,
            published: VecDeque::new(),
            published_bytes: 0,
            publish_hold: Time::ZERO,
            order: Ordering::default(),
            gaps: BTreeMap::new(),
            stored: BTreeMap::new(),
            stored_ahead: BTreeMap::new(),
            heard: BTreeMap::new(),
            nicks: BTreeMap::new(),
            have_due: None,
            holdings_from: 0,
            hello_seq: said_from,
            next_hello: None,
            writing: 0,
            to_store: Vec::new(),
            to_store_lines: 0,
            thens: Vec::new(),
            storing: None,
            refused: Refused::default(),
            retry_store_at: None,
            actions: VecDeque::new(),
        }
    }

    /// Takes in what happened at `now`; what to do about it comes from
    /// [`Delivery::poll`].
    pub fn handle(&mut self, now: Now, input: Input) {
        self.let_go_published(now);
        match input {
            Input::Joined { room, resume } => self.joined(now, room, resume),
            Input::Left { room } => self.left(&room),
            Input::Typed { room, texts, nick } => self.typed(now, room, texts, nick),
            Input::Recorded { lines, result } => self.recorded(now, lines, result),
            Input::Hello { room } => self.hello(now, &room),
            Input::MemberJoined { room, peer } => self.member_joined(now, &room, peer),
            Input::MemberLeft { room, peer } => {
                self.member_left(&room, &peer);
                self.pace(now, &room);
            }
            Input::Received {
                room,
                from,
                via,
                said,
            } => self.received(now, room, from, via, said),
            Input::Fetched { ask, reply } => self.fetched(now, ask, reply),
            Input::Stored { lines, result } => self.stored_lines(now, lines, result),
            Input::Tick => self.tick(now),
        }
    }

    /// The next thing to do, in order.
    pub fn poll(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Input::Tick`] is next due, if ever.
    pub fn next_wake(&self) -> Option<Time> {
        let rooms = self.rooms.values();
        let hellos = rooms.clone().filter_map(|r| r.hello_due);
        let unacked = rooms
            .filter_map(|r| r.unacked_since)
            .filter(|(_, told)| !told)
            .map(|(since, _)| since + UNDELIVERED_NOTICE);
        self.gaps
            .values()
            .map(|gap| gap.retry.min(gap.give_up))
            .chain(hellos)
            .chain(unacked)
            .chain(self.have_due)
            .chain(self.retry_store_at)
            .chain(self.published_wake())
            .chain(self.pace_wake())
            .chain(self.next_hello.filter(|_| self.anyone_anywhere()))
            .min()
    }

    /// Whether `room` is joined.
    pub fn in_room(&self, room: &str) -> bool {
        self.rooms.contains_key(room)
    }

    /// The other members of `room`.
    pub fn members(&self, room: &str) -> usize {
        self.rooms.get(room).map_or(0, |r| r.members.len())
    }

    /// Our batches on their way to the outbox.
    pub fn writing(&self) -> usize {
        self.writing
    }

    /// Our lines kept until someone comes, in every room.
    pub fn pending_lines(&self) -> usize {
        self.pending_lines
    }

    /// Our lines not acknowledged yet, in every room.
    pub fn undelivered(&self) -> u64 {
        self.rooms
            .values()
            .filter(|r| r.unacked_since.is_some())
            .map(Room::waiting)
            .sum()
    }

    /// Whether every line of ours is acknowledged, in every room.
    pub fn all_acknowledged(&self) -> bool {
        self.rooms.values().all(|r| r.unacked_since.is_none())
    }

    /// The rooms where lines of ours are not acknowledged yet.
    pub fn unacknowledged_rooms(&self) -> Vec<String> {
        self.rooms
            .iter()
            .filter(|(_, r)| r.unacked_since.is_some())
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Whether lines we received still wait to be stored or acknowledged:
    /// a member whose input ended tells the others what it holds before
    /// it goes, or they would wait for an acknowledgement that never
    /// comes.
    pub fn owes_acknowledgements(&self) -> bool {
        !self.to_store.is_empty() || self.storing.is_some() || self.have_due.is_some()
    }

    /// Whether a write of received lines is on its way.
    pub fn storing(&self) -> bool {
        self.storing.is_some()
    }

    /// Whether so many received lines wait for the write on its way that
    /// the app should wait for it before taking in more.
    pub fn must_wait_for_store(&self) -> bool {
        self.storing.is_some() && self.to_store_lines >= MAX_GATHERED_LINES
    }

    /// Whether anyone else is in any room.
    fn anyone_anywhere(&self) -> bool {
        self.rooms.values().any(|r| !r.members.is_empty())
    }

    fn act(&mut self, action: Action) {
        self.actions.push_back(action);
    }

    fn report(&mut self, report: Report) {
        self.act(Action::Report(report));
    }
}
