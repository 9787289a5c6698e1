//! Unit tests of the delivery state machine: one member, inputs by hand,
//! the actions it answers with checked one by one. The simulator in
//! `tests/delivery.rs` drives many members at once.

use std::time::Duration;

use super::*;

const ME: &str = "me";
const ROOM: &str = "r";

fn at(ms: u64) -> Now {
    Now {
        at: Duration::from_millis(ms),
        wall_ms: 1_000_000 + ms,
    }
}

fn texts(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A member in room `r` with `others` there, nothing stored.
fn member(others: &[&str]) -> Delivery {
    let mut d = Delivery::new(ME, 7, 1024, 1, 0);
    d.handle(
        at(0),
        Input::Joined {
            room: ROOM.into(),
            resume: Resume::default(),
        },
    );
    for peer in others {
        d.handle(
            at(0),
            Input::MemberJoined {
                room: ROOM.into(),
                peer: (*peer).into(),
            },
        );
    }
    actions(&mut d);
    d
}

fn actions(d: &mut Delivery) -> Vec<Action> {
    std::iter::from_fn(|| d.poll()).collect()
}

fn lines_from(author: &str, first: u64, items: &[&str]) -> Input {
    Input::Received {
        room: ROOM.into(),
        from: author.into(),
        via: author.into(),
        said: Said::Lines {
            session: 1,
            first,
            sent_ms: 1_000_000,
            nick: None,
            texts: texts(items),
        },
    }
}

/// `from` says it holds `author`'s lines of `session` below `next`.
fn have_from(from: &str, author: &str, session: u64, next: u64) -> Input {
    Input::Received {
        room: ROOM.into(),
        from: from.into(),
        via: from.into(),
        said: Said::Have {
            session: 2,
            seq: 1,
            have: vec![Held {
                author: author.into(),
                session,
                next,
            }],
        },
    }
}

/// Completes the store write among `acts`, and each that follows it, as
/// the app would; returns every action after the first write.
fn store_ok(d: &mut Delivery, now: Now, acts: &[Action]) -> Vec<Action> {
    let write = |acts: &[Action]| {
        acts.iter().find_map(|a| match a {
            Action::Store(lines) => Some(lines.clone()),
            _ => None,
        })
    };
    let mut lines = write(acts).expect("a store write");
    let mut all = Vec::new();
    loop {
        d.handle(
            now,
            Input::Stored {
                lines,
                result: Ok(()),
            },
        );
        let acts = actions(d);
        let next = write(&acts);
        all.extend(acts);
        match next {
            Some(more) => lines = more,
            None => return all,
        }
    }
}

/// The lines shown among `acts`, as (first, texts).
fn shown(acts: &[Action]) -> Vec<(u64, Vec<String>)> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Show { lines, .. } => Some((lines.first, lines.texts.clone())),
            _ => None,
        })
        .collect()
}

fn fetches(acts: &[Action]) -> Vec<FetchAsk> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Fetch(ask) => Some(ask.clone()),
            _ => None,
        })
        .collect()
}

