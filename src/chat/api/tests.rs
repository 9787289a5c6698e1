//! Every kind of event as JSON, and the commands a program sends.

use super::*;
use crate::chat::event::{Origin, PeerLine};
use crate::chat::transfer::{TransferLine, TransferState};

/// One of every kind of event the chat shows.
fn every_event() -> Vec<Event> {
    vec![
        Event::OwnIdentity {
            peer_id: "12D3KooWme".into(),
            fingerprint: "AAAA BBBB".into(),
        },
        Event::Message {
            text: "<img src=x onerror=alert(1)>".into(),
        },
        Event::Messages {
            texts: vec!["a".into(), "\u{1b}[2J".into()],
        },
        Event::Lines {
            from: "bob".into(),
            room: None,
            texts: vec!["one".into(), "two".into()],
            origin: Some(Origin {
                room: "lobby".into(),
                peer_id: "12D3KooWbob".into(),
                fingerprint: "CCCC".into(),
                session: 7,
                numbers: vec![4, 5],
                ts_ms: 1_700_000_000_000,
            }),
        },
        Event::Direct {
            from: "bob".into(),
            text: "psst".into(),
        },
        Event::Joined {
            who: "bob".into(),
            room: "lobby".into(),
            peer_id: "12D3KooWbob".into(),
        },
        Event::Left {
            who: "bob".into(),
            room: "lobby".into(),
            peer_id: "12D3KooWbob".into(),
        },
        Event::Status(Status::Delivered {
            room: "lobby".into(),
        }),
        Event::Status(Status::Peers(vec![PeerLine {
            who: "bob".into(),
            fingerprint: "CCCC".into(),
            addr: Some("127.0.0.1:9".into()),
            rtt: Some(std::time::Duration::from_millis(3)),
            path: "direct".into(),
        }])),
        Event::Invite {
            ticket: "CHATXYZ".into(),
        },
        Event::File(FileEvent::Offered {
            number: 1,
            who: "bob".into(),
            name: "a.txt".into(),
            size: 3,
        }),
        Event::File(FileEvent::List(vec![TransferLine {
            number: 1,
            outgoing: false,
            who: "bob".into(),
            name: "a.txt".into(),
            size: 3,
            done: 3,
            state: TransferState::Done,
            rate: None,
        }])),
        Event::History {
            lines: vec![HistoryLine {
                when: "2026-12-07 08:00".into(),
                from: "bob".into(),
                text: "earlier".into(),
                status: None,
                kept: Some(crate::chat::event::KeptLine {
                    id: "room:lobby/12D3KooWbob/0000000000000007/1".into(),
                    room: Some("lobby".into()),
                    author: "12D3KooWbob".into(),
                    fingerprint: Some("CCCC".into()),
                    ts_ms: 1_700_000_000_000,
                }),
            }],
            page: Some(crate::chat::event::HistoryPage {
                room: "lobby".into(),
                before: Some("room:lobby/12D3KooWbob/0000000000000007/2".into()),
                more: false,
            }),
        },
        Event::Status(Status::Members {
            room: "lobby".into(),
            epoch: Some(1),
            members: vec![crate::chat::event::MemberLine {
                who: "bob".into(),
                peer_id: "12D3KooWbob".into(),
                fingerprint: "CCCC".into(),
                verified: true,
                me: false,
            }],
        }),
        Event::Status(Status::Rooms(vec![crate::chat::event::RoomLine {
            name: "lobby".into(),
            members: 1,
            current: true,
        }])),
        Event::SafetyNumber {
            number: "12345 67890".into(),
            peer_id: "12D3KooWbob".into(),
        },
        Event::Trusted {
            peer_id: "12D3KooWbob".into(),
        },
        Event::Notice(Notice::Malformed),
        Event::Notice(Notice::BadCommand("not a command".into())),
        Event::Waiting,
        Event::Encrypted,
    ]
}

#[test]
fn every_event_round_trips_through_json() {
    for event in every_event() {
        for api in events_of(&event) {
            let json = serde_json::to_string(&api).expect("serialises");
            let back: ApiEvent = serde_json::from_str(&json).expect("parses");
            assert_eq!(back, api, "{json}");
            assert!(json.starts_with("{\"type\":\""), "{json}");
        }
    }
}

