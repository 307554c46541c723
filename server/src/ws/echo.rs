//! `/ws`: the seed article's echo endpoint.
//!
//! Every text message is answered with `Message received: <text>`. Binary
//! messages are refused with close code 1003; a shutdown closes with 1001.

use axum::extract::State;
use axum::response::Response;
use futures::SinkExt;
use yawc::close::CloseCode;
use yawc::frame::{Frame, OpCode};

use crate::state::AppState;

pub async fn handler(
    State(state): State<AppState>,
    upgrade: super::upgrade::WsUpgrade,
) -> Response {
    let shutdown = state.shutdown.clone();
    let options = state.ws_options.clone();
    super::spawn_connection(&state, upgrade, options, move |accepted| async move {
        let mut ws = accepted.ws;
        loop {
            let frame = tokio::select! {
                frame = ws.next_frame() => frame,
                () = shutdown.cancelled() => {
                    super::close(&mut ws, CloseCode::Away, "server shutting down").await;
                    break;
                }
            };
            let frame = match frame {
                Ok(frame) => frame,
                Err(e) => {
                    super::finish_after(&mut ws, &e).await;
                    break;
                }
            };
            let reply = match frame.opcode() {
                OpCode::Text => Frame::text(format!("Message received: {}", frame.as_str())),
                OpCode::Binary => {
                    let why = "binary messages are not supported";
                    super::close(&mut ws, CloseCode::Unsupported, why).await;
                    break;
                }
                OpCode::Close => {
                    // yawc queued the echo of the close; send it.
                    super::finish(&mut ws).await;
                    break;
                }
                _ => continue,
            };
            if ws.send(reply).await.is_err() {
                break;
            }
        }
    })
}
