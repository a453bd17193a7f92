//! Connection admission (issue 17): a fleet gets in, a flood does not keep it out.
//!
//! A connection is *unproven* until a registered terminal's valid frame is answered on it
//! (an answer recorded in the ledger). Unproven connections are bounded per source address
//! and together; at either bound the oldest unproven one is closed to make room, so a real
//! terminal always gets in. Proven connections are never evicted. When nothing can be
//! evicted the new connection is accepted and closed at once. Bad frames are bounded per
//! connection and per address and minute.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::config::Limits;

/// Addresses whose unproven connections and bad frames are tracked at most; past it the
/// idle entries are dropped, and an address that finds no room is admitted untracked.
pub const ADDRESSES_TRACKED_MAX: usize = 65_536;
/// The window of `bad_frames_per_address_per_minute_max`.
const BAD_FRAME_WINDOW: Duration = Duration::from_secs(60);

/// One admitted connection, shared by its tasks and the admission table.
#[derive(Debug)]
pub struct Conn {
    id: u64,
    ip: IpAddr,
    pub accepted: Instant,
    proven: AtomicBool,
    bad_frames: AtomicU32,
    /// Told to close (evicted).
    pub close: Notify,
}

impl Conn {
    pub fn is_proven(&self) -> bool {
        self.proven.load(Ordering::Acquire)
    }
}

#[derive(Debug, Default)]
struct Address {
    /// Its unproven connections, oldest first.
    unproven: BTreeSet<u64>,
    bad_window_start: Option<Instant>,
    bad_in_window: u32,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    /// Unproven connections, oldest first.
    unproven: BTreeMap<u64, Arc<Conn>>,
    proven: usize,
    addresses: HashMap<IpAddr, Address>,
    evicted: u64,
    refused: u64,
}

/// The admission table of a server.
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    state: Mutex<State>,
}

/// What becomes of a connection just accepted.
pub enum Admit {
    In(Arc<Conn>),
    /// No room and nothing to evict: close it at once.
    Refused,
}

