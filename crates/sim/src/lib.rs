//! Fleet simulation under faults. [`world`] runs terminal engines and the host engine in
//! one process with simulated time and network, every fault drawn from one seed (the same
//! seed gives the same run); [`check`] compares every journal with the ledger afterwards.

pub mod check;
pub mod knobs;
pub mod live;
mod node;
pub mod proxy;
mod reconcile;
pub mod report;
mod watch;
pub mod workload;
pub mod world;

pub use knobs::Knobs;
pub use node::PowerCut;
pub use report::Report;
pub use world::World;

/// Runs one deterministic simulation.
pub fn simulate(
    terminals: u32,
    transactions: u64,
    seed: u64,
    knobs: Knobs,
) -> Result<Report, String> {
    Ok(World::new(terminals, transactions, seed, knobs)?.run())
}
