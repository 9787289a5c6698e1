use super::super::schema::{MIGRATIONS, PAGE_BYTES};
use super::*;

#[test]
fn data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let lines = numbered(ME, 7, 0..3);
    let session = {
        let mut history = History::open(dir.path()).unwrap();
        let new = history.insert(std::slice::from_ref(&lines)).unwrap();
        assert_eq!(new, [3]);
        history.session().unwrap()
    };
    let mut history = History::open(dir.path()).unwrap();
    let stored = history.recent(ROOM, 10).unwrap();
    let expected: Vec<_> = (0..3)
        .map(|line| StoredMessage {
            id: message_id(ROOM, ME, 7, line),
            conversation: ROOM.into(),
            room: Some("rust".into()),
            peer: None,
            author: ME.into(),
            session: 7,
            line,
            name: Some(format!("{ME}-nick")),
            ts_ms: 1_000,
            text: format!("line {line}"),
            outgoing: true,
            status: Status::Queued,
        })
        .collect();
    assert_eq!(stored, expected);
    assert_eq!(stored[2].id, "room:rust/12D3KooWme/0000000000000007/2");
    assert_eq!(history.session().unwrap(), session, "the session is kept");
    assert_eq!(history.insert(&[lines]).unwrap(), [0]);
    assert_eq!(rows(&history), 1);
}

#[test]
fn the_file_is_private_and_in_wal_mode_with_normal_sync_and_large_pages() {
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(dir.path()).unwrap();
    let mode: String = history
        .conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = history
        .conn
        .pragma_query_value(None, "synchronous", |row| row.get(0))
        .unwrap();
    assert_eq!(sync, 1, "NORMAL");
    let page: u32 = history
        .conn
        .pragma_query_value(None, "page_size", |row| row.get(0))
        .unwrap();
    assert_eq!(page, PAGE_BYTES);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join(HISTORY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn a_database_of_the_first_format_is_brought_up_to_date_with_its_statuses() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = Connection::open(dir.path().join(HISTORY_FILE)).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        let mut old = History::new(conn, dir.path().join(HISTORY_FILE), None);
        old.insert(&[numbered(ME, 1, 1..3), numbered(ME, 1, 3..4)])
            .unwrap();
        old.conn
            .execute(
                "UPDATE batches SET status = 'sent' WHERE first_line = 1",
                [],
            )
            .unwrap();
    }
    let err = History::open_read_only(dir.path()).unwrap_err();
    assert!(
        matches!(err, Error::OlderSchema { found: 1, .. }),
        "{err:?}"
    );
    let mut history = History::open(dir.path()).unwrap();
    assert_eq!(history.version().unwrap(), SCHEMA_VERSION);
    use Status::*;
    assert_eq!(statuses(&history), [Sent, Sent, Queued]);
    history.mark_sent(ROOM, ME, 1, 3, 4).unwrap();
    assert_eq!(statuses(&history), [Sent, Sent, Sent]);
    assert!(History::open_read_only(dir.path()).is_ok());
}

/// Puts `contents` in place of the history, checks that opening it
/// fails as `expected` says, naming the file, and that the file is left
/// exactly as it was. Returns the directory, still holding the file,
/// and the error.
fn assert_refused(contents: &[u8], expected: fn(&Error) -> bool) -> (TempDir, Error) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(HISTORY_FILE);
    fs::write(&path, contents).unwrap();
    let err = History::open(dir.path()).unwrap_err();
    assert!(expected(&err), "{err:?}");
    assert_names(&err, &path, "left untouched");
    assert_eq!(fs::read(&path).unwrap(), contents);
    (dir, err)
}

/// The bytes of a database set up by `sql` alone.
fn database_bytes(sql: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("made.sqlite3");
    Connection::open(&path).unwrap().execute_batch(sql).unwrap();
    fs::read(&path).unwrap()
}

#[test]
fn a_newer_format_is_refused_and_left_untouched() {
    let newer = database_bytes("CREATE TABLE future (x); PRAGMA user_version = 99;");
    let (dir, err) = assert_refused(
        &newer,
        |err| matches!(err, Error::NewerSchema { found: 99, known, .. } if *known == SCHEMA_VERSION),
    );
    assert!(err.to_string().contains("newer"), "{err}");
    let err = History::open_read_only(dir.path()).unwrap_err();
    assert!(matches!(err, Error::NewerSchema { .. }), "{err:?}");
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_left_untouched() {
    let garbage: Vec<u8> = (0..10_000u32).map(|n| (n * 7 % 251) as u8).collect();
    let (dir, err) = assert_refused(&garbage, |err| matches!(err, Error::CorruptDatabase { .. }));
    let message = err.to_string();
    assert!(
        message.contains("move it away to start a new history"),
        "{message}"
    );
    let err = History::open_read_only(dir.path()).unwrap_err();
    assert!(matches!(err, Error::CorruptDatabase { .. }), "{err:?}");
}

#[test]
fn a_damaged_database_fails_the_check_and_is_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut history = History::open(dir.path()).unwrap();
        let batches: Vec<_> = (0..500).map(|n| numbered(BOB, n, 0..2)).collect();
        history.insert(&batches).unwrap();
    }
    // Scribble over the pages after the first, keeping the header.
    let mut bytes = fs::read(dir.path().join(HISTORY_FILE)).unwrap();
    assert!(bytes.len() > 16_384, "{}", bytes.len());
    bytes[8_192..16_384].fill(0x5a);
    assert_refused(&bytes, |err| matches!(err, Error::CorruptDatabase { .. }));
}

