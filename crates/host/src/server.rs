//! The TCP server: CUP framing (2-byte length, TPDU, header), many terminals at once,
//! pipelined requests per connection, every wait bounded, faults applied, and a drain on
//! shutdown that lets in-flight requests finish and be answered. With TLS (`Server::tls`)
//! each connection does its handshake first (bounded; a failure is counted and logged at a
//! bounded rate) and then runs the same reader and write tasks over the TLS stream.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};

use crate::admission::{Admission, Admit, BadFrame, Conn};
use tokio::task::JoinSet;

use poskit_codec::CUP_POS;
use poskit_codec::frame::{self, FRAME_BYTES_MAX, LENGTH_BYTES};
use poskit_domain::{Identified, TransactionKind};

use crate::config::Limits;
use poskit_security::MacAlgorithm;

use crate::engine::{self, Answer, Injected, Input, IssuerVerdict, Parsed, Precheck, TerminalKeys};
use crate::faults::{Decision, Target};
use crate::logbudget::LogBudget;
use crate::pinhash::PinHasher;
use crate::store::StoreError;
use crate::switch::Divergence;
use crate::writer::{Job, Shared, Work};

/// Counters a running server keeps.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections: AtomicU64,
    pub requests: AtomicU64,
    pub approved: AtomicU64,
    pub dropped_by_faults: AtomicU64,
    /// Connections accepted and closed at once: no room, nothing to evict.
    pub refused: AtomicU64,
    /// Connections closed because their TLS handshake failed or did not end in time.
    pub tls_failed: AtomicU64,
}

/// Handshake failures logged per interval at most; the next line counts the rest.
pub const TLS_LOG_LINES_PER_INTERVAL_MAX: u32 = 10;
/// The interval of [`TLS_LOG_LINES_PER_INTERVAL_MAX`].
pub const TLS_LOG_INTERVAL_MS: u64 = 10_000;

/// TLS on the terminal port: the acceptor and the bounded log of failed handshakes.
pub struct Tls {
    acceptor: poskit_keystore::tls::TlsAcceptor,
    log: Mutex<LogBudget>,
}

impl Tls {
    pub fn new(config: Arc<poskit_keystore::tls::ServerConfig>) -> Tls {
        Tls {
            acceptor: poskit_keystore::tls::TlsAcceptor::from(config),
            log: Mutex::new(LogBudget::new(
                TLS_LOG_INTERVAL_MS,
                TLS_LOG_LINES_PER_INTERVAL_MAX,
            )),
        }
    }
}

pub struct Server {
    pub limits: Limits,
    pub shared: Arc<Shared>,
    pub queue: mpsc::Sender<Work>,
    pub stats: Arc<Stats>,
    /// For the [`Precheck`] of requests and the MAC of answers, done here on the
    /// connection tasks so that the one writer does not spend its time on DES.
    pub pins: Arc<PinHasher>,
    pub mac_algorithm: MacAlgorithm,
    /// Who gets a connection slot, who is evicted ([`crate::admission`]).
    pub admission: Arc<Admission>,
    /// What `/metrics` exports; `None` with metrics off (`HostConfig::metrics`).
    pub metrics: Option<Arc<poskit_monitor::Metrics>>,
    /// TLS on the terminal port; `None`: plain TCP.
    pub tls: Option<Tls>,
}

/// Serves until `shutdown` turns true, then drains: no new connection or frame is taken,
/// requests already read are processed and answered (within the drain timeout).
pub async fn serve(
    server: Arc<Server>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut connections = JoinSet::new();
    let refresher = {
        let queue = server.queue.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if queue.send(Work::Refresh).await.is_err() { break; }
                    }
                    _ = stop.changed() => break,
                }
            }
        })
    };
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors, typically: raise `ulimit -n` above
                // `connections_max`. Logged once per wait.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Never wait for a slot: at the limit the oldest unproven connection makes room,
        // and when none can, this one is closed at once (the client sees it at once).
        let conn = match server.admission.admit(peer.ip(), Instant::now()) {
            Admit::In(conn) => conn,
            Admit::Refused => {
                server.stats.refused.fetch_add(1, Ordering::Relaxed);
                if let Some(m) = &server.metrics {
                    m.connection_refused("no_room");
                }
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        server.stats.connections.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &server.metrics {
            m.connection_accepted();
        }
        connections.spawn(serve_one(
            server.clone(),
            stream,
            peer,
            conn,
            shutdown.clone(),
        ));
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    refresher.abort();
    let drain = Duration::from_millis(server.limits.drain_timeout_ms);
    let drained = tokio::time::timeout(drain, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = connections.len(),
            "drain timeout: closing connections still busy"
        );
        connections.abort_all();
    }
    Ok(())
}

