//! Natural-language understanding: slot extraction, hand-off signals,
//! intent scoring and the agents' corrections taught to it.

pub mod background;
pub mod corrections;
pub mod head;
pub mod intent;
pub mod signals;
pub mod slots;
