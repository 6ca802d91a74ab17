//! Understanding one message outside any conversation: what Rasa's NLU API
//! (`/model/parse`) asks of kefu. Nothing is stored and no ticket opens: the
//! caller's own dialogue manager decides what happens next.

use chrono::{DateTime, FixedOffset};
use tokio::sync::Semaphore;

use super::ServiceError;
use crate::engine::{Engine, EngineError, Outcome, Query};
use crate::nlu::slots::SlotSpan;

/// The engine's reading of a message, with where each slot was read.
#[derive(Debug)]
pub struct Parsed {
    pub outcome: Outcome,
    pub spans: Vec<SlotSpan>,
}

/// Reads `text` as a first message from an unknown customer.
/// `admission` bounds the model work at once, as for turns.
pub async fn parse(
    engine: &Engine,
    admission: &Semaphore,
    text: &str,
    now: DateTime<FixedOffset>,
) -> Result<Parsed, ServiceError> {
    let trace_id = super::new_id();
    let query = Query { text, scenario: None, now, customer_id: None, previous: None, trace_id: &trace_id };
    engine.validate(&query).map_err(EngineError::from)?;
    let _permit = admission.try_acquire().map_err(|_| ServiceError::Busy)?;
    let outcome = engine.answer(query).await?;
    Ok(Parsed { spans: engine.locate_slots(text, now).spans, outcome })
}
