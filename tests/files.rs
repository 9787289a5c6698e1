//! Sending files between two peers: every size at a piece's edges, a
//! corrupt piece, a sender or receiver killed halfway, hostile names,
//! sizes and senders, and a link planted at the name a file lands under.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{data_dir, utf8, Peer};

/// The size of a piece (see `chat::transfer::PIECE_LEN`).
const PIECE: usize = 1 << 20;

/// Pieces a receiver asks for ahead (see `chat::transfer::WINDOW`).
const WINDOW: usize = 8;

/// How long a test transfer of a few tens of MiB may take in a debug
/// build on a busy machine.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(120);

/// Deterministic bytes, different for each `seed`.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Two peers chatting: `ann` listens, `bob` connects; each has its own
/// download folder. `ann_env` and `bob_env` are their debug faults.
struct Pair {
    ann: Peer,
    bob: Peer,
    ann_dir: tempfile::TempDir,
    bob_dir: tempfile::TempDir,
    ann_dl: PathBuf,
    bob_dl: PathBuf,
    port: u16,
    files: tempfile::TempDir,
}

impl Pair {
    fn start(ann_flags: &[&str], ann_env: &[(&str, &str)], bob_env: &[(&str, &str)]) -> Pair {
        let ann_dir = data_dir();
        let bob_dir = data_dir();
        let files = data_dir();
        let ann_dl = files.path().join("ann-downloads");
        let bob_dl = files.path().join("bob-downloads");
        let mut args = vec![
            "--listen",
            "0",
            "--data-dir",
            utf8(ann_dir.path()),
            "--no-mdns",
            "--name",
            "ann",
            "--download-dir",
            utf8(&ann_dl),
        ];
        args.extend_from_slice(ann_flags);
        let mut ann = Peer::start_with_env(&args, ann_env);
        let port = common::port_of(&ann.expect_prefix("Listening on: 0.0.0.0:"));
        let bob = Pair::bob(port, bob_dir.path(), &bob_dl, bob_env);
        let mut pair = Pair {
            ann,
            bob,
            ann_dir,
            bob_dir,
            ann_dl,
            bob_dl,
            port,
            files,
        };
        pair.ann.expect_secure_chat();
        pair.ann.expect_line("Peer is now known as bob");
        pair
    }

    /// Starts (or starts again) bob, connecting to ann.
    fn bob(port: u16, dir: &Path, dl: &Path, env: &[(&str, &str)]) -> Peer {
        let target = format!("127.0.0.1:{port}");
        let args = [
            "--connect",
            &target,
            "--data-dir",
            utf8(dir),
            "--no-mdns",
            "--name",
            "bob",
            "--download-dir",
            utf8(dl),
        ];
        let mut bob = Peer::start_with_env(&args, env);
        bob.expect_line("Connected to peer!");
        bob.expect_secure_chat();
        bob
    }

    /// A file of `len` bytes named `name`, to send.
    fn file(&self, name: &str, len: usize, seed: u64) -> (PathBuf, Vec<u8>) {
        let path = self.files.path().join(name);
        let data = bytes(len, seed);
        std::fs::write(&path, &data).expect("write a file to send");
        (path, data)
    }
}

/// `from` offers `path` with `/send`; `to` sees the offer. Returns the
/// offer's number at `to` and the line it was shown with.
fn offer(from: &mut Peer, to: &mut Peer, path: &Path) -> (u64, String) {
    from.send(&format!("/send {}", path.display()));
    from.expect_prefix("Offered \"");
    let line = to.expect_matching_contains(" offers \"");
    (offer_number(&line), line)
}

/// The N of "... /accept N or /reject N".
fn offer_number(line: &str) -> u64 {
    line.split("/accept ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no offer number in {line:?}"))
}

/// The path in "Received "NAME" (SIZE, verified) -> PATH".
fn received_path(line: &str) -> PathBuf {
    PathBuf::from(line.rsplit(" -> ").next().expect("a path"))
}

/// The transfers `history --json` lists in `dir`.
fn transfers(dir: &Path) -> Vec<serde_json::Value> {
    Peer::history_json(dir)
        .into_iter()
        .filter(|o| o.get("transfer").is_some())
        .collect()
}

trait Expect {
    fn expect_matching_contains(&mut self, part: &str) -> String;
}

impl Expect for Peer {
    fn expect_matching_contains(&mut self, part: &str) -> String {
        self.output_containing_within(part, TRANSFER_TIMEOUT)
            .unwrap_or_else(|| panic!("no line with {part:?}; seen: {:?}", self.seen))
    }
}

