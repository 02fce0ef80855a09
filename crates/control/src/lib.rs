//! The control API (DESIGN decision 7): a small HTTP server, bound to localhost by default, that
//! turns requests into [`Command`]s for the node and returns the node's JSON answer.
//!
//! The node owns all state; this crate only speaks HTTP. Every command travels with a reply
//! channel, so a request sees the outcome of exactly its own command.
//!
//! | method | path | command |
//! |---|---|---|
//! | GET | `/status` | [`Command::Status`] |
//! | POST | `/drain`, `/undrain` | [`Command::Drain`], [`Command::Undrain`] |
//! | POST | `/maintenance/on`, `/maintenance/off` | [`Command::Maintenance`] |
//! | POST | `/reload` | [`Command::Reload`] |
//! | POST | `/fault/dns-drop`, `/fault/clear` | [`Command::Fault`] (lab only) |

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// How long a request waits for the node (a reload of large zones takes seconds).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// Fault injection for the lab: make the data plane stop answering, or answer again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    DnsDrop,
    Clear,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Status,
    Drain,
    Undrain,
    Maintenance(bool),
    Reload,
    Fault(Fault),
}

/// What the node says back: success or refusal, with a JSON body either way.
pub type Reply = Result<Value, Value>;

/// A command and where its answer goes.
pub struct Request {
    pub command: Command,
    pub reply: oneshot::Sender<Reply>,
}

/// Binds the control API on `addr`; the node receives commands on the returned channel.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(ControlServer, mpsc::Receiver<Request>)> {
    let listener = TcpListener::bind(addr).await?;
    let (sender, receiver) = mpsc::channel(16);
    Ok((ControlServer { listener, sender }, receiver))
}

pub struct ControlServer {
    listener: TcpListener,
    sender: mpsc::Sender<Request>,
}

impl ControlServer {
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until the task is dropped or aborted.
    pub async fn serve(self) -> std::io::Result<()> {
        let app = Router::new()
            .route("/status", get(|s| run(s, Command::Status)))
            .route("/drain", post(|s| run(s, Command::Drain)))
            .route("/undrain", post(|s| run(s, Command::Undrain)))
            .route(
                "/maintenance/on",
                post(|s| run(s, Command::Maintenance(true))),
            )
            .route(
                "/maintenance/off",
                post(|s| run(s, Command::Maintenance(false))),
            )
            .route("/reload", post(|s| run(s, Command::Reload)))
            .route(
                "/fault/dns-drop",
                post(|s| run(s, Command::Fault(Fault::DnsDrop))),
            )
            .route(
                "/fault/clear",
                post(|s| run(s, Command::Fault(Fault::Clear))),
            )
            .with_state(self.sender);
        axum::serve(self.listener, app).await
    }
}

async fn run(State(sender): State<mpsc::Sender<Request>>, command: Command) -> Response {
    let (reply, answer) = oneshot::channel();
    if sender.send(Request { command, reply }).await.is_err() {
        return unavailable("the node is shutting down");
    }
    match tokio::time::timeout(COMMAND_TIMEOUT, answer).await {
        Ok(Ok(Ok(body))) => (StatusCode::OK, axum::Json(body)).into_response(),
        Ok(Ok(Err(body))) => (StatusCode::CONFLICT, axum::Json(body)).into_response(),
        Ok(Err(_)) => unavailable("the node dropped the command"),
        Err(_) => unavailable("the node did not answer in time"),
    }
}

fn unavailable(why: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(serde_json::json!({ "error": why })),
    )
        .into_response()
}
