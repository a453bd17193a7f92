//! One module per subcommand: each has `Args` (clap) and `run(Args) -> anyhow::Result<ExitCode>`.

pub mod alerts;
pub mod bench;
pub mod clearing;
pub mod console;
pub mod decode;
pub mod demo;
pub mod diagnose;
pub mod disputes;
pub mod encode;
pub mod explain;
pub mod host;
pub mod keys;
pub mod locale;
pub mod lookup;
pub mod mac;
pub mod pinblock;
pub mod pos;
pub mod recon;
pub mod sim;
pub mod stats;
pub mod users;