/// One admitted connection to its end, its TLS handshake first when the server has TLS;
/// then its slot is given back.
async fn serve_one(
    server: Arc<Server>,
    stream: TcpStream,
    peer: SocketAddr,
    conn: Arc<Conn>,
    mut stop: watch::Receiver<bool>,
) {
    if server.tls.is_none() {
        let halves = stream.into_split();
        connection(server.clone(), halves, peer, conn.clone(), stop).await;
    } else if let Some(tls) = handshake(&server, stream, peer, &conn, &mut stop).await {
        let halves = tokio::io::split(tls);
        connection(server.clone(), halves, peer, conn.clone(), stop).await;
    }
    server.admission.release(&conn);
}

/// What a connection's write task is handed.
pub enum Outgoing {
    Frame(Vec<u8>),
    Close,
    /// A group's answers for this connection, straight from the writer, each with its
    /// job (what the connection kept of the request, and what it allocated for it).
    Answers(Vec<(Answer, Job)>),
    /// An answer with what the connection kept of its request (a job dropped unanswered).
    Answer(Box<Answer>, Box<Pending>),
}

/// What a connection keeps of a request while the writer has it: what to do with the
/// answer (faults that act after the writer, the log line, the MAC) and the request's
/// place in the pipeline, given back once the answer is written or dropped.
pub struct Pending {
    peer: SocketAddr,
    started: Instant,
    peek: Peek,
    after: AfterWriter,
    keys: Option<Arc<TerminalKeys>>,
    conn: Arc<Conn>,
    _in_flight: OwnedSemaphorePermit,
}

/// The fault plan's decisions that act on the answer.
struct AfterWriter {
    delay_ms: u32,
    close: bool,
    drop: bool,
    corrupt_mac: bool,
    fired: Vec<String>,
}

/// Why a connection closed (the `reason` of `poskit_connections_closed_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Closed {
    Shutdown,
    /// The write side ended: a write failed or timed out, or the fault plan closed it.
    WriteSide,
    Evicted,
    ByPeer,
    /// No frame within the idle or the first-frame timeout.
    Idle,
    Unreadable,
    ReadTimeout,
    /// The TLS handshake failed or did not end in time.
    TlsHandshake,
    /// Held by the tarpit, then closed: a bad frame past its address's budget.
    Held,
}

/// How a connection's write task ended, for its reader.
enum Ending {
    /// The write side is closed.
    Closed,
    /// The last answer is written and the write half is kept open: the connection is held
    /// ([`BadFrame::Hold`]).
    Hold,
}

impl Closed {
    fn as_str(self) -> &'static str {
        match self {
            Closed::Shutdown => "shutdown",
            Closed::WriteSide => "write_side",
            Closed::Evicted => "evicted",
            Closed::ByPeer => "peer_closed",
            Closed::Idle => "idle",
            Closed::Unreadable => "unreadable",
            Closed::ReadTimeout => "read_timeout",
            Closed::TlsHandshake => "tls_handshake",
            Closed::Held => "held",
        }
    }
}

