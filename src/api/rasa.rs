//! Rasa compatibility: `POST /model/parse`, the NLU endpoint a Rasa Open
//! Source server calls when `endpoints.yml` points `nlu: url` at kefu.
//!
//! The answer is Rasa's ParseResult (`intent`, `intent_ranking`, `entities`
//! with character offsets); out-of-scope becomes the configured fallback
//! intent (Rasa's `nlu_fallback`), and kefu's decision, answer and hand-off
//! ride along as extra keys, which Rasa ignores. Rasa's NLU client posts
//! `{"token", "text", "message_id"}` (its server convention is `?token=`);
//! the token is a kefu bot key.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::access::{Access, Routes};
use super::{parse_json, parse_now, ApiError, AppState};
use crate::access::Role;
use crate::corpus::OOS;
use crate::nlu::slots::Slots;
use crate::service::nlu;

/// Intents listed in `intent_ranking`, as Rasa's classifiers list at most 10.
const RANKING_LENGTH: usize = 10;

pub(super) fn routes() -> Routes {
    Routes::new().post("/model/parse", Access::Role(Role::Bot), parse).rasa_token()
}

#[derive(Debug, Deserialize)]
struct ParseRequest {
    text: String,
    /// Rasa's id of the message (its client sends the sender's id), echoed back.
    message_id: Option<String>,
    /// Reference time for relative dates (kefu's extension; default now).
    now: Option<String>,
}

#[derive(Debug, Serialize)]
struct IntentScore {
    name: String,
    confidence: f32,
}

#[derive(Debug, Serialize)]
struct Entity {
    entity: &'static str,
    start: usize,
    end: usize,
    value: String,
    confidence: f32,
    extractor: &'static str,
}

#[derive(Debug, Serialize)]
struct Handoff {
    reason: &'static str,
    priority: &'static str,
}

#[derive(Debug, Serialize)]
struct ParseResult {
    text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<String>,
    intent: IntentScore,
    intent_ranking: Vec<IntentScore>,
    entities: Vec<Entity>,
    /// kefu's own keys: what it would do with the message.
    decision: &'static str,
    answer: Option<String>,
    handoff: Option<Handoff>,
}

/// `POST /model/parse {"text", "message_id"?}`: Rasa's ParseResult.
async fn parse(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ParseResult>, ApiError> {
    let req: ParseRequest = parse_json(body)?;
    let now = parse_now(req.now.as_deref())?;
    let engine = state.engine().ok_or_else(ApiError::not_ready)?;
    let parsed = nlu::parse(&engine, &state.in_flight, &req.text, now).await?;
    let fallback = &state.settings.rasa_fallback_intent;
    let name = |intent: &str| if intent == OOS { fallback.clone() } else { intent.to_string() };
    let outcome = parsed.outcome;
    let intent = IntentScore { name: name(&outcome.intent), confidence: outcome.confidence };
    // The chosen intent first, then the nearest others, each once.
    let mut intent_ranking = vec![IntentScore { name: intent.name.clone(), confidence: intent.confidence }];
    for candidate in &outcome.candidates {
        let candidate_name = name(&candidate.intent);
        if intent_ranking.len() < RANKING_LENGTH && intent_ranking.iter().all(|i| i.name != candidate_name) {
            intent_ranking.push(IntentScore { name: candidate_name, confidence: candidate.score.clamp(0.0, 1.0) });
        }
    }
    let entities = parsed
        .spans
        .iter()
        .filter_map(|span| {
            let value = slot_value(&outcome.slots, span.slot)?;
            Some(Entity {
                entity: span.slot,
                start: span.chars.0,
                end: span.chars.1,
                value,
                confidence: 1.0,
                extractor: "kefu",
            })
        })
        .collect();
    Ok(Json(ParseResult {
        text: req.text,
        message_id: req.message_id,
        intent,
        intent_ranking,
        entities,
        decision: outcome.action.as_str(),
        answer: outcome.answer,
        handoff: outcome
            .handoff
            .map(|(reason, priority)| Handoff { reason: reason.as_str(), priority: priority.as_str() }),
    }))
}

/// A slot's value as an entity's string: a date range reads `start/end` (ISO 8601), one day its date.
fn slot_value(slots: &Slots, slot: &str) -> Option<String> {
    match slot {
        "order_id" => slots.order_id.clone(),
        "phone" => slots.phone.clone(),
        "product" => slots.product.clone(),
        "time" => {
            slots.time.map(|t| if t.start == t.end { t.start.to_string() } else { format!("{}/{}", t.start, t.end) })
        }
        _ => None,
    }
}