#[test]
fn another_kind_of_database_is_refused() {
    let other = database_bytes("CREATE TABLE batches (x)");
    let (_dir, err) = assert_refused(&other, |err| matches!(err, Error::CorruptDatabase { .. }));
    assert!(err.to_string().contains("another kind"), "{err}");
}

#[test]
fn a_full_disk_loses_only_the_failed_batches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(HISTORY_FILE);
    let kept = numbered(BOB, 1, 0..10);
    {
        let mut history = History::open(dir.path()).unwrap();
        history.insert(std::slice::from_ref(&kept)).unwrap();
        let pages: i64 = history
            .conn
            .pragma_query_value(None, "page_count", |row| row.get(0))
            .unwrap();
        history
            .conn
            .pragma_update(None, "max_page_count", pages)
            .unwrap();
        let mut big = batch(BOB, 1, 10, &[]);
        big.texts = vec!["x".repeat(200); 2_000];
        let small = numbered(BOB, 2, 0..1);
        let err = history.insert(&[small, big]).unwrap_err();
        assert!(matches!(err, Error::DiskFull { .. }), "{err:?}");
        assert_names(&err, &path, "the disk is full");
        // The connection is still usable, and nothing of the call is there.
        assert_eq!(history.next_line(ROOM, BOB, 1).unwrap(), 10);
        assert_eq!(history.next_line(ROOM, BOB, 2).unwrap(), 0);
        assert_eq!(history.insert(&[numbered(BOB, 1, 10..11)]).unwrap(), [1]);
    }
    let mut history = History::open(dir.path()).unwrap();
    let stored = history.recent(ROOM, 100).unwrap();
    assert_eq!(numbers(&stored), (0..11).collect::<Vec<_>>());
    history.session().unwrap();
    history.mark_delivered_through(ROOM, BOB, 1, 3).unwrap();
}

#[test]
fn an_empty_file_is_set_up_from_scratch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(HISTORY_FILE);
    fs::write(&path, b"").unwrap();
    let err = History::open_read_only(dir.path()).unwrap_err();
    assert!(matches!(err, Error::NoHistory { .. }), "{err:?}");

    let mut history = History::open(dir.path()).unwrap();
    let version: i64 = history
        .conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(history.insert(&[numbered(BOB, 1, 0..1)]).unwrap(), [1]);
}

#[test]
fn a_missing_directory_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("a").join("b");
    let history = History::open(&data).unwrap();
    assert_eq!(history.path(), data.join(HISTORY_FILE));

    let blocked = dir.path().join("file");
    fs::write(&blocked, b"in the way").unwrap();
    let err = History::open(&blocked).unwrap_err();
    assert!(matches!(err, Error::CreateDir { .. }), "{err:?}");
}

#[test]
fn a_reader_sees_what_a_running_writer_committed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(HISTORY_FILE);
    let err = History::open_read_only(dir.path()).unwrap_err();
    assert!(matches!(err, Error::NoHistory { .. }), "{err:?}");
    assert_names(&err, &path, "no history");

    let mut writer = History::open(dir.path()).unwrap();
    writer.insert(&[batch(BOB, 1, 0, &["one"])]).unwrap();
    let mut reader = History::open_read_only(dir.path()).unwrap();
    let err = reader.session().unwrap_err();
    assert!(matches!(err, Error::Database { .. }), "{err:?}");
    let session = writer.session().unwrap();
    assert_eq!(reader.session().unwrap(), session);
    writer.insert(&[batch(BOB, 1, 1, &["two"])]).unwrap();
    assert_eq!(
        texts(&reader.query(&Filter::default(), 10).unwrap()),
        ["one", "two"]
    );
    let err = reader.insert(&[batch(BOB, 1, 2, &["three"])]).unwrap_err();
    assert!(matches!(err, Error::Database { .. }), "{err:?}");
    assert_names(&err, &path, "readable and writable");
    let err = reader.mark_delivered_through(ROOM, BOB, 1, 1).unwrap_err();
    assert!(matches!(err, Error::Database { .. }), "{err:?}");

    // After the writer is gone (and its log folded in), still readable.
    drop(writer);
    let reader = History::open_read_only(dir.path()).unwrap();
    assert_eq!(reader.query(&Filter::default(), 10).unwrap().len(), 2);
}

