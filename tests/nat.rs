//! Two homes behind NAT routers and a relay on a "public" network, all in
//! network namespaces the test creates (root; skipped with a message
//! otherwise). Documentation addresses only, inside the namespaces:
//! 203.0.113.0/24 is the public network, 10.1.0.0/24 and 10.2.0.0/24 the
//! homes.
//!
//! ```text
//!  home1     10.1.0.2 ─┬─ r1 (NAT, 203.0.113.11) ─┐
//!  neighbour 10.1.0.3 ─┘                           ├─ net (bridge) ── relay 203.0.113.10
//!  home2     10.2.0.2 ─── r2 (NAT, 203.0.113.12) ─┘
//! ```
//!
//! A router is "easy" (`masquerade`: one public port per inside port, so
//! hole punching works) or "hard" (`masquerade random`: a new public port
//! per destination, a symmetric NAT, so it does not). Each drops new
//! connections from outside to itself (`iifname "wan0" ct state new
//! drop`): without it the other peer's first punch packet makes a
//! conntrack entry on the router that takes the port, Linux NAT then maps
//! to another port, and punching fails even between easy NATs.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{data_dir, is_root, run, utf8, Peer, TIMEOUT};

/// Namespaces of one test bed, removed when dropped.
struct Bed {
    names: Vec<String>,
    net: String,
    relay: String,
    homes: [String; 2],
    /// Another machine on home 1's LAN.
    neighbour: String,
}

/// A router's NAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Nat {
    Easy,
    Hard,
}

impl Bed {
    fn create(tag: &str, nats: [Nat; 2]) -> Option<Bed> {
        let pid = std::process::id();
        let name = |role: &str| format!("nat{pid}{tag}{role}");
        let bed = Bed {
            names: ["n", "rl", "r1", "r2", "h1", "h2", "h1b"]
                .iter()
                .map(|r| name(r))
                .collect(),
            net: name("n"),
            relay: name("rl"),
            homes: [name("h1"), name("h2")],
            neighbour: name("h1b"),
        };
        for ns in &bed.names {
            if !run(&["ip", "netns", "add", ns])
                || !run(&["ip", "-n", ns, "link", "set", "lo", "up"])
            {
                return None;
            }
        }
        let net = &bed.net;
        let mut ok = run(&["ip", "-n", net, "link", "add", "br0", "type", "bridge"])
            && run(&["ip", "-n", net, "link", "set", "br0", "up"]);
        // The relay and the routers' wan side on the public network.
        for (ns, addr) in [
            (name("rl"), "203.0.113.10/24"),
            (name("r1"), "203.0.113.11/24"),
            (name("r2"), "203.0.113.12/24"),
        ] {
            let wan = if ns == bed.relay { "eth0" } else { "wan0" };
            ok = ok && link(&ns, wan, net, Some("br0")) && address(&ns, wan, addr);
        }
        // Each home behind its router, on a LAN (a bridge in the router);
        // home 1's LAN has a neighbour.
        for (i, nat) in nats.iter().enumerate() {
            let router = name(&format!("r{}", i + 1));
            let lan = format!("10.{}.0", i + 1);
            ok = ok
                && run(&["ip", "-n", &router, "link", "add", "lan0", "type", "bridge"])
                && run(&["ip", "-n", &router, "link", "set", "lan0", "up"])
                && address(&router, "lan0", &format!("{lan}.1/24"))
                && run(&[
                    "ip",
                    "netns",
                    "exec",
                    &router,
                    "sysctl",
                    "-qw",
                    "net.ipv4.ip_forward=1",
                ])
                && nftables(&router, *nat);
            let mut hosts = vec![(bed.homes[i].clone(), 2)];
            if i == 0 {
                hosts.push((bed.neighbour.clone(), 3));
            }
            for (host, n) in hosts {
                ok = ok
                    && link(&host, "eth0", &router, Some("lan0"))
                    && address(&host, "eth0", &format!("{lan}.{n}/24"))
                    && run(&[
                        "ip",
                        "-n",
                        &host,
                        "route",
                        "add",
                        "default",
                        "via",
                        &format!("{lan}.1"),
                    ]);
            }
        }
        ok.then_some(bed)
    }