#[test]
fn files_of_every_size_at_a_piece_edge_arrive_whole_and_verified() {
    let mut pair = Pair::start(&[], &[], &[]);
    for (i, len) in [0, 1, PIECE, PIECE + 1].into_iter().enumerate() {
        let name = format!("file-{len}.bin");
        let (path, data) = pair.file(&name, len, i as u64);
        let (number, line) = offer(&mut pair.bob, &mut pair.ann, &path);
        assert!(
            line.starts_with(&format!("bob offers \"{name}\" (")),
            "{line}"
        );
        assert!(
            line.ends_with(&format!("/accept {number} or /reject {number}")),
            "{line}"
        );
        // Nothing is written before the offer is accepted.
        assert!(!pair.ann_dl.join(&name).exists());
        pair.ann.send(&format!("/accept {number}"));
        let received = pair.ann.expect_matching_contains("Received \"");
        assert!(
            received.starts_with(&format!("Received \"{name}\" ("))
                && received.contains(", verified) -> "),
            "{received}"
        );
        let landed = received_path(&received);
        assert_eq!(landed, pair.ann_dl.join(&name));
        assert_eq!(std::fs::read(&landed).expect("the file landed"), data);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&landed).expect("metadata").permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "owner-only");
        pair.bob.expect_line(&format!("Sent \"{name}\" to ann"));
    }
    // The chat goes on, and both histories record the transfers.
    pair.ann.send("still here");
    pair.bob.expect_line("ann: still here");
    let ann_side = transfers(pair.ann_dir.path());
    let bob_side = transfers(pair.bob_dir.path());
    assert_eq!(ann_side.len(), 4);
    assert_eq!(bob_side.len(), 4);
    for (got, sent) in ann_side.iter().zip(&bob_side) {
        assert_eq!(got["state"], "done");
        assert_eq!(sent["state"], "done");
        assert_eq!(got["hash"], sent["hash"]);
        assert_eq!(got["direction"], "in");
        assert_eq!(sent["direction"], "out");
    }
    assert_eq!(
        ann_side[0]["hash"],
        blake3::hash(b"").to_hex().as_str(),
        "the hash is the file's BLAKE3"
    );
}

#[test]
fn a_corrupt_piece_is_caught_and_fetched_again() {
    let corrupt = [("RUST_P2P_CHAT_TEST_CORRUPT_PIECE", "1")];
    let mut pair = Pair::start(&[], &[], &corrupt);
    let (path, data) = pair.file("three.bin", 3 * PIECE, 7);
    let (number, _) = offer(&mut pair.bob, &mut pair.ann, &path);
    pair.ann.send(&format!("/accept {number}"));
    let received = pair.ann.expect_matching_contains("Received \"three.bin\"");
    assert_eq!(
        std::fs::read(received_path(&received)).expect("landed"),
        data
    );
    pair.bob.expect_line("Sent \"three.bin\" to ann");
    // The corrupt piece came twice: once bad, once good; nothing else did.
    let ann_side = transfers(pair.ann_dir.path());
    assert_eq!(ann_side[0]["moved"], 4 * PIECE as u64);
}

#[test]
fn a_receiver_killed_halfway_resumes_where_it_stopped() {
    let mut pair = Pair::start(&[], &[], &[]);
    // ann sends, bob receives; bob is killed at half and comes back.
    let len = 40 * PIECE;
    let (path, data) = pair.file("big.bin", len, 3);
    let (number, _) = offer(&mut pair.ann, &mut pair.bob, &path);
    pair.bob.send(&format!("/accept {number}"));
    pair.bob
        .expect_matching_contains(&format!("\"big.bin\" [{number}]: 50%"));
    pair.bob.kill_9();
    let mut bob = Pair::bob(pair.port, pair.bob_dir.path(), &pair.bob_dl, &[]);
    bob.expect_matching_contains("Resuming \"big.bin\"");
    let received = bob.expect_matching_contains("Received \"big.bin\"");
    assert_eq!(
        std::fs::read(received_path(&received)).expect("landed"),
        data
    );
    pair.ann.expect_line("Sent \"big.bin\" to bob");
    // What ann sent again is at most what was in flight and the piece
    // being written when bob was killed.
    let sent = transfers(pair.ann_dir.path())[0]["moved"]
        .as_u64()
        .expect("moved");
    assert!(
        sent <= (len + (WINDOW + 1) * PIECE) as u64,
        "sent {sent} bytes for {len}"
    );
    // No part file is left behind.
    let left: Vec<_> = std::fs::read_dir(&pair.bob_dl)
        .expect("download folder")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left, ["big.bin"]);
}

