//! Connection admission (issue 17): a fleet gets in, a flood does not keep it out.
//!
//! A connection is *unproven* until a registered terminal's valid frame is answered on it
//! (an answer recorded in the ledger), or a request on it carries a MAC that verifies with
//! its terminal's keys (the connection's precheck, before the writer). Unproven connections are bounded per source address
//! and together; at either bound the oldest unproven one is closed to make room, so a real
//! terminal always gets in. Proven connections are never evicted. When nothing can be
//! evicted the new connection is accepted and closed at once. Bad frames are bounded per
//! connection and per address and minute.
//!
//! Past its address's budget a connection's bad frame is answered and the connection is
//! *held* (the tarpit): nothing more is read from it and it is closed `tarpit_hold_ms`
//! later, so that a flood that reconnects when closed costs the host a few connections per
//! hold instead of one per frame. A held connection is still one of its address's
//! unproven connections, and the first evicted. A new connection from that address is read
//! as any other: a terminal behind the same NAT gateway gets in.

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
    /// Set before `close` is notified: whoever waits on `close` after the notification was
    /// taken still sees it.
    evicted: AtomicBool,
    /// Told to close (evicted).
    pub close: Notify,
}

impl Conn {
    pub fn is_proven(&self) -> bool {
        self.proven.load(Ordering::Acquire)
    }

    pub fn is_evicted(&self) -> bool {
        self.evicted.load(Ordering::Acquire)
    }
}

/// What a frame answered and not recorded (a stranger's) means for its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadFrame {
    /// Read on.
    Keep,
    /// Close after its answer: too many on the connection, or past its address's budget
    /// with the tarpit off or the connection proven.
    Close,
    /// Answer it, read nothing more, close it `tarpit_hold_ms` later (past its address's
    /// budget). Held connections are evicted first.
    Hold,
}

#[derive(Debug, Default)]
struct Address {
    /// Its unproven connections, oldest first.
    unproven: BTreeSet<u64>,
    /// Those of them held (a subset), oldest first.
    held: BTreeSet<u64>,
    bad_window_start: Option<Instant>,
    bad_in_window: u32,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    /// Unproven connections, oldest first.
    unproven: BTreeMap<u64, Arc<Conn>>,
    /// Those of them held (a subset), oldest first: the first evicted.
    held: BTreeSet<u64>,
    proven: usize,
    addresses: HashMap<IpAddr, Address>,
    evicted: u64,
    refused: u64,
    held_since_start: u64,
}

/// Connections open now and what admission did since the start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Open and unproven, the held among them.
    pub unproven: usize,
    pub proven: usize,
    /// Open and held (counted in `unproven` too).
    pub held: usize,
    pub evicted: u64,
    pub refused: u64,
    pub held_since_start: u64,
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
            .and_then(|a| a.held.first().or(a.unproven.first()).copied());
        let address_full = s
            .addresses
            .get(&ip)
            .is_some_and(|a| a.unproven.len() >= self.limits.unproven_per_address_max);
        if address_full && let Some(oldest) = of_address {
            evict(&mut s, oldest);
        }
        if s.unproven.len() + s.proven >= self.limits.connections_max {
            match s.held.first().or(s.unproven.keys().next()).copied() {
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
            evicted: AtomicBool::new(false),
            close: Notify::new(),
        });
        s.unproven.insert(conn.id, conn.clone());
        if s.addresses.len() < ADDRESSES_TRACKED_MAX || s.addresses.contains_key(&ip) {
            s.addresses.entry(ip).or_default().unproven.insert(conn.id);
        }
        assert!(s.unproven.len() + s.proven <= self.limits.connections_max);
        debug_assert!(s.held.len() <= s.unproven.len());
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

    /// Counts a bad frame on `conn` and says what becomes of the connection: past its
    /// address's budget for the minute it is held (the tarpit on, the connection unproven)
    /// or closed; past the connection's own bound, closed.
    pub fn bad_frame(&self, conn: &Conn, now: Instant) -> BadFrame {
        let on_conn = conn.bad_frames.fetch_add(1, Ordering::Relaxed) + 1;
        let mut s = self.lock();
        let over_budget = s.addresses.get_mut(&conn.ip).is_some_and(|a| {
            if a.bad_window_start
                .is_none_or(|t| now.duration_since(t) >= BAD_FRAME_WINDOW)
            {
                a.bad_window_start = Some(now);
                a.bad_in_window = 0;
            }
            a.bad_in_window = a.bad_in_window.saturating_add(1);
            a.bad_in_window > self.limits.bad_frames_per_address_per_minute_max
        });
        if over_budget && self.limits.tarpit_hold_ms > 0 && hold(&mut s, conn) {
            return BadFrame::Hold;
        }
        if over_budget || on_conn >= self.limits.bad_frames_per_connection_max {
            BadFrame::Close
        } else {
            BadFrame::Keep
        }
    }

    /// Connections open now, and what admission did since the start.
    pub fn counts(&self) -> Counts {
        let s = self.lock();
        Counts {
            unproven: s.unproven.len(),
            proven: s.proven,
            held: s.held.len(),
            evicted: s.evicted,
            refused: s.refused,
            held_since_start: s.held_since_start,
        }
    }
}

