//! `/autobahn`: a plain echo for the Autobahn|Testsuite, enabled by
//! `--autobahn-echo`. Limits are raised to 16 MiB (the suite sends messages
//! that large) and there are no heartbeats (a ping in the middle of a case
//! fails it). Never enable it in production.

use axum::extract::State;
use axum::response::Response;
use futures::SinkExt;
use yawc::frame::{Frame, OpCode};
use yawc::Options;

use crate::state::AppState;

const LIMIT: usize = 16 * 1024 * 1024;

pub async fn handler(
    State(state): State<AppState>,
    upgrade: super::upgrade::WsUpgrade,
) -> Response {
    // Compression with context takeover, not the production endpoints'
    // no-context-takeover: the runner (kosoku 0.1.0) cannot grade a server
    // that answers `server_no_context_takeover` (its compression cases fail
    // inside the runner, before any frame is checked). Our own tests and
    // the browser tests cover what the production endpoints negotiate.
    let options = Options::default()
        .with_limits(LIMIT + 1, LIMIT + 1)
        .with_utf8()
        .with_balanced_compression()
        .with_no_delay();
    let shutdown = state.shutdown.clone();
    super::spawn_connection(&state, upgrade, options, move |accepted| async move {
        let mut ws = accepted.ws;
        loop {
            let frame = tokio::select! {
                frame = ws.next_frame() => frame,
                () = shutdown.cancelled() => break,
            };
            let frame = match frame {
                Ok(frame) => frame,
                Err(e) => {
                    super::finish_after(&mut ws, &e).await;
                    break;
                }
            };
            let echo = match frame.opcode() {
                OpCode::Text => Frame::text(frame.into_payload()),
                OpCode::Binary => Frame::binary(frame.into_payload()),
                OpCode::Close => {
                    // yawc queued the echo of the close; send it.
                    super::finish(&mut ws).await;
                    break;
                }
                _ => continue,
            };
            if ws.send(echo).await.is_err() {
                break;
            }
        }
    })
}
