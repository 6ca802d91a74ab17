//! Natural-language understanding: slot extraction, hand-off signals (listed and learned),
//! intent scoring and the agents' corrections taught to it.

pub mod background;
pub mod corrections;
pub mod exasperation;
pub mod head;
pub mod intent;
pub mod signals;
pub mod slots;
