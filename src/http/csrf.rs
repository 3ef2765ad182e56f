//! Cross-site request forgery protection for the browser UI: a synchroniser token kept in the
//! session, sent back with every state-changing request whatever its body: by htmx in the
//! `X-CSRF-Token` header (set once on `<body>`), by a url-encoded form in its `csrf_token`
//! field, by a multipart form in that field sent first; anything else is refused here, the
//! one check in front of every route. Plus a same-origin check on the `Origin` and
//! `Sec-Fetch-Site` headers that browsers add. The JSON API needs none of this:
//! it authenticates with bearer tokens, which a browser never sends on its own.

use std::task::Poll;

use axum::{
    body::{Body, BodyDataStream, Bytes},
    extract::{Request, State},
    http::{HeaderMap, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use futures_util::StreamExt;
use rand::Rng;
use subtle::ConstantTimeEq;
use tower_sessions::Session;

use super::{AppError, AppState, HtmlError};

const SESSION_KEY: &str = "csrf_token";
/// The form field that carries the token.
pub const FIELD: &str = "csrf_token";
const HEADER: &str = "x-csrf-token";
/// Largest url-encoded form the check reads (every such form here is tiny).
const MAX_FORM_BYTES: usize = 64 * 1024;

/// This session's token, created on first use.
pub async fn token(session: &Session) -> Result<String, AppError> {
    if let Some(token) = session
        .get::<String>(SESSION_KEY)
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("reading the session: {e}")))?
    {
        return Ok(token);
    }
    renew(session).await
}

/// A new token for this session (after log-in, so a token seen before does not carry over).
pub async fn renew(session: &Session) -> Result<String, AppError> {
    let token = hex::encode(rand::rng().random::<[u8; 32]>());
    session
        .insert(SESSION_KEY, token.clone())
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("writing the session: {e}")))?;
    Ok(token)
}

/// True when `sent` is the expected token (compared in constant time).
pub fn matches(sent: &[u8], expected: &str) -> bool {
    !expected.is_empty() && bool::from(sent.ct_eq(expected.as_bytes()))
}

/// Middleware: refuses a state-changing request that does not come from one of our pages:
/// another origin, or no valid token (in the header, or as a form's field).
pub async fn protect(
    State(state): State<AppState>,
    session: Session,
    request: Request,
    next: Next,
) -> Response {
    if request.method().is_safe() {
        return next.run(request).await;
    }
    if let Err(reason) = same_origin(request.headers(), state.config.public_url.as_deref()) {
        return forbidden(reason);
    }
    let expected = match session.get::<String>(SESSION_KEY).await {
        Ok(Some(token)) => token,
        _ => return forbidden("the form has expired: reload the page and try again"),
    };
    if let Some(sent) = request.headers().get(HEADER) {
        if matches(sent.as_bytes(), &expected) {
            return next.run(request).await;
        }
        return forbidden(MISSING_OR_WRONG);
    }
    // Kept as sent: a multipart boundary is case-sensitive (Chromium's has capitals).
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let media_type = content_type.to_ascii_lowercase();
    let checked = if media_type.starts_with("application/x-www-form-urlencoded") {
        with_form_token(request, &expected).await
    } else if media_type.starts_with("multipart/form-data") {
        with_multipart_token(request, &content_type, &expected).await
    } else {
        Err(forbidden(MISSING_OR_WRONG))
    };
    match checked {
        Ok(request) => next.run(request).await,
        Err(refusal) => refusal,
    }
}

/// The url-encoded form, read whole (it is small), when its token field is right.
async fn with_form_token(request: Request, expected: &str) -> Result<Request, Response> {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return Err(
            HtmlError(AppError::BadRequest("the form is too large".into())).into_response(),
        );
    };
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
    let sent = fields
        .iter()
        .find(|(name, _)| name == FIELD)
        .map(|(_, value)| value.as_bytes());
    match sent.is_some_and(|sent| matches(sent, expected)) {
        true => Ok(Request::from_parts(parts, Body::from(bytes))),
        false => Err(forbidden(MISSING_OR_WRONG)),
    }
}

const MISSING_OR_WRONG: &str =
    "the form's security token is missing or wrong: reload the page and try again";

