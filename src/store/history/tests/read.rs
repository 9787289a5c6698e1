use super::*;

#[test]
fn recent_is_the_last_lines_in_arrival_order_oldest_first() {
    let mut history = History::in_memory().unwrap();
    // Arrival order, not line order or the author's clock, decides.
    let mut late = numbered(BOB, 1, 0..3);
    late.ts_ms = 1;
    history
        .insert(&[
            numbered(BOB, 1, 9..12),
            late,
            direct(BOB, BOB, 0, "elsewhere"),
        ])
        .unwrap();
    history.insert(&[numbered(ME, 2, 0..2)]).unwrap();

    let all = history.recent(ROOM, 100).unwrap();
    let order: Vec<_> = all.iter().map(|m| (m.author.as_str(), m.line)).collect();
    assert_eq!(
        order,
        [
            (BOB, 9),
            (BOB, 10),
            (BOB, 11),
            (BOB, 0),
            (BOB, 1),
            (BOB, 2),
            (ME, 0),
            (ME, 1)
        ]
    );
    assert_eq!(all[3].ts_ms, 1);
    assert_eq!(all[3].id, message_id(ROOM, BOB, 1, 0));
    // A limit that ends inside a batch takes its last lines.
    assert_eq!(history.recent(ROOM, 4).unwrap(), all[4..]);
    assert_eq!(history.recent(ROOM, 2).unwrap(), all[6..]);
    assert_eq!(history.recent(ROOM, 1).unwrap(), all[7..]);
    assert_eq!(history.recent(ROOM, 8).unwrap(), all);
    assert!(history.recent(ROOM, 0).unwrap().is_empty());
    assert!(history.recent("room:other", 10).unwrap().is_empty());
    let elsewhere = history.recent("peer:12D3KooWbob", 10).unwrap();
    assert_eq!(texts(&elsewhere), ["elsewhere"]);
    assert_eq!(elsewhere[0].peer.as_deref(), Some(BOB));
    assert_eq!(elsewhere[0].room, None);
}

#[test]
fn before_pages_back_from_any_line_even_inside_a_batch() {
    let mut history = History::in_memory().unwrap();
    history
        .insert(&[numbered(BOB, 1, 9..12), numbered(BOB, 1, 0..3)])
        .unwrap();
    history.insert(&[numbered(ME, 2, 0..2)]).unwrap();
    let all = history.recent(ROOM, 100).unwrap();
    // Every page of every size, from every line, is the lines just before it.
    for (at, line) in all.iter().enumerate() {
        for limit in 0..10 {
            let page = history.before(&line.id, limit).unwrap().unwrap();
            assert_eq!(
                page,
                all[at.saturating_sub(limit)..at],
                "{} {limit}",
                line.id
            );
        }
    }
    // Paging back from the newest line reaches the oldest, once each.
    let mut seen = vec![all[7].clone()];
    while let Some(oldest) = seen.first() {
        let page = history.before(&oldest.id, 3).unwrap().unwrap();
        if page.is_empty() {
            break;
        }
        seen.splice(0..0, page);
    }
    assert_eq!(seen, all);
    // A line not held (or not an id) is not taken for the start.
    for unknown in [
        "",
        "nonsense",
        "room:rust/x/zz/1",
        &message_id(ROOM, "12D3KooWeve", 1, 5),
        &message_id(ROOM, BOB, 1, 12),
        &message_id(ROOM, BOB, 1, 5),
    ] {
        assert_eq!(history.before(unknown, 5).unwrap(), None, "{unknown}");
    }
}

