//! The accept loop, with the two timeouts that keep a slow client from holding a connection
//! for ever (slowloris), whatever proxy stands in front: the request's headers must arrive
//! within `LECTOR_HTTP_HEADER_TIMEOUT_SECS` (hyper closes the connection otherwise: no
//! request was read, so there is nothing to answer), and its body may not pause for longer
//! than `LECTOR_HTTP_BODY_TIMEOUT_SECS` between two reads (answered with 408 and the
//! connection closed). `axum::serve` has no setting for either, hence this loop, which is
//! otherwise axum's: HTTP/1 and HTTP/2, the client's address as `ConnectInfo`, and a
//! graceful shutdown that lets requests in flight finish.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes, HttpBody},
    extract::{ConnectInfo, Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use http_body::Frame;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, time::Sleep};
use tower_http::add_extension::AddExtension;

use super::{AppError, HtmlError};

/// Serves `app` on `listener` until `shutdown` resolves, then waits for the requests in
/// flight.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors, or a connection reset before it was accepted: the
                    // listener itself is fine, so wait a moment rather than spin or stop.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(AddExtension::new(app.clone(), ConnectInfo(peer)));
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            builder.http2().timer(TokioTimer::new());
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(client.address = %peer, error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Set when a request's body stopped arriving for longer than the timeout.
#[derive(Clone, Default)]
struct Stalled(Arc<AtomicBool>);

/// How the request body is received: `LECTOR_HTTP_BODY_TIMEOUT_SECS`, and how much of a body
/// the handler left unread is read and thrown away so that its answer arrives.
#[derive(Debug, Clone, Copy)]
pub struct BodyReading {
    /// The longest pause between two pieces of a body.
    pub pause_timeout: Duration,
    /// The most left-over bytes read before giving up and closing the connection.
    pub drain_limit: u64,
}

/// The request body, shared between the handler (who reads it through [`PausingBody`]) and
/// [`bound_body_pauses`], who takes back what is left once the handler has answered.
type SharedBody = Arc<std::sync::Mutex<Option<Body>>>;

/// Middleware: bounds the pause between two reads of the request body. Whoever reads the
/// body (a handler, the CSRF check) sees an error when it stalls; the answer is then 408,
/// whatever error the reader made of it, and the connection is closed.
///
/// An answer given before the body was read (a 429 to an upload over the rate limit, a 401)
/// would otherwise be lost: the connection closes with the body still arriving, and the
/// client sees it broken instead of the answer. So what is left is read and thrown away
/// first, up to [`BodyReading::drain_limit`].
pub async fn bound_body_pauses(
    State(reading): State<BodyReading>,
    request: Request,
    next: Next,
) -> Response {
    let stalled = Stalled::default();
    let api = request.uri().path().starts_with("/api/");
    let expects_continue = request
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let shared: SharedBody = Arc::default();
    let request = request.map(|body| {
        *shared.lock().expect("not poisoned") = Some(body);
        Body::new(PausingBody {
            inner: shared.clone(),
            timeout: reading.pause_timeout,
            pause: None,
            stalled: stalled.clone(),
        })
    });
    let mut response = next.run(request).await;
    if !stalled.0.load(Ordering::Relaxed) {
        // What the handler left is still in `shared`, read through the same timed body. A
        // client that waits for "100 Continue" has not sent a body nobody asked for.
        let leftover = PausingBody {
            inner: shared,
            timeout: reading.pause_timeout,
            pause: None,
            stalled: stalled.clone(),
        };
        if !expects_continue
            && !leftover.is_end_stream()
            && !drain(leftover, reading.drain_limit).await
        {
            close_after(&mut response);
        }
        if !stalled.0.load(Ordering::Relaxed) {
            return response;
        }
    }
    let error = AppError::Unreadable {
        status: StatusCode::REQUEST_TIMEOUT,
        detail: format!(
            "the request body stopped arriving: nothing came for {} s",
            reading.pause_timeout.as_secs()
        ),
    };
    let mut response = if api {
        error.into_response()
    } else {
        HtmlError(error).into_response()
    };
    close_after(&mut response);
    response
}

fn close_after(response: &mut Response) {
    response.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
}

/// Reads `body` to its end and drops it; `false` when it failed, stalled or passed `limit`.
async fn drain(body: PausingBody, limit: u64) -> bool {
    let mut body = std::pin::pin!(body);
    let mut read = 0u64;
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let Ok(frame) = frame else { return false };
        if let Some(data) = frame.data_ref() {
            read += data.len() as u64;
            if read > limit {
                return false;
            }
        }
    }
    true
}

/// A request body that fails when no data comes for `timeout` while it is being read. The
/// clock runs only while the reader waits, not while it works on what it was given.
struct PausingBody {
    inner: SharedBody,
    timeout: Duration,
    pause: Option<Pin<Box<Sleep>>>,
    stalled: Stalled,
}

impl HttpBody for PausingBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = match this.inner.lock().expect("not poisoned").as_mut() {
            Some(inner) => Pin::new(inner).poll_frame(cx),
            None => Poll::Ready(None),
        };
        if let Poll::Ready(frame) = polled {
            this.pause = None;
            return Poll::Ready(frame);
        }
        let timeout = this.timeout;
        let pause = this
            .pause
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if pause.as_mut().poll(cx).is_ready() {
            this.stalled.0.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(axum::Error::new(format!(
                "no data for {} s",
                timeout.as_secs()
            )))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        let inner = self.inner.lock().expect("not poisoned");
        inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let inner = self.inner.lock().expect("not poisoned");
        inner
            .as_ref()
            .map_or_else(|| http_body::SizeHint::with_exact(0), HttpBody::size_hint)
    }
}