/// The TLS handshake of a connection just admitted, within the handshake timeout (and the
/// first-frame timeout); `None` when it failed (counted, logged at a bounded rate, closed)
/// or the connection was evicted or the server stops meanwhile.
async fn handshake(
    server: &Server,
    stream: TcpStream,
    peer: SocketAddr,
    conn: &Conn,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<poskit_keystore::tls::server::TlsStream<TcpStream>> {
    let tls = server.tls.as_ref()?;
    let limit = poskit_keystore::tls::HANDSHAKE_TIMEOUT
        .min(Duration::from_millis(server.limits.first_frame_timeout_ms));
    // Why it failed, or why the server closed it first.
    let failed: Result<String, Closed> = tokio::select! {
        done = tokio::time::timeout(limit, tls.acceptor.accept(stream)) => match done {
            Ok(Ok(stream)) => return Some(stream),
            Ok(Err(e)) => Ok(e.to_string()),
            Err(_) => Ok(format!("not done within {} ms", limit.as_millis())),
        },
        _ = shutdown.changed() => Err(Closed::Shutdown),
        _ = conn.close.notified() => Err(Closed::Evicted),
    };
    let closed = failed
        .as_ref()
        .err()
        .copied()
        .unwrap_or(Closed::TlsHandshake);
    if let Some(m) = &server.metrics {
        m.connection_closed(closed.as_str());
    }
    let Ok(failed) = failed else {
        return None;
    };
    server.stats.tls_failed.fetch_add(1, Ordering::Relaxed);
    let _ = server.admission.bad_frame(conn, Instant::now());
    let allowed = tls
        .log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .allow(Instant::now());
    if let Some(suppressed) = allowed {
        tracing::warn!(%peer, reason = %failed, suppressed_before = suppressed, "TLS handshake failed; closing");
    }
    None
}

type Reader<R> = tokio::io::BufReader<R>;

async fn connection<R, W>(
    server: Arc<Server>,
    (rd, wr): (R, W),
    peer: SocketAddr,
    conn: Arc<Conn>,
    mut shutdown: watch::Receiver<bool>,
) where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let limits = &server.limits;
    // Pipelined requests arrive together: one read takes as many as are there.
    let mut rd = tokio::io::BufReader::with_capacity(FRAME_BYTES_MAX, rd);
    // Every message is a request in flight (its permit) or a close: twice the pipeline
    // depth never fills, so the writer thread's `try_send` always finds room.
    let (out_tx, out_rx) = mpsc::channel::<Outgoing>(limits.pipeline_depth_max * 2);
    let (closed_tx, mut closed_rx) = oneshot::channel::<Ending>();
    let writer = tokio::spawn(write_answers(
        server.clone(),
        wr,
        peer,
        out_rx,
        out_tx.downgrade(),
        closed_tx,
    ));
    let in_flight = Arc::new(Semaphore::new(limits.pipeline_depth_max));
    let mut tasks = JoinSet::new();
    let closed = loop {
        let buf =
            match next_frame(&mut rd, limits, &conn, peer, &mut shutdown, &mut closed_rx).await {
                Ok(buf) => buf,
                Err(why) => break why,
            };
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break Closed::Shutdown;
        };
        let ready = read_request(&server, buf, peer, &conn, permit);
        dispatch(&server, ready, &out_tx, &mut tasks).await;
        while tasks.try_join_next().is_some() {}
        if conn.is_evicted() {
            // At most one frame is read after an eviction.
            break Closed::Evicted;
        }
    };
    // Answer what was read before closing: the waiting tasks end, then every request in
    // flight gives its permit back once its answer is written (or the write task is gone,
    // which drops what it held).
    while tasks.join_next().await.is_some() {}
    drop(out_tx);
    let _ = in_flight
        .acquire_many(u32::try_from(limits.pipeline_depth_max).unwrap_or(u32::MAX))
        .await;
    if let Ok(Some(wr)) = writer.await {
        // The write task handed its half back: the connection is held, then closed.
        drop(rd);
        hold(&server, &conn, closed, &mut shutdown, wr).await;
    }
    if let Some(m) = &server.metrics {
        m.connection_closed(closed.as_str());
    }
}

/// Where a request read goes: its answer comes back to the connection's write task.
async fn dispatch(
    server: &Arc<Server>,
    ready: Ready,
    out_tx: &mpsc::Sender<Outgoing>,
    tasks: &mut JoinSet<()>,
) {
    // A MAC that verifies with its terminal's keys proves the connection now, not only once
    // the answer is recorded: a terminal whose request waits (on its issuer, on a slow
    // commit) is not evicted meanwhile by a flood of new connections from its address.
    if ready.precheck.as_ref().and_then(|p| p.mac_verified()) == Some(true) {
        server.admission.prove(&ready.kept.conn);
    }
    if ready.wait.is_none() {
        // Nothing to wait for before the writer: straight to it from here.
        to_writer(server, ready, out_tx.clone()).await;
    } else {
        // An issuer to wait for first: a task of its own, so that the requests behind it
        // go on.
        let server = server.clone();
        let out = out_tx.clone();
        tasks.spawn(Box::pin(
            async move { to_writer(&server, ready, out).await },
        ));
    }
}