impl Admission {
    pub fn new(limits: &Limits) -> Admission {
        assert!(limits.connections_max > 0 && limits.unproven_per_address_max > 0);
        Admission {
            limits: limits.clone(),
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a connection from `ip`, evicting the oldest unproven one (of this address
    /// first) when a bound is reached.
    pub fn admit(&self, ip: IpAddr, now: Instant) -> Admit {
        let mut s = self.lock();
        if s.addresses.len() >= ADDRESSES_TRACKED_MAX {
            s.addresses.retain(|_, a| {
                !a.unproven.is_empty()
                    || a.bad_window_start
                        .is_some_and(|t| now.duration_since(t) < BAD_FRAME_WINDOW)
            });
        }
        let of_address = s
            .addresses
            .get(&ip)
            .and_then(|a| a.unproven.first().copied());
        let address_full = s
            .addresses
            .get(&ip)
            .is_some_and(|a| a.unproven.len() >= self.limits.unproven_per_address_max);
        if address_full && let Some(oldest) = of_address {
            evict(&mut s, oldest);
        }
        if s.unproven.len() + s.proven >= self.limits.connections_max {
            match s.unproven.keys().next().copied() {
                Some(oldest) => evict(&mut s, oldest),
                None => {
                    s.refused += 1;
                    return Admit::Refused;
                }
            }
        }
        s.next_id += 1;
        let conn = Arc::new(Conn {
            id: s.next_id,
            ip,
            accepted: now,
            proven: AtomicBool::new(false),
            bad_frames: AtomicU32::new(0),
            close: Notify::new(),
        });
        s.unproven.insert(conn.id, conn.clone());
        if s.addresses.len() < ADDRESSES_TRACKED_MAX || s.addresses.contains_key(&ip) {
            s.addresses.entry(ip).or_default().unproven.insert(conn.id);
        }
        debug_assert!(s.unproven.len() + s.proven <= self.limits.connections_max);
        Admit::In(conn)
    }

    /// A registered terminal's valid frame was answered on `conn`: never evicted from now.
    pub fn prove(&self, conn: &Conn) {
        if conn.proven.load(Ordering::Acquire) {
            return;
        }
        let mut s = self.lock();
        if forget_unproven(&mut s, conn.id, conn.ip) {
            conn.proven.store(true, Ordering::Release);
            s.proven += 1;
        }
    }

    /// `conn` has closed.
    pub fn release(&self, conn: &Conn) {
        let mut s = self.lock();
        if !forget_unproven(&mut s, conn.id, conn.ip) && conn.proven.load(Ordering::Acquire) {
            assert!(s.proven > 0, "a proven connection is counted");
            s.proven -= 1;
        }
    }

    /// Counts a bad frame on `conn`; `true` when the connection must close (too many on it,
    /// or from its address within the minute).
    pub fn bad_frame(&self, conn: &Conn, now: Instant) -> bool {
        let on_conn = conn.bad_frames.fetch_add(1, Ordering::Relaxed) + 1;
        let mut s = self.lock();
        let Some(a) = s.addresses.get_mut(&conn.ip) else {
            return on_conn >= self.limits.bad_frames_per_connection_max;
        };
        if a.bad_window_start
            .is_none_or(|t| now.duration_since(t) >= BAD_FRAME_WINDOW)
        {
            a.bad_window_start = Some(now);
            a.bad_in_window = 0;
        }
        a.bad_in_window = a.bad_in_window.saturating_add(1);
        on_conn >= self.limits.bad_frames_per_connection_max
            || a.bad_in_window > self.limits.bad_frames_per_address_per_minute_max
    }

    /// Connections open now: (unproven, proven); and since the start: (evicted, refused).
    pub fn counts(&self) -> ((usize, usize), (u64, u64)) {
        let s = self.lock();
        ((s.unproven.len(), s.proven), (s.evicted, s.refused))
    }
}

fn evict(s: &mut State, id: u64) {
    if let Some(conn) = s.unproven.remove(&id) {
        if let Some(a) = s.addresses.get_mut(&conn.ip) {
            a.unproven.remove(&id);
        }
        s.evicted += 1;
        conn.close.notify_one();
    }
}

/// Removes `id` from the unproven; whether it was there.
fn forget_unproven(s: &mut State, id: u64, ip: IpAddr) -> bool {
    let was = s.unproven.remove(&id).is_some();
    if was && let Some(a) = s.addresses.get_mut(&ip) {
        a.unproven.remove(&id);
    }
    was
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(connections_max: usize, per_address: usize) -> Limits {
        Limits {
            connections_max,
            unproven_per_address_max: per_address,
            ..Limits::default()
        }
    }

    fn conn(a: Admit) -> Arc<Conn> {
        match a {
            Admit::In(c) => c,
            Admit::Refused => panic!("refused"),
        }
    }

    #[test]
    fn the_oldest_unproven_connection_makes_room_and_proven_ones_stay() {
        let adm = Admission::new(&limits(3, 100));
        let now = Instant::now();
        let ip = IpAddr::from([10, 0, 0, 1]);
        let a = conn(adm.admit(ip, now));
        adm.prove(&a);
        let b = conn(adm.admit(ip, now));
        let c = conn(adm.admit(ip, now));
        let _d = conn(adm.admit(ip, now)); // evicts b, the oldest unproven
        assert_eq!(adm.counts(), ((2, 1), (1, 0)));
        adm.prove(&b); // too late: evicted
        assert!(!b.is_proven());
        adm.prove(&c);
        let e = conn(adm.admit(ip, now)); // evicts d
        adm.prove(&e);
        assert!(matches!(adm.admit(ip, now), Admit::Refused));
        adm.release(&a);
        assert_eq!(adm.counts().0, (0, 2));
        adm.release(&b);
        assert_eq!(adm.counts().0, (0, 2));
    }

    #[test]
    fn one_address_cannot_hold_more_than_its_unproven_share() {
        let adm = Admission::new(&limits(100, 2));
        let now = Instant::now();
        let flood = IpAddr::from([10, 0, 0, 9]);
        for _ in 0..10 {
            conn(adm.admit(flood, now));
        }
        assert_eq!(adm.counts(), ((2, 0), (8, 0)));
        let other = conn(adm.admit(IpAddr::from([10, 0, 0, 2]), now));
        assert!(!other.is_proven());
        assert_eq!(adm.counts().0, (3, 0));
    }

    #[test]
    fn bad_frames_close_a_connection_and_spend_the_address_budget() {
        let l = limits(100, 100);
        let adm = Admission::new(&l);
        let now = Instant::now();
        let ip = IpAddr::from([10, 0, 0, 3]);
        let c = conn(adm.admit(ip, now));
        for _ in 1..l.bad_frames_per_connection_max {
            assert!(!adm.bad_frame(&c, now));
        }
        assert!(adm.bad_frame(&c, now));
    }
}
