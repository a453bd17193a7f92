//! Host configuration (`--config FILE`, TOML). Every limit is here, named with its unit.
//!
//! ```toml
//! acquirer_code = "08010000"
//! utc_offset_minutes = 480
//! clearing_cut = "23:00"     # the switch's clearing day ends here, local time
//! [limits]
//! connections_max = 16384
//! unproven_per_address_max = 1024
//! first_frame_timeout_ms = 10000
//! bad_frames_per_connection_max = 3
//! bad_frames_per_address_per_minute_max = 600
//! tarpit_hold_ms = 5000     # past that budget a junk connection is held this long; 0: closed
//! listen_backlog_max = 4096
//! pipeline_depth_max = 32
//! read_timeout_ms = 10000
//! idle_timeout_ms = 300000
//! write_timeout_ms = 10000
//! drain_timeout_ms = 10000
//! issuer_timeout_ms = 2000
//! queue_max = 8192
//! group_commit_max = 512
//! [tls]                      # the terminal port over TLS (plain TCP without it)
//! cert = "host.crt"          # certificate chain, PEM
//! key = "host.key"           # its private key, PEM
//! client_ca = "terminals.pem"  # optional: mutual TLS, terminals' certificates from this CA
//! [faults]
//! seed = 1
//! [[faults.rules]]
//! action = "delay"
//! delay_ms = 100
//! ```

use serde::Deserialize;

use poskit_security::{MacAlgorithm, MakRule};

use poskit_domain::calendar::ClearingCut;

use crate::HostError;
use crate::alerting::AlertConfig;
use crate::clock::UTC_OFFSET_MINUTES_DEFAULT;
use crate::engine::EngineConfig;
use crate::faults::FaultPlan;

/// The longest `tarpit_hold_ms`: a held connection keeps a descriptor and an unproven slot.
pub const TARPIT_HOLD_MS_MAX: u64 = 60_000;

/// The bounds the server keeps.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Connections open at once. Past it the oldest unproven connection is closed to make
    /// room; when every one is proven, a new connection is accepted and closed at once.
    pub connections_max: usize,
    /// Unproven connections (no registered terminal's valid frame answered yet) of one
    /// source address at once; past it, that address's oldest unproven one is closed.
    pub unproven_per_address_max: usize,
    /// An unproven connection is closed this long after it was accepted.
    pub first_frame_timeout_ms: u64,
    /// A connection is closed after this many frames answered without being recorded
    /// (undecodable, unknown terminal, bad MAC).
    pub bad_frames_per_connection_max: u32,
    /// Past this many such frames from one address within a minute, each further one
    /// closes its connection — after `tarpit_hold_ms`.
    pub bad_frames_per_address_per_minute_max: u32,
    /// The tarpit: a connection whose bad frame is past its address's budget is answered,
    /// then held this long — nothing more read from it, still one of its address's unproven
    /// connections and the first evicted — before it is closed. A flood that reconnects
    /// when closed then costs a connection per hold, not one per frame. 0: closed at once.
    /// At most [`TARPIT_HOLD_MS_MAX`].
    pub tarpit_hold_ms: u64,
    /// The listen backlog (the kernel caps it at `net.core.somaxconn`).
    pub listen_backlog_max: u32,
    /// Requests of one connection in flight at once (pipelining).
    pub pipeline_depth_max: usize,
    /// Once a frame has begun, the rest must arrive within this time.
    pub read_timeout_ms: u64,
    /// A connection with no frame for this long is closed.
    pub idle_timeout_ms: u64,
    pub write_timeout_ms: u64,
    /// On shutdown, in-flight requests get this long to finish.
    pub drain_timeout_ms: u64,
    /// The simulated external issuer's answer must come within this time, else 98.
    pub issuer_timeout_ms: u64,
    /// Requests waiting for the writer.
    pub queue_max: usize,
    /// Requests committed together at most.
    pub group_commit_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections_max: 16_384,
            unproven_per_address_max: 1024,
            first_frame_timeout_ms: 10_000,
            bad_frames_per_connection_max: 3,
            bad_frames_per_address_per_minute_max: 600,
            tarpit_hold_ms: 5_000,
            listen_backlog_max: 4096,
            pipeline_depth_max: 32,
            read_timeout_ms: 10_000,
            idle_timeout_ms: 300_000,
            write_timeout_ms: 10_000,
            drain_timeout_ms: 10_000,
            issuer_timeout_ms: 2_000,
            queue_max: 8192,
            group_commit_max: 512,
        }
    }
}

