//! kefu: intent-and-answer engine for enterprise customer service.
//!
//! Layers depend only downward: api -> engine -> policy / nlu / index /
//! encoder / corpus, and store beside them; nothing depends on api.

pub mod answer;
pub mod api;
pub mod config;
pub mod connectors;
pub mod corpus;
pub mod encoder;
pub mod engine;
pub mod eval;
pub mod index;
pub mod nlu;
pub mod policy;
pub mod privacy;
pub mod profile;
pub mod sla;
pub mod stats;
pub mod store;
pub mod train;
