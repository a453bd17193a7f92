//! Reconciliation (对账) of one clearing day: the terminals' settlements, the host ledger
//! and the switch's clearing files compared (`spec/cup-clearing.md` §5), every break
//! classified (A–G, duplicate, batch total, one-sided reversal) with what to do.
//!
//! - [`matching`]: the comparison, pure: sides in, matched count and breaks out.
//! - [`model`]: what each side's record holds, the break classes and actions.

pub mod disputes;
pub mod lookup;
pub mod matching;
pub mod merchants;
pub mod model;
pub mod run;
mod sort;
pub mod state;

pub use matching::{Day, Found, compare};
pub use merchants::{MerchantRef, Merchants};
pub use model::{
    Action, Break, Class, Direction, HostState, HostTxn, MaskedPan, Records, Settlement, Status,
    SwitchKey, SwitchTxn, Totals, Upload,
};
