//! poskit's HTTP API (DESIGN.md's `web` part): JSON under `/api/v1/`, its OpenAPI 3 document
//! at `/openapi.json`, for the users of `console.db` (roles merchant, operator, admin). No
//! business logic of its own: each route asks the host's store, `recon`, `monitor` or the
//! catalog, and keeps a merchant user to its own merchant's data.
//!
//! - [`users`]: users, sessions, tokens, the audit trail.
//! - [`auth`]: who is calling (a bearer token, or a session cookie with its CSRF token).
//! - [`api`]: the routes.
//! - [`recon`]: reconciliation's runs and breaks, and the steps of a dispute.
//! - [`page`]: `limit` and `after` of the list routes.
//! - [`admin`]: the fault plan, master data and users (admins).
//! - [`activity`]: the newest transactions, for the live page.
//! - [`console`]: the web console's pages (`/`, `/login`) and assets.

pub mod activity;
pub mod admin;
pub mod api;
pub mod auth;
pub mod conns;
pub mod console;
pub mod page;
pub mod recon;
pub mod tls;
pub mod users;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::net::TcpListener;

/// Request bodies larger than this are refused (413).
pub const BODY_BYTES_MAX: usize = 64 * 1024;

/// What every route reads.
#[derive(Clone)]
pub struct AppState {
    /// The host's data directory (`host.sqlite`, `stats.db`, `recon.db`, `console.db`).
    pub data: PathBuf,
    /// The same directory with where its key-encryption key comes from: master data
    /// writes (a terminal's master key is stored wrapped) open the ledger's secrets.
    pub dir: poskit_host::DataDir,
    pub logins: Arc<auth::LoginLimiter>,
    /// Cookies get `Secure` (served over TLS, or not on loopback).
    pub secure_cookies: bool,
    /// Requests reading the files at once: one core fewer than the machine has (at least
    /// one), so that API clients, however many, leave the host's writer a core.
    pub readers: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    pub fn new(data: PathBuf, secure_cookies: bool) -> AppState {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        AppState {
            dir: poskit_host::DataDir::existing(&data),
            data,
            logins: Arc::new(auth::LoginLimiter::default()),
            secure_cookies,
            readers: Arc::new(tokio::sync::Semaphore::new(cores.saturating_sub(1).max(1))),
        }
    }

    /// This state with the data directory's key-encryption key taken from `dir` (the
    /// host's `--kek-file`, an HSM) instead of `POSKIT_KEK` or the directory's own `kek`.
    pub fn with_dir(mut self, dir: poskit_host::DataDir) -> AppState {
        assert_eq!(dir.path, self.data, "the same data directory");
        self.dir = dir;
        self
    }
}

/// The one error shape: `{"error": {"code", "message"}}` with its status.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable: `bad_request`, `unauthorized`, `forbidden`, `not_found`, `csrf`,
    /// `too_many_attempts`, `too_large`, `unsupported_media_type`, `conflict` (a step a
    /// dispute cannot take now; a user, merchant or terminal that exists already),
    /// `refused` (a rule of the standard refuses it), `internal`.
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// A body that could not be read as the route's JSON: 400 naming the field, 413 when too
    /// large, 415 without a JSON content type.
    pub fn of_json(e: axum::extract::rejection::JsonRejection) -> ApiError {
        let (status, code) = match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            // Malformed JSON and wrong types alike (axum says 422 for the latter).
            _ => (StatusCode::BAD_REQUEST, "bad_request"),
        };
        ApiError::new(status, code, e.body_text())
    }

    /// A failure of ours: logged in full, told in a line.
    pub fn internal(error: impl std::fmt::Display) -> ApiError {
        tracing::warn!(error = %error, "console request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the host could not answer; the error is in its log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

/// Serves the API on `listener` until `stop` resolves: over TLS with `tls`, else plain.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = api::router(state).into_make_service_with_connect_info::<SocketAddr>();
    match tls {
        Some(config) => {
            use axum::serve::ListenerExt;
            // `tap_io` (doing nothing) is what gives a listener of our own the peer address
            // for `ConnectInfo`.
            let listener = tls::TlsListener::new(listener, config)?.tap_io(|_| {});
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
        }
    }
}