/// The tarpit: a connection whose bad frame was past its address's budget is answered and
/// then kept open, nothing read, for `tarpit_hold_ms` — or until it is evicted (held ones
/// go first) or the server stops — and closed. Its admission slot (an unproven one of its
/// address) is given back only after, by `serve_one`: held connections stay bounded.
async fn hold<W: AsyncWrite + Unpin>(
    server: &Server,
    conn: &Conn,
    closed: Closed,
    shutdown: &mut watch::Receiver<bool>,
    mut wr: W,
) {
    let evicted = conn.close.notified();
    tokio::pin!(evicted);
    evicted.as_mut().enable();
    // Evicted or stopping while the reader ended: no hold.
    let held = closed == Closed::Held && !conn.is_evicted() && !*shutdown.borrow();
    if held {
        let limit = Duration::from_millis(server.limits.tarpit_hold_ms);
        debug_assert!(limit <= Duration::from_millis(crate::config::TARPIT_HOLD_MS_MAX));
        tokio::select! {
            _ = tokio::time::sleep(limit) => {}
            _ = &mut evicted => {}
            _ = shutdown.changed() => {}
        }
    }
    let write_timeout = Duration::from_millis(server.limits.write_timeout_ms);
    let _ = tokio::time::timeout(write_timeout, wr.shutdown()).await;
}

/// The next whole frame of a connection, or why it closes.
async fn next_frame<R: AsyncRead + Unpin>(
    rd: &mut Reader<R>,
    limits: &Limits,
    conn: &Conn,
    peer: SocketAddr,
    shutdown: &mut watch::Receiver<bool>,
    closed_rx: &mut oneshot::Receiver<Ending>,
) -> Result<Vec<u8>, Closed> {
    let mut prefix = [0u8; LENGTH_BYTES];
    let rest_wait = loop {
        let (first_wait, rest_wait) = waits(limits, conn);
        let first = tokio::select! {
            biased;
            _ = shutdown.changed() => return Err(Closed::Shutdown),
            ending = &mut *closed_rx => return Err(match ending {
                Ok(Ending::Hold) => Closed::Held,
                _ => Closed::WriteSide,
            }),
            // A frame already there is read before an eviction is seen (the connection's
            // loop ends after it): a terminal whose connection was evicted before its
            // task first ran — accepts come in bursts — still gets its answer.
            r = tokio::time::timeout(first_wait, rd.read_exact(&mut prefix[..1])) => r,
            _ = conn.close.notified() => {
                tracing::debug!(%peer, "unproven connection evicted to make room; closing");
                return Err(Closed::Evicted);
            }
        };
        match first {
            Ok(Ok(_)) => break rest_wait,
            Ok(Err(_)) => return Err(Closed::ByPeer),
            // Proved itself while this wait began (its answer came back since): wait again,
            // as long as a proven connection may.
            Err(_)
                if conn.is_proven()
                    && first_wait < Duration::from_millis(limits.idle_timeout_ms) => {}
            Err(_) => {
                tracing::debug!(%peer, proven = conn.is_proven(), "idle or first-frame timeout; closing");
                return Err(Closed::Idle);
            }
        }
    };
    let rest = tokio::time::timeout(rest_wait, async {
        rd.read_exact(&mut prefix[1..]).await?;
        let total = match frame::frame_len(&prefix) {
            Ok(Some(total)) => total,
            Ok(None) => unreachable!("two length bytes are there"),
            Err(e) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    e.to_string(),
                ));
            }
        };
        debug_assert!(total <= FRAME_BYTES_MAX);
        let mut buf = vec![0u8; total];
        buf[..LENGTH_BYTES].copy_from_slice(&prefix);
        rd.read_exact(&mut buf[LENGTH_BYTES..]).await?;
        Ok(buf)
    })
    .await;
    match rest {
        Ok(Ok(buf)) => Ok(buf),
        Ok(Err(e)) => {
            tracing::warn!(%peer, error = %e, "unreadable frame; closing");
            Err(Closed::Unreadable)
        }
        Err(_) => {
            tracing::warn!(%peer, "frame not complete within the read timeout; closing");
            Err(Closed::ReadTimeout)
        }
    }
}

