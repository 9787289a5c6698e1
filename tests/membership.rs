//! Removing members under a deterministic simulation: members running the
//! real [`KeyRing`] hand rotations to each other over a simulated network
//! that delivers them late and in any order, while some members are away
//! (they get nothing, and ask a member when they are back). One to three
//! members are removed at once by different members, some of them by each
//! other. Once everything has arrived, every member that was not removed
//! must hold one and the same key, know every removal, and no removed
//! member may hold that key.
//!
//! `cargo test --test membership` runs [`SEEDS`] seeds;
//! `MEMBERSHIP_SEEDS=N` runs N; `MEMBERSHIP_SEED=S` replays seed S alone
//! (`MEMBERSHIP_TRACE=1` with it prints what each member takes).

use std::collections::BTreeSet;

use rust_p2p_chat::chat::delivery::Rng;
use rust_p2p_chat::chat::membership::{Catchup, KeyRing, SealedRotation};
use rust_p2p_chat::chat::room_key::RoomKey;

/// Seeds run by `cargo test`.
const SEEDS: u64 = 2_000;

/// Deliveries per run at most: a run that does not settle fails.
const MAX_STEPS: usize = 100_000;

struct Sim {
    rng: Rng,
    names: Vec<String>,
    rings: Vec<KeyRing>,
    away: Vec<bool>,
    /// Rotations on their way: to whom, what.
    flight: Vec<(usize, Vec<SealedRotation>)>,
}

impl Sim {
    fn below(&mut self, n: usize) -> usize {
        (self.rng.next_u64() % n as u64) as usize
    }

    fn fresh(&mut self) -> (RoomKey, [u8; 24]) {
        let mut key = [0u8; 32];
        for chunk in key.chunks_mut(8) {
            chunk.copy_from_slice(&self.rng.next_u64().to_le_bytes());
        }
        let mut nonce = [0u8; 24];
        for chunk in nonce.chunks_mut(8) {
            chunk.copy_from_slice(&self.rng.next_u64().to_le_bytes());
        }
        (RoomKey::from_bytes(key), nonce)
    }

    /// Member `from` hands `rotation` to everyone it does not know to be
    /// removed; those away get nothing.
    fn hand_on(&mut self, from: usize, rotation: Vec<SealedRotation>) {
        for to in 0..self.names.len() {
            if to != from && !self.rings[from].is_removed(&self.names[to]) && !self.away[to] {
                self.flight.push((to, rotation.clone()));
            }
        }
    }

    /// Member `at` takes what arrived, and rotates again when it holds
    /// removals its key does not keep out.
    fn arrive(&mut self, at: usize, rotation: &[SealedRotation]) {
        let offered = self.rings[at].offer(rotation);
        if std::env::var_os("MEMBERSHIP_TRACE").is_some() {
            eprintln!(
                "{} takes {} rotation(s): {offered:?}, now epoch {} {}",
                self.names[at],
                rotation.len(),
                self.rings[at].epoch(),
                &self.rings[at].key().topic_id()[..8]
            );
        }
        if self.rings[at].needs_rotation() {
            let (key, nonce) = self.fresh();
            let again = self.rings[at].rotate(key, nonce);
            self.hand_on(at, again);
        }
    }

    /// Delivers what is in flight, in random order, until nothing is.
    fn settle(&mut self, seed: u64) {
        for _ in 0..MAX_STEPS {
            if self.flight.is_empty() {
                return;
            }
            let pick = self.below(self.flight.len());
            let (to, rotation) = self.flight.swap_remove(pick);
            self.arrive(to, &rotation);
        }
        panic!("seed {seed}: rotations never settled");
    }

    /// A member back from away asks the members present, in random order,
    /// and takes what each hands it (one of them may be removed, or
    /// behind, and not know it).
    fn come_back(&mut self, at: usize) {
        self.away[at] = false;
        let mut order: Vec<usize> = (0..self.names.len()).filter(|&m| m != at).collect();
        for i in (1..order.len()).rev() {
            let j = self.below(i + 1);
            order.swap(i, j);
        }
        for member in order {
            if self.away[member] {
                continue;
            }
            let holding = self.rings[at].key().topic_id().to_owned();
            if let Catchup::Rotations(rotations) =
                self.rings[member].catch_up(&self.names[at], &holding)
            {
                self.arrive(at, &rotations);
            }
        }
    }
}

fn run(seed: u64) {
    let mut rng = Rng(seed);
    let count = 4 + (rng.next_u64() % 5) as usize;
    let names: Vec<String> = (0..count).map(|i| format!("m{i}")).collect();
    let first = RoomKey::from_bytes([7; 32]);
    let rings = names
        .iter()
        .map(|n| KeyRing::new(n, first.clone()))
        .collect();
    let mut sim = Sim {
        rng,
        names: names.clone(),
        rings,
        away: vec![false; count],
        flight: Vec::new(),
    };
    // Who is away during the kicks.
    for m in 0..count {
        sim.away[m] = sim.below(4) == 0;
    }
    if std::env::var_os("MEMBERSHIP_TRACE").is_some() {
        eprintln!("away during the kicks: {:?}", sim.away);
    }
    // Kicks at once, each by a member present, of another member.
    let kicks = 1 + sim.below(3.min(count - 2));
    let mut kicked = BTreeSet::new();
    for _ in 0..kicks {
        let by = sim.below(count);
        let who = sim.below(count);
        if by == who || sim.away[by] {
            continue;
        }
        let (key, nonce) = sim.fresh();
        if let Some(rotation) = sim.rings[by].kick(&names[who], key, nonce) {
            if std::env::var_os("MEMBERSHIP_TRACE").is_some() {
                eprintln!("{} kicks {}", names[by], names[who]);
            }
            kicked.insert(who);
            sim.hand_on(by, rotation);
        }
    }
    sim.settle(seed);
    // Those away come back, one by one, and ask.
    for m in 0..count {
        if sim.away[m] {
            sim.come_back(m);
            sim.settle(seed);
        }
    }
    if std::env::var_os("MEMBERSHIP_TRACE").is_some() {
        eprintln!("seed {seed}: away {:?}, kicked {kicked:?}", sim.away);
        for (m, ring) in sim.rings.iter().enumerate() {
            eprintln!(
                "  {} epoch {} key {} removed {:?}",
                names[m],
                ring.epoch(),
                &ring.key().topic_id()[..8],
                ring.removed()
            );
        }
    }
    let remaining: Vec<usize> = (0..count).filter(|m| !kicked.contains(m)).collect();
    let Some(&reference) = remaining.first() else {
        return;
    };
    let key = sim.rings[reference].key().clone();
    for &m in &remaining {
        assert_eq!(
            sim.rings[m].key(),
            &key,
            "seed {seed}: {} holds another key than {}",
            names[m],
            names[reference]
        );
        for &k in &kicked {
            assert!(
                sim.rings[m].is_removed(&names[k]),
                "seed {seed}: {} does not know {} was removed",
                names[m],
                names[k]
            );
        }
    }
    for &k in &kicked {
        assert_ne!(
            sim.rings[k].key(),
            &key,
            "seed {seed}: the removed {} holds the room's key",
            names[k]
        );
    }
}

#[test]
fn members_removed_at_once_stay_out_and_the_rest_agree_on_one_key() {
    if let Some(seed) = std::env::var("MEMBERSHIP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        run(seed);
        return;
    }
    let seeds = std::env::var("MEMBERSHIP_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEEDS);
    for seed in 0..seeds {
        run(seed);
    }
}
