//! The peers we have met, the ones the user verified, and the names they
//! came under: trust on first use, with the changes made visible.
//!
//! A *label* is how the user reached a peer: an address as typed
//! (`127.0.0.1:9000`) or, later, a nick (`name:alice`). The first peer met
//! under a label is bound to it; when another peer ID answers under the same
//! label, [`KnownPeers::check`] says [`Check::Changed`] and whether the old
//! one had been verified, and the user decides. A label bound to a verified
//! peer is only rebound by [`KnownPeers::trust`], never by merely meeting
//! someone else there.
//!
//! The record is one JSON file, `known_peers.json`, replaced atomically
//! (temporary file, sync, rename; mode 0600) on every change, with peer IDs
//! as base58 strings so a person can read it. It is bounded: at most
//! [`MAX_PEERS`] peers and [`MAX_LABELS`] labels, and when it is full the
//! peers seen longest ago are forgotten first, unverified ones before
//! verified ones, so a flood of throwaway identities cannot push a verified
//! peer out of the record. A file that is not valid is refused and never
//! written over; two programs sharing one data directory each keep their
//! own copy in memory, and the last to write wins.

use std::collections::{BTreeMap, HashMap};

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use super::{json_file, Error};

/// The name of the file inside the data directory.
pub const KNOWN_PEERS_FILE: &str = "known_peers.json";

/// The most peers remembered; past it the least recently seen are dropped.
pub const MAX_PEERS: usize = 10_000;

/// The most labels remembered; past it the labels of the least recently
/// seen peers are dropped.
pub const MAX_LABELS: usize = 10_000;

/// The longest label, in bytes.
pub const MAX_LABEL_LEN: usize = 256;

/// The largest file read. A full record with the longest labels, every
/// byte of them escaped, stays below it.
pub const MAX_FILE_LEN: u64 = 32 * 1024 * 1024;

/// The version of the file's format written, and the only one read.
const FORMAT_VERSION: u32 = 1;

/// What the record says about a peer met under a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Never seen, and the label (if any) is not bound to anyone.
    New,
    /// Seen before, not verified.
    Known,
    /// Seen before and verified by the user.
    Trusted,
    /// The label is bound to a different peer: the key behind this name has
    /// changed. The user should compare safety numbers before trusting it.
    Changed {
        /// The label, as given.
        label: String,
        /// The peer the label was bound to.
        previous: PeerId,
        /// Whether that peer had been verified.
        was_trusted: bool,
    },
}

/// The record of peers we have met and trusted, backed by a file in the
/// data directory.
///
/// ```
/// use libp2p::PeerId;
/// use rust_p2p_chat::store::{Check, KnownPeers};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let mut known = KnownPeers::open(dir.path())?;
/// let (alice, mallory) = (PeerId::random(), PeerId::random());
///
/// assert_eq!(known.check(Some("127.0.0.1:9000"), &alice), Check::New);
/// known.record_seen(Some("127.0.0.1:9000"), &alice)?;
/// known.trust(Some("127.0.0.1:9000"), &alice)?;
///
/// let known = KnownPeers::open(dir.path())?;
/// assert_eq!(known.check(Some("127.0.0.1:9000"), &alice), Check::Trusted);
/// assert_eq!(
///     known.check(Some("127.0.0.1:9000"), &mallory),
///     Check::Changed { label: "127.0.0.1:9000".into(), previous: alice, was_trusted: true },
/// );
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct KnownPeers {
    dir: PathBuf,
    path: PathBuf,
    peers: HashMap<PeerId, PeerRecord>,
    labels: HashMap<String, PeerId>,
}

/// What is remembered of one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct PeerRecord {
    /// When we first talked to it, in seconds since the Unix epoch.
    first_seen: u64,
    /// When we last talked to it.
    last_seen: u64,
    /// Whether the user verified it.
    #[serde(default)]
    trusted: bool,
}

/// The file as written: sorted maps, so that equal records give equal
/// files.
#[derive(Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    peers: BTreeMap<String, PeerRecord>,
    labels: BTreeMap<String, String>,
}