/// A connection's write task: answers ready together (a group commit answers many at
/// once) go out in one write — one system call for the lot instead of one per answer.
/// Hands its half back when the connection is to be held ([`hold`]).
async fn write_answers<W: AsyncWrite + Unpin>(
    server: Arc<Server>,
    mut wr: W,
    peer: SocketAddr,
    mut out_rx: mpsc::Receiver<Outgoing>,
    // For answers held back by a delay: the channel is open while they are in flight.
    delayed_tx: mpsc::WeakSender<Outgoing>,
    closed_tx: oneshot::Sender<Ending>,
) -> Option<W> {
    let write_timeout = Duration::from_millis(server.limits.write_timeout_ms);
    let mut pending = Vec::new();
    let mut then = Then::ReadOn;
    while let Some(out) = out_rx.recv().await {
        // The writer thread hands over a group's answers one after the other: one turn of
        // the scheduler lets the rest join this write.
        if out_rx.is_empty() {
            tokio::task::yield_now().await;
        }
        let mut next = Some(out);
        while let Some(out) = next.take() {
            then = take_outgoing(&server, out, &mut pending, &delayed_tx);
            if then != Then::ReadOn {
                break;
            }
            if pending.len() < FRAME_BYTES_MAX {
                next = out_rx.try_recv().ok();
            }
        }
        if !pending.is_empty() {
            match tokio::time::timeout(write_timeout, wr.write_all(&pending)).await {
                Ok(Ok(())) => pending.clear(),
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "write failed");
                    then = Then::Close;
                }
                Err(_) => {
                    tracing::warn!(%peer, "write timed out; closing");
                    then = Then::Close;
                }
            }
        }
        if then != Then::ReadOn {
            break;
        }
    }
    if then == Then::Hold {
        let _ = closed_tx.send(Ending::Hold);
        return Some(wr);
    }
    let _ = wr.shutdown().await;
    let _ = closed_tx.send(Ending::Closed);
    None
}

/// What the write task does after a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Then {
    ReadOn,
    Close,
    Hold,
}

/// One message for the write task: its bytes appended to `pending`, and whether the
/// connection goes on, closes or is held after them.
fn take_outgoing(
    server: &Server,
    out: Outgoing,
    pending: &mut Vec<u8>,
    delayed_tx: &mpsc::WeakSender<Outgoing>,
) -> Then {
    let answers = match out {
        Outgoing::Frame(bytes) => {
            pending.extend_from_slice(&bytes);
            return Then::ReadOn;
        }
        Outgoing::Answers(list) => list
            .into_iter()
            .filter_map(|(answer, mut job)| Some((answer, job.kept.take()?)))
            .collect(),
        Outgoing::Answer(answer, kept) => vec![(*answer, kept)],
        Outgoing::Close => return Then::Close,
    };
    for (answer, kept) in answers {
        match after_writer(server, answer, *kept) {
            Delivery::Frame(bytes) => pending.extend_from_slice(&bytes),
            Delivery::Last(bytes) => {
                pending.extend_from_slice(&bytes);
                return Then::Close;
            }
            Delivery::Hold(bytes) => {
                pending.extend_from_slice(&bytes);
                return Then::Hold;
            }
            // Closed by the fault plan: what follows is not answered.
            Delivery::Close => return Then::Close,
            Delivery::Later(delay, outgoing, in_flight) => {
                if let Some(tx) = delayed_tx.upgrade() {
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let _ = tx.send(*outgoing).await;
                        drop(in_flight);
                    });
                }
            }
            Delivery::Nothing => {}
        }
    }
    Then::ReadOn
}

/// How long to wait for a frame's first byte, and then for the rest: a proven connection
/// gets the idle and read timeouts; an unproven one what is left of its first-frame
/// timeout (a junk frame now and then does not keep it open).
fn waits(limits: &Limits, conn: &Conn) -> (Duration, Duration) {
    let idle = Duration::from_millis(limits.idle_timeout_ms);
    let read = Duration::from_millis(limits.read_timeout_ms);
    if conn.is_proven() {
        return (idle, read);
    }
    let first_frame = Duration::from_millis(limits.first_frame_timeout_ms);
    let left = first_frame.saturating_sub(conn.accepted.elapsed());
    (left.min(idle), left.min(read))
}

/// What the server reads of a request before the writer sees it: enough to apply the
/// fault plan and call the issuer simulator.
#[derive(Default)]
struct Peek {
    tid: Option<String>,
    /// Field 11, for the log of requests not recorded.
    stan: Option<[u8; 6]>,
    mid: Option<String>,
    pan: Option<String>,
    kind: Option<TransactionKind>,
    reversal: bool,
}

/// The peek of a request the engine can read: from the read request itself. Of a frame
/// that does not decode: nothing (decoding it again would fail the same way).
fn peek_parsed(parsed: &Result<Parsed, String>, bytes: &[u8]) -> Peek {
    match parsed {
        Ok(parsed) => match parsed.request() {
            Some(req) => Peek {
                tid: Some(req.tid.as_str().to_owned()),
                stan: Some(req.stan.digits()),
                mid: Some(req.mid.as_str().to_owned()),
                pan: req.card.as_ref().map(|c| c.pan.digits().to_owned()),
                kind: Some(req.kind()),
                reversal: req.is_reversal(),
            },
            None => peek(bytes),
        },
        Err(_) => Peek::default(),
    }
}

