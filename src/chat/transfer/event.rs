//! What the user is told about transfers, and how it reads.
//!
//! Names here are the safe names files land under (see
//! [`super::safe_name`]); what a peer says (a refusal's reason) is shown
//! inert like any peer text.

use std::fmt;

use super::human_size;
use crate::chat::sanitize::Inert;

/// Where a transfer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferState {
    /// Offered, not yet accepted or rejected.
    Offered,
    /// Accepted: pieces are moving, or will when both sides are there.
    Accepted,
    /// Complete and verified.
    Done,
    /// Declined by the receiver.
    Rejected,
    /// Stopped by either side.
    Cancelled,
    /// Given up (a lying sender, a file changed, a disk error).
    Failed,
}

impl TransferState {
    /// The state as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            TransferState::Offered => "offered",
            TransferState::Accepted => "accepted",
            TransferState::Done => "done",
            TransferState::Rejected => "rejected",
            TransferState::Cancelled => "cancelled",
            TransferState::Failed => "failed",
        }
    }

    /// The state a stored word names.
    pub fn parse(text: &str) -> Option<TransferState> {
        Some(match text {
            "offered" => TransferState::Offered,
            "accepted" => TransferState::Accepted,
            "done" => TransferState::Done,
            "rejected" => TransferState::Rejected,
            "cancelled" => TransferState::Cancelled,
            "failed" => TransferState::Failed,
            _ => return None,
        })
    }

    /// Whether nothing more happens to it.
    pub fn ended(self) -> bool {
        matches!(
            self,
            TransferState::Done
                | TransferState::Rejected
                | TransferState::Cancelled
                | TransferState::Failed
        )
    }
}

/// One transfer as `/files` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferLine {
    /// Its number, for `/accept`, `/reject` and `/cancel`.
    pub number: u64,
    /// Whether we send it.
    pub outgoing: bool,
    /// The other side, as shown.
    pub who: String,
    /// The file's name.
    pub name: String,
    /// Its size.
    pub size: u64,
    /// Bytes verified (received) or asked for (sent) so far.
    pub done: u64,
    /// Where it stands.
    pub state: TransferState,
    /// Bytes per second now, while it moves.
    pub rate: Option<u64>,
}