impl KnownPeers {
    /// Reads the record from `dir/known_peers.json`; a missing file (or
    /// directory) is an empty record. A file that cannot be read or is not
    /// valid is an error, and it is left as it is.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(KNOWN_PEERS_FILE);
        let mut known = KnownPeers {
            dir: dir.to_owned(),
            path,
            peers: HashMap::new(),
            labels: HashMap::new(),
        };
        if let Some(bytes) = json_file::read(&known.path, MAX_FILE_LEN)? {
            known.load(&bytes)?;
        }
        Ok(known)
    }

    /// Fills an empty record from the file's bytes.
    fn load(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let corrupt = |reason: String| Error::Corrupt {
            path: self.path.clone(),
            reason,
        };
        let file: FileFormat = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
        if file.version != FORMAT_VERSION {
            return Err(corrupt(format!(
                "format version {}, but this program reads version {FORMAT_VERSION}",
                file.version
            )));
        }
        let parse = |id: &str| {
            id.parse::<PeerId>()
                .map_err(|_| corrupt(format!("'{id}' is not a peer ID")))
        };
        for (id, record) in &file.peers {
            self.peers.insert(parse(id)?, *record);
        }
        for (label, id) in file.labels {
            if label.len() > MAX_LABEL_LEN {
                return Err(corrupt(format!(
                    "a label is {} bytes, over the {MAX_LABEL_LEN}-byte limit",
                    label.len()
                )));
            }
            let peer = parse(&id)?;
            self.labels.insert(label, peer);
        }
        self.prune();
        Ok(())
    }

    /// What the record says about `peer`, met under `label` if one is
    /// given. A label bound to a different peer is [`Check::Changed`],
    /// whatever is known of `peer` itself.
    pub fn check(&self, label: Option<&str>, peer: &PeerId) -> Check {
        if let Some(label) = label {
            if let Some(previous) = self.labels.get(label).filter(|bound| *bound != peer) {
                return Check::Changed {
                    label: label.to_owned(),
                    previous: *previous,
                    was_trusted: self.is_trusted(previous),
                };
            }
        }
        match self.peers.get(peer) {
            None => Check::New,
            Some(record) if record.trusted => Check::Trusted,
            Some(_) => Check::Known,
        }
    }

    /// Records that we talked to `peer`, under `label` if one is given, and
    /// saves the record.
    ///
    /// The label is bound to `peer` unless it is bound to a different,
    /// verified peer: replacing that takes [`trust`](Self::trust). An empty
    /// label counts as none. If saving fails, the record in memory is
    /// updated all the same.
    pub fn record_seen(&mut self, label: Option<&str>, peer: &PeerId) -> Result<(), Error> {
        self.record_seen_at(label, peer, unix_now())
    }

    fn record_seen_at(
        &mut self,
        label: Option<&str>,
        peer: &PeerId,
        now: u64,
    ) -> Result<(), Error> {
        let label = checked_label(label)?;
        self.touch(peer, now);
        if let Some(label) = label {
            let held_by_other_trusted = self
                .labels
                .get(label)
                .is_some_and(|bound| bound != peer && self.is_trusted(bound));
            if !held_by_other_trusted {
                self.labels.insert(label.to_owned(), *peer);
            }
        }
        self.prune();
        self.save()
    }

    /// Marks `peer` as verified and binds `label` (if given) to it, in place
    /// of any other peer, and saves the record. This is how the user accepts
    /// a changed key after comparing safety numbers; the peer the label was
    /// bound to keeps its own standing. If saving fails, the record in
    /// memory is updated all the same.
    pub fn trust(&mut self, label: Option<&str>, peer: &PeerId) -> Result<(), Error> {
        self.trust_at(label, peer, unix_now())
    }

    fn trust_at(&mut self, label: Option<&str>, peer: &PeerId, now: u64) -> Result<(), Error> {
        let label = checked_label(label)?;
        self.touch(peer, now).trusted = true;
        if let Some(label) = label {
            self.labels.insert(label.to_owned(), *peer);
        }
        self.prune();
        self.save()
    }

    /// Whether the user has verified `peer`.
    pub fn is_trusted(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(|record| record.trusted)
    }

    /// The record of `peer`, created if new, with `now` as its last sight.
    fn touch(&mut self, peer: &PeerId, now: u64) -> &mut PeerRecord {
        let record = self.peers.entry(*peer).or_insert(PeerRecord {
            first_seen: now,
            last_seen: now,
            trusted: false,
        });
        record.last_seen = record.last_seen.max(now);
        record
    }

    /// Keeps the record within its bounds: forgets the peers to go first
    /// (unverified before verified, then least recently seen), then the
    /// labels of forgotten peers, then the labels of the peers to go first.
    fn prune(&mut self) {
        let order = |record: &PeerRecord| (record.trusted, record.last_seen);
        if self.peers.len() > MAX_PEERS {
            let mut by_age: Vec<(PeerId, PeerRecord)> = self
                .peers
                .iter()
                .map(|(id, record)| (*id, *record))
                .collect();
            by_age.sort_unstable_by_key(|(id, record)| (order(record), *id));
            for (id, _) in &by_age[..by_age.len() - MAX_PEERS] {
                self.peers.remove(id);
            }
        }
        let peers = &self.peers;
        self.labels.retain(|_, peer| peers.contains_key(peer));
        if self.labels.len() > MAX_LABELS {
            let mut by_age: Vec<(Option<(bool, u64)>, String)> = self
                .labels
                .iter()
                .map(|(label, peer)| (self.peers.get(peer).map(order), label.clone()))
                .collect();
            by_age.sort_unstable();
            for (_, label) in &by_age[..by_age.len() - MAX_LABELS] {
                self.labels.remove(label);
            }
        }
    }

    /// Writes the whole record to its file, atomically.
    fn save(&self) -> Result<(), Error> {
        json_file::write(&self.dir, &self.path, &self.to_file_format())
    }

    fn to_file_format(&self) -> FileFormat {
        FileFormat {
            version: FORMAT_VERSION,
            peers: self
                .peers
                .iter()
                .map(|(id, record)| (id.to_base58(), *record))
                .collect(),
            labels: self
                .labels
                .iter()
                .map(|(label, id)| (label.clone(), id.to_base58()))
                .collect(),
        }
    }
}