fn peek(bytes: &[u8]) -> Peek {
    let mut p = Peek::default();
    let Ok(f) = frame::decode_frame(&CUP_POS, bytes) else {
        return p;
    };
    let m = &f.message;
    let text = |n| m.field(n).map(|f| f.to_text());
    p.tid = text(41);
    p.stan = text(11)
        .and_then(|s| <[u8; 6]>::try_from(s.as_bytes()).ok())
        .filter(|s| s.iter().all(u8::is_ascii_digit));
    p.mid = text(42);
    p.pan = text(2).or_else(|| text(35).and_then(|t| t.split('=').next().map(str::to_owned)));
    match crate::request::identify(m) {
        Some(Identified::Request(k)) => p.kind = Some(k),
        Some(Identified::Reversal(k)) => {
            p.kind = Some(k);
            p.reversal = true;
        }
        None => {}
    }
    p
}

/// A request as its connection read it, on its way to the writer.
struct Ready {
    frame: Vec<u8>,
    parsed: Option<Box<Parsed>>,
    precheck: Option<Box<Precheck>>,
    injected: Option<Injected>,
    issuer: IssuerVerdict,
    divergence: Divergence,
    /// How long the issuer simulator holds it first (latency, or the host's timeout).
    wait: Option<Duration>,
    kept: Pending,
}

/// Reads a request off the network: its fields, the fault plan's decision, the issuer
/// simulator's verdict, and its MAC and PIN with the keys last committed for its terminal.
fn read_request(
    server: &Server,
    bytes: Vec<u8>,
    peer: SocketAddr,
    conn: &Arc<Conn>,
    in_flight: OwnedSemaphorePermit,
) -> Ready {
    let started = Instant::now();
    server.stats.requests.fetch_add(1, Ordering::Relaxed);
    // Read once here, on the connection task: the fault plan, the precheck and the engine
    // all use it.
    let parsed = Parsed::of(&bytes);
    let p = peek_parsed(&parsed, &bytes);
    let decision: Decision = {
        let mut faults = server
            .shared
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match faults.as_mut() {
            Some(state) => state.decide(&Target {
                tid: p.tid.as_deref(),
                mid: p.mid.as_deref(),
                pan: p.pan.as_deref(),
                kind: p.kind,
                reversal: p.reversal,
            }),
            None => Decision::default(),
        }
    };
    let mut divergence = decision.divergence;
    let (issuer, wait) = ask_issuer(server, &p, &decision, &mut divergence);
    let injected = match (&decision.code, decision.storage_error) {
        (Some((code, rule)), _) => Some(Injected::Code {
            code: *code,
            rule: rule.clone(),
        }),
        (None, true) => Some(Injected::StorageError),
        (None, false) => None,
    };
    let parsed = parsed.ok().map(Box::new);
    let precheck = parsed
        .as_deref()
        .and_then(|parsed| {
            Precheck::compute(
                parsed,
                server.mac_algorithm,
                |tid| server.shared.keys_of(tid),
                &server.pins,
            )
        })
        .map(Box::new);
    // The answer's MAC is computed here too, with the same prepared keys when they still
    // are the terminal's.
    let keys = precheck.as_ref().map(|p| p.keys().clone());
    Ready {
        frame: bytes,
        parsed,
        precheck,
        injected,
        issuer,
        divergence,
        wait: wait.filter(|w| !w.is_zero()),
        kept: Pending {
            peer,
            started,
            peek: p,
            after: AfterWriter {
                delay_ms: decision.delay_ms,
                close: decision.close,
                drop: decision.drop,
                corrupt_mac: decision.corrupt_mac,
                fired: decision.fired,
            },
            keys,
            conn: conn.clone(),
            _in_flight: in_flight,
        },
    }
}

