//! Natural-language understanding: slot extraction, hand-off signals and
//! intent scoring.

pub mod head;
pub mod intent;
pub mod signals;
pub mod slots;
