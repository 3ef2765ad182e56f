//! Cross-site request forgery protection for the browser UI: a synchroniser token kept in the
//! session, sent back by every state-changing form (a hidden `csrf_token` field) and by htmx
//! (the `X-CSRF-Token` header, set once on `<body>`), plus a same-origin check on the
//! `Origin` and `Sec-Fetch-Site` headers that browsers add. The JSON API needs none of this:
//! it authenticates with bearer tokens, which a browser never sends on its own.

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
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

/// The token a multipart form must carry in its `csrf_token` field, before any file (checked
/// while the upload streams, so a forged upload is refused before it is stored).
#[derive(Debug, Clone)]
pub struct ExpectedToken(pub String);

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

/// Middleware: refuses a state-changing request that does not come from one of our pages.
pub async fn protect(
    State(state): State<AppState>,
    session: Session,
    mut request: Request,
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
        return forbidden("the form's security token is wrong: reload the page and try again");
    }
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let (parts, body) = request.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
            return HtmlError(AppError::BadRequest("the form is too large".into())).into_response();
        };
        let fields: Vec<(String, String)> =
            serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
        let sent = fields
            .iter()
            .find(|(name, _)| name == FIELD)
            .map(|(_, value)| value.as_bytes());
        if !sent.is_some_and(|sent| matches(sent, &expected)) {
            return forbidden(
                "the form's security token is missing or wrong: reload the page and try again",
            );
        }
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    }
    if content_type.starts_with("multipart/form-data") {
        request.extensions_mut().insert(ExpectedToken(expected));
        return next.run(request).await;
    }
    forbidden("the form's security token is missing: reload the page and try again")
}

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