fn haves(acts: &[Action]) -> Vec<Vec<Held>> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Publish {
                said: Said::Have { have, .. },
                ..
            } => Some(have.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_gap_is_filled_by_a_fetch_and_what_waited_behind_it_follows_in_order() {
    let mut d = member(&["a"]);
    d.handle(at(1), lines_from("a", 1, &["1"]));
    let acts = actions(&mut d);
    let acts = store_ok(&mut d, at(2), &acts);
    assert_eq!(shown(&acts), vec![(1, texts(&["1"]))]);
    // 2 and 3 are lost on the way: 4 waits, and they are asked for.
    d.handle(at(3), lines_from("a", 4, &["4"]));
    let acts = actions(&mut d);
    assert!(shown(&acts).is_empty());
    let ask = fetches(&acts).pop().expect("a fetch");
    assert_eq!((ask.from, ask.to), (2, 3));
    assert_eq!(ask.ask, ["a".to_string(), "a".to_string()]);
    let reply = Fetched {
        first: 2,
        texts: texts(&["2", "3"]),
        sent_ms: vec![5, 5],
        nick: None,
    };
    d.handle(
        at(4),
        Input::Fetched {
            ask,
            reply: Some(reply),
        },
    );
    let acts = actions(&mut d);
    let acts = store_ok(&mut d, at(5), &acts);
    // Fetched lines keep their time; the one that waited came live.
    assert_eq!(
        shown(&acts),
        vec![(2, texts(&["2", "3"])), (4, texts(&["4"]))]
    );
    // No gap is left to give up on.
    d.handle(at(GAP_WAIT.as_millis() as u64 + 10_000), Input::Tick);
    assert!(!actions(&mut d)
        .iter()
        .any(|a| matches!(a, Action::Report(Report::Lost { .. }))));
}

#[test]
fn a_gap_given_up_on_is_reported_and_recovered_later_from_a_summary() {
    let mut d = member(&["a"]);
    d.handle(at(1), lines_from("a", 1, &["1"]));
    let acts = actions(&mut d);
    store_ok(&mut d, at(2), &acts);
    d.handle(at(3), lines_from("a", 5, &["5"]));
    let acts = actions(&mut d);
    assert_eq!(fetches(&acts).len(), 1);
    // Nobody answers: asked again every second, then given up on.
    d.handle(at(1_003), Input::Tick);
    assert_eq!(fetches(&actions(&mut d)).len(), 1);
    let wait = GAP_WAIT.as_millis() as u64;
    d.handle(at(2 + wait), Input::Tick);
    assert!(!actions(&mut d)
        .iter()
        .any(|a| matches!(a, Action::Report(Report::Lost { .. }))));
    d.handle(at(3 + wait), Input::Tick);
    let acts = actions(&mut d);
    assert!(acts.contains(&Action::Report(Report::Lost {
        stream: StreamId::new(ROOM, "a", 1),
        count: 3
    })));
    let acts = store_ok(&mut d, at(4 + wait), &acts);
    assert_eq!(shown(&acts), vec![(5, texts(&["5"]))]);
    // The author's next summary says it has them: asked for, shown late.
    d.handle(
        at(2_000 + wait),
        Input::Received {
            room: ROOM.into(),
            from: "a".into(),
            via: "a".into(),
            said: Said::Hello {
                session: 1,
                seq: 1,
                nick: None,
                next: 6,
                have: Vec::new(),
            },
        },
    );
    let ask = fetches(&actions(&mut d)).pop().expect("the hole asked for");
    assert_eq!((ask.from, ask.to), (2, 4));
    let reply = Fetched {
        first: 2,
        texts: texts(&["2", "3", "4"]),
        sent_ms: vec![9; 3],
        nick: None,
    };
    d.handle(
        at(2_001 + wait),
        Input::Fetched {
            ask,
            reply: Some(reply),
        },
    );
    let acts = actions(&mut d);
    assert!(acts.contains(&Action::Report(Report::Recovered {
        stream: StreamId::new(ROOM, "a", 1),
        count: 3
    })));
    let acts = store_ok(&mut d, at(2_002 + wait), &acts);
    assert_eq!(shown(&acts), vec![(2, texts(&["2", "3", "4"]))]);
}

#[test]
fn a_duplicate_batch_is_neither_stored_nor_shown_again() {
    let mut d = member(&["a"]);
    d.handle(at(1), lines_from("a", 1, &["1", "2"]));
    let acts = actions(&mut d);
    store_ok(&mut d, at(2), &acts);
    d.handle(at(3), lines_from("a", 1, &["1", "2"]));
    assert!(actions(&mut d).is_empty());
    // Overlapping: only the new line.
    d.handle(at(4), lines_from("a", 2, &["2", "3"]));
    let acts = actions(&mut d);
    let Some(Action::Store(lines)) = acts.first() else {
        panic!("{acts:?}");
    };
    assert_eq!((lines[0].first, lines[0].texts.clone()), (3, texts(&["3"])));
}

#[test]
fn acknowledgements_say_what_is_stored_and_are_spared_when_another_said_it() {
    let mut d = member(&["a", "b"]);
    d.handle(at(1), lines_from("a", 1, &["1", "2"]));
    let acts = actions(&mut d);
    // Not acknowledged before it is stored.
    d.handle(at(500), Input::Tick);
    assert!(haves(&actions(&mut d)).is_empty());
    store_ok(&mut d, at(501), &acts);
    let due = d.next_wake().expect("an acknowledgement due");
    assert!(due <= Duration::from_millis(501) + ACK_DELAY + ACK_DELAY_PER_MEMBER * 4);
    d.handle(at(2_000), Input::Tick);
    let said = haves(&actions(&mut d));
    assert_eq!(
        said,
        vec![vec![Held {
            author: "a".into(),
            session: 1,
            next: 3
        }]]
    );
    // More arrives, but b says it holds as much first: ours is spared.
    d.handle(at(2_100), lines_from("a", 3, &["3"]));
    let acts = actions(&mut d);
    store_ok(&mut d, at(2_101), &acts);
    d.handle(at(2_102), have_from("b", "a", 1, 4));
    actions(&mut d);
    d.handle(at(5_000), Input::Tick);
    assert!(haves(&actions(&mut d)).is_empty());
}

#[test]
fn our_lines_wait_for_a_member_stay_queued_until_acknowledged_and_are_replayed_after_a_restart() {
    let mut d = member(&[]);
    d.handle(
        at(1),
        Input::Typed {
            room: ROOM.into(),
            texts: texts(&["hi", "there"]),
            nick: None,
        },
    );
    let acts = actions(&mut d);
    let Some(Action::Record(lines)) = acts.first().cloned() else {
        panic!("{acts:?}");
    };
    assert_eq!((lines.first, lines.texts.len()), (1, 2));
    assert_eq!(d.writing(), 1);
    d.handle(
        at(2),
        Input::Recorded {
            lines: lines.clone(),
            result: Ok(()),
        },
    );
    // Alone: kept, and said so once.
    assert_eq!(
        actions(&mut d),
        vec![Action::Report(Report::Queued { room: ROOM.into() })]
    );
    assert_eq!(d.undelivered(), 2);
    // The program ends before anyone comes; the next run has the store.
    let mut d = Delivery::new(ME, 7, 1024, 2, 0);
    let resume = Resume {
        next_line: 3,
        unsent: vec![lines.clone()],
        ..Resume::default()
    };
    d.handle(
        at(0),
        Input::Joined {
            room: ROOM.into(),
            resume,
        },
    );
    assert!(actions(&mut d).is_empty());
    d.handle(
        at(5),
        Input::MemberJoined {
            room: ROOM.into(),
            peer: "a".into(),
        },
    );
    let acts = actions(&mut d);
    assert!(acts.contains(&Action::Publish {
        room: ROOM.into(),
        said: Said::Lines {
            session: 7,
            first: 1,
            sent_ms: lines.ts_ms,
            nick: None,
            texts: texts(&["hi", "there"]),
        }
    }));
    // Numbering carries on after them.
    d.handle(
        at(6),
        Input::Typed {
            room: ROOM.into(),
            texts: texts(&["again"]),
            nick: None,
        },
    );
    let acts = actions(&mut d);
    assert!(matches!(&acts[..], [Action::Record(l)] if l.first == 3));
    // A member holds them: delivered, marked so.
    d.handle(at(7), have_from("a", ME, 7, 3));
    assert!(actions(&mut d).contains(&Action::MarkDelivered {
        room: ROOM.into(),
        through: 3
    }));
}

#[test]
fn a_member_restarted_mid_burst_fetches_the_holes_its_store_has() {
    let mut d = Delivery::new(ME, 7, 1024, 3, 0);
    // Stored before the restart: 1..=3 and 6..=9 of a, not 4 and 5.
    let resume = Resume {
        streams: vec![StoredStream {
            author: "a".into(),
            session: 1,
            next: 10,
            missing: vec![(0, 1), (4, 6)],
            truncated: false,
        }],
        ..Resume::default()
    };
    d.handle(
        at(0),
        Input::Joined {
            room: ROOM.into(),
            resume,
        },
    );
    d.handle(
        at(1),
        Input::MemberJoined {
            room: ROOM.into(),
            peer: "a".into(),
        },
    );
    // Says it holds only what runs on without a hole.
    d.handle(at(600), Input::Tick);
    let hello = actions(&mut d).into_iter().find_map(|a| match a {
        Action::Publish {
            said: Said::Hello { have, .. },
            ..
        } => Some(have),
        _ => None,
    });
    assert_eq!(
        hello,
        Some(vec![Held {
            author: "a".into(),
            session: 1,
            next: 4
        }])
    );
    // The author's hello: the hole is asked for, and nothing else.
    d.handle(
        at(700),
        Input::Received {
            room: ROOM.into(),
            from: "a".into(),
            via: "a".into(),
            said: Said::Hello {
                session: 1,
                seq: 1,
                nick: None,
                next: 10,
                have: Vec::new(),
            },
        },
    );
    let asked: Vec<(u64, u64)> = fetches(&actions(&mut d))
        .iter()
        .map(|a| (a.from, a.to))
        .collect();
    assert_eq!(asked, vec![(4, 5)]);
    // Lines already held are not shown again.
    d.handle(at(800), lines_from("a", 6, &["6", "7", "8", "9"]));
    assert!(actions(&mut d).is_empty());
}

#[test]
fn a_refused_write_is_shown_tried_again_and_acknowledged_only_once_stored() {
    let mut d = member(&["a"]);
    d.handle(at(1), lines_from("a", 1, &["1"]));
    let acts = actions(&mut d);
    let Some(Action::Store(lines)) = acts.first().cloned() else {
        panic!("{acts:?}");
    };
    let full = Failure {
        disk_full: true,
        cause: "full".into(),
    };
    d.handle(
        at(2),
        Input::Stored {
            lines,
            result: Err(full),
        },
    );
    let acts = actions(&mut d);
    assert!(
        acts.contains(&Action::Report(Report::Store(Notice::HistoryFull {
            unstored: 1
        })))
    );
    assert_eq!(shown(&acts), vec![(1, texts(&["1"]))]);
    d.handle(at(900), Input::Tick);
    assert!(haves(&actions(&mut d)).is_empty());
    // Tried again a second later, stored, then acknowledged.
    d.handle(at(1_002), Input::Tick);
    let acts = actions(&mut d);
    let acts = store_ok(&mut d, at(1_003), &acts);
    assert!(shown(&acts).is_empty());
    assert!(acts.contains(&Action::Report(Report::Store(Notice::HistoryResumed))));
    d.handle(at(3_000), Input::Tick);
    assert_eq!(haves(&actions(&mut d)).len(), 1);
}

#[test]
fn lines_written_while_the_room_was_left_and_joined_again_are_kept_once() {
    let mut d = member(&[]);
    d.handle(
        at(1),
        Input::Typed {
            room: ROOM.into(),
            texts: texts(&["a", "b"]),
            nick: None,
        },
    );
    let Some(Action::Record(lines)) = actions(&mut d).pop() else {
        panic!("no record");
    };
    // Left and joined again while the write was on its way: the store ran
    // it first, so the new join reads those lines back as unsent.
    d.handle(at(2), Input::Left { room: ROOM.into() });
    let resume = Resume {
        next_line: 3,
        unsent: vec![lines.clone()],
        ..Resume::default()
    };
    d.handle(
        at(3),
        Input::Joined {
            room: ROOM.into(),
            resume,
        },
    );
    d.handle(
        at(4),
        Input::Recorded {
            lines,
            result: Ok(()),
        },
    );
    actions(&mut d);
    assert_eq!(d.pending_lines(), 2);
    d.handle(
        at(5),
        Input::MemberJoined {
            room: ROOM.into(),
            peer: "a".into(),
        },
    );
    let published = actions(&mut d)
        .iter()
        .filter(|a| {
            matches!(
                a,
                Action::Publish {
                    said: Said::Lines { .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(published, 1);
}

#[test]
fn input_waits_once_a_window_of_our_lines_is_unacknowledged_and_resumes_as_a_member_holds_them() {
    let mut d = member(&["a"]);
    let line = "x".repeat(1000);
    let per_batch = 64;
    let batch_cost = line_cost(&vec![line.clone(); per_batch]);
    let mut typed = 0u64;
    let mut now = 1;
    while !d.input_held() {
        assert!(
            d.unacked_bytes() < SEND_WINDOW,
            "input taken past the window"
        );
        type_recorded(&mut d, at(now), vec![line.clone(); per_batch]);
        typed += per_batch as u64;
        now += 1;
        actions(&mut d);
    }
    // Held with at most one batch past the window: never more in flight.
    assert!(d.unacked_bytes() < SEND_WINDOW + batch_cost);
    assert_eq!(
        d.unacked_bytes() as u64,
        typed * (1000 + LINE_OVERHEAD) as u64
    );
    // A member holds the first half: input is taken again, and what
    // still counts is the rest.
    let half = typed / 2 / per_batch as u64 * per_batch as u64;
    d.handle(at(now), have_from("a", ME, 7, half + 1));
    assert!(!d.input_held());
    let left = (typed - half) as usize;
    assert_eq!(d.unacked_bytes(), left * (1000 + LINE_OVERHEAD));
    // Leaving the room lets go of what waited there.
    d.handle(at(now + 1), Input::Left { room: ROOM.into() });
    assert_eq!(d.unacked_bytes(), 0);
}

/// Types `texts` at `now` and has them recorded at once.
fn type_recorded(d: &mut Delivery, now: Now, texts: Vec<String>) {
    d.handle(
        now,
        Input::Typed {
            room: ROOM.into(),
            texts,
            nick: None,
        },
    );
    for act in actions(d) {
        if let Action::Record(lines) = act {
            d.handle(
                now,
                Input::Recorded {
                    lines,
                    result: Ok(()),
                },
            );
        }
    }
}

/// Types batches of 64 lines of 1,000 bytes at `now` until input waits;
/// how many lines were typed.
fn type_until_held(d: &mut Delivery, now: u64) -> u64 {
    let line = "x".repeat(1000);
    let mut typed = 0;
    while !d.input_held() {
        assert!(typed < 100_000, "never held");
        type_recorded(d, at(now), vec![line.clone(); 64]);
        typed += 64;
        actions(d);
    }
    typed
}

/// Members a and b, both taking our lines, a full window typed at 10 ms,
/// and a holding all of it at 20 ms; how many lines were typed.
fn held_for_the_slower_of_two() -> (Delivery, u64) {
    let mut d = member(&["a", "b"]);
    // Both members hold all we said so far (nothing): both take lines.
    d.handle(at(1), have_from("a", ME, 7, 1));
    d.handle(at(1), have_from("b", ME, 7, 1));
    let typed = type_until_held(&mut d, 10);
    // The fast member holds everything: input still waits for the slow one.
    d.handle(at(20), have_from("a", ME, 7, typed + 1));
    assert!(d.input_held(), "went at the fast member's pace");
    (d, typed)
}

#[test]
fn the_window_waits_for_the_slowest_member_that_keeps_taking_lines_and_not_for_one_that_stopped() {
    let (mut d, typed) = held_for_the_slower_of_two();
    // The slow one takes half: the window lets go of that half.
    let half = typed / 2 / 64 * 64;
    d.handle(at(30), have_from("b", ME, 7, half + 1));
    assert!(!d.input_held());
    assert_eq!(
        d.unacked_bytes(),
        (typed - half) as usize * (1000 + LINE_OVERHEAD)
    );

    // It stops taking lines: the window waits for it until its patience
    // runs out, then goes on at the other's pace.
    let more = type_until_held(&mut d, 40);
    d.handle(at(50), have_from("a", ME, 7, typed + more + 1));
    assert!(d.input_held());
    let patience = PACE_PATIENCE + ACK_DELAY_PER_MEMBER * 2 * 2;
    let due = d.next_wake().expect("a wake for the stopped member");
    assert!(due <= Duration::from_millis(30) + patience, "{due:?}");
    d.handle(at(30 + patience.as_millis() as u64 - 1), Input::Tick);
    assert!(d.input_held(), "gave up on it too early");
    d.handle(at(30 + patience.as_millis() as u64), Input::Tick);
    assert!(!d.input_held(), "still waiting for a member that stopped");
    assert_eq!(d.unacked_bytes(), 0);
}

#[test]
fn the_window_does_not_wait_for_a_member_that_left() {
    let (mut d, _) = held_for_the_slower_of_two();
    d.handle(
        at(21),
        Input::MemberLeft {
            room: ROOM.into(),
            peer: "b".into(),
        },
    );
    assert!(!d.input_held());
}

#[test]
fn input_waits_once_a_window_of_our_lines_was_published_within_the_holding_time_even_if_acknowledged(
) {
    let hold = Duration::from_millis(500);
    let mut d = member(&["a"]).holding_published(hold);
    let line = "x".repeat(1000);
    let per_batch = 64;
    let batch_cost = line_cost(&vec![line.clone(); per_batch]);
    let mut typed = 0u64;
    let start = 10;
    // All typed within 100 ms, and each batch acknowledged at once.
    while !d.input_held() {
        assert!(typed < 100_000, "never held");
        type_recorded(
            &mut d,
            at(start + typed / 10_000),
            vec![line.clone(); per_batch],
        );
        typed += per_batch as u64;
        d.handle(at(start + typed / 10_000), have_from("a", ME, 7, typed + 1));
        actions(&mut d);
    }
    assert_eq!(d.unacked_bytes(), 0, "all acknowledged");
    assert!(d.published_bytes() >= PUBLISH_WINDOW);
    assert!(d.published_bytes() < PUBLISH_WINDOW + batch_cost);
    // Taken again once the first of them is let go of, and not before.
    let due = Duration::from_millis(start) + hold;
    assert!(d.next_wake().is_some_and(|wake| wake <= due));
    let due = due.as_millis() as u64;
    d.handle(at(due - 1), Input::Tick);
    assert!(d.input_held());
    d.handle(at(due), Input::Tick);
    assert!(!d.input_held());
    // Once the holding time is over for all of them, nothing counts.
    d.handle(at(start + 1_000), Input::Tick);
    assert_eq!(d.published_bytes(), 0);
}
