//! A TCP fault proxy between terminals and a host: CUP frames pass through, and each one
//! may be lost, delayed, duplicated or corrupted, or its connection reset — drawn from one
//! seeded stream (the timing of a real network makes the run itself not repeatable).
//! Terminals talk plain TCP to the proxy on loopback (it must read their frames to fault
//! them); the proxy talks to the host over TLS when the host wants TLS ([`Upstream::tls`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use poskit_codec::frame;
use poskit_terminal::wire::read_frame;

use crate::knobs::{self, Knobs, Rng};

/// Frames one direction of a connection may have waiting.
const QUEUE_MAX: usize = 64;

/// The host behind the proxy: its address, and its TLS set-up when it wants TLS.
#[derive(Clone, Debug)]
pub struct Upstream {
    pub addr: String,
    pub tls: Option<poskit_keystore::tls::Client>,
}

impl Upstream {
    /// A connection to the host, the TLS handshake done when it wants TLS.
    pub async fn connect(&self) -> std::io::Result<Box<dyn HostLink>> {
        let tcp = TcpStream::connect(&self.addr).await?;
        let _ = tcp.set_nodelay(true);
        Ok(match &self.tls {
            None => Box::new(tcp),
            Some(client) => Box::new(client.connect(tcp).await?),
        })
    }
}

/// A connection to the host: plain TCP or TLS over it.
pub trait HostLink: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> HostLink for T {}

/// The proxy's shared state: its knobs (cleared to heal the network), its random stream,
/// and what it did.
pub struct Proxy {
    pub addr: String,
    healed: AtomicBool,
    rng: Mutex<Rng>,
    knobs: Knobs,
    pub faults: Mutex<BTreeMap<String, u64>>,
}

impl Proxy {
    /// Listens on loopback and forwards every connection to `upstream`.
    pub async fn start(upstream: Upstream, knobs: Knobs, seed: u64) -> std::io::Result<Arc<Proxy>> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let proxy = Arc::new(Proxy {
            addr: listener.local_addr()?.to_string(),
            healed: AtomicBool::new(false),
            rng: Mutex::new(knobs::rng(seed)),
            knobs,
            faults: Mutex::new(BTreeMap::new()),
        });
        let p = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let p = p.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if let Ok(host) = upstream.connect().await {
                        p.pipe(client, host).await;
                    }
                });
            }
        });
        Ok(proxy)
    }

    /// From now on every frame passes untouched.
    pub fn heal(&self) {
        self.healed.store(true, Ordering::Relaxed);
    }

    fn fault(&self, kind: &str, p: f64) -> bool {
        if self.healed.load(Ordering::Relaxed) {
            return false;
        }
        let hit = self.rng.lock().map(|mut r| r.chance(p)).unwrap_or(false);
        if hit && let Ok(mut f) = self.faults.lock() {
            *f.entry(kind.to_owned()).or_default() += 1;
        }
        hit
    }

    async fn pipe(self: Arc<Proxy>, client: TcpStream, host: Box<dyn HostLink>) {
        let _ = client.set_nodelay(true);
        let (client_rd, client_wr) = client.into_split();
        let (host_rd, host_wr) = tokio::io::split(host);
        let (to_host, host_queue) = mpsc::channel::<Vec<u8>>(QUEUE_MAX);
        let (to_client, client_queue) = mpsc::channel::<Vec<u8>>(QUEUE_MAX);
        let writers = [
            tokio::spawn(write_all(host_wr, host_queue)),
            tokio::spawn(write_all(client_wr, client_queue)),
        ];
        let requests = {
            let p = self.clone();
            tokio::spawn(async move { p.forward(client_rd, to_host, true).await })
        };
        let answers = {
            let p = self.clone();
            tokio::spawn(async move { p.forward(host_rd, to_client, false).await })
        };
        // When either direction ends (a reset, a close), the connection is over.
        tokio::select! {
            _ = requests => {}
            _ = answers => {}
        }
        for w in writers {
            w.abort();
        }
    }

    /// Reads frames from `rd` and passes them on, with faults.
    async fn forward<R: AsyncRead + Unpin>(
        &self,
        mut rd: R,
        out: mpsc::Sender<Vec<u8>>,
        requests: bool,
    ) {
        let k = &self.knobs;
        loop {
            let Ok(frame) = read_frame(&mut rd).await else {
                return;
            };
            if requests {
                if self.fault("reset", k.reset) {
                    return; // the terminal sees its connection die
                }
                if self.fault("request_loss", k.request_loss) {
                    continue;
                }
                if self.fault("duplicate", k.duplicate) && out.send(frame.clone()).await.is_err() {
                    return;
                }
                if out.send(frame).await.is_err() {
                    return;
                }
            } else {
                if self.fault("answer_loss", k.answer_loss) {
                    continue;
                }
                let mut frame = frame;
                if self.fault("corrupt_mac", k.corrupt_mac) && frame.len() > frame::PREFIX_BYTES + 8
                {
                    let last = frame.len() - 1;
                    frame[last] ^= 0x01;
                }
                if self.fault("delay", k.delay) {
                    let out = out.clone();
                    let wait = Duration::from_millis(k.timeout_ms + k.latency_ms);
                    tokio::spawn(async move {
                        tokio::time::sleep(wait).await;
                        let _ = out.send(frame).await;
                    });
                    continue;
                }
                if out.send(frame).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn write_all<W: AsyncWrite + Unpin>(mut wr: W, mut queue: mpsc::Receiver<Vec<u8>>) {
    while let Some(frame) = queue.recv().await {
        if wr.write_all(&frame).await.is_err() {
            return;
        }
    }
}