#[derive(Clone, Debug)]
pub struct HostConfig {
    pub engine: EngineConfig,
    pub utc_offset_minutes: i32,
    /// Shifts the host's clock (a test switch: refunds are for earlier days).
    pub clock_offset_days: i32,
    pub limits: Limits,
    pub faults: FaultPlan,
    /// Where the switch's clearing day ends, local time (23:00; a test network cuts at
    /// 13:30).
    pub clearing_cut_minute_of_day: i32,
    /// Where `/metrics` is served (`--admin-listen`); `None`: not served.
    pub admin_listen: Option<String>,
    /// A busy admin address stops the host (it was asked for); otherwise the host serves
    /// without `/metrics` and says so (the default address, taken by another host).
    pub admin_required: bool,
    /// Count answers, connections and groups for `/metrics` (on unless a benchmark
    /// measures what they cost).
    pub metrics: bool,
    /// Alert rules, where alerts are sent, how often the rules are evaluated.
    pub alerts: AlertConfig,
    /// TLS on the terminal port (`[tls]`, `--tls-cert`); `None`: plain TCP, as on CUP lines.
    pub tls: Option<std::sync::Arc<poskit_keystore::tls::ServerConfig>>,
}

impl HostConfig {
    /// The clearing day's cut-off in the host's time zone.
    pub fn clearing_cut(&self) -> ClearingCut {
        ClearingCut {
            utc_offset_minutes: self.utc_offset_minutes,
            cut_minute_of_day: self.clearing_cut_minute_of_day,
        }
    }
}

/// `HH:MM` → minutes after midnight.
pub fn parse_hhmm(text: &str) -> Option<i32> {
    let (h, m) = text.split_once(':')?;
    let (h, m): (u8, u8) = (h.parse().ok()?, m.parse().ok()?);
    ClearingCut::at(0, h, m).map(|c| c.cut_minute_of_day)
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            engine: EngineConfig::default(),
            utc_offset_minutes: UTC_OFFSET_MINUTES_DEFAULT,
            clock_offset_days: 0,
            limits: Limits::default(),
            faults: FaultPlan::default(),
            clearing_cut_minute_of_day: ClearingCut::default().cut_minute_of_day,
            admin_listen: None,
            admin_required: true,
            metrics: true,
            alerts: AlertConfig::default(),
            tls: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    acquirer_code: Option<String>,
    utc_offset_minutes: Option<i32>,
    mac_algorithm: Option<String>,
    mak_rule: Option<String>,
    completion_over_percent_max: Option<u64>,
    clearing_cut: Option<String>,
    #[serde(default)]
    limits: Limits,
    faults: Option<toml::Value>,
    alerts: Option<AlertsFile>,
    tls: Option<TlsFile>,
}

/// `[tls]` of a host's config file: the terminal port over TLS.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    client_ca: Option<std::path::PathBuf>,
}

impl TlsFile {
    fn load(self) -> Result<std::sync::Arc<poskit_keystore::tls::ServerConfig>, HostError> {
        poskit_keystore::tls::server_config(&self.cert, &self.key, self.client_ca.as_deref())
            .map_err(|e| HostError::Config(format!("tls: {e}")))
    }
}

/// `[alerts]` of a host's config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsFile {
    /// A rules file over the shipped rules.
    rules: Option<std::path::PathBuf>,
    webhook: Option<String>,
    evaluate_every_ms: Option<u64>,
}

/// Evaluating the rules more often than this gains nothing (the statistics move by the
/// second); less often than this misses the minute an A0 burst must fire within.
const EVALUATE_EVERY_MS_RANGE: std::ops::RangeInclusive<u64> = 1_000..=60_000;

impl AlertConfig {
    /// The shipped rules with the user's rules file over them.
    pub fn with_rules_file(&mut self, path: &std::path::Path) -> Result<(), HostError> {
        let text = std::fs::read_to_string(path).map_err(|source| HostError::Io {
            path: path.display().to_string(),
            source,
        })?;
        self.rules = poskit_monitor::alerts::Rules::with_user(&text)
            .map_err(|e| HostError::Config(format!("{}: {e}", path.display())))?;
        Ok(())
    }

    fn apply(&mut self, file: AlertsFile) -> Result<(), HostError> {
        if let Some(path) = &file.rules {
            self.with_rules_file(path)?;
        }
        if let Some(url) = file.webhook {
            self.webhook = Some(url);
        }
        if let Some(ms) = file.evaluate_every_ms {
            if !EVALUATE_EVERY_MS_RANGE.contains(&ms) {
                return Err(HostError::Config(format!(
                    "alerts.evaluate_every_ms {ms}: 1000 to 60000"
                )));
            }
            self.evaluate_every_ms = ms;
        }
        Ok(())
    }
}

