//! Live progress of one document as Server-Sent Events (`/documents/{id}/events`): the
//! document page's progress box is swapped by the htmx SSE extension whenever the document
//! moves on, instead of the browser asking every second. The server reads the document's
//! state at the workers' poll interval, so the stream works whichever process (or machine)
//! runs the job, and sends only what changed. `static/live.js` falls back to polling
//! `/documents/{id}/progress` where the stream cannot be opened.

use crate::domain::DocumentId;
use std::{convert::Infallible, time::Duration};

use axum::{
    extract::{Path, State},
    response::{
        IntoResponse,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures_util::{StreamExt, stream};
use tokio_util::sync::CancellationToken;

use super::{documents::ProgressFragment, render, views::DocumentSummary};
use crate::{
    app::documents::Documents,
    domain::{DocumentStatus, User},
    http::{AppState, HtmlError, auth::CurrentUser},
};

/// How long one stream stays open; the browser's EventSource then reconnects by itself, so
/// a forgotten tab does not hold a connection (and a database read per interval) forever.
const STREAM_LIFETIME: Duration = Duration::from_secs(600);

/// How soon the browser reconnects after the stream ends.
const RECONNECT_AFTER: Duration = Duration::from_secs(2);

/// The stream of one document's progress: `progress` events carrying the progress box's
/// HTML, then one `done` event when the document has finished, which ends the stream.
pub async fn events(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<DocumentId>,
) -> Result<impl IntoResponse, HtmlError> {
    // Someone else's (or no) document is a 404 before any stream starts.
    state.documents.get_owned(&user, &id).await?;
    let watch = Watch {
        documents: state.documents.clone(),
        user,
        id,
        every: state.config.poll_interval,
        stopping: state.stopping.clone(),
        started: tokio::time::Instant::now(),
        last: None,
        ended: false,
    };
    let events = stream::unfold(watch, |mut watch| async move {
        let events = watch.next_events().await?;
        Some((events, watch))
    })
    .flat_map(|events| stream::iter(events.into_iter().map(Ok::<Event, Infallible>)));
    // nginx (Elastic Beanstalk's proxy) buffers responses unless told not to: the events
    // would reach the browser in bursts, or only when the stream ends.
    Ok((
        [("x-accel-buffering", "no")],
        Sse::new(events).keep_alive(KeepAlive::default()),
    ))
}

/// What one stream knows between reads.
struct Watch {
    documents: Documents,
    user: User,
    id: DocumentId,
    every: Duration,
    stopping: CancellationToken,
    started: tokio::time::Instant,
    /// What the last `progress` event showed.
    last: Option<(DocumentStatus, i64, i64)>,
    ended: bool,
}

impl Watch {
    /// The events of the next read (often none); `None` ends the stream.
    async fn next_events(&mut self) -> Option<Vec<Event>> {
        if self.ended || self.started.elapsed() > STREAM_LIFETIME {
            return None;
        }
        if self.last.is_some() {
            tokio::select! {
                // Shutting down: end the stream so the server can stop (the browser
                // reconnects to another instance, or here once it is back).
                _ = self.stopping.cancelled() => return None,
                _ = tokio::time::sleep(self.every) => {}
            }
        }
        // A document deleted meanwhile ends the stream; the reconnection gets a 404.
        let document = self.documents.get_owned(&self.user, &self.id).await.ok()?;
        let mut events = Vec::new();
        let state = (document.status, document.pages_done, document.pages_failed);
        if self.last != Some(state) {
            let first = self.last.is_none();
            self.last = Some(state);
            let html = render(&ProgressFragment {
                doc: DocumentSummary::from(&document),
            })
            .ok()?
            .0;
            let event = Event::default().event("progress").data(html);
            events.push(if first {
                event.retry(RECONNECT_AFTER)
            } else {
                event
            });
        }
        if document.status.is_finished() {
            self.ended = true;
            events.push(
                Event::default()
                    .event("done")
                    .data(document.status.as_str()),
            );
        }
        Some(events)
    }
}