/// Something about a file transfer to tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileEvent {
    /// A peer offers a file.
    Offered {
        /// The transfer's number.
        number: u64,
        /// Who offers it.
        who: String,
        /// The name it would land under.
        name: String,
        /// Its size.
        size: u64,
    },
    /// An offer from a peer was refused without asking (too big, no
    /// room on disk).
    OfferRefused {
        /// Who offered it.
        who: String,
        /// The name.
        name: String,
        /// Its size.
        size: u64,
        /// Why.
        reason: String,
    },
    /// Our offer reached the peer.
    OfferSent {
        /// The transfer's number.
        number: u64,
        /// To whom.
        to: String,
        /// The name.
        name: String,
        /// Its size.
        size: u64,
    },
    /// Our offer could not be made.
    NotOffered {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// Receiving begins (or resumes).
    Receiving {
        /// The transfer's number.
        number: u64,
        /// The name.
        name: String,
        /// Its size.
        size: u64,
        /// Bytes already held, verified.
        held: u64,
    },
    /// How far a transfer is.
    Progress {
        /// The transfer's number.
        number: u64,
        /// The name.
        name: String,
        /// Bytes so far.
        done: u64,
        /// Its size.
        size: u64,
        /// Bytes per second over the last while.
        rate: u64,
        /// Whether we send it.
        outgoing: bool,
    },
    /// A file arrived whole and verified.
    Received {
        /// The transfer's number.
        number: u64,
        /// The name.
        name: String,
        /// Its size.
        size: u64,
        /// Where it is.
        path: String,
    },
    /// A file we sent arrived, verified by the receiver.
    Sent {
        /// The transfer's number.
        number: u64,
        /// The name.
        name: String,
        /// To whom.
        to: String,
    },
    /// The peer declined our offer.
    Declined {
        /// The transfer's number.
        number: u64,
        /// Who.
        who: String,
        /// The name.
        name: String,
    },
    /// A transfer stopped (by us or, with `by`, by the peer).
    Cancelled {
        /// The transfer's number.
        number: u64,
        /// The name.
        name: String,
        /// The peer that stopped it, if not us.
        by: Option<String>,
    },
    /// A transfer paused: the link dropped; it resumes when the peer is
    /// back.
    Paused {
        /// The transfer's number.
        number: u64,
        /// The name.
        name: String,
        /// Bytes held.
        done: u64,
        /// Its size.
        size: u64,
    },
    /// A transfer was given up.
    Failed {
        /// The transfer's number.
        number: u64,
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// `/files`.
    List(Vec<TransferLine>),
}

fn percent(done: u64, size: u64) -> u64 {
    if size == 0 {
        100
    } else {
        (u128::from(done) * 100 / u128::from(size)) as u64
    }
}

impl fmt::Display for FileEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileEvent::Offered {
                number,
                who,
                name,
                size,
            } => write!(
                f,
                "{} offers \"{}\" ({}) — /accept {number} or /reject {number}",
                Inert(who),
                Inert(name),
                human_size(*size)
            ),
            FileEvent::OfferRefused {
                who,
                name,
                size,
                reason,
            } => write!(
                f,
                "{} offered \"{}\" ({}): refused, {}",
                Inert(who),
                Inert(name),
                human_size(*size),
                Inert(reason)
            ),
            FileEvent::OfferSent {
                number,
                to,
                name,
                size,
            } => write!(
                f,
                "Offered \"{}\" ({}) to {} as transfer {number}; waiting for them to accept",
                Inert(name),
                human_size(*size),
                Inert(to)
            ),
            FileEvent::NotOffered { name, reason } => {
                write!(f, "Not offered \"{}\": {}", Inert(name), Inert(reason))
            }
            FileEvent::Receiving {
                number,
                name,
                size,
                held,
            } => {
                if *held == 0 {
                    write!(
                        f,
                        "Receiving \"{}\" ({}) as transfer {number}",
                        Inert(name),
                        human_size(*size)
                    )
                } else {
                    write!(
                        f,
                        "Resuming \"{}\" ({}) at {}%",
                        Inert(name),
                        human_size(*size),
                        percent(*held, *size)
                    )
                }
            }
            FileEvent::Progress {
                number,
                name,
                done,
                size,
                rate,
                outgoing,
            } => {
                let left = size.saturating_sub(*done);
                let eta = if *rate > 0 {
                    format!(", {} s left", left.div_ceil(*rate))
                } else {
                    String::new()
                };
                write!(
                    f,
                    "{} \"{}\" [{number}]: {}% ({} of {}), {}/s{eta}",
                    if *outgoing { "Sending" } else { "Receiving" },
                    Inert(name),
                    percent(*done, *size),
                    human_size(*done),
                    human_size(*size),
                    human_size(*rate),
                )
            }
            FileEvent::Received {
                name, size, path, ..
            } => write!(
                f,
                "Received \"{}\" ({}, verified) -> {}",
                Inert(name),
                human_size(*size),
                Inert(path)
            ),
            FileEvent::Sent { name, to, .. } => {
                write!(f, "Sent \"{}\" to {}", Inert(name), Inert(to))
            }
            FileEvent::Declined { who, name, .. } => {
                write!(f, "{} declined \"{}\"", Inert(who), Inert(name))
            }
            FileEvent::Cancelled { number, name, by } => match by {
                Some(who) => write!(
                    f,
                    "{} cancelled transfer {number} (\"{}\")",
                    Inert(who),
                    Inert(name)
                ),
                None => write!(f, "Cancelled transfer {number} (\"{}\")", Inert(name)),
            },
            FileEvent::Paused {
                number,
                name,
                done,
                size,
            } => write!(
                f,
                "Transfer {number} (\"{}\") paused at {}%: it resumes when the peer is back",
                Inert(name),
                percent(*done, *size)
            ),
            FileEvent::Failed {
                number,
                name,
                reason,
            } => write!(
                f,
                "Transfer {number} (\"{}\") failed: {}",
                Inert(name),
                Inert(reason)
            ),
            FileEvent::List(lines) => {
                if lines.is_empty() {
                    return write!(f, "No transfers");
                }
                write!(f, "Transfers:")?;
                for line in lines {
                    let rate = line
                        .rate
                        .map(|r| format!(", {}/s", human_size(r)))
                        .unwrap_or_default();
                    write!(
                        f,
                        "\n  {} {} {} \"{}\" {} of {} ({}%) {}{rate}",
                        line.number,
                        if line.outgoing { "to" } else { "from" },
                        Inert(&line.who),
                        Inert(&line.name),
                        human_size(line.done),
                        human_size(line.size),
                        percent(line.done, line.size),
                        line.state.as_str(),
                    )?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offer_reads_as_the_user_expects() {
        let offer = FileEvent::Offered {
            number: 3,
            who: "bob".into(),
            name: "a.txt".into(),
            size: 2048,
        };
        assert_eq!(
            offer.to_string(),
            "bob offers \"a.txt\" (2.0 KiB) — /accept 3 or /reject 3"
        );
    }

    #[test]
    fn peer_text_is_inert() {
        let refused = FileEvent::OfferRefused {
            who: "m\u{1b}[2J".into(),
            name: "x".into(),
            size: 1,
            reason: "\u{202e}no".into(),
        };
        let shown = refused.to_string();
        assert!(!shown.contains('\u{1b}'));
        assert!(!shown.contains('\u{202e}'));
    }

    #[test]
    fn states_round_trip() {
        for state in [
            TransferState::Offered,
            TransferState::Accepted,
            TransferState::Done,
            TransferState::Rejected,
            TransferState::Cancelled,
            TransferState::Failed,
        ] {
            assert_eq!(TransferState::parse(state.as_str()), Some(state));
        }
    }
}