impl HostConfig {
    pub fn parse(text: &str) -> Result<HostConfig, HostError> {
        let file: ConfigFile =
            toml::from_str(text).map_err(|e| HostError::Config(e.to_string()))?;
        let mut cfg = HostConfig::default();
        if let Some(code) = file.acquirer_code {
            if code.len() != 8 || !code.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HostError::Config(format!(
                    "acquirer_code {code:?} must be 8 digits"
                )));
            }
            cfg.engine.acquirer_code = code;
        }
        if let Some(offset) = file.utc_offset_minutes {
            if !(-14 * 60..=14 * 60).contains(&offset) {
                return Err(HostError::Config(format!(
                    "utc_offset_minutes {offset} is not a time zone"
                )));
            }
            cfg.utc_offset_minutes = offset;
        }
        if let Some(name) = file.mac_algorithm {
            cfg.engine.mac_algorithm = name.parse::<MacAlgorithm>().map_err(|_| {
                HostError::Config(format!(
                    "mac_algorithm {name:?} is not cup-ecb, cup-ecb-sm4 or x919"
                ))
            })?;
        }
        if let Some(rule) = file.mak_rule {
            cfg.engine.mak_rule = match rule.as_str() {
                "zero-second-half-means-single" => MakRule::ZeroSecondHalfMeansSingle,
                "first-half-only" => MakRule::FirstHalfOnly,
                "as-delivered" => MakRule::AsDelivered,
                other => {
                    return Err(HostError::Config(format!(
                        "mak_rule {other:?} is not zero-second-half-means-single, first-half-only or as-delivered"
                    )));
                }
            };
        }
        if let Some(cut) = file.clearing_cut {
            cfg.clearing_cut_minute_of_day = parse_hhmm(&cut).ok_or_else(|| {
                HostError::Config(format!("clearing_cut {cut:?} is not a time HH:MM"))
            })?;
        }
        if let Some(p) = file.completion_over_percent_max {
            cfg.engine.completion_over_percent_max = p.min(100);
        }
        let l = &file.limits;
        for (name, value) in [
            ("connections_max", l.connections_max),
            ("unproven_per_address_max", l.unproven_per_address_max),
            ("first_frame_timeout_ms", l.first_frame_timeout_ms as usize),
            (
                "bad_frames_per_connection_max",
                l.bad_frames_per_connection_max as usize,
            ),
            ("listen_backlog_max", l.listen_backlog_max as usize),
            ("pipeline_depth_max", l.pipeline_depth_max),
            ("queue_max", l.queue_max),
            ("group_commit_max", l.group_commit_max),
        ] {
            if value == 0 {
                return Err(HostError::Config(format!(
                    "limits.{name} must be at least 1"
                )));
            }
        }
        if l.tarpit_hold_ms > TARPIT_HOLD_MS_MAX {
            return Err(HostError::Config(format!(
                "limits.tarpit_hold_ms {}: at most {TARPIT_HOLD_MS_MAX}",
                l.tarpit_hold_ms
            )));
        }
        cfg.limits = file.limits;
        if let Some(faults) = file.faults {
            cfg.faults = FaultPlan::from_toml_value(faults)?;
        }
        if let Some(alerts) = file.alerts {
            cfg.alerts.apply(alerts)?;
        }
        cfg.tls = file.tls.map(TlsFile::load).transpose()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_sets_limits_and_faults() {
        let cfg = HostConfig::parse(
            "acquirer_code = \"12345678\"\n[limits]\nissuer_timeout_ms = 500\n[faults]\nseed = 9\n[[faults.rules]]\naction = \"drop\"\n",
        )
        .unwrap();
        assert_eq!(cfg.engine.acquirer_code, "12345678");
        assert_eq!(cfg.limits.issuer_timeout_ms, 500);
        assert_eq!(cfg.limits.connections_max, 16_384);
        assert_eq!(cfg.limits.listen_backlog_max, 4096);
        assert_eq!(cfg.faults.seed, 9);
        assert_eq!(cfg.faults.rules.len(), 1);
    }

    #[test]
    fn bad_configs_say_what_is_wrong() {
        for (text, needle) in [
            ("acquirer_code = \"12\"", "8 digits"),
            ("[limits]\nqueue_max = 0", "queue_max"),
            ("[limits]\nspeed = 3", "speed"),
            ("[limits]\ntarpit_hold_ms = 60001", "tarpit_hold_ms"),
            ("mac_algorithm = \"md5\"", "md5"),
            (
                "[tls]\ncert = \"/nonexistent.crt\"\nkey = \"k\"",
                "nonexistent.crt",
            ),
            ("[tls]\ncert = \"c\"", "key"),
        ] {
            let err = HostConfig::parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