/// What the issuer simulator says of a request, and how long it holds it first (its
/// latency, or the host's timeout: then the switch records a late answer).
fn ask_issuer(
    server: &Server,
    p: &Peek,
    decision: &Decision,
    divergence: &mut Divergence,
) -> (IssuerVerdict, Option<Duration>) {
    let issuer_timeout = Duration::from_millis(server.limits.issuer_timeout_ms);
    let to_issuer = !p.reversal
        && matches!(
            p.kind,
            Some(
                TransactionKind::Sale
                    | TransactionKind::PreAuth
                    | TransactionKind::BalanceInquiry
                    | TransactionKind::PreAuthCompletion
            )
        );
    if !to_issuer {
        return (IssuerVerdict::Reachable, None);
    }
    if decision.issuer_timeout {
        return (IssuerVerdict::TimedOut, Some(issuer_timeout));
    }
    match p
        .pan
        .as_deref()
        .and_then(|pan| server.shared.external_issuer(pan))
    {
        None => (IssuerVerdict::Reachable, None),
        Some(ext) if ext.down => (IssuerVerdict::Down, None),
        Some(ext) => {
            let latency = Duration::from_millis(u64::from(ext.latency_ms));
            if latency > issuer_timeout {
                // It answers after the host gave up: the switch records its answer.
                divergence.late_answer = true;
                (IssuerVerdict::TimedOut, Some(issuer_timeout))
            } else {
                (IssuerVerdict::Reachable, Some(latency))
            }
        }
    }
}

/// Hands a read request to the writer (after its issuer wait, if any); its answer comes
/// back to the connection's write task. A writer that has stopped gets it answered 96
/// here, nothing posted.
async fn to_writer(server: &Server, ready: Ready, out: mpsc::Sender<Outgoing>) {
    if let Some(wait) = ready.wait {
        tokio::time::sleep(wait).await;
    }
    let job = Job {
        frame: ready.frame,
        issuer: ready.issuer,
        divergence: ready.divergence,
        injected: ready.injected,
        precheck: ready.precheck,
        parsed: ready.parsed,
        answer_to: out,
        kept: Some(Box::new(ready.kept)),
    };
    if let Err(mpsc::error::SendError(Work::Request(job))) =
        server.queue.send(Work::Request(job)).await
    {
        let input = Input {
            frame: &job.frame,
            now: crate::clock::HostTime::at(0, 0),
            issuer: job.issuer,
            injected: job.injected.clone(),
            parsed: None,
            precheck: None,
            mac_later: false,
            divergence: Default::default(),
        };
        let answer = engine::storage_failure_answer(
            &input,
            &StoreError::Corrupt("the writer has stopped".into()),
        );
        job.answer(answer);
    }
}

/// What becomes of an answer on its connection.
enum Delivery {
    Frame(Vec<u8>),
    /// A frame, then close (too many bad frames).
    Last(Vec<u8>),
    /// A frame (empty: nothing to answer), then hold the connection (the tarpit).
    Hold(Vec<u8>),
    Close,
    /// A frame or a close after the fault plan's delay (the request's permit held until
    /// then).
    Later(Duration, Box<Outgoing>, OwnedSemaphorePermit),
    /// Dropped by the fault plan.
    Nothing,
}

/// An answer back from the writer: counted, logged, the fault plan's after-writer
/// decisions applied, and sealed with its MAC.
/// The answer in the metrics: its request's MTI, kind and code, its latency, the fault
/// rules that fired for it, and why a stranger's request was not recorded.
fn measure(server: &Server, answer: &Answer, p: &Peek, started: Instant, fired: &[String]) {
    let Some(metrics) = &server.metrics else {
        return;
    };
    let kind = answer.kind.or(p.kind);
    let mti = match (kind, answer.reversal || p.reversal) {
        (Some(_), true) => "0400",
        (Some(k), false) => std::str::from_utf8(k.mti()).unwrap_or("unknown"),
        (None, _) => "unknown",
    };
    metrics.answered(&poskit_monitor::Answered {
        mti,
        kind: kind.map_or("unknown", |k| k.slug()),
        code: answer.code.as_str(),
        reversal: answer.reversal,
        advice: kind == Some(TransactionKind::PreAuthCompletionAdvice),
        latency_s: started.elapsed().as_secs_f64(),
    });
    for rule in fired {
        metrics.fault_fired(rule);
    }
    // Statistics: answers of registered terminals (strangers are not recorded).
    let at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let latency_ms = started.elapsed().as_millis() as u64;
    if let Some(event) =
        crate::alerting::stats_event(answer, kind, p.mid.as_deref(), at_ms, latency_ms)
    {
        metrics.stats.record(&event);
    }
    if let Some(why) = answer.stranger {
        metrics.stranger(why.slug());
    }
}

