//! File transfers, as each side records them: what was offered, where it
//! stands, and, receiving, which pieces are held, verified; so a transfer
//! resumes after a crash without a new `/accept`, and `history --json`
//! lists it.

use rusqlite::{params, OptionalExtension, Row};

use super::{Error, History};
use crate::chat::transfer::TransferState;

/// Transfers `History::transfers` reads at most, newest kept.
pub const MAX_LISTED_TRANSFERS: usize = 1_000;

/// One transfer, sent or received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// Its number here (for `/accept N` and the like); 0 before it is
    /// stored.
    pub number: u64,
    /// The sender's id of it, which both sides use.
    pub id: u64,
    /// Whether we send it.
    pub outgoing: bool,
    /// The other side's peer ID.
    pub peer: String,
    /// The file's name (the safe name, receiving).
    pub name: String,
    /// Its size.
    pub size: u64,
    /// Its BLAKE3 hash.
    pub root: [u8; 32],
    /// Sending: the file sent. Receiving: the part file, then the file.
    pub path: Option<String>,
    /// Sending: the file's modification time when offered (ns).
    pub stamp: Option<i64>,
    /// Where it stands.
    pub state: TransferState,
    /// Receiving: the pieces held (see `chat::transfer::Have`).
    pub have: Option<Vec<u8>>,
    /// Bytes of pieces sent or received so far, again ones included.
    pub moved: u64,
    /// When it was offered (ms since 1970).
    pub ts_ms: u64,
}

/// What changes in a stored transfer (unset fields stay).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransferUpdate {
    /// A new state.
    pub state: Option<TransferState>,
    /// A new path.
    pub path: Option<String>,
    /// The pieces held now.
    pub have: Option<Vec<u8>>,
    /// Bytes moved now.
    pub moved: Option<u64>,
}

fn as_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

const COLUMNS: &str =
    "number, id, outgoing, peer, name, size, root, path, stamp, state, have, moved, ts_ms";

fn transfer_row(row: &Row<'_>) -> rusqlite::Result<Transfer> {
    let root: Vec<u8> = row.get(6)?;
    let state: String = row.get(9)?;
    let mut hash = [0u8; 32];
    if root.len() == 32 {
        hash.copy_from_slice(&root);
    }
    Ok(Transfer {
        number: row.get::<_, i64>(0)?.max(0) as u64,
        id: row.get::<_, i64>(1)? as u64,
        outgoing: row.get(2)?,
        peer: row.get(3)?,
        name: row.get(4)?,
        size: row.get::<_, i64>(5)?.max(0) as u64,
        root: hash,
        path: row.get(7)?,
        stamp: row.get(8)?,
        state: TransferState::parse(&state).unwrap_or(TransferState::Failed),
        have: row.get(10)?,
        moved: row.get::<_, i64>(11)?.max(0) as u64,
        ts_ms: row.get::<_, i64>(12)?.max(0) as u64,
    })
}

impl History {
    /// Records a transfer and returns its number, and whether it is new:
    /// one already recorded (the same peer, id and direction) keeps its
    /// number and everything else.
    ///
    /// # Errors
    ///
    /// When the database cannot be written.
    pub fn add_transfer(&mut self, transfer: &Transfer) -> Result<(u64, bool), Error> {
        self.write(|tx| {
            let added = tx.execute(
                "INSERT INTO transfers (id, outgoing, peer, name, size, root, path, stamp,
                     state, have, moved, ts_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (peer, id, outgoing) DO NOTHING",
                params![
                    transfer.id as i64,
                    transfer.outgoing,
                    transfer.peer,
                    transfer.name,
                    as_i64(transfer.size),
                    transfer.root.as_slice(),
                    transfer.path,
                    transfer.stamp,
                    transfer.state.as_str(),
                    transfer.have,
                    as_i64(transfer.moved),
                    as_i64(transfer.ts_ms),
                ],
            )?;
            tx.query_row(
                "SELECT number FROM transfers WHERE peer = ?1 AND id = ?2 AND outgoing = ?3",
                params![transfer.peer, transfer.id as i64, transfer.outgoing],
                |row| row.get::<_, i64>(0),
            )
            .map(|n| (n.max(0) as u64, added == 1))
        })
    }