/// The bytes a multipart form may send before its first field, the token, has been read:
/// more than the few hundred a token needs, and at least two of hyper's reads (~400 KiB
/// each), so a file sent in the same read as the token is not mistaken for a long token.
const MAX_MULTIPART_PREFIX: usize = 1024 * 1024;

/// Checks that the first field of a multipart body is `csrf_token` with the expected value
/// (so no file is read before the form is known to be ours), and gives the request back with
/// its body whole: what was read to find the token, then the rest, still streaming.
async fn with_multipart_token(
    request: Request,
    content_type: &str,
    expected: &str,
) -> Result<Request, Response> {
    let Ok(boundary) = multer::parse_boundary(content_type) else {
        return Err(HtmlError(AppError::BadRequest(
            "the form's multipart boundary is missing".into(),
        ))
        .into_response());
    };
    let (parts, body) = request.into_parts();
    let mut rest = body.into_data_stream();
    let mut read: Vec<Bytes> = Vec::new();
    let sent = first_field_token(&mut rest, &mut read, boundary).await;
    if !sent.is_some_and(|sent| matches(sent.as_bytes(), expected)) {
        return Err(forbidden(MISSING_OR_WRONG));
    }
    let replay = futures_util::stream::iter(read.into_iter().map(Ok::<_, axum::Error>));
    Ok(Request::from_parts(
        parts,
        Body::from_stream(replay.chain(rest)),
    ))
}

/// The value of the first field when it is the token field; every chunk taken from `body`
/// is kept in `read`.
async fn first_field_token(
    body: &mut BodyDataStream,
    read: &mut Vec<Bytes>,
    boundary: String,
) -> Option<String> {
    let mut budget = MAX_MULTIPART_PREFIX;
    let recorded = futures_util::stream::poll_fn(|cx| {
        let item = std::task::ready!(body.poll_next_unpin(cx));
        if let Some(Ok(chunk)) = &item {
            if chunk.len() > budget {
                return Poll::Ready(Some(Err(axum::Error::new("the form is too large"))));
            }
            budget -= chunk.len();
            read.push(chunk.clone());
        }
        Poll::Ready(item)
    });
    let limits =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().per_field(MAX_TOKEN_BYTES));
    let mut form = multer::Multipart::with_constraints(recorded, boundary, limits);
    let mut field = form.next_field().await.ok()??;
    if field.name() != Some(FIELD) {
        return None;
    }
    let mut value = Vec::new();
    while let Some(chunk) = field.chunk().await.ok()? {
        value.extend_from_slice(&chunk);
    }
    String::from_utf8(value).ok()
}

/// Longest token field read (a token is 64 hex characters).
const MAX_TOKEN_BYTES: u64 = 256;

/// Browsers say where a request comes from; refuse what another site sent.
fn same_origin(headers: &HeaderMap, public_url: Option<&str>) -> Result<(), &'static str> {
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
    if cross_site {
        return Err("this form was sent from another site");
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let origin_host = origin.split_once("://").map(|(_, host)| host);
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let public_host = public_url.and_then(|url| url.split_once("://").map(|(_, host)| host));
    match origin_host {
        Some(origin_host) if Some(origin_host) == host || Some(origin_host) == public_host => {
            Ok(())
        }
        _ => Err("this form was sent from another site"),
    }
}

fn forbidden(reason: &str) -> Response {
    HtmlError(AppError::Forbidden(reason.into())).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn requests_from_another_origin_are_refused() {
        let ours = headers(&[("host", "lector.test"), ("origin", "https://lector.test")]);
        assert!(same_origin(&ours, None).is_ok());
        let evil = headers(&[("host", "lector.test"), ("origin", "https://evil.test")]);
        assert!(same_origin(&evil, None).is_err());
        let fetch = headers(&[("host", "lector.test"), ("sec-fetch-site", "cross-site")]);
        assert!(same_origin(&fetch, None).is_err());
        let proxied = headers(&[
            ("host", "10.0.0.5:5000"),
            ("origin", "https://lector.example"),
        ]);
        assert!(same_origin(&proxied, Some("https://lector.example")).is_ok());
        assert!(same_origin(&headers(&[("origin", "null")]), None).is_err());
        assert!(same_origin(&HeaderMap::new(), None).is_ok());
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(matches(b"abc", "abc"));
        assert!(!matches(b"abd", "abc"));
        assert!(!matches(b"", ""));
    }
}
