//! rust-p2p-chat: a serverless chat in which peers talk directly.
//!
//! The binary is a thin shell over this library. Another program can use
//! the same engine to listen or connect, send lines and receive events,
//! without any terminal:
//!
//! ```
//! use rust_p2p_chat::classic::{self, Config, Received};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! runtime.block_on(async {
//!     let listener = classic::Listener::bind("127.0.0.1:0".parse()?, Config::default()).await?;
//!     let address = listener.local_addr()?.to_string().parse()?;
//!
//!     let (alice, bob) = tokio::join!(listener.accept(), classic::connect(&address, Config::default()));
//!     let (mut alice, mut bob) = (alice?, bob?);
//!
//!     bob.send("hello, alice").await?;
//!     assert_eq!(alice.next_event().await?, Received::Message("hello, alice".into()));
//!
//!     drop(bob);
//!     assert_eq!(alice.next_event().await?, Received::Disconnected);
//!     Ok(())
//! })
//! # }
//! ```
//!
//! # Where things are
//!
//! - [`chat`]: plain data and pure logic — [`Event`](chat::Event) and
//!   [`Command`](chat::Command), line splitting with a size limit, making peer
//!   text safe for a terminal (and JSON safe to print), address parsing. No
//!   I/O. Start here to change what a user sees: every status line is written
//!   in [`Event::render`](chat::Event::render).
//! - [`classic`]: the plain-protocol engine (TCP, one line per message).
//! - [`net`]: the secure engine on rust-libp2p (Noise, Yamux, gossipsub
//!   rooms with the wire format in [`net::room_frame`], mDNS, the direct
//!   message stream protocol in [`net::frame`], fetching missed lines in
//!   [`net::fetch`]); one task owns the swarm, the rest holds a
//!   [`net::Client`].
//! - [`chat::room`]: rooms, members and display names, as pure logic.
//! - [`chat::delivery`]: delivery in rooms as a state machine that does no
//!   I/O (ordering, gaps and fetches, the outbox, what is stored and
//!   acknowledged, hellos and sync): inputs in, actions out, tested by a
//!   deterministic simulator in `tests/delivery.rs`.
//! - [`identity`]: our key on disk, fingerprints of peer IDs.
//! - [`store`]: what is remembered between runs: known and trusted peers,
//!   and the message history in SQLite ([`store::History`], one row per
//!   batch of lines, run on its own thread behind a [`store::Store`]
//!   handle), with the lock that keeps one program per data directory.
//! - [`app`]: runs a chat between a front end and an engine; the only place
//!   that knows both. The chat loop is written once for both protocols;
//!   slash commands of the secure chat are handled there.
//! - [`ui`]: front ends (pipes, interactive line editor). They speak only
//!   `Command` and `Event`; add a front end here.
//! - [`cli`]: flags and the interactive prompts.
//!
//! Engines import `chat` and never each other; front ends import `app` and
//! `chat`, never an engine. To add a slash command: parse it in
//! [`chat::command`], act on it in `app`. To change what a user sees:
//! [`chat::Event::render`].

pub mod app;
pub mod chat;
pub mod classic;
pub mod cli;
pub mod identity;
pub mod net;
mod private_file;
pub mod store;
pub mod ui;

#[cfg(test)]
pub(crate) mod test_alloc;