fn after_writer(server: &Server, mut answer: Answer, kept: Pending) -> Delivery {
    let Pending {
        peer,
        started,
        peek: p,
        after,
        keys,
        conn,
        _in_flight: in_flight,
    } = kept;
    if answer.code.is_approved() {
        server.stats.approved.fetch_add(1, Ordering::Relaxed);
    }
    measure(server, &answer, &p, started, &after.fired);
    let then = admit_by_answer(server, &answer, &p, peer, &conn);
    // Strangers' answers are logged by their counter, rate-limited.
    if answer.stranger.is_none() {
        tracing::info!(
            %peer,
            tid = answer.tid.as_deref().or(p.tid.as_deref()).unwrap_or("-"),
            kind = answer.kind.map_or("-", |k| k.slug()),
            reversal = answer.reversal,
            amount_fen = answer.amount_fen.unwrap_or(0),
            card = answer.pan_masked.as_deref().unwrap_or("-"),
            code = answer.code.as_str(),
            reason = %answer.reason,
            repeated = answer.repeated,
            txn = answer.txn_id.unwrap_or(0),
            faults = ?after.fired,
            latency_us = started.elapsed().as_micros() as u64,
            "answered"
        );
    }
    let outgoing = if after.close {
        Outgoing::Close
    } else if after.drop {
        server
            .stats
            .dropped_by_faults
            .fetch_add(1, Ordering::Relaxed);
        return Delivery::Nothing;
    } else {
        answer.seal_with(server.mac_algorithm, keys.as_deref());
        match answer.frame {
            Some(mut frame) => {
                if after.corrupt_mac
                    && answer.code.is_approved()
                    && frame.len() > frame::PREFIX_BYTES + 8
                {
                    let last = frame.len() - 1;
                    frame[last] ^= 0x01;
                }
                Outgoing::Frame(frame)
            }
            None => {
                tracing::debug!(%peer, reason = %answer.reason, "nothing to answer; closing");
                Outgoing::Close
            }
        }
    };
    delivery(after.delay_ms, outgoing, then, in_flight)
}

/// What becomes of an answer's `outgoing` message: now or after the fault plan's delay;
/// then the connection reads on, closes or is held, as its bad frames say.
fn delivery(
    delay_ms: u32,
    outgoing: Outgoing,
    then: BadFrame,
    in_flight: OwnedSemaphorePermit,
) -> Delivery {
    match (delay_ms, outgoing, then) {
        (0, Outgoing::Frame(bytes), BadFrame::Keep) => Delivery::Frame(bytes),
        (0, Outgoing::Frame(bytes), BadFrame::Close) => Delivery::Last(bytes),
        (0, Outgoing::Frame(bytes), BadFrame::Hold) => Delivery::Hold(bytes),
        (0, _, BadFrame::Hold) => Delivery::Hold(Vec::new()),
        (0, _, _) => Delivery::Close,
        (ms, outgoing, _) => Delivery::Later(
            Duration::from_millis(u64::from(ms)),
            Box::new(outgoing),
            in_flight,
        ),
    }
}

/// What an answer says of its connection: recorded, the connection is proven; not
/// recorded, it is counted and logged (rate-limited) as a stranger's, and the connection
/// may have to close or be held after this answer (too many bad frames on it or from its
/// address).
fn admit_by_answer(
    server: &Server,
    answer: &Answer,
    p: &Peek,
    peer: SocketAddr,
    conn: &Conn,
) -> BadFrame {
    match answer.stranger {
        None if answer.txn_id.is_some() => {
            server.admission.prove(conn);
            BadFrame::Keep
        }
        None => BadFrame::Keep,
        Some(why) => {
            let stan = p.stan.as_ref().and_then(|s| std::str::from_utf8(s).ok());
            server.shared.strangers.count(
                why,
                peer.ip(),
                answer.tid.as_deref().or(p.tid.as_deref()),
                stan,
                &answer.reason,
            );
            server.admission.bad_frame(conn, Instant::now())
        }
    }
}

/// The answer to a request the writer never answered: nothing to send, the connection
/// closes.
pub(crate) fn writer_gone(kept: &Pending) -> Answer {
    let p = &kept.peek;
    Answer {
        settled: None,
        frame: None,
        reply: None,
        code: poskit_domain::ResponseCode::SYSTEM_MALFUNCTION,
        reason: "the writer stopped before answering".into(),
        txn_id: None,
        repeated: false,
        kind: p.kind,
        reversal: p.reversal,
        amount_fen: None,
        pan_masked: None,
        tid: p.tid.clone(),
        mac_pending: None,
        keys_after: None,
        stranger: None,
        forwarded: None,
    }
}
