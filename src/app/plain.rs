//! Running a chat over the plain protocol (`--plain`): the classic mode.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};

use super::{Chat, End, Error, Inbound, Outbound, Role, SendError};
use crate::chat::{DialTarget, Event, Notice, Received};
use crate::classic::{self, Incoming, Outgoing};

/// At most this many peers are being turned away at once; more are closed
/// without the busy line.
const MAX_TURNING_AWAY: usize = 8;

/// Pause after a failed accept (for example, out of file descriptors) so a
/// persistent failure does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

pub(super) async fn run(role: Role, max_line: usize, chat: &mut Chat<'_>) -> Result<(), Error> {
    let config = classic::Config {
        max_line,
        ..classic::Config::default()
    };
    match role {
        Role::Connect(target) => {
            let addr = match target {
                DialTarget::Address(addr) => addr,
                DialTarget::Multiaddr(addr) => return Err(Error::MultiaddrInPlainMode(addr)),
            };
            if !chat
                .show(Event::Connecting {
                    to: addr.to_string(),
                })
                .await
            {
                return Ok(());
            }
            let session = tokio::select! {
                session = classic::connect(&addr, config) => session?,
                _ = chat.stopped() => return Ok(()),
            };
            if !chat.show(Event::Connected).await {
                return Ok(());
            }
            let (mut incoming, mut outgoing) = session.split();
            chat.run(&mut incoming, &mut outgoing, std::future::pending())
                .await;
            Ok(())
        }
        Role::Listen { port } => {
            let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
            let listener = classic::Listener::bind(addr, config).await?;
            if !chat
                .show(Event::Listening {
                    addr: listener.local_addr()?,
                })
                .await
            {
                return Ok(());
            }
            loop {
                if !chat.show(Event::Waiting).await {
                    return Ok(());
                }
                let session = loop {
                    tokio::select! {
                        accepted = listener.accept() => match accepted {
                            Ok(session) => break session,
                            Err(e) => {
                                chat.show(Event::Notice(Notice::ConnectionError(e.to_string()))).await;
                                tokio::time::sleep(ACCEPT_BACKOFF).await;
                            }
                        },
                        _ = chat.stopped() => return Ok(()),
                    }
                };
                if !chat
                    .show(Event::PeerConnected {
                        from: session.peer_addr(),
                    })
                    .await
                {
                    return Ok(());
                }
                let (mut incoming, mut outgoing) = session.split();
                let others = turn_away_others(&listener, chat.events);
                match chat.run(&mut incoming, &mut outgoing, others).await {
                    End::PeerLeft => continue,
                    End::InputClosed | End::Stopped => return Ok(()),
                }
            }
        }
    }
}

impl Inbound for Incoming {
    async fn next(&mut self) -> Result<Received, String> {
        Incoming::next(self).await.map_err(|e| e.to_string())
    }

    fn try_next(&mut self) -> Option<Received> {
        Incoming::try_next(self)
    }
}

impl Outbound for Outgoing {
    async fn queue(&mut self, text: &str) -> Result<(), SendError> {
        Outgoing::queue(self, text).await.map_err(send_error)
    }

    async fn flush(&mut self) -> Result<(), SendError> {
        Outgoing::flush(self).await.map_err(send_error)
    }

    async fn close(&mut self) -> Result<(), SendError> {
        Outgoing::close(self).await.map_err(send_error)
    }
}

fn send_error(error: classic::Error) -> SendError {
    match error {
        classic::Error::MessageTooLong { limit, .. } => SendError::TooLong { limit },
        other => SendError::Failed(other.to_string()),
    }
}

/// Turns away every peer that connects while a chat runs. Never returns
/// while the front end is open.
async fn turn_away_others(listener: &classic::Listener, events: &mpsc::Sender<Event>) {
    let slots = Arc::new(Semaphore::new(MAX_TURNING_AWAY));
    loop {
        let session = match listener.accept().await {
            Ok(session) => session,
            Err(_) => {
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let from = session.peer_addr();
        if let Ok(slot) = Arc::clone(&slots).try_acquire_owned() {
            tokio::spawn(async move {
                session.turn_away().await;
                drop(slot);
            });
        }
        if events
            .send(Event::Notice(Notice::TurnedAway { from }))
            .await
            .is_err()
        {
            return;
        }
    }
}
