//! Who is calling: a bearer token (`Authorization: Bearer pk_…`, for scripts: no CSRF token
//! needed), or the console's session cookie (HttpOnly, SameSite=Strict) whose writes carry
//! the session's CSRF token in `X-CSRF-Token`. Logins are rate-limited per address and name.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::conns::{self, File};
use crate::users::{self, Role, User};
use crate::{ApiError, AppState};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "poskit_session";
/// Failed logins per address and name within [`LOGIN_WINDOW`] before the next is refused.
const LOGIN_FAILURES_MAX: u32 = 5;
const LOGIN_WINDOW: Duration = Duration::from_secs(300);
/// (address, name) pairs remembered at most.
const LOGIN_KEYS_MAX: usize = 10_000;

/// The caller of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user: User,
    pub from_addr: String,
}

impl Caller {
    /// The merchant this caller is kept to (`None`: sees every merchant).
    pub fn merchant(&self) -> Option<&str> {
        match self.user.role {
            Role::Merchant => self.user.merchant.as_deref(),
            Role::Operator | Role::Admin => None,
        }
    }

    /// Refuses unless the caller is an operator or an admin.
    pub fn operator(&self) -> Result<(), ApiError> {
        match self.user.role {
            Role::Operator | Role::Admin => Ok(()),
            Role::Merchant => Err(ApiError::forbidden("operators and admins only")),
        }
    }

    /// Refuses unless the caller is an admin.
    pub fn admin(&self) -> Result<(), ApiError> {
        match self.user.role {
            Role::Admin => Ok(()),
            _ => Err(ApiError::forbidden("admins only")),
        }
    }

    /// Whether the caller may see `mid`'s data.
    pub fn may_see(&self, mid: Option<&str>) -> bool {
        self.merchant().is_none_or(|own| mid == Some(own))
    }
}

fn peer(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let from_addr = peer(parts);
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let jar = CookieJar::from_headers(&parts.headers);
        let session = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned());
        let csrf_sent = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let writes = !matches!(parts.method, Method::GET | Method::HEAD);
        let data = state.data.clone();
        let found = tokio::task::spawn_blocking(move || {
            conns::with(File::Console, &data, |conn| {
                let found = match (bearer, session) {
                    (Some(token), _) => {
                        users::resolve(conn, &token, "token").map(|f| f.map(|(u, _)| (u, None)))
                    }
                    (None, Some(id)) => {
                        users::resolve(conn, &id, "session").map(|f| f.map(|(u, c)| (u, Some(c))))
                    }
                    (None, None) => Ok(None),
                };
                found.map_err(ApiError::internal)
            })
        })
        .await
        .map_err(ApiError::internal)??;
        let Some((user, csrf)) = found else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "log in (POST /api/v1/login) or send Authorization: Bearer TOKEN",
            ));
        };
        if let Some(expected) = csrf.flatten()
            && writes
            && csrf_sent.as_deref() != Some(expected.as_str())
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "a write from the console needs its X-CSRF-Token header",
            ));
        }
        Ok(Caller { user, from_addr })
    }
}

/// Failed logins by (address, name).
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<(String, String), (u32, Instant)>>,
}

impl LoginLimiter {
    fn blocked(&self, key: &(String, String)) -> bool {
        let Ok(map) = self.failures.lock() else {
            return true;
        };
        map.get(key)
            .is_some_and(|(n, since)| *n >= LOGIN_FAILURES_MAX && since.elapsed() < LOGIN_WINDOW)
    }

    fn failed(&self, key: (String, String)) {
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        if map.len() >= LOGIN_KEYS_MAX {
            map.retain(|_, (_, since)| since.elapsed() < LOGIN_WINDOW);
        }
        let e = map.entry(key).or_insert((0, Instant::now()));
        if e.1.elapsed() >= LOGIN_WINDOW {
            *e = (0, Instant::now());
        }
        e.0 += 1;
    }

    fn succeeded(&self, key: &(String, String)) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(key);
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub name: String,
    pub password: String,
}

/// Logs in: sets the session cookie; answers the user and the CSRF token for writes.
#[utoipa::path(post, path = "/api/v1/login", request_body = Login,
    responses((status = 200, description = "logged in: {user, csrf}"),
              (status = 401, description = "wrong name or password"),
              (status = 429, description = "too many failed attempts")))]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    jar: CookieJar,
    body: Result<Json<Login>, JsonRejection>,
) -> Result<(CookieJar, Json<Value>), ApiError> {
    let Json(login) = body.map_err(ApiError::of_json)?;
    let key = (addr.ip().to_string(), login.name.clone());
    if state.logins.blocked(&key) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            "too many failed logins: wait 5 minutes",
        ));
    }
    let data = state.data.clone();
    let (name, password, from) = (login.name, login.password, key.0.clone());
    let made = tokio::task::spawn_blocking(move || {
        let conn = users::open(&data)?;
        let Some(user) = users::verify(&conn, &name, &password)? else {
            users::audit(&conn, &name, "login-failed", &name, &from, "")?;
            return Ok(None);
        };
        let (id, csrf) = users::new_session(&conn, &user.name)?;
        users::audit(&conn, &user.name, "login", &user.name, &from, "")?;
        Ok::<_, users::UserError>(Some((user, id, csrf)))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    let Some((user, id, csrf)) = made else {
        state.logins.failed(key);
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "wrong name or password",
        ));
    };
    state.logins.succeeded(&key);
    let cookie = Cookie::build((SESSION_COOKIE, id))
        .http_only(true)
        .secure(state.secure_cookies)
        .same_site(SameSite::Strict)
        .path("/")
        .build(); // a browser session's cookie; the host ends it after SESSION_MS
    Ok((jar.add(cookie), Json(json!({"user": user, "csrf": csrf}))))
}

/// Ends the session.
#[utoipa::path(post, path = "/api/v1/logout", responses((status = 200, description = "logged out")))]
pub async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    jar: CookieJar,
) -> Result<(CookieJar, Json<Value>), ApiError> {
    if let Some(id) = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned()) {
        let data = state.data.clone();
        tokio::task::spawn_blocking(move || {
            let conn = users::open(&data)?;
            users::end_session(&conn, &id)?;
            users::audit(
                &conn,
                &caller.user.name,
                "logout",
                &caller.user.name,
                &caller.from_addr,
                "",
            )
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    }
    Ok((
        jar.remove(Cookie::build(SESSION_COOKIE).path("/")),
        Json(json!({"logged_out": true})),
    ))
}
