//! Who is asking: the signed-in user of a browser session, the owner of an API bearer token,
//! and the client's address (for rate limits).

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{HeaderMap, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use tower_sessions::Session;

use super::{AppError, AppState, HtmlError, csrf};
use crate::domain::{User, UserId};

const USER_KEY: &str = "user_id";
/// The account's session epoch when this session signed in (see migration 0012).
const EPOCH_KEY: &str = "session_epoch";
/// The cookie that marks a browser that has logged in to an account before.
pub const DEVICE_COOKIE: &str = "lector_device";

/// The signed-in user of a browser session. Without one, pages redirect to the log-in page
/// (htmx requests get `HX-Redirect` so the whole page goes there).
pub struct CurrentUser(pub User);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        match session_user(&session, state).await {
            Ok(Some(user)) => {
                note_user(parts, &user);
                Ok(CurrentUser(user))
            }
            Ok(None) if parts.headers.contains_key("hx-request") => {
                Err(([("hx-redirect", "/login")], "log in again").into_response())
            }
            Ok(None) => Err(Redirect::to("/login").into_response()),
            Err(error) => Err(HtmlError(error).into_response()),
        }
    }
}

/// Tells the request log who this request was for.
fn note_user(parts: &Parts, user: &User) {
    if let Some(slot) = parts.extensions.get::<super::observe::RequestUser>() {
        slot.set(user.id.as_str());
    }
}

/// The user the session belongs to, if someone is signed in: the account still exists and
/// its sessions have not been ended since this one signed in (a changed password, "log out
/// everywhere").
pub async fn session_user(session: &Session, state: &AppState) -> Result<Option<User>, AppError> {
    let read = |e| AppError::Internal(anyhow::anyhow!("reading the session: {e}"));
    let Some(id) = session.get::<UserId>(USER_KEY).await.map_err(read)? else {
        return Ok(None);
    };
    let epoch = session
        .get::<i64>(EPOCH_KEY)
        .await
        .map_err(read)?
        .unwrap_or(0);
    Ok(state.accounts.session_user(&id, epoch).await?)
}

/// Signs `user` in under the account's current `session_epoch`: a new session id (so one
/// planted before log-in is worthless) and a new CSRF token.
pub async fn start_session(
    session: &Session,
    user: &User,
    session_epoch: i64,
) -> Result<(), AppError> {
    let write = |e| AppError::Internal(anyhow::anyhow!("writing the session: {e}"));
    session
        .cycle_id()
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("renewing the session: {e}")))?;
    session
        .insert(USER_KEY, user.id.clone())
        .await
        .map_err(write)?;
    session
        .insert(EPOCH_KEY, session_epoch)
        .await
        .map_err(write)?;
    csrf::renew(session).await?;
    Ok(())
}

/// The browser's device cookie, if it sent one.
pub fn device_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(tower_sessions::cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == DEVICE_COOKIE)
        .map(|cookie| cookie.value().to_owned())
}

/// `Set-Cookie` for a device token: a year, only over https when the site is, never to
/// scripts.
pub fn set_device_cookie(token: &str, secure: bool) -> axum::http::HeaderValue {
    let cookie = tower_sessions::cookie::Cookie::build((DEVICE_COOKIE, token.to_owned()))
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(tower_sessions::cookie::SameSite::Lax)
        .max_age(tower_sessions::cookie::time::Duration::days(365))
        .build();
    axum::http::HeaderValue::from_str(&cookie.to_string())
        .expect("a hex token makes a valid header")
}

/// A redirect to `to` that also gives the browser its device cookie, when it gets one.
pub fn redirect_with_device(to: &str, device: Option<&str>, secure: bool) -> Response {
    let mut response = Redirect::to(to).into_response();
    if let Some(token) = device {
        (response.headers_mut()).append(header::SET_COOKIE, set_device_cookie(token, secure));
    }
    response
}

/// Signs out: the session and everything in it is deleted.
pub async fn end_session(session: &Session) -> Result<(), AppError> {
    session
        .flush()
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("deleting the session: {e}")))
}

/// The owner of the request's `Authorization: Bearer` token. Without a valid one: 401 with
/// `WWW-Authenticate`.
pub struct ApiUser(pub User);

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers)?;
        match state.accounts.authenticate(token).await? {
            Some(user) => {
                note_user(parts, &user);
                Ok(ApiUser(user))
            }
            None => Err(AppError::Unauthorized { invalid: true }),
        }
    }
}

/// The token of `Authorization: Bearer …`. No header: 401; another scheme or junk: 401 that
/// says the token is invalid.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, AppError> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or(AppError::Unauthorized { invalid: false })?;
    value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or(AppError::Unauthorized { invalid: true })
}

/// The client's address: the peer, or (behind `LECTOR_TRUSTED_PROXY_HOPS` proxies) the entry
/// of `X-Forwarded-For` the nearest trusted proxy saw. Entries further left can be forged by
/// the client, so they are not used.
pub struct ClientIp(pub String);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string());
        Ok(ClientIp(client_ip(
            &parts.headers,
            peer,
            state.config.trusted_proxy_hops,
        )))
    }
}

fn client_ip(headers: &HeaderMap, peer: Option<String>, hops: usize) -> String {
    let peer = peer.unwrap_or_else(|| "unknown".into());
    if hops == 0 {
        return peer;
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    match forwarded.len().checked_sub(hops) {
        Some(index) => forwarded[index].to_owned(),
        None => forwarded.first().map_or(peer, |first| (*first).to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_address_comes_from_trusted_hops_only() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.7, 10.0.0.2".parse().unwrap(),
        );
        let peer = Some("127.0.0.1".to_owned());
        assert_eq!(client_ip(&headers, peer.clone(), 0), "127.0.0.1");
        assert_eq!(client_ip(&headers, peer.clone(), 1), "10.0.0.2");
        assert_eq!(client_ip(&headers, peer.clone(), 2), "203.0.113.7");
        assert_eq!(client_ip(&HeaderMap::new(), peer, 1), "127.0.0.1");
    }
}