    /// Changes a recorded transfer.
    ///
    /// # Errors
    ///
    /// When the database cannot be written.
    pub fn update_transfer(&mut self, number: u64, update: &TransferUpdate) -> Result<(), Error> {
        self.write(|tx| {
            tx.execute(
                "UPDATE transfers SET
                     state = coalesce(?2, state),
                     path = coalesce(?3, path),
                     have = coalesce(?4, have),
                     moved = coalesce(?5, moved)
                 WHERE number = ?1",
                params![
                    as_i64(number),
                    update.state.map(TransferState::as_str),
                    update.path,
                    update.have,
                    update.moved.map(as_i64),
                ],
            )
            .map(|_| ())
        })
    }

    /// One transfer by number.
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub fn transfer(&self, number: u64) -> Result<Option<Transfer>, Error> {
        self.read(|conn| {
            conn.query_row(
                &format!("SELECT {COLUMNS} FROM transfers WHERE number = ?1"),
                [as_i64(number)],
                transfer_row,
            )
            .optional()
        })
    }

    /// The transfers not yet ended (offered or accepted), oldest first (the
    /// newest [`MAX_LISTED_TRANSFERS`]): what a chat picks up on start.
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub fn unfinished_transfers(&self) -> Result<Vec<Transfer>, Error> {
        self.read(|conn| {
            let mut query = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM (SELECT * FROM transfers
                     WHERE state IN ('offered', 'accepted') ORDER BY number DESC LIMIT ?1)
                 ORDER BY number"
            ))?;
            let rows = query.query_map([MAX_LISTED_TRANSFERS as i64], transfer_row)?;
            rows.collect()
        })
    }

    /// The transfers recorded, oldest first (the newest
    /// [`MAX_LISTED_TRANSFERS`]).
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub fn transfers(&self) -> Result<Vec<Transfer>, Error> {
        self.read(|conn| {
            let mut query = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM (SELECT * FROM transfers ORDER BY number DESC LIMIT ?1)
                 ORDER BY number"
            ))?;
            let rows = query.query_map([MAX_LISTED_TRANSFERS as i64], transfer_row)?;
            rows.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(id: u64, outgoing: bool) -> Transfer {
        Transfer {
            number: 0,
            id,
            outgoing,
            peer: "12D3KooWpeer".into(),
            name: "a.bin".into(),
            size: u64::MAX,
            root: [7; 32],
            path: None,
            stamp: Some(5),
            state: TransferState::Offered,
            have: None,
            moved: 0,
            ts_ms: 1,
        }
    }

    #[test]
    fn a_transfer_is_recorded_once_and_updated() {
        let mut history = History::in_memory().expect("opens");
        let (first, new) = history.add_transfer(&offered(9, false)).expect("adds");
        let (again, new_again) = history.add_transfer(&offered(9, false)).expect("adds");
        let (other, _) = history.add_transfer(&offered(9, true)).expect("adds");
        assert!(new && !new_again);
        assert_eq!(first, again);
        assert_ne!(first, other);
        let update = TransferUpdate {
            state: Some(TransferState::Accepted),
            have: Some(vec![1, 2]),
            moved: Some(10),
            ..TransferUpdate::default()
        };
        history.update_transfer(first, &update).expect("updates");
        let stored = history.transfer(first).expect("reads").expect("is there");
        assert_eq!(stored.state, TransferState::Accepted);
        assert_eq!(stored.have, Some(vec![1, 2]));
        assert_eq!(stored.moved, 10);
        assert_eq!(stored.id, 9);
        assert_eq!(stored.root, [7; 32]);
        assert_eq!(history.transfers().expect("reads").len(), 2);
        assert_eq!(history.unfinished_transfers().expect("reads").len(), 2);
        let done = TransferUpdate {
            state: Some(TransferState::Done),
            ..TransferUpdate::default()
        };
        history.update_transfer(other, &done).expect("updates");
        assert_eq!(history.unfinished_transfers().expect("reads").len(), 1);
    }
}
