//! Memory under abuse, black box: a peer held to 64 MB by a memory cgroup
//! outlives a flood as receiver and as sender (root only: a cgroup is made
//! for the peer; skipped with a message otherwise, or when the kernel has
//! no memory cgroup), and a paste of 100 MiB on one line goes out whole
//! without being held whole.

mod common;

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{data_dir, is_root, secure_pair, Introductions};

/// The cgroup's limit.
const CAGE_BYTES: u64 = 64 * 1024 * 1024;

/// How long the sender is fed.
const FLOOD: Duration = Duration::from_secs(20);

/// Bytes of each flood line, newline included.
const FLOOD_LINE: usize = 1024;

/// How long the receiver may take to show the flood once it was fed.
const DRAIN: Duration = Duration::from_secs(120);

/// A memory cgroup of its own, removed when dropped (after the processes
/// in it have ended): cgroup v2 where the kernel offers memory there, else
/// v1's memory hierarchy.
struct Cage {
    dir: PathBuf,
    v2: bool,
}

impl Cage {
    /// A cage of `limit` bytes, or why there is none.
    fn new(limit: u64) -> Result<Cage, String> {
        let name = format!("rust-p2p-chat-test-{}", std::process::id());
        let v2_root = PathBuf::from("/sys/fs/cgroup");
        let v2 = fs::read_to_string(v2_root.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"));
        let (dir, limit_file, swap_file) = if v2 {
            // Children of the root get the memory controller only once
            // the root hands it down; it may already.
            let _ = fs::write(v2_root.join("cgroup.subtree_control"), "+memory");
            (v2_root.join(name), "memory.max", "memory.swap.max")
        } else {
            let v1_root = PathBuf::from("/sys/fs/cgroup/memory");
            if !v1_root.join("memory.limit_in_bytes").exists() {
                return Err("no memory cgroup (neither v2's controller nor v1's hierarchy)".into());
            }
            (
                v1_root.join(name),
                "memory.limit_in_bytes",
                "memory.memsw.limit_in_bytes",
            )
        };
        fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let cage = Cage { dir, v2 };
        fs::write(cage.dir.join(limit_file), limit.to_string())
            .map_err(|e| format!("{limit_file}: {e}"))?;
        // No swap to hide in (the file exists only with swap accounting).
        let swap = if v2 { 0 } else { limit };
        let _ = fs::write(cage.dir.join(swap_file), swap.to_string());
        Ok(cage)
    }

    /// Moves process `pid` into the cage.
    fn hold(&self, pid: u32) {
        fs::write(self.dir.join("cgroup.procs"), pid.to_string()).expect("move into the cgroup");
    }

    /// Processes the kernel killed in the cage for want of memory.
    fn oom_kills(&self) -> u64 {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        fs::read_to_string(self.dir.join(file))
            .unwrap_or_default()
            .lines()
            .find_map(|line| line.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The most memory the cage was charged, in MB (page cache included).
    fn peak_mb(&self) -> f64 {
        let file = if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        let bytes: u64 = fs::read_to_string(self.dir.join(file))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        bytes as f64 / 1e6
    }
}

impl Drop for Cage {
    fn drop(&mut self) {
        // The processes were killed and reaped before; the kernel may take
        // a moment to let go of the group.
        for _ in 0..50 {
            if fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One flood: B feeds lines to A for [`FLOOD`], with A (`cage_receiver`)
/// or B in a cage of [`CAGE_BYTES`]. Every line fed must reach A's screen,
/// the caged peer must not be killed, and the chat must still work both
/// ways after.
fn flood_with_one_peer_caged(cage_receiver: bool) {
    let cage = match Cage::new(CAGE_BYTES) {
        Ok(cage) => cage,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let (a, b) = (data_dir(), data_dir());
    let (mut receiver, mut sender, _, _) = secure_pair(a.path(), b.path(), Introductions::Reached);
    let caged = if cage_receiver { &receiver } else { &sender };
    cage.hold(caged.pid());
    let who = if cage_receiver { "receiver" } else { "sender" };

    let mut stdin = sender.take_stdin();
    let stop = Arc::new(AtomicBool::new(false));
    let mut feeding = Some({
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let started = Instant::now();
            let mut fed = 0u64;
            // Bounded by time: the write waits while the sender's input
            // does, and ends with the flood.
            while started.elapsed() < FLOOD && !stop.load(Ordering::Relaxed) {
                let mut chunk = Vec::with_capacity(64 * FLOOD_LINE);
                for _ in 0..64 {
                    let head = format!("f {fed} ");
                    chunk.extend_from_slice(head.as_bytes());
                    chunk.resize(chunk.len() + FLOOD_LINE - 1 - head.len(), b'x');
                    chunk.push(b'\n');
                    fed += 1;
                }
                if stdin.write_all(&chunk).is_err() {
                    break;
                }
            }
            (fed, stdin)
        })
    });
    // Read what A shows while the flood goes on, in order.
    let mut shown = 0u64;
    let deadline = Instant::now() + FLOOD + DRAIN;
    let mut fed = None;
    let mut stdin = None;
    while fed.is_none_or(|fed| shown < fed) {
        assert!(
            Instant::now() < deadline,
            "{who} caged: {shown} of {fed:?} lines shown within {:?}",
            FLOOD + DRAIN
        );
        if let Some(done) = feeding.take_if(|f| f.is_finished()) {
            let (n, input) = done.join().expect("feeder");
            fed = Some(n);
            stdin = Some(input);
            continue;
        }
        let Some(line) = receiver.line_within(Duration::from_millis(200)) else {
            assert_eq!(cage.oom_kills(), 0, "{who} caged: killed for memory");
            continue;
        };
        // The lines of the flood, only once and in order.
        if let Some(rest) = line.strip_prefix("Peer: f ") {
            let n: u64 = rest
                .split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .expect("a numbered flood line");
            assert_eq!(
                n, shown,
                "{who} caged: line {n} shown where {shown} was due"
            );
            shown += 1;
        }
        // What was read is checked; keep no copy of a flood.
        receiver.seen.clear();
    }
    stop.store(true, Ordering::Relaxed);
    assert_eq!(cage.oom_kills(), 0, "{who} caged: killed for memory");
    eprintln!(
        "{who} caged: {shown} lines of {FLOOD_LINE} B in {FLOOD:?}, cgroup peak {:.1} MB",
        cage.peak_mb()
    );
    // Both still chat.
    receiver.send("still here");
    sender.expect_line_within("Peer: still here", common::TIMEOUT);
    // The sender's input stays open until here: its end would end the chat.
    drop(stdin);
    receiver.kill_9();
    sender.kill_9();
}

#[test]
fn a_peer_held_to_64_mb_outlives_a_flood_as_receiver_and_as_sender() {
    if !is_root() {
        eprintln!("skipped: a memory cgroup needs root");
        return;
    }
    // One after the other: two floods at once would share two cores.
    flood_with_one_peer_caged(true);
    flood_with_one_peer_caged(false);
}

/// Bytes of the one-line paste.
const PASTE: usize = 100 * 1024 * 1024;

/// The longest line sent as one in a room: the paste goes out in pieces
/// of this size.
const PIECE: usize = rust_p2p_chat::net::MAX_ROOM_LINE;

/// Each peer's RSS at most, as in a flood (issue 16's bar).
const PEAK_BOUND_KIB: u64 = 64 * 1024;

/// The letter the paste holds at byte `at`: a new one every piece, so
/// that each piece shown tells which it is.
fn paste_letter(at: usize) -> u8 {
    b'a' + (at / PIECE % 26) as u8
}

#[test]
fn a_paste_of_100_mib_on_one_line_goes_out_whole_and_is_never_held_whole() {
    let (a, b) = (data_dir(), data_dir());
    let (mut receiver, mut sender, _, _) = secure_pair(a.path(), b.path(), Introductions::Reached);
    let mut stdin = sender.take_stdin();
    let started = Instant::now();
    let feeder = thread::spawn(move || {
        let mut chunk = vec![0u8; 64 * 1024];
        for at in (0..PASTE).step_by(chunk.len()) {
            chunk.fill(paste_letter(at));
            stdin.write_all(&chunk).expect("the sender takes the paste");
        }
        stdin
            .write_all(b"\nafter the paste\n")
            .expect("the sender takes the line after");
        stdin
    });
    // The pieces, in order, each a line of its own.
    let mut shown = 0;
    while shown < PASTE {
        let left = (started + Duration::from_secs(180)).saturating_duration_since(Instant::now());
        let Some(line) = receiver.line_within(left) else {
            panic!(
                "{shown} of {PASTE} bytes shown after {:?}",
                started.elapsed()
            );
        };
        receiver.seen.clear();
        let Some(piece) = line.strip_prefix("Peer: ") else {
            continue;
        };
        let letter = paste_letter(shown);
        assert_eq!(piece.len(), PIECE.min(PASTE - shown), "piece at {shown}");
        assert!(
            piece.bytes().all(|b| b == letter),
            "the piece at byte {shown} is not all {:?}",
            letter as char
        );
        shown += piece.len();
    }
    receiver.expect_line("Peer: after the paste");
    let took = started.elapsed();
    let (sender_peak, receiver_peak) = (sender.peak_rss_kib(), receiver.peak_rss_kib());
    eprintln!(
        "100 MiB on one line in {took:?}: peak RSS sender {:.1} MB, receiver {:.1} MB",
        sender_peak as f64 / 1024.0,
        receiver_peak as f64 / 1024.0
    );
    sender.expect_stderr(&format!("it goes out in pieces of at most {PIECE} bytes"));
    for (who, peak) in [("sender", sender_peak), ("receiver", receiver_peak)] {
        assert!(
            peak <= PEAK_BOUND_KIB,
            "the {who} peaked at {peak} KiB on a 100 MiB line"
        );
    }
    // The sender's input stays open until here: its end would end the chat.
    drop(feeder.join().expect("feeder"));
}