#[test]
fn a_bad_stored_value_is_reported_as_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(HISTORY_FILE);
    let mut history = History::open(dir.path()).unwrap();
    history.insert(&[numbered(BOB, 1, 0..2)]).unwrap();
    history
        .conn
        .execute_batch("PRAGMA ignore_check_constraints = ON; UPDATE batches SET status = 'lost';")
        .unwrap();
    let err = history.recent(ROOM, 10).unwrap_err();
    assert!(matches!(err, Error::CorruptDatabase { .. }), "{err:?}");
    assert_names(&err, &path, "unknown message status 'lost'");

    // Texts that do not split into the row's count of lines.
    history
        .conn
        .execute_batch("UPDATE batches SET status = 'received', texts = 'one line';")
        .unwrap();
    for err in [
        history.recent(ROOM, 10).unwrap_err(),
        history
            .range(ROOM, BOB, 1, 0, 2, Take::lines(10))
            .unwrap_err(),
    ] {
        assert!(matches!(err, Error::CorruptDatabase { .. }), "{err:?}");
        assert_names(&err, &path, "a batch of 2 lines holds 1 texts");
    }
}

#[test]
fn in_memory_answers_like_a_file_and_keeps_nothing() {
    let mut history = History::in_memory().unwrap();
    assert_eq!(history.path(), Path::new(":memory:"));
    let session = history.session().unwrap();
    assert_eq!(history.session().unwrap(), session);
    let lines = batch(ME, session, 0, &["hi"]);
    let new = history.insert(std::slice::from_ref(&lines)).unwrap();
    assert_eq!(new, [1]);
    assert_eq!(history.unsent(ROOM, ME, session).unwrap(), [lines]);
    let other = History::in_memory().unwrap();
    assert!(other.query(&Filter::default(), 10).unwrap().is_empty());
}

#[test]
fn ids_times_and_statuses_are_formatted() {
    assert_eq!(
        message_id("room:r/x", "A", 1, 2),
        "room:r/x/A/0000000000000001/2"
    );
    assert_eq!(
        message_id("peer:B", "A", u64::MAX, u64::MAX),
        "peer:B/A/ffffffffffffffff/18446744073709551615"
    );
    assert_eq!(rfc3339(1_795_633_445_123), "2026-11-25T19:04:05.123Z");
    assert_eq!(rfc3339(951_782_400_007), "2000-02-29T00:00:00.007Z");
    assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59.999Z");
    // Always three digits of a second, even where they are zeros.
    assert_eq!(rfc3339(1_795_633_445_000), "2026-11-25T19:04:05.000Z");
    assert_eq!(rfc3339(1_795_633_445_100), "2026-11-25T19:04:05.100Z");
    for ts_ms in [
        0,
        7,
        1_000,
        951_782_400_007,
        1_795_633_445_120,
        253_402_300_799_999,
    ] {
        assert_eq!(parse_rfc3339(&rfc3339(ts_ms)), Some(ts_ms), "{ts_ms}");
    }
    assert_eq!(
        parse_rfc3339("2026-11-25T19:04:05Z"),
        Some(1_795_633_445_000)
    );
    assert_eq!(parse_rfc3339("1969-12-31T23:59:59.999Z"), None);
    assert_eq!(parse_rfc3339("2026-13-25T19:04:05Z"), None);
    for status in [
        Status::Queued,
        Status::Sent,
        Status::Delivered,
        Status::Received,
    ] {
        assert_eq!(Status::parse(status.as_str()), Some(status));
        assert_eq!(status.to_string(), status.as_str());
        assert_eq!(
            serde_json::to_string(&status).unwrap(),
            format!("\"{status}\"")
        );
    }
}

#[test]
fn every_error_names_the_file() {
    let path = PathBuf::from("/data/history.sqlite3");
    let errors = [
        Error::DiskFull { path: path.clone() },
        Error::NoHistory { path: path.clone() },
        Error::Locked { path: path.clone() },
        Error::NewerSchema {
            path: path.clone(),
            found: 3,
            known: 1,
        },
        Error::OlderSchema {
            path: path.clone(),
            found: 1,
            known: 2,
        },
        Error::CorruptDatabase {
            path: path.clone(),
            reason: "r".into(),
        },
        Error::Database {
            path: path.clone(),
            cause: rusqlite::Error::QueryReturnedNoRows,
        },
        Error::Lock {
            path: path.clone(),
            cause: io::Error::from(io::ErrorKind::PermissionDenied),
        },
    ];
    for error in &errors {
        assert_names(error, &path, "");
    }
}
