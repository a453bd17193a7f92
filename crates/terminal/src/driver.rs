//! The tokio driver: runs one operation of the engine against a host over TCP. Each
//! journal write is committed before the effects after it — so a request never leaves
//! before its reversal record is on disk — and every wait is bounded by the engine's timer.
//! A terminal whose journal names a TLS CA connects over TLS (`Journal::tls`): the handshake
//! is part of connecting, and a failed one is a request not sent (L01), as is a host that
//! answers a plain frame with TLS.

use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use poskit_keystore::tls::{Client, is_handshake_refusal};

use crate::engine::{Command, Config, Effect, Event, Outcome, Terminal};
use crate::journal::{Journal, JournalError};
use crate::wire::{is_tls_answer, read_frame};

/// How long opening a connection may take.
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// How long writing one request may take (a frame is at most 8 KiB: only a peer that
/// stopped reading holds it this long).
pub const WRITE_TIMEOUT_MS: u64 = 5_000;

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error(transparent)]
    Journal(#[from] JournalError),
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A connection to the host: plain TCP or TLS over it.
trait Link: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Link for T {}
type Stream = Box<dyn Link>;

/// Connects to `host` within [`CONNECT_TIMEOUT_MS`], then does the TLS handshake when the
/// terminal has TLS (`Err`: its set-up failed); the error is why, in one line.
async fn open(host: &str, tls: Option<&Result<Client, String>>) -> Result<Stream, String> {
    let connect = tokio::time::timeout(
        Duration::from_millis(CONNECT_TIMEOUT_MS),
        TcpStream::connect(host),
    )
    .await;
    let tcp = match connect {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("{host}: {e}")),
        Err(_) => return Err(format!("{host}: connect timed out")),
    };
    let _ = tcp.set_nodelay(true);
    match tls {
        None => Ok(Box::new(tcp)),
        Some(Err(why)) => Err(format!("TLS: {why}")),
        Some(Ok(client)) => match client.connect(tcp).await {
            Ok(s) => Ok(Box::new(s)),
            Err(e) => Err(format!("{host}: {e}")),
        },
    }
}

/// Writes `frame` within [`WRITE_TIMEOUT_MS`]; false when it failed or took too long (then
/// part of it may have left, and the connection is not to be used again).
async fn write_within(stream: &mut Stream, frame: &[u8]) -> bool {
    let write = stream.write_all(frame);
    matches!(
        tokio::time::timeout(Duration::from_millis(WRITE_TIMEOUT_MS), write).await,
        Ok(Ok(()))
    )
}

/// Runs `command` to its outcome: loads the engine from the journal, talks to `host`,
/// journals as it goes. A journal failure stops the operation before anything more is sent.
pub async fn run(
    journal: &mut Journal,
    host: &str,
    command: Command,
) -> Result<Outcome, DriverError> {
    let (cfg, _) = journal.config()?;
    run_with_config(journal, cfg, host, command).await
}

/// [`run`] with settings that differ from the journal's for this operation only (test
/// switches): nothing of them is written to the journal, so a crash cannot leave them set.
pub async fn run_with_config(
    journal: &mut Journal,
    cfg: Config,
    host: &str,
    command: Command,
) -> Result<Outcome, DriverError> {
    let snapshot = journal.snapshot()?;
    // The TLS set-up is read from its files once per operation; a file gone is said when
    // the request cannot go out.
    let tls = journal.tls()?.map(|files| Client::new(&files, host));
    let mut terminal = Terminal::new(cfg, snapshot);
    let mut stream: Option<Stream> = None;
    let mut deadline: Option<(Instant, u64)> = None;
    let mut effects = terminal.handle(now_ms(), Event::Command(command));
    loop {
        let mut next: Option<Event> = None;
        for effect in effects.drain(..) {
            if next.is_some() {
                // The request could not go out: what the engine asked after it is moot,
                // it answers the NotSent event with new effects.
                break;
            }
            match effect {
                Effect::Journal(ops) => journal.apply(&ops, now_ms())?,
                Effect::Send { frame, token } => {
                    if stream.is_none() {
                        match open(host, tls.as_ref()).await {
                            Ok(s) => stream = Some(s),
                            Err(why) => next = Some(Event::NotSent { token, why }),
                        }
                    }
                    if let Some(s) = &mut stream
                        && !write_within(s, &frame).await
                    {
                        // It may or may not have left: the timer decides (and reverses).
                        stream = None;
                    }
                }
                Effect::Timer { ms, token } => {
                    deadline = Some((Instant::now() + Duration::from_millis(ms), token))
                }
                Effect::Done(outcome) => return Ok(*outcome),
            }
        }
        let event = match next {
            Some(e) => e,
            None => {
                let Some((at, token)) = deadline else {
                    // Nothing in flight and no outcome: the engine is idle.
                    return Ok(crate::engine::Outcome {
                        operation: "none",
                        approved: false,
                        code: crate::code::LocalCode::CANCELLED.into(),
                        txn: None,
                        reversal: crate::engine::ReversalState::None,
                        notes: vec![crate::note::Note::NothingDone],
                        balance: None,
                        settlement: None,
                        institutions: None,
                    });
                };
                let wait = tokio::time::sleep_until(at.into());
                tokio::pin!(wait);
                match &mut stream {
                    Some(s) => {
                        tokio::select! {
                            read = read_frame(s) => match read {
                                Ok(f) => Event::Response(f),
                                // A TLS host took the plain frame for a bad TLS record:
                                // it never read the request.
                                Err(e) if is_tls_answer(&e) => {
                                    stream = None;
                                    Event::NotSent { token, why: format!("{host}: {e}") }
                                }
                                // The same for a TLS host that refused the handshake
                                // (TLS 1.3: after the client's side of it ended).
                                Err(e) if is_handshake_refusal(&e) => {
                                    stream = None;
                                    let why = format!("{host}: the host refused the TLS handshake: {e}");
                                    Event::NotSent { token, why }
                                }
                                Err(_) => {
                                    // The connection broke: no answer can come on it.
                                    stream = None;
                                    (&mut wait).await;
                                    Event::Timeout { token }
                                }
                            },
                            _ = &mut wait => {
                                // A frame may be half read: this connection is done.
                                stream = None;
                                Event::Timeout { token }
                            }
                        }
                    }
                    None => {
                        wait.await;
                        Event::Timeout { token }
                    }
                }
            }
        };
        // The engine sets a new timer with each request it sends.
        deadline = None;
        effects = terminal.handle(now_ms(), event);
    }
}
