//! Alerts sent to a webhook: each one an HTTP POST of its JSON, from a thread of its own,
//! retried with backoff; the queue is bounded, and what does not fit is counted and logged
//! (once a minute at most), never waited for.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

/// Alerts waiting to be sent at most.
const QUEUE_MAX: usize = 256;
/// Tries per alert.
const ATTEMPTS_MAX: u32 = 5;
/// The first retry's wait; each next one doubles it.
const BACKOFF_FIRST_MS: u64 = 500;
/// One POST's time limit.
const POST_TIMEOUT_MS: u64 = 5_000;

/// The sending side; dropping it lets the thread finish what is queued and end.
pub struct Webhook {
    queue: SyncSender<String>,
    dropped: Arc<AtomicU64>,
    last_warned: std::sync::Mutex<Option<Instant>>,
}

impl Webhook {
    /// Starts the sender thread for `url` (http:// or https://).
    pub fn start(url: &str) -> Result<Webhook, String> {
        check_url(url)?;
        let (queue, rx) = sync_channel(QUEUE_MAX);
        let url = url.to_owned();
        std::thread::Builder::new()
            .name("poskit-webhook".into())
            .spawn(move || deliver(&url, rx))
            .map_err(|e| format!("webhook thread: {e}"))?;
        Ok(Webhook {
            queue,
            dropped: Arc::new(AtomicU64::new(0)),
            last_warned: std::sync::Mutex::new(None),
        })
    }

    /// Queues one alert's JSON; when the queue is full it is dropped and counted.
    pub fn send(&self, body: &serde_json::Value) {
        match self.queue.try_send(body.to_string()) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                let Ok(mut last) = self.last_warned.lock() else {
                    return;
                };
                if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    *last = Some(Instant::now());
                    tracing::warn!(dropped = n, "alert webhook queue full: alerts not sent");
                }
            }
        }
    }

    /// Alerts dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Whether `url` is one a webhook can be sent to (http:// or https://, with a host).
pub fn check_url(url: &str) -> Result<(), String> {
    let parsed: ureq::http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?}: not a URL ({e})"))?;
    if !matches!(parsed.scheme_str(), Some("http" | "https")) || parsed.host().is_none() {
        return Err(format!("{url:?}: an http:// or https:// URL is needed"));
    }
    Ok(())
}

fn deliver(url: &str, rx: Receiver<String>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_millis(POST_TIMEOUT_MS)))
        .build()
        .into();
    while let Ok(body) = rx.recv() {
        let mut wait_ms = BACKOFF_FIRST_MS;
        for attempt in 1..=ATTEMPTS_MAX {
            let sent = agent
                .post(url)
                .header("content-type", "application/json")
                .send(body.as_str());
            match sent {
                Ok(_) => break,
                Err(e) if attempt == ATTEMPTS_MAX => {
                    tracing::warn!(error = %e, attempts = attempt, "alert webhook: alert not delivered");
                }
                Err(e) => {
                    tracing::debug!(error = %e, attempt, "alert webhook: retrying");
                    std::thread::sleep(Duration::from_millis(wait_ms));
                    wait_ms *= 2;
                }
            }
        }
    }
}