#[test]
fn query_filters_by_room_and_by_peer() {
    let mut history = History::in_memory().unwrap();
    let mut other_room = batch(BOB, 1, 0, &["bob elsewhere"]);
    other_room.room = Some("other".into());
    other_room.conversation = "room:other".into();
    history
        .insert(&[
            batch(BOB, 1, 0, &["bob in rust", "bob again"]),
            batch(ME, 2, 0, &["me in rust"]),
            direct(BOB, ME, 0, "me to bob"),
            direct("12D3KooWcarol", "12D3KooWcarol", 0, "carol to me"),
            other_room,
        ])
        .unwrap();

    let everything = history.query(&Filter::default(), 100).unwrap();
    assert_eq!(everything.len(), 6);
    assert_eq!(
        texts(&history.query(&Filter::default(), 2).unwrap()),
        ["carol to me", "bob elsewhere"]
    );
    let room = Filter {
        room: Some("rust".into()),
        peer: None,
    };
    assert_eq!(
        texts(&history.query(&room, 100).unwrap()),
        ["bob in rust", "bob again", "me in rust"]
    );
    assert_eq!(
        texts(&history.query(&room, 2).unwrap()),
        ["bob again", "me in rust"]
    );
    let bob = Filter {
        room: None,
        peer: Some(BOB.into()),
    };
    assert_eq!(
        texts(&history.query(&bob, 100).unwrap()),
        ["bob in rust", "bob again", "me to bob", "bob elsewhere"]
    );
    let bob_in_rust = Filter {
        room: Some("rust".into()),
        peer: Some(BOB.into()),
    };
    assert_eq!(
        texts(&history.query(&bob_in_rust, 100).unwrap()),
        ["bob in rust", "bob again"]
    );
    assert!(history.query(&bob, 0).unwrap().is_empty());
}

#[test]
fn range_serves_runs_across_rows_and_parts_of_rows() {
    let mut history = History::in_memory().unwrap();
    let mut later = numbered(BOB, 1, 8..12);
    later.name = Some("bobby".into());
    history
        .insert(&[numbered(BOB, 1, 0..4), numbered(BOB, 1, 4..6), later])
        .unwrap();
    let nick = format!("{BOB}-nick");

    let range = |author, session, from, to, lines, bytes| {
        history
            .range(ROOM, author, session, from, to, Take { lines, bytes })
            .unwrap()
    };
    let any = usize::MAX;
    assert_eq!(
        range(BOB, 1, 1, 9, 100, any),
        [
            run(1, 1..4, &nick, 1_000),
            run(4, 4..6, &nick, 1_004),
            run(8, 8..9, "bobby", 1_008)
        ]
    );
    assert_eq!(
        range(BOB, 1, 1, 9, 4, any),
        [run(1, 1..4, &nick, 1_000), run(4, 4..5, &nick, 1_004)]
    );
    assert_eq!(range(BOB, 1, 2, 3, 100, any), [run(2, 2..3, &nick, 1_000)]);
    // At most 20 bytes of text ("line N" is 6): three lines; and at least
    // one line however small the bound.
    assert_eq!(range(BOB, 1, 1, 9, 100, 20), [run(1, 1..4, &nick, 1_000)]);
    assert_eq!(
        range(BOB, 1, 3, 9, 100, 20),
        [run(3, 3..4, &nick, 1_000), run(4, 4..6, &nick, 1_004)]
    );
    assert_eq!(range(BOB, 1, 1, 9, 100, 0), [run(1, 1..2, &nick, 1_000)]);
    // From inside the gap on.
    assert_eq!(
        range(BOB, 1, 7, 100, 100, any),
        [run(8, 8..12, "bobby", 1_008)]
    );
    let all = range(BOB, 1, 0, u64::MAX, any, any);
    assert_eq!(all.iter().map(|run| run.texts.len()).sum::<usize>(), 10);
    for (author, session, from, to, lines) in [
        (BOB, 1, 6, 8, 100),
        (BOB, 1, 5, 5, 100),
        (BOB, 1, 9, 2, 100),
        (BOB, 1, 0, 12, 0),
        (BOB, 2, 0, 12, 100),
        (ME, 1, 0, 12, 100),
    ] {
        assert!(range(author, session, from, to, lines, any).is_empty());
    }
}