#[test]
fn a_sender_killed_halfway_resumes_without_a_new_accept() {
    let mut pair = Pair::start(&[], &[], &[]);
    // bob sends, ann receives; bob is killed at half and comes back.
    let len = 40 * PIECE;
    let (path, data) = pair.file("big.bin", len, 4);
    let (number, _) = offer(&mut pair.bob, &mut pair.ann, &path);
    pair.ann.send(&format!("/accept {number}"));
    pair.ann
        .expect_matching_contains(&format!("\"big.bin\" [{number}]: 50%"));
    pair.bob.kill_9();
    pair.ann.expect_matching_contains("paused at");
    let mut bob = Pair::bob(pair.port, pair.bob_dir.path(), &pair.bob_dl, &[]);
    let received = pair.ann.expect_matching_contains("Received \"big.bin\"");
    assert_eq!(
        std::fs::read(received_path(&received)).expect("landed"),
        data
    );
    bob.expect_line("Sent \"big.bin\" to ann");
    let got = transfers(pair.ann_dir.path())[0]["moved"]
        .as_u64()
        .expect("moved");
    assert!(
        got <= (len + PIECE) as u64,
        "received {got} bytes for {len}"
    );
}

#[test]
fn hostile_names_land_as_safe_names_inside_the_download_folder() {
    let long = "n".repeat(10_000);
    let names = [
        "../../x",
        "/etc/passwd",
        "a/b",
        ".bashrc",
        "-rf",
        "\u{1b}[2Jevil\u{1b}]0;title\u{7}.txt",
        "invoice\u{202e}fdp.exe",
        long.as_str(),
        "CON",
    ];
    let list = serde_json::to_string(&names).expect("json");
    let env = [("RUST_P2P_CHAT_TEST_OFFER_NAMES", list.as_str())];
    let mut pair = Pair::start(&[], &[], &env);
    let mut landed = Vec::new();
    for (i, _) in names.iter().enumerate() {
        let (path, data) = pair.file(&format!("plain-{i}"), 10 + i, i as u64);
        let (number, line) = offer(&mut pair.bob, &mut pair.ann, &path);
        assert!(
            !line.contains('\u{1b}') && !line.contains('\u{202e}'),
            "{line:?}"
        );
        pair.ann.send(&format!("/accept {number}"));
        let received = pair.ann.expect_matching_contains("Received \"");
        assert!(!received.contains('\u{1b}') && !received.contains('\u{202e}'));
        let path = received_path(&received);
        assert_eq!(path.parent(), Some(pair.ann_dl.as_path()), "{received:?}");
        assert_eq!(std::fs::read(&path).expect("landed"), data);
        landed.push(
            path.file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned(),
        );
    }
    assert_eq!(&landed[..5], ["x", "passwd", "b", "bashrc", "rf"]);
    assert!(!landed[5].contains('\u{1b}') && landed[5].ends_with(".txt"));
    assert!(!landed[6].contains('\u{202e}'));
    assert!(landed[7].len() <= 255);
    assert_eq!(landed[8], "_CON");
    // Nothing landed beside the download folder.
    let beside: Vec<_> = std::fs::read_dir(pair.files.path())
        .expect("files")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with("plain-") && !name.ends_with("-downloads"))
        .collect();
    assert!(beside.is_empty(), "{beside:?}");
}

#[test]
fn an_offer_over_the_limit_is_refused_before_anything_is_written() {
    let mut pair = Pair::start(&["--max-file", "1000"], &[], &[]);
    let (path, _) = pair.file("big.bin", 1001, 1);
    pair.bob.send(&format!("/send {}", path.display()));
    let refused = pair.bob.expect_prefix("Not offered \"big.bin\": ");
    assert!(
        refused.contains("larger than the 1000 B limit"),
        "{refused}"
    );
    let told = pair.ann.expect_prefix("bob offered \"big.bin\"");
    assert!(told.contains("refused, larger than"), "{told}");
    assert!(!pair.ann_dl.exists(), "nothing is made for a refused offer");
    // One within the limit still arrives.
    let (path, data) = pair.file("small.bin", 1000, 2);
    let (number, _) = offer(&mut pair.bob, &mut pair.ann, &path);
    pair.ann.send(&format!("/accept {number}"));
    let received = pair.ann.expect_matching_contains("Received \"small.bin\"");
    assert_eq!(
        std::fs::read(received_path(&received)).expect("landed"),
        data
    );
}