    /// The bed, or why the test cannot run here.
    fn for_test(tag: &str, nats: [Nat; 2]) -> Option<Bed> {
        if !is_root() {
            eprintln!(
                "SKIPPED: building NAT routers in network namespaces needs root (CI runs as root)"
            );
            return None;
        }
        if !run(&["nft", "--version"]) {
            eprintln!("SKIPPED: nft (nftables) is not installed");
            return None;
        }
        let bed = Bed::create(tag, nats);
        if bed.is_none() {
            eprintln!("SKIPPED: could not create network namespaces with `ip netns` here");
        }
        bed
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A veth pair: `inside` in `ns`, its other end in `outer` (on `bridge`
/// when given, else named `peer0` there).
fn link(ns: &str, inside: &str, outer: &str, bridge: Option<&str>) -> bool {
    let (a, b) = (
        format!("v{}", short(ns, inside)),
        format!("w{}", short(ns, inside)),
    );
    run(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b])
        && run(&["ip", "link", "set", &a, "netns", ns])
        && run(&["ip", "-n", ns, "link", "set", &a, "name", inside])
        && run(&["ip", "-n", ns, "link", "set", inside, "up"])
        && run(&["ip", "link", "set", &b, "netns", outer])
        && match bridge {
            Some(br) => {
                run(&["ip", "-n", outer, "link", "set", &b, "master", br])
                    && run(&["ip", "-n", outer, "link", "set", &b, "up"])
            }
            None => run(&["ip", "-n", outer, "link", "set", &b, "name", "peer0"]),
        }
}

/// A short interface name (at most 15 characters) for a pair.
fn short(ns: &str, inside: &str) -> String {
    let tail: String = ns
        .chars()
        .rev()
        .take(8)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{tail}{}", &inside[..1])
}

fn address(ns: &str, dev: &str, addr: &str) -> bool {
    run(&["ip", "-n", ns, "addr", "add", addr, "dev", dev])
}

/// The router's NAT and firewall.
fn nftables(router: &str, nat: Nat) -> bool {
    let masquerade = match nat {
        Nat::Easy => "masquerade",
        Nat::Hard => "masquerade random",
    };
    let rules = format!(
        "table ip nat {{
            chain postrouting {{ type nat hook postrouting priority 100; oifname \"wan0\" {masquerade}; }}
        }}
        table ip filter {{
            chain input {{ type filter hook input priority 0; iifname \"wan0\" ct state new drop; }}
            chain forward {{ type filter hook forward priority 0; policy drop;
                iifname \"lan0\" accept;
                iifname \"wan0\" ct state established,related accept;
            }}
        }}"
    );
    let path = std::env::temp_dir().join(format!("{router}.nft"));
    std::fs::write(&path, rules).is_ok()
        && run(&["ip", "netns", "exec", router, "nft", "-f", utf8(&path)])
}

/// The binary in namespace `ns` with its data in `dir`.
fn in_ns(ns: &str, dir: &Path, args: &[&str]) -> Peer {
    let mut all = vec!["netns", "exec", ns, common::BIN, "--data-dir", utf8(dir)];
    all.extend_from_slice(args);
    Peer::start_with_program("ip", &all)
}

/// A relay on the public network, a peer in each home; the first makes an
/// invite and the second joins with it. Returns them chatting, with the
/// time the second took from its start to the first line both ways.
fn meet(bed: &Bed, dirs: &[tempfile::TempDir; 3]) -> (Peer, Peer, Peer, Duration) {
    let mut relay = in_ns(&bed.relay, dirs[0].path(), &["relay", "--listen", "4001"]);
    let relay_addr = relay
        .expect_prefix("Relay listening on: /ip4/203.0.113.10/")
        .trim_start_matches("Relay listening on: ")
        .to_owned();
    // LAN discovery stays on, as users run the chat.
    let mut ann = in_ns(
        &bed.homes[0],
        dirs[1].path(),
        &["--listen", "0", "--name", "ann", "--relay", &relay_addr],
    );
    ann.expect_prefix("Reachable through a relay at: ");
    ann.send("/invite");
    let ticket = ann
        .expect_prefix("Invite: ")
        .trim_start_matches("Invite: ")
        .to_owned();
    let start = Instant::now();
    let mut bob = in_ns(
        &bed.homes[1],
        dirs[2].path(),
        &["--name", "bob", "--join", &ticket],
    );
    bob.expect_line("Connected to peer!");
    bob.send("hello from home 2");
    ann.expect_line("bob: hello from home 2");
    ann.send("hello from home 1");
    bob.expect_line("ann: hello from home 1");
    let took = start.elapsed();
    (relay, ann, bob, took)
}

/// Asks for `/peers` until `ann`'s line ends as `want` says, within `limit`.
fn path_within(peer: &mut Peer, want: impl Fn(&str) -> bool, limit: Duration) -> Option<String> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        peer.send("/peers");
        if let Some(line) = peer.output_containing_within("  ann  ", Duration::from_secs(2)) {
            if want(&line) {
                return Some(line);
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    None
}

#[test]
fn behind_two_easy_nats_an_invite_meets_through_the_relay_then_goes_direct() {
    let Some(bed) = Bed::for_test("e", [Nat::Easy, Nat::Easy]) else {
        return;
    };
    let dirs = [data_dir(), data_dir(), data_dir()];
    let (_relay, _ann, mut bob, took) = meet(&bed, &dirs);
    assert!(
        took <= Duration::from_secs(5),
        "lines both ways took {took:?}"
    );
    let line = path_within(
        &mut bob,
        |l| l.ends_with("(hole-punched)"),
        Duration::from_secs(15),
    );
    assert!(line.is_some(), "never hole-punched: {:?}", bob.seen);
}

/// tcpdump on the relay host's link, writing to a file; stopped (and the
/// file complete) when dropped.
struct Capture {
    child: std::process::Child,
    file: std::path::PathBuf,
}

impl Capture {
    fn start(ns: &str, file: std::path::PathBuf) -> Option<Capture> {
        let child = Command::new("ip")
            .args([
                "netns", "exec", ns, "tcpdump", "-i", "eth0", "-U", "-s", "0", "-w",
            ])
            .arg(&file)
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        // tcpdump needs a moment before it captures.
        std::thread::sleep(Duration::from_millis(500));
        Some(Capture { child, file })
    }

    /// Everything captured so far, once tcpdump has stopped.
    fn finish(mut self) -> Vec<u8> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        std::fs::read(&self.file).unwrap_or_default()
    }
}

#[test]
fn behind_a_symmetric_nat_the_chat_stays_relayed_works_and_the_relay_reads_nothing() {
    let Some(bed) = Bed::for_test("h", [Nat::Easy, Nat::Hard]) else {
        return;
    };
    if !run(&["tcpdump", "--version"]) {
        eprintln!("SKIPPED: tcpdump is not installed");
        return;
    }
    let dirs = [data_dir(), data_dir(), data_dir()];
    let captured = tempfile::tempdir().expect("temp dir");
    let capture = Capture::start(&bed.relay, captured.path().join("relay.pcap"))
        .expect("tcpdump on the relay");
    let (_relay, mut ann, mut bob, _) = meet(&bed, &dirs);
    let relayed = path_within(&mut bob, |l| l.contains("relayed via"), TIMEOUT);
    assert!(relayed.is_some(), "{:?}", bob.seen);
    // Hole punching is tried, and fails: the path stays relayed.
    std::thread::sleep(Duration::from_secs(10));
    let still = path_within(&mut bob, |l| l.contains("relayed via"), TIMEOUT);
    assert!(still.is_some(), "{:?}", bob.seen);
    assert!(
        !bob.seen.iter().any(|l| l.contains("hole-punched")),
        "{:?}",
        bob.seen
    );
    for i in 0..20 {
        ann.send(&format!("relayed line {i}"));
    }
    bob.expect_line("ann: relayed line 19");
    let bytes = capture.finish();
    assert!(
        bytes.len() > 10_000,
        "the capture holds {} bytes",
        bytes.len()
    );
    for text in ["relayed line", "hello from home"] {
        assert!(
            !bytes.windows(text.len()).any(|w| w == text.as_bytes()),
            "the relay saw {text:?}"
        );
    }
}

#[test]
fn doctor_says_behind_a_nat_is_reachable_only_through_the_relay_and_not_at_all_without_one() {
    let Some(bed) = Bed::for_test("d", [Nat::Easy, Nat::Easy]) else {
        return;
    };
    let dirs = [data_dir(), data_dir()];
    let mut relay = in_ns(&bed.relay, dirs[0].path(), &["relay", "--listen", "4001"]);
    let relay_addr = relay
        .expect_prefix("Relay listening on: /ip4/203.0.113.10/")
        .trim_start_matches("Relay listening on: ")
        .to_owned();
    let doctor = |args: &[&str]| {
        let mut all = vec![
            "netns",
            "exec",
            &bed.homes[0],
            common::BIN,
            "doctor",
            "--data-dir",
        ];
        all.push(utf8(dirs[1].path()));
        all.extend_from_slice(args);
        let out = Command::new("ip").args(&all).output().expect("doctor runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = doctor(&["--relay", &relay_addr, "--seconds", "20"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("Relays see this machine at: /ip4/203.0.113.11/"),
        "{out}"
    );
    assert!(!out.contains("Reachable directly at"), "{out}");
    assert!(out.contains("reachable directly"), "{out}");
    assert!(out.contains("Reachable through a relay at: "), "{out}");
    assert!(out.contains("Verdict: reachable through a relay."), "{out}");
    let (code, out) = doctor(&["--seconds", "3"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("Verdict: not reachable from elsewhere."),
        "{out}"
    );
}

#[test]
fn behind_a_symmetric_nat_a_relay_restarted_mid_chat_is_found_again_by_both() {
    let Some(bed) = Bed::for_test("r", [Nat::Easy, Nat::Hard]) else {
        return;
    };
    let dirs = [data_dir(), data_dir(), data_dir()];
    let (mut relay, mut ann, mut bob, _) = meet(&bed, &dirs);
    assert!(path_within(&mut bob, |l| l.contains("relayed via"), TIMEOUT).is_some());
    relay.kill_9();
    ann.expect_stderr_within("asking it again shortly", TIMEOUT);
    // The relay comes back on its address with its key.
    let mut back = in_ns(&bed.relay, dirs[0].path(), &["relay", "--listen", "4001"]);
    back.expect_prefix("Relay listening on: /ip4/203.0.113.10/");
    assert!(
        ann.output_containing_within(
            "Reachable through a relay at: /ip4/203.0.113.10/tcp/4001/p2p/",
            Duration::from_secs(70)
        )
        .is_some(),
        "ann did not reserve again: {:?}",
        ann.seen
    );
    // Bob dials back in through it by himself, and the chat goes on.
    bob.expect_line_within("Connected to peer!", Duration::from_secs(70));
    bob.send("after the relay came back");
    ann.expect_line("bob: after the relay came back");
    ann.send("and back to bob");
    bob.expect_line("ann: and back to bob");
}

/// How long, and how much, the relayed chat runs in
/// [`behind_a_symmetric_nat_five_minutes_and_five_mb_go_through_the_relay`].
const RELAYED_FOR: Duration = Duration::from_secs(300);
const RELAYED_LINES_PER_SECOND: usize = 17;
const RELAYED_LINE: usize = 1_000;

#[test]
fn behind_a_symmetric_nat_five_minutes_and_five_mb_go_through_the_relay() {
    let Some(bed) = Bed::for_test("l", [Nat::Easy, Nat::Hard]) else {
        return;
    };
    let dirs = [data_dir(), data_dir(), data_dir()];
    let (_relay, mut ann, mut bob, _) = meet(&bed, &dirs);
    assert!(path_within(&mut bob, |l| l.contains("relayed via"), TIMEOUT).is_some());
    let start = Instant::now();
    let seconds = RELAYED_FOR.as_secs() as usize;
    let filler = "x".repeat(RELAYED_LINE - 16);
    for second in 0..seconds {
        for k in 0..RELAYED_LINES_PER_SECOND {
            ann.send(&format!("{second:05} {k:03} {filler}"));
        }
        if second % 60 == 0 {
            bob.send(&format!("bob at {second} s"));
        }
        let next = start + Duration::from_secs(second as u64 + 1);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let total = seconds * RELAYED_LINES_PER_SECOND;
    assert!(total * RELAYED_LINE >= 5_000_000);
    bob.expect_count(
        |l| l.starts_with("ann: ") && l.ends_with(&filler),
        total,
        TIMEOUT * 4,
    );
    ann.expect_line(&format!("bob: bob at {} s", (seconds - 1) / 60 * 60));
    let still = path_within(&mut bob, |l| l.contains("relayed via"), TIMEOUT);
    assert!(
        still.is_some(),
        "the path changed after {} lines",
        bob.seen.len()
    );
}

#[test]
fn a_neighbour_on_the_inviters_lan_with_default_flags_neither_joins_nor_reads() {
    let Some(bed) = Bed::for_test("n", [Nat::Easy, Nat::Easy]) else {
        return;
    };
    let dirs = [data_dir(), data_dir(), data_dir()];
    let (_relay, mut ann, mut bob, _) = meet(&bed, &dirs);
    // mDNS on, as users run it; a private room of its own.
    let nd = data_dir();
    let mut all = vec!["netns", "exec", &bed.neighbour, common::BIN, "--data-dir"];
    all.push(utf8(nd.path()));
    all.extend_from_slice(&["--listen", "0", "--name", "nosy"]);
    let mut nosy = Peer::start_with_program("ip", &all);
    nosy.expect_line("Waiting for peer to connect...");
    // Time for LAN discovery to find ann (mDNS asks every 5 s).
    std::thread::sleep(Duration::from_secs(12));
    ann.send("said with a neighbour on the LAN");
    bob.expect_line("ann: said with a neighbour on the LAN");
    std::thread::sleep(Duration::from_secs(2));
    nosy.read_available();
    ann.read_available();
    assert!(
        !nosy.seen.iter().any(|l| l.contains("said with")),
        "{:?}",
        nosy.seen
    );
    assert!(
        !ann.seen.iter().any(|l| l.contains("nosy")),
        "{:?}",
        ann.seen
    );
    // It found ann on the LAN, and that is all.
    nosy.send("/nearby");
    nosy.expect_line("Peers on the LAN:");
    nosy.expect_prefix("  Peer-");
    // And it is not in her room: it shows no member.
    nosy.send("/rooms");
    nosy.expect_line("Rooms:");
    nosy.expect_line(" * #lobby (0 other member(s))");
}