/// A label fit to record: `None` for no label or an empty one, an error
/// for one over [`MAX_LABEL_LEN`].
fn checked_label(label: Option<&str>) -> Result<Option<&str>, Error> {
    match label {
        Some(label) if label.len() > MAX_LABEL_LEN => Err(Error::LabelTooLong {
            len: label.len(),
            limit: MAX_LABEL_LEN,
        }),
        Some("") | None => Ok(None),
        Some(label) => Ok(Some(label)),
    }
}

/// Seconds since the Unix epoch; 0 on a clock set before it.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const ADDR: &str = "127.0.0.1:9000";

    fn open(dir: &tempfile::TempDir) -> KnownPeers {
        KnownPeers::open(dir.path()).unwrap()
    }

    #[test]
    fn a_missing_file_is_an_empty_record_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let known = open(&dir);
        assert_eq!(known.check(Some(ADDR), &PeerId::random()), Check::New);
        assert_eq!(known.check(None, &PeerId::random()), Check::New);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_missing_data_dir_is_an_empty_record_and_created_on_write() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut known = KnownPeers::open(&data).unwrap();
        known.record_seen(None, &PeerId::random()).unwrap();
        assert!(data.join(KNOWN_PEERS_FILE).is_file());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&data), 0o700);
            assert_eq!(mode(&data.join(KNOWN_PEERS_FILE)), 0o600);
        }
    }

    #[test]
    fn new_then_seen_is_known_then_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let mut known = open(&dir);
        let peer = PeerId::random();
        assert_eq!(known.check(Some(ADDR), &peer), Check::New);
        known.record_seen(Some(ADDR), &peer).unwrap();
        assert_eq!(known.check(Some(ADDR), &peer), Check::Known);
        assert_eq!(known.check(None, &peer), Check::Known);
        assert!(!known.is_trusted(&peer));
        known.trust(Some(ADDR), &peer).unwrap();
        assert_eq!(known.check(Some(ADDR), &peer), Check::Trusted);
        assert_eq!(known.check(None, &peer), Check::Trusted);
        assert_eq!(known.check(Some("elsewhere:1"), &peer), Check::Trusted);
        assert!(known.is_trusted(&peer));
    }

    #[test]
    fn seen_without_a_label_binds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut known = open(&dir);
        let (peer, other) = (PeerId::random(), PeerId::random());
        known.record_seen(None, &peer).unwrap();
        known.record_seen(Some(""), &peer).unwrap();
        assert_eq!(known.check(Some(ADDR), &other), Check::New);
        assert!(known.labels.is_empty());
    }

    #[test]
    fn another_peer_under_a_trusted_label_is_changed() {
        let dir = tempfile::tempdir().unwrap();
        let mut known = open(&dir);
        let (alice, mallory) = (PeerId::random(), PeerId::random());
        known.record_seen(Some(ADDR), &alice).unwrap();
        known.trust(Some(ADDR), &alice).unwrap();
        let changed = Check::Changed {
            label: ADDR.into(),
            previous: alice,
            was_trusted: true,
        };
        assert_eq!(known.check(Some(ADDR), &mallory), changed);

        // Merely meeting mallory there does not take the label over.
        known.record_seen(Some(ADDR), &mallory).unwrap();
        assert_eq!(known.check(Some(ADDR), &mallory), changed);
        assert_eq!(known.check(Some(ADDR), &alice), Check::Trusted);
        assert_eq!(known.check(None, &mallory), Check::Known);
    }

    #[test]
    fn another_peer_under_an_unverified_label_is_changed_then_rebound() {
        let dir = tempfile::tempdir().unwrap();
        let mut known = open(&dir);
        let (first, second) = (PeerId::random(), PeerId::random());
        known.record_seen(Some(ADDR), &first).unwrap();
        assert_eq!(
            known.check(Some(ADDR), &second),
            Check::Changed {
                label: ADDR.into(),
                previous: first,
                was_trusted: false,
            }
        );
        known.record_seen(Some(ADDR), &second).unwrap();
        assert_eq!(known.check(Some(ADDR), &second), Check::Known);
        assert!(matches!(
            known.check(Some(ADDR), &first),
            Check::Changed { previous, .. } if previous == second
        ));
    }

    #[test]
    fn trusting_a_changed_key_rebinds_the_label() {
        let dir = tempfile::tempdir().unwrap();
        let mut known = open(&dir);
        let (old, new) = (PeerId::random(), PeerId::random());
        known.trust(Some(ADDR), &old).unwrap();
        known.record_seen(Some(ADDR), &new).unwrap();
        known.trust(Some(ADDR), &new).unwrap();
        assert_eq!(known.check(Some(ADDR), &new), Check::Trusted);
        assert!(known.is_trusted(&old), "the old peer keeps its standing");
        assert!(matches!(
            known.check(Some(ADDR), &old),
            Check::Changed { previous, was_trusted: true, .. } if previous == new
        ));
    }

    #[test]
    fn trusting_an_unseen_peer_records_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut known = open(&dir);
        let peer = PeerId::random();
        known.trust(None, &peer).unwrap();
        assert_eq!(known.check(None, &peer), Check::Trusted);
    }

    #[test]
    fn everything_persists_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (alice, bob, carol) = (PeerId::random(), PeerId::random(), PeerId::random());
        {
            let mut known = open(&dir);
            known.record_seen(Some(ADDR), &alice).unwrap();
            known.trust(Some(ADDR), &alice).unwrap();
            known.record_seen(Some("name:bob"), &bob).unwrap();
        }
        let known = open(&dir);
        assert_eq!(known.check(Some(ADDR), &alice), Check::Trusted);
        assert_eq!(known.check(Some("name:bob"), &bob), Check::Known);
        assert_eq!(known.check(None, &carol), Check::New);
        assert!(matches!(
            known.check(Some("name:bob"), &carol),
            Check::Changed { previous, was_trusted: false, .. } if previous == bob
        ));
    }

    #[test]
    fn seen_times_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut known = open(&dir);
        let peer = PeerId::random();
        known.record_seen_at(None, &peer, 100).unwrap();
        known.record_seen_at(None, &peer, 200).unwrap();
        // A clock that went back does not move last_seen back.
        known.record_seen_at(None, &peer, 150).unwrap();
        let record = open(&dir).peers[&peer];
        assert_eq!((record.first_seen, record.last_seen), (100, 200));
    }

    #[test]
    fn real_time_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let mut known = open(&dir);
        let peer = PeerId::random();
        let before = unix_now();
        known.record_seen(None, &peer).unwrap();
        let record = known.peers[&peer];
        assert!(record.first_seen >= before && record.last_seen <= unix_now());
    }

    #[test]
    fn the_file_is_readable_json_with_base58_peer_ids() {
        let dir = tempfile::tempdir().unwrap();
        let mut known = open(&dir);
        let peer = PeerId::random();
        known.record_seen_at(Some(ADDR), &peer, 42).unwrap();
        let text = fs::read_to_string(dir.path().join(KNOWN_PEERS_FILE)).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["version"], 1);
        assert_eq!(value["labels"][ADDR], peer.to_base58());
        assert_eq!(value["peers"][peer.to_base58()]["last_seen"], 42);
        assert_eq!(value["peers"][peer.to_base58()]["trusted"], false);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, [KNOWN_PEERS_FILE], "no temporary files are left");
    }

    /// Writes `contents` as the file, opens it, and checks that it is
    /// refused as corrupt and left exactly as it was.
    fn assert_refused(contents: &[u8], reason_part: &str) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KNOWN_PEERS_FILE);
        fs::write(&path, contents).unwrap();
        let err = KnownPeers::open(dir.path()).unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { reason, .. } if reason.contains(reason_part)),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("left untouched"), "{message}");
        assert_eq!(fs::read(&path).unwrap(), contents);
    }

    #[test]
    fn a_corrupt_file_is_refused_and_left_untouched() {
        assert_refused(b"not json at all", "");
        assert_refused(b"", "EOF");
        assert_refused(b"{\"version\": 1, \"peers\": {", "EOF");
        assert_refused(b"[]", "");
    }

    #[test]
    fn a_bad_peer_id_is_refused() {
        let seen = serde_json::json!({"first_seen": 1, "last_seen": 1});
        let file = serde_json::json!({"version": 1, "peers": {"nope": seen}, "labels": {}});
        assert_refused(file.to_string().as_bytes(), "'nope' is not a peer ID");

        let peer = PeerId::random().to_base58();
        let file = serde_json::json!({
            "version": 1,
            "peers": {peer: seen},
            "labels": {"a": "nope"},
        });
        assert_refused(file.to_string().as_bytes(), "'nope' is not a peer ID");
    }

    #[test]
    fn another_version_is_refused() {
        assert_refused(
            br#"{"version": 2, "peers": {}, "labels": {}}"#,
            "format version 2",
        );
    }

    #[test]
    fn an_over_long_label_in_the_file_is_refused() {
        let peer = PeerId::random().to_base58();
        let label = "x".repeat(MAX_LABEL_LEN + 1);
        let file = serde_json::json!({
            "version": 1,
            "peers": {peer.clone(): {"first_seen": 1, "last_seen": 1}},
            "labels": {label: peer},
        });
        assert_refused(file.to_string().as_bytes(), "over the 256-byte limit");
    }

    #[test]
    fn a_file_over_the_limit_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KNOWN_PEERS_FILE);
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(MAX_FILE_LEN + 1).unwrap();
        let err = KnownPeers::open(dir.path()).unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { reason, .. } if reason.contains("larger")),
            "{err:?}"
        );
        assert_eq!(fs::metadata(&path).unwrap().len(), MAX_FILE_LEN + 1);

        // At the limit it is read (and refused only for not being JSON).
        file.set_len(MAX_FILE_LEN).unwrap();
        let err = KnownPeers::open(dir.path()).unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { reason, .. } if !reason.contains("larger")),
            "{err:?}"
        );
    }

    #[test]
    fn a_full_record_with_the_worst_labels_fits_the_file_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut known = open(&dir);
        for i in 0..MAX_PEERS {
            let peer = PeerId::random();
            let record = PeerRecord {
                first_seen: u64::MAX,
                last_seen: u64::MAX,
                trusted: false,
            };
            known.peers.insert(peer, record);
            // Control characters are escaped as six bytes each.
            let mut label = format!("{i:05}");
            label.push_str(&"\u{1}".repeat(MAX_LABEL_LEN - label.len()));
            known.labels.insert(label, peer);
        }
        let bytes = serde_json::to_vec_pretty(&known.to_file_format()).unwrap();
        assert!(bytes.len() as u64 <= MAX_FILE_LEN, "{}", bytes.len());
    }

    #[test]
    fn an_over_long_label_is_refused_and_nothing_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let mut known = open(&dir);
        let peer = PeerId::random();
        let at_limit = "x".repeat(MAX_LABEL_LEN);
        known.record_seen(Some(&at_limit), &peer).unwrap();
        let over = "x".repeat(MAX_LABEL_LEN + 1);
        let other = PeerId::random();
        let err = known.record_seen(Some(&over), &other).unwrap_err();
        match err {
            Error::LabelTooLong { len, limit } => {
                assert_eq!((len, limit), (MAX_LABEL_LEN + 1, MAX_LABEL_LEN))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            known.trust(Some(&over), &other),
            Err(Error::LabelTooLong { .. })
        ));
        assert_eq!(known.check(None, &other), Check::New);
        assert_eq!(known.check(Some(&over), &other), Check::New);
    }

    #[test]
    fn the_least_recently_seen_peer_is_forgotten_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut known = open(&dir);
        let oldest = PeerId::random();
        known.peers.insert(
            oldest,
            PeerRecord {
                first_seen: 1,
                last_seen: 1,
                trusted: false,
            },
        );
        known.labels.insert("oldest".into(), oldest);
        for i in 1..MAX_PEERS {
            let peer = PeerId::random();
            let t = 1_000 + i as u64;
            known.peers.insert(
                peer,
                PeerRecord {
                    first_seen: t,
                    last_seen: t,
                    trusted: false,
                },
            );
        }
        assert_eq!(known.peers.len(), MAX_PEERS);
        // Seeing the oldest again keeps it; the next oldest goes instead.
        let newcomer = PeerId::random();
        known.record_seen_at(None, &oldest, 50_000).unwrap();
        known.record_seen_at(None, &newcomer, 50_001).unwrap();
        assert_eq!(known.peers.len(), MAX_PEERS);
        assert!(known.peers.contains_key(&oldest));
        assert!(known.peers.contains_key(&newcomer));
        assert!(!known.peers.values().any(|record| record.last_seen == 1_001));

        let reopened = open(&dir);
        assert_eq!(reopened.peers.len(), MAX_PEERS);
        assert_eq!(reopened.check(Some("oldest"), &oldest), Check::Known);
    }

    #[test]
    fn unverified_peers_are_forgotten_before_verified_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut known = open(&dir);
        let alice = PeerId::random();
        known.trust_at(Some(ADDR), &alice, 1).unwrap();
        for i in 0..MAX_PEERS as u64 {
            known.peers.insert(
                PeerId::random(),
                PeerRecord {
                    first_seen: 10 + i,
                    last_seen: 10 + i,
                    trusted: false,
                },
            );
        }
        known.prune();
        assert_eq!(known.peers.len(), MAX_PEERS);
        assert!(known.is_trusted(&alice));
        assert!(matches!(
            known.check(Some(ADDR), &PeerId::random()),
            Check::Changed {
                was_trusted: true,
                ..
            }
        ));
    }

    #[test]
    fn labels_of_forgotten_peers_go_with_them_and_labels_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut known = open(&dir);
        let (old, recent) = (PeerId::random(), PeerId::random());
        known.record_seen_at(Some("old"), &old, 1).unwrap();
        known.record_seen_at(Some("recent"), &recent, 2).unwrap();
        for i in 1..MAX_LABELS {
            known.labels.insert(format!("recent {i}"), recent);
        }
        assert_eq!(known.labels.len(), MAX_LABELS + 1);
        known.prune();
        assert_eq!(known.labels.len(), MAX_LABELS);
        assert!(!known.labels.contains_key("old"));
        assert_eq!(known.labels.get("recent"), Some(&recent));

        known.peers.remove(&recent);
        known.prune();
        assert!(known.labels.is_empty());
    }

    #[test]
    fn a_write_failure_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut known = KnownPeers::open(&data).unwrap();
        fs::write(&data, b"a file in the way").unwrap();
        let err = known.record_seen(None, &PeerId::random()).unwrap_err();
        assert!(matches!(err, Error::CreateDir { .. }), "{err:?}");
        assert!(err.to_string().contains(&data.display().to_string()));

        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join(KNOWN_PEERS_FILE)).unwrap();
        let mut known = KnownPeers {
            dir: dir.path().to_owned(),
            path: dir.path().join(KNOWN_PEERS_FILE),
            peers: HashMap::new(),
            labels: HashMap::new(),
        };
        let err = known.record_seen(None, &PeerId::random()).unwrap_err();
        assert!(matches!(err, Error::Write { .. }), "{err:?}");
        assert!(err
            .to_string()
            .contains(&dir.path().join(KNOWN_PEERS_FILE).display().to_string()));
    }

    #[test]
    fn a_directory_in_place_of_the_file_cannot_be_read() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join(KNOWN_PEERS_FILE)).unwrap();
        let err = KnownPeers::open(dir.path()).unwrap_err();
        assert!(matches!(err, Error::Read { .. }), "{err:?}");
    }
}
