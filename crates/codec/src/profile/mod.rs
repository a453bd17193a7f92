//! The profiles poskit ships, as data.

mod cup_pos;
mod iso87_ascii;

pub use cup_pos::CUP_POS;
pub use iso87_ascii::ISO87_ASCII;