#[test]
fn a_sender_that_sends_more_than_it_declared_is_cut_off() {
    let oversend = [("RUST_P2P_CHAT_TEST_OVERSEND", "1")];
    let mut pair = Pair::start(&[], &[], &oversend);
    let (path, _) = pair.file("two.bin", 2 * PIECE, 5);
    let (number, _) = offer(&mut pair.bob, &mut pair.ann, &path);
    pair.ann.send(&format!("/accept {number}"));
    let failed = pair
        .ann
        .expect_prefix(&format!("Transfer {number} (\"two.bin\") failed: "));
    assert!(failed.contains("not asked for"), "{failed}");
    // Nothing of it is left in the folder.
    assert_eq!(std::fs::read_dir(&pair.ann_dl).expect("folder").count(), 0);
    pair.ann.send("/files");
    pair.ann.expect_matching_contains(" failed");
}

#[test]
fn a_link_planted_at_the_name_is_not_followed() {
    let mut pair = Pair::start(&[], &[], &[]);
    let (path, data) = pair.file("target.txt", 100, 9);
    let victim = pair.files.path().join("victim");
    std::fs::write(&victim, b"untouched").expect("victim");
    std::fs::create_dir_all(&pair.ann_dl).expect("folder");
    std::os::unix::fs::symlink(&victim, pair.ann_dl.join("target.txt")).expect("symlink");
    let (number, _) = offer(&mut pair.bob, &mut pair.ann, &path);
    pair.ann.send(&format!("/accept {number}"));
    let received = pair.ann.expect_matching_contains("Received \"target.txt\"");
    let landed = received_path(&received);
    assert_eq!(landed, pair.ann_dl.join("target (1).txt"));
    assert_eq!(std::fs::read(&landed).expect("landed"), data);
    assert_eq!(std::fs::read(&victim).expect("victim"), b"untouched");
}

#[test]
fn offers_can_be_declined_and_transfers_cancelled() {
    let mut pair = Pair::start(&[], &[], &[]);
    let (path, _) = pair.file("no.bin", 10, 1);
    let (number, _) = offer(&mut pair.bob, &mut pair.ann, &path);
    pair.ann.send(&format!("/reject {number}"));
    pair.bob.expect_line("ann declined \"no.bin\"");
    // A transfer cancelled by the sender stops at the receiver too.
    let (path, _) = pair.file("stop.bin", 30 * PIECE, 2);
    let (number, _) = offer(&mut pair.bob, &mut pair.ann, &path);
    pair.ann.send(&format!("/accept {number}"));
    pair.ann
        .expect_matching_contains(&format!("\"stop.bin\" [{number}]: 10%"));
    pair.bob.send("/files");
    let listed = pair.bob.expect_matching_contains(" to ann \"stop.bin\"");
    let sender_number = listed
        .split_whitespace()
        .next()
        .and_then(|n| n.parse::<u64>().ok())
        .expect("a number first");
    pair.bob.send(&format!("/cancel {sender_number}"));
    pair.bob
        .expect_prefix(&format!("Cancelled transfer {sender_number}"));
    pair.ann.expect_prefix("bob cancelled transfer ");
    assert_eq!(std::fs::read_dir(&pair.ann_dl).expect("folder").count(), 0);
}

#[test]
fn files_from_a_trusted_peer_are_taken_without_asking_when_told_to() {
    let mut pair = Pair::start(&["--accept-files-from-trusted"], &[], &[]);
    // Not trusted yet: asked.
    let (path, _) = pair.file("first.txt", 10, 1);
    let (number, _) = offer(&mut pair.bob, &mut pair.ann, &path);
    pair.ann.send(&format!("/reject {number}"));
    pair.bob.expect_line("ann declined \"first.txt\"");
    pair.ann.send("/trust bob");
    pair.ann.expect_prefix("Marked ");
    let (path, data) = pair.file("second.txt", 10, 2);
    let (number, line) = offer(&mut pair.bob, &mut pair.ann, &path);
    assert!(line.contains(&format!("/accept {number}")), "{line}");
    let received = pair.ann.expect_matching_contains("Received \"second.txt\"");
    assert_eq!(
        std::fs::read(received_path(&received)).expect("landed"),
        data
    );
    pair.bob.expect_line("Sent \"second.txt\" to ann");
}
