//! Answering other members' fetches: from the recent lines kept in
//! memory, else from the store (lines from before a restart, or older).

use std::sync::Arc;

use super::{conversation, RoomChat};
use crate::app::Error;
use crate::chat::delivery::{Fetched, StreamId, Take};
use crate::net::fetch::MAX_FETCH_BYTES;
use crate::store::Store;

/// Lines one fetch is answered with at most.
const MAX_FETCH_LINES: usize = 16_384;

/// What one fetch is answered with at most, from memory or the store.
const FETCH_TAKE: Take = Take {
    lines: MAX_FETCH_LINES,
    bytes: MAX_FETCH_BYTES,
};

/// Fetches answered at once, at most; more wait for one to end. With
/// [`MAX_FETCH_BYTES`], what answers hold.
const MAX_SERVING: usize = 8;

impl RoomChat {
    /// Starts answering fetches. The task, and each answer's, are the
    /// chat's: they end with it.
    pub(super) fn serve_fetches(&mut self) -> Result<(), Error> {
        let mut requests = self.client.accept_fetches()?;
        let recent = Arc::clone(&self.recent);
        let store = self.secure.store.clone();
        self.tasks.spawn(async move {
            let mut answers = tokio::task::JoinSet::new();
            while let Some((_peer, mut fetch)) = requests.next().await {
                while answers.try_join_next().is_some() {}
                if answers.len() >= MAX_SERVING {
                    answers.join_next().await;
                }
                let recent = Arc::clone(&recent);
                let store = store.clone();
                answers.spawn(async move {
                    let Ok(Some((stream, from, to))) = fetch.request().await else {
                        return;
                    };
                    let kept = recent.lock().ok().and_then(|recent| {
                        let nick = recent.nick(&stream);
                        recent
                            .range(&stream, from, to, FETCH_TAKE)
                            .map(|range| (range, nick))
                    });
                    let reply = match kept {
                        Some(((first, texts, sent_ms), nick)) if first == from => Fetched {
                            first,
                            texts,
                            sent_ms,
                            nick,
                        },
                        _ => stored_range(&store, &stream, from, to).await,
                    };
                    let _ = fetch.reply(reply).await;
                });
            }
        });
        Ok(())
    }
}

/// Lines `from..=to` of a stream from the store, as far as they run on
/// without a hole.
async fn stored_range(store: &Store, stream: &StreamId, from: u64, to: u64) -> Fetched {
    let conversation = conversation(&stream.room);
    let (author, session) = (stream.author.clone(), stream.session);
    let to = to.saturating_add(1);
    let runs = store
        .read_range(&conversation, &author, session, from, to, FETCH_TAKE)
        .await;
    let mut reply = Fetched {
        first: from,
        ..Fetched::default()
    };
    if let Ok(runs) = runs {
        for run in runs {
            if run.first_line != reply.first + reply.texts.len() as u64 {
                break;
            }
            reply.nick = run.name.clone();
            reply
                .sent_ms
                .extend(std::iter::repeat_n(run.ts_ms, run.texts.len()));
            reply.texts.extend(run.texts);
        }
    }
    reply
}
