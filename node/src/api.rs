//! The local HTTP API: a thin axum shell over the node actor's command channel.
//!
//! Every handler sends one bounded command with a oneshot reply; nothing here touches
//! the ledger or the store directly. Routes are listed in `api_types`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use crate::api_types::ApiError;
use crate::runtime::{Command, CommandError};

/// The longest `wait_ms` a client may ask for.
const WAIT_MS_MAX: u64 = 300_000;

#[derive(Clone)]
struct Api {
    commands: mpsc::Sender<Command>,
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(ApiError { error: msg.into() })).into_response()
}

impl Api {
    /// Sends a command and waits for its reply, mapping a stopped node to 503.
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, Response> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await.map_err(|_| {
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the node is shutting down; try again after it restarts",
            )
        })?;
        rx.await.map_err(|_| {
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the node is shutting down; try again after it restarts",
            )
        })
    }
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

async fn submit(State(api): State<Api>, body: Bytes) -> Response {
    match api
        .ask(|reply| Command::Submit {
            bytes: body.to_vec(),
            reply,
        })
        .await
    {
        Ok(Ok(s)) => Json(s).into_response(),
        Ok(Err(e)) => command_error(e),
        Err(r) => r,
    }
}

async fn status(State(api): State<Api>) -> Response {
    match api.ask(|reply| Command::Status { reply }).await {
        Ok(s) => Json(s).into_response(),
        Err(r) => r,
    }
}

async fn balance(State(api): State<Api>, Path(account): Path<String>) -> Response {
    match api.ask(|reply| Command::Balance { account, reply }).await {
        Ok(Ok(b)) => Json(b).into_response(),
        Ok(Err(e)) => command_error(e),
        Err(r) => r,
    }
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
    let rx = match api.ask(|reply| Command::Watch { id, reply }).await {
        Ok(Ok(rx)) => rx,
        Ok(Err(e)) => return command_error(e),
        Err(r) => return r,
    };
    // The watch starts with the record's current standing and changes once it is committed.
    let mut rx: tokio::sync::watch::Receiver<crate::api_types::Submitted> = rx;
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
    match api.ask(|reply| Command::History { id, reply }).await {
        Ok(Ok(h)) => Json(h).into_response(),
        Ok(Err(e)) => command_error(e),
        Err(r) => r,
    }
}

async fn block(State(api): State<Api>, Path(height): Path<u64>) -> Response {
    match api.ask(|reply| Command::Block { height, reply }).await {
        Ok(Ok(b)) => Json(b).into_response(),
        Ok(Err(e)) => command_error(e),
        Err(r) => r,
    }
}

async fn export(State(api): State<Api>) -> Response {
    match api.ask(|reply| Command::Export { reply }).await {
        Ok(Ok(bytes)) => {
            ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
        }
        Ok(Err(e)) => command_error(e),
        Err(r) => r,
    }
}

async fn genesis(State(api): State<Api>) -> Response {
    match api.ask(|reply| Command::Genesis { reply }).await {
        Ok(text) => ([(header::CONTENT_TYPE, "application/toml")], text).into_response(),
        Err(r) => r,
    }
}

/// The router, for tests and for `serve`.
pub fn router(commands: mpsc::Sender<Command>) -> Router {
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
        .with_state(Api { commands })
}

/// Binds the API address (so a busy port fails start-up with a clear error).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// Serves the API until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    commands: mpsc::Sender<Command>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(commands))
        .with_graceful_shutdown(shutdown)
        .await
}
