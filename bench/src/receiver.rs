//! A receiving connection as a task: it tallies every marked message of the
//! current run, answers pings, and (for chat) sends at a set rate. The
//! scenario steers it through a small control channel.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use crate::tally::{Report, Run, Tally};
use crate::ws::{self, Conn, OP_CLOSE, OP_PING, OP_TEXT};

/// A sending plan for clients that also talk (chat).
#[derive(Clone, Copy)]
pub struct Talk {
    pub interval: Duration,
    pub until: Instant,
}

pub enum Ctl {
    Start(Arc<Run>, Option<Talk>),
    Finish(oneshot::Sender<Report>),
    Close,
}

/// What a receiver's connection is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Plain text frames (seed texts): nothing to do after the handshake.
    Text,
    /// `/ws/v1`: wait for `hello`, subscribe to the topic, wait for the reply.
    Typed,
}

/// Opens a connection ready to receive, with extra handshake headers.
pub async fn open_with(
    addr: std::net::SocketAddr,
    path: &str,
    protocol: Protocol,
    topic: &str,
    headers: &str,
) -> std::io::Result<Conn> {
    let mut conn = Conn::connect_with(addr, path, headers).await?;
    if protocol == Protocol::Typed {
        let within = Duration::from_secs(30);
        conn.expect_text(br#""type":"hello""#, within).await?;
        let cmd = format!(r#"{{"type":"subscribe","id":1,"topic":"{topic}"}}"#);
        conn.send_text(cmd.as_bytes()).await?;
        conn.expect_text(br#""type":"subscribed""#, within).await?;
    }
    conn.shrink();
    Ok(conn)
}

/// Runs a receiver until told to close.
pub async fn run(mut conn: Conn, mut ctl: mpsc::Receiver<Ctl>) {
    let mut tally = Tally::default();
    let mut closed: Option<String> = None;
    let mut talk: Option<(Talk, Arc<Run>)> = None;
    let mut ticker = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            biased;
            cmd = ctl.recv() => match cmd {
                Some(Ctl::Start(run, plan)) => {
                    tally.start(run.clone());
                    talk = plan.map(|p| (p, run));
                    if let Some((p, _)) = &talk {
                        ticker = tokio::time::interval(p.interval);
                        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
                    }
                }
                Some(Ctl::Finish(reply)) => {
                    talk = None;
                    let _ = reply.send(tally.report(closed.clone()));
                }
                Some(Ctl::Close) | None => {
                    if closed.is_none() {
                        conn.close().await;
                    }
                    return;
                }
            },
            at = ticker.tick(), if talk.is_some() && closed.is_none() => {
                let Some((plan, run)) = &talk else { continue };
                if at >= plan.until {
                    talk = None;
                    continue;
                }
                let seq = run.next_seq.fetch_add(1, Ordering::Relaxed);
                let intended = at.into_std().saturating_duration_since(run.epoch).as_nanos() as u64;
                run.mark_sent(seq, intended);
                if let Err(e) = conn.send_text(ws::marker(run.id, seq).as_bytes()).await {
                    closed = Some(format!("send failed: {e}"));
                }
            }
            n = conn.read_more(), if closed.is_none() => match n {
                Ok(0) => closed = Some("the server closed the connection".into()),
                Err(e) => closed = Some(e.to_string()),
                Ok(_) => {
                    if let Err(reason) = take_frames(&mut conn, &mut tally) {
                        closed = Some(reason);
                    }
                    if let Err(e) = conn.flush().await {
                        closed.get_or_insert(e.to_string());
                    }
                }
            },
        }
    }
}

/// Tallies every complete frame received; `Err` when the server closed.
fn take_frames(conn: &mut Conn, tally: &mut Tally) -> Result<(), String> {
    let now = tally.now_ns();
    let mut new = 0;
    let mut result = Ok(());
    loop {
        let frame = match conn.next_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => {
                result = Err(e.to_string());
                break;
            }
        };
        match frame.opcode {
            OP_TEXT => {
                let marker = if frame.compressed {
                    match ws::find_marker_compressed(conn.payload(&frame)) {
                        Ok(marker) => marker,
                        Err(e) => {
                            result = Err(format!("could not inflate a message: {e}"));
                            break;
                        }
                    }
                } else {
                    ws::find_marker(conn.payload(&frame))
                };
                if let Some(marker) = marker {
                    new += u64::from(tally.record(marker, now));
                }
            }
            OP_PING => conn.queue_pong_for(&frame),
            OP_CLOSE => {
                result = Err(ws::close_reason(conn.payload(&frame)));
                break;
            }
            _ => {}
        }
    }
    tally.publish_progress(new);
    result
}

/// Many receivers, steered together.
pub struct Group {
    ctls: Vec<mpsc::Sender<Ctl>>,
    tasks: JoinSet<()>,
}

impl Group {
    /// Opens `n` connections, `concurrency` handshakes at a time.
    pub async fn connect(
        addr: std::net::SocketAddr,
        paths: impl Fn(usize) -> String,
        n: usize,
        protocol: Protocol,
        topic: &str,
        headers: &str,
    ) -> Result<Group, String> {
        use futures::StreamExt;
        let conns: Vec<_> = futures::stream::iter((0..n).map(|i| {
            let path = paths(i);
            async move { open_with(addr, &path, protocol, topic, headers).await }
        }))
        .buffer_unordered(128)
        .collect()
        .await;
        let mut group = Group {
            ctls: Vec::with_capacity(n),
            tasks: JoinSet::new(),
        };
        for conn in conns {
            let conn = conn.map_err(|e| format!("connecting a client: {e}"))?;
            let (tx, rx) = mpsc::channel(4);
            group.ctls.push(tx);
            group.tasks.spawn(run(conn, rx));
        }
        Ok(group)
    }

    pub fn len(&self) -> usize {
        self.ctls.len()
    }

    pub async fn start(&self, run: &Arc<Run>, talk: Option<Talk>) {
        for ctl in &self.ctls {
            let _ = ctl.send(Ctl::Start(run.clone(), talk)).await;
        }
    }

    pub async fn finish(&self) -> Vec<Report> {
        let mut waiting = Vec::with_capacity(self.ctls.len());
        for ctl in &self.ctls {
            let (tx, rx) = oneshot::channel();
            if ctl.send(Ctl::Finish(tx)).await.is_ok() {
                waiting.push(rx);
            }
        }
        let mut reports = Vec::with_capacity(waiting.len());
        for rx in waiting {
            if let Ok(r) = rx.await {
                reports.push(r);
            }
        }
        reports
    }

    pub async fn close(mut self) {
        for ctl in &self.ctls {
            let _ = ctl.send(Ctl::Close).await;
        }
        while self.tasks.join_next().await.is_some() {}
    }
}