#[test]
fn lines_carry_their_ids_and_peer_text_as_data() {
    let events = every_event();
    let lines = events_of(&events[3]);
    assert_eq!(lines.len(), 2);
    let ApiEvent::Line(ApiLine { id, author, .. }) = &lines[1] else {
        panic!("a line")
    };
    assert_eq!(
        id.as_deref(),
        Some("room:lobby/12D3KooWbob/0000000000000007/5")
    );
    assert_eq!(author.as_deref(), Some("12D3KooWbob"));
    let ApiEvent::Line(ApiLine { text, .. }) = &events_of(&events[1])[0] else {
        panic!("a line")
    };
    assert_eq!(text, "<img src=x onerror=alert(1)>");
}

#[test]
fn commands_become_the_lines_a_person_types() {
    let typed = |json: &str| {
        ApiCommand::parse(json).and_then(|c| {
            c.commands().map(|commands| {
                commands
                    .into_iter()
                    .map(|c| match c {
                        Command::Send(line) => line,
                        other => panic!("{other:?}"),
                    })
                    .collect::<Vec<_>>()
            })
        })
    };
    assert_eq!(
        typed(r#"{"type":"send","text":"/etc\nhi"}"#),
        Ok(vec!["//etc".into(), "hi".into()])
    );
    assert_eq!(
        ApiCommand::parse(r#"{"type":"send","room":"dev","text":"/etc\nhi"}"#)
            .and_then(|c| c.commands()),
        Ok(vec![Command::Say {
            room: "dev".into(),
            lines: vec!["/etc".into(), "hi".into()],
        }])
    );
    assert_eq!(
        typed(r#"{"type":"join","room":"x","public":true}"#),
        Ok(vec!["/join x --public".into()])
    );
    assert_eq!(
        typed(r#"{"type":"send_file","to":"bob","path":"/tmp/a b"}"#),
        Ok(vec!["/send bob /tmp/a b".into()])
    );
    assert_eq!(
        typed(r#"{"type":"accept","transfer":3}"#),
        Ok(vec!["/accept 3".into()])
    );
    assert!(matches!(
        typed(r#"{"type":"nick","name":"two words"}"#),
        Err(ApiError::BadName { .. })
    ));
    assert!(matches!(
        typed(r#"{"type":"send","text":"x","extra":1}"#),
        Err(ApiError::Malformed(_))
    ));
    assert!(matches!(typed("not json"), Err(ApiError::Malformed(_))));
    assert_eq!(
        typed(r#"{"type":"command","line":"/verify"}"#),
        Ok(vec!["/verify".into()])
    );
    assert!(typed(r#"{"type":"command","line":"/a\n/b"}"#).is_err());
    assert_eq!(typed(r#"{"type":"members"}"#), Ok(vec!["/members".into()]));
    assert!(typed(r#"{"type":"members","room":"x"}"#).is_err());
}

#[test]
fn a_history_page_is_a_query_not_a_typed_line() {
    let asked = ApiCommand::parse(
        r#"{"type":"history","room":"dev","before":"room:dev/x/0000000000000001/4","limit":10}"#,
    )
    .and_then(|c| c.commands());
    assert_eq!(
        asked,
        Ok(vec![Command::History {
            room: Some("dev".into()),
            before: Some("room:dev/x/0000000000000001/4".into()),
            limit: 10,
        }])
    );
    let latest = ApiCommand::parse(r#"{"type":"history"}"#).and_then(|c| c.commands());
    assert_eq!(
        latest,
        Ok(vec![Command::History {
            room: None,
            before: None,
            limit: HISTORY_DEFAULT,
        }])
    );
}

#[test]
fn our_own_lines_carry_their_state_and_delivery_names_them() {
    let own = Event::Own {
        origin: Origin {
            room: "lobby".into(),
            peer_id: "12D3KooWme".into(),
            fingerprint: "AAAA".into(),
            session: 255,
            numbers: vec![0, 1],
            ts_ms: 5,
        },
        texts: vec!["a".into(), "b".into()],
        queued: true,
    };
    let lines = events_of(&own);
    let ApiEvent::Line(line) = &lines[1] else {
        panic!("a line")
    };
    assert_eq!(line.status.as_deref(), Some("queued"));
    assert_eq!(
        line.id.as_deref(),
        Some("room:lobby/12D3KooWme/00000000000000ff/1")
    );
    let delivered = events_of(&Event::DeliveredThrough {
        room: "lobby".into(),
        session: 255,
        through: 2,
    });
    assert_eq!(
        delivered,
        [ApiEvent::Delivered {
            room: "lobby".into(),
            session: Some("00000000000000ff".into()),
            through: Some(2),
        }]
    );
}
