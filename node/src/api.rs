//! The local HTTP API: a thin axum shell over the node actor's mailbox.
//!
//! Every handler sends one bounded command through `runtime::ingress::Mailbox` and waits
//! for its reply; nothing here touches the ledger or the store directly. Routes are listed
//! in `api_types`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::api_types::ApiError;
use crate::runtime::ingress::{CommandError, Mailbox, Stopped};

/// The longest `wait_ms` a client may ask for.
const WAIT_MS_MAX: u64 = 300_000;

#[derive(Clone)]
struct Api {
    mailbox: Mailbox,
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(ApiError { error: msg.into() })).into_response()
}

/// A stopped node answers 503.
fn stopped(_: Stopped) -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the node is shutting down; try again after it restarts",
    )
}

fn command_error(e: CommandError) -> Response {
    match e {
        CommandError::BadRequest(m) => error(StatusCode::BAD_REQUEST, m),
        CommandError::Refused(m) => error(StatusCode::UNPROCESSABLE_ENTITY, m),
        CommandError::NotFound(m) => error(StatusCode::NOT_FOUND, m),
        CommandError::Busy(m) => error(StatusCode::SERVICE_UNAVAILABLE, m),
        CommandError::Internal(m) => error(StatusCode::INTERNAL_SERVER_ERROR, m),
    }
}

/// A JSON answer, a refusal, or 503 if the node stopped.
fn json<T: serde::Serialize>(answer: Result<Result<T, CommandError>, Stopped>) -> Response {
    match answer {
        Ok(Ok(t)) => Json(t).into_response(),
        Ok(Err(e)) => command_error(e),
        Err(s) => stopped(s),
    }
}

async fn submit(State(api): State<Api>, body: Bytes) -> Response {
    json(api.mailbox.submit(body.to_vec()).await)
}

async fn status(State(api): State<Api>) -> Response {
    match api.mailbox.status().await {
        Ok(s) => Json(s).into_response(),
        Err(s) => stopped(s),
    }
}

async fn balance(State(api): State<Api>, Path(account): Path<String>) -> Response {
    json(api.mailbox.balance(account).await)
}

#[derive(Deserialize)]
struct WaitQuery {
    wait_ms: Option<u64>,
}

async fn record(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> Response {
    let wait = Duration::from_millis(q.wait_ms.unwrap_or(0).min(WAIT_MS_MAX));
    // The watch starts with the record's current standing and changes once it is committed.
    let mut rx = match api.mailbox.watch(id).await {
        Ok(Ok(rx)) => rx,
        Ok(Err(e)) => return command_error(e),
        Err(s) => return stopped(s),
    };
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let current = rx.borrow_and_update().clone();
        if current.status != "pending" || tokio::time::Instant::now() >= deadline {
            return Json(current).into_response();
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => continue,
            Ok(Err(_)) | Err(_) => return Json(rx.borrow().clone()).into_response(),
        }
    }
}

async fn history(State(api): State<Api>, Path(id): Path<String>) -> Response {
    json(api.mailbox.history(id).await)
}

async fn block(State(api): State<Api>, Path(height): Path<u64>) -> Response {
    json(api.mailbox.block(height).await)
}

async fn export(State(api): State<Api>) -> Response {
    match api.mailbox.export().await {
        Ok(Ok(bytes)) => {
            ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
        }
        Ok(Err(e)) => command_error(e),
        Err(s) => stopped(s),
    }
}

async fn genesis(State(api): State<Api>) -> Response {
    match api.mailbox.genesis().await {
        Ok(text) => ([(header::CONTENT_TYPE, "application/toml")], text).into_response(),
        Err(s) => stopped(s),
    }
}

/// The router, for tests and for `serve`.
pub fn router(mailbox: Mailbox) -> Router {
    Router::new()
        .route("/v1/records", post(submit))
        .route("/v1/records/{id}", get(record))
        .route("/v1/status", get(status))
        .route("/v1/balance/{account}", get(balance))
        .route("/v1/history/{id}", get(history))
        .route("/v1/block/{height}", get(block))
        .route("/v1/log", get(export))
        .route("/v1/genesis", get(genesis))
        .layer(DefaultBodyLimit::max(
            protocol::limits::RECORD_BYTES_MAX + 1024,
        ))
        .with_state(Api { mailbox })
}

/// Binds the API address (so a busy port fails start-up with a clear error).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// Serves the API until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    mailbox: Mailbox,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(mailbox))
        .with_graceful_shutdown(shutdown)
        .await
}