/// Marks `conn` held when it is still unproven (not proven, not evicted); whether it is.
fn hold(s: &mut State, conn: &Conn) -> bool {
    if !s.unproven.contains_key(&conn.id) {
        return false;
    }
    if s.held.insert(conn.id) {
        s.held_since_start += 1;
    }
    if let Some(a) = s.addresses.get_mut(&conn.ip) {
        debug_assert!(a.unproven.contains(&conn.id));
        a.held.insert(conn.id);
    }
    assert!(s.held.len() <= s.unproven.len());
    true
}

fn evict(s: &mut State, id: u64) {
    if let Some(conn) = s.unproven.remove(&id) {
        s.held.remove(&id);
        if let Some(a) = s.addresses.get_mut(&conn.ip) {
            a.unproven.remove(&id);
            a.held.remove(&id);
        }
        s.evicted += 1;
        conn.evicted.store(true, Ordering::Release);
        conn.close.notify_one();
    }
}

/// Removes `id` from the unproven (and the held); whether it was there.
fn forget_unproven(s: &mut State, id: u64, ip: IpAddr) -> bool {
    let was = s.unproven.remove(&id).is_some();
    if was {
        s.held.remove(&id);
        if let Some(a) = s.addresses.get_mut(&ip) {
            a.unproven.remove(&id);
            a.held.remove(&id);
        }
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

    /// Limits whose address budget is one bad frame a minute, with the tarpit on.
    fn tarpit(connections_max: usize, per_address: usize) -> Limits {
        Limits {
            bad_frames_per_address_per_minute_max: 1,
            tarpit_hold_ms: 1_000,
            ..limits(connections_max, per_address)
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
        let n = adm.counts();
        assert_eq!((n.unproven, n.proven, n.evicted, n.refused), (2, 1, 1, 0));
        assert!(b.is_evicted() && !c.is_evicted());
        adm.prove(&b); // too late: evicted
        assert!(!b.is_proven());
        adm.prove(&c);
        let e = conn(adm.admit(ip, now)); // evicts d
        adm.prove(&e);
        assert!(matches!(adm.admit(ip, now), Admit::Refused));
        adm.release(&a);
        assert_eq!((adm.counts().unproven, adm.counts().proven), (0, 2));
        adm.release(&b);
        assert_eq!((adm.counts().unproven, adm.counts().proven), (0, 2));
    }

    #[test]
    fn one_address_cannot_hold_more_than_its_unproven_share() {
        let adm = Admission::new(&limits(100, 2));
        let now = Instant::now();
        let flood = IpAddr::from([10, 0, 0, 9]);
        for _ in 0..10 {
            conn(adm.admit(flood, now));
        }
        let n = adm.counts();
        assert_eq!((n.unproven, n.proven, n.evicted, n.refused), (2, 0, 8, 0));
        let other = conn(adm.admit(IpAddr::from([10, 0, 0, 2]), now));
        assert!(!other.is_proven());
        assert_eq!(adm.counts().unproven, 3);
    }

    #[test]
    fn bad_frames_close_a_connection_and_spend_the_address_budget() {
        let l = limits(100, 100);
        let adm = Admission::new(&l);
        let now = Instant::now();
        let ip = IpAddr::from([10, 0, 0, 3]);
        let c = conn(adm.admit(ip, now));
        for _ in 1..l.bad_frames_per_connection_max {
            assert_eq!(adm.bad_frame(&c, now), BadFrame::Keep);
        }
        assert_eq!(adm.bad_frame(&c, now), BadFrame::Close);
    }

    #[test]
    fn past_the_address_budget_a_connection_is_held_and_a_new_one_still_admitted() {
        let adm = Admission::new(&tarpit(100, 100));
        let now = Instant::now();
        let ip = IpAddr::from([10, 0, 0, 4]);
        let first = conn(adm.admit(ip, now));
        assert_eq!(
            adm.bad_frame(&first, now),
            BadFrame::Keep,
            "within the budget"
        );
        let second = conn(adm.admit(ip, now));
        assert_eq!(adm.bad_frame(&second, now), BadFrame::Hold);
        let n = adm.counts();
        assert_eq!((n.unproven, n.held, n.held_since_start), (2, 1, 1));
        // The address is not refused: a terminal behind it gets in and proves itself.
        let terminal = conn(adm.admit(ip, now));
        adm.prove(&terminal);
        assert!(terminal.is_proven());
        // A proven connection is closed, not held; so is any once the minute is over
        // with the tarpit off.
        assert_eq!(adm.bad_frame(&terminal, now), BadFrame::Close);
        let off = Admission::new(&Limits {
            tarpit_hold_ms: 0,
            ..tarpit(100, 100)
        });
        let c = conn(off.admit(ip, now));
        assert_eq!(off.bad_frame(&c, now), BadFrame::Keep);
        assert_eq!(off.bad_frame(&c, now), BadFrame::Close);
        // A held connection's slot is given back when it closes.
        adm.release(&second);
        let n = adm.counts();
        assert_eq!((n.unproven, n.held, n.proven), (1, 0, 1));
    }

    #[test]
    fn held_connections_are_evicted_first_at_the_address_bound() {
        let adm = Admission::new(&tarpit(100, 3));
        let now = Instant::now();
        let ip = IpAddr::from([10, 0, 0, 5]);
        let oldest = conn(adm.admit(ip, now));
        let spent = conn(adm.admit(ip, now));
        assert_eq!(adm.bad_frame(&spent, now), BadFrame::Keep);
        let held = conn(adm.admit(ip, now));
        assert_eq!(adm.bad_frame(&held, now), BadFrame::Hold);
        // The address is at its bound: the held one goes, not the oldest.
        let _new = conn(adm.admit(ip, now));
        assert!(held.is_evicted() && !oldest.is_evicted() && !spent.is_evicted());
        let n = adm.counts();
        assert_eq!((n.unproven, n.held, n.evicted), (3, 0, 1));
        // An evicted connection is not held again.
        assert_eq!(adm.bad_frame(&held, now), BadFrame::Close);
    }

    #[test]
    fn held_connections_are_evicted_first_at_the_global_bound() {
        let adm = Admission::new(&tarpit(4, 100));
        let now = Instant::now();
        let quiet = conn(adm.admit(IpAddr::from([10, 0, 1, 1]), now));
        let flood = IpAddr::from([10, 0, 1, 2]);
        let spent = conn(adm.admit(flood, now));
        assert_eq!(adm.bad_frame(&spent, now), BadFrame::Keep);
        let held: Vec<_> = (0..2).map(|_| conn(adm.admit(flood, now))).collect();
        for h in &held {
            assert_eq!(adm.bad_frame(h, now), BadFrame::Hold);
        }
        assert_eq!(adm.counts().held, 2);
        // Full (4): each newcomer from anywhere evicts a held one, the oldest first.
        let _a = conn(adm.admit(IpAddr::from([10, 0, 1, 3]), now));
        assert!(held[0].is_evicted() && !held[1].is_evicted());
        let _b = conn(adm.admit(IpAddr::from([10, 0, 1, 4]), now));
        assert!(held[1].is_evicted());
        assert!(!quiet.is_evicted() && !spent.is_evicted());
        // None held any more: the oldest unproven goes.
        let _c = conn(adm.admit(IpAddr::from([10, 0, 1, 5]), now));
        assert!(quiet.is_evicted());
        let n = adm.counts();
        assert_eq!((n.unproven + n.proven, n.held, n.evicted), (4, 0, 3));
    }
}