#[test]
fn streams_next_line_and_missing() {
    let mut history = History::in_memory().unwrap();
    // Bob's session 1 holds 0, 1, 2, 5, 6 and 9.
    let mut batches = vec![
        numbered(BOB, 1, 0..3),
        numbered(BOB, 1, 5..7),
        numbered(BOB, 1, 9..10),
    ];
    // An old session, last written long ago.
    let mut old = numbered(BOB, 0, 3..4);
    old.ts_ms = 10;
    batches.push(old);
    batches.push(numbered(BOB, u64::MAX, 0..1));
    batches.push(numbered(ME, 3, 0..1));
    history.insert(&batches).unwrap();

    assert_eq!(history.next_line(ROOM, BOB, 1).unwrap(), 10);
    assert_eq!(history.next_line(ROOM, BOB, 0).unwrap(), 4);
    assert_eq!(history.next_line(ROOM, BOB, 2).unwrap(), 0);
    assert_eq!(history.next_line("room:other", BOB, 1).unwrap(), 0);
    assert_eq!(history.next_line(ROOM, BOB, u64::MAX).unwrap(), 1);

    let stream = |author: &str, session, next_line| Stream {
        author: author.into(),
        session,
        next_line,
    };
    assert_eq!(
        history.streams(ROOM, 0).unwrap(),
        [
            stream(BOB, 0, 4),
            stream(BOB, 1, 10),
            stream(BOB, u64::MAX, 1),
            stream(ME, 3, 1),
        ]
    );
    // The old session falls outside the window.
    assert_eq!(
        history.streams(ROOM, 1_000).unwrap(),
        [
            stream(BOB, 1, 10),
            stream(BOB, u64::MAX, 1),
            stream(ME, 3, 1)
        ]
    );
    assert!(history.streams("room:other", 0).unwrap().is_empty());

    assert_eq!(
        history.missing(ROOM, BOB, 1, 10, 10).unwrap(),
        [(3, 5), (7, 9)]
    );
    assert_eq!(
        history.missing(ROOM, BOB, 1, 12, 10).unwrap(),
        [(3, 5), (7, 9), (10, 12)]
    );
    assert_eq!(history.missing(ROOM, BOB, 1, 6, 10).unwrap(), [(3, 5)]);
    assert_eq!(history.missing(ROOM, BOB, 1, 4, 10).unwrap(), [(3, 4)]);
    assert_eq!(history.missing(ROOM, BOB, 1, 12, 1).unwrap(), [(3, 5)]);
    assert!(history.missing(ROOM, BOB, 1, 12, 0).unwrap().is_empty());
    assert!(history.missing(ROOM, BOB, 1, 3, 10).unwrap().is_empty());
    assert!(history.missing(ROOM, BOB, 1, 2, 10).unwrap().is_empty());
    assert_eq!(history.missing(ROOM, BOB, 0, 4, 10).unwrap(), [(0, 3)]);
    assert_eq!(history.missing(ROOM, BOB, 2, 2, 10).unwrap(), [(0, 2)]);
}

#[test]
fn resume_room_reads_where_a_room_was_left() {
    let mut history = History::in_memory().unwrap();
    history
        .insert(&[
            numbered(BOB, 2, 0..4),
            // An old session of Bob's, before the sync window.
            Batch {
                ts_ms: 10,
                ..numbered(BOB, 1, 0..2)
            },
            numbered(ME, 1, 1..3),
            numbered(ME, 1, 3..5),
        ])
        .unwrap();
    history.mark_sent(ROOM, ME, 1, 1, 3).unwrap();
    history.mark_delivered_through(ROOM, ME, 1, 2).unwrap();

    let resume = history.resume_room(ROOM, ME, 1, 500, 7_000).unwrap();
    assert_eq!(
        resume,
        RoomResume {
            streams: vec![
                Stream {
                    author: BOB.into(),
                    session: 2,
                    next_line: 4,
                },
                Stream {
                    author: ME.into(),
                    session: 1,
                    next_line: 5,
                },
            ],
            next_line: 5,
            unsent: vec![numbered(ME, 1, 3..5)],
            delivered_through: 2,
            joined: 7_000,
            // Bob's lines are held from 0; ours from 1.
            missing: vec![Vec::new(), vec![(0, 1)]],
        }
    );
    // The first join is kept; the rest follows what changed.
    history.mark_delivered_through(ROOM, ME, 1, 5).unwrap();
    let again = history.resume_room(ROOM, ME, 1, 0, 9_000).unwrap();
    assert_eq!(again.joined, 7_000);
    assert_eq!(again.delivered_through, 5);
    assert_eq!(again.streams.len(), 3, "{:?}", again.streams);
    assert!(again.unsent.is_empty(), "{:?}", again.unsent);

    // A room never seen: nothing held, joined now.
    let empty = history.resume_room("room:new", ME, 1, 0, 9_500).unwrap();
    assert_eq!(
        empty,
        RoomResume {
            streams: Vec::new(),
            next_line: 0,
            unsent: Vec::new(),
            delivered_through: 0,
            joined: 9_500,
            missing: Vec::new(),
        }
    );
}
