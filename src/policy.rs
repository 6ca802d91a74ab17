//! The answer / clarify / hand-off decision: a pure function of the scored
//! intents, the taxonomy decision and the hand-off signals.

use serde::Serialize;

use crate::corpus::{Decision, OOS};
use crate::nlu::intent::Scored;
use crate::nlu::signals::Signals;

/// What the bot should do with this turn (the contract's `decision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Answer,
    Clarify,
    Handoff,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Answer => "answer",
            Action::Clarify => "clarify",
            Action::Handoff => "handoff",
        }
    }
}

/// Why a conversation goes to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HandoffReason {
    /// The customer asked for a person.
    HumanRequested,
    /// A complaint about sales, service or quality.
    Complaint,
    /// Anger or abuse, whatever was asked.
    AngryCustomer,
    /// The intent is one that people handle (a fault, a bug).
    AgentIntent,
    /// The bot asked twice in a row without getting anywhere.
    Unresolved,
}

impl HandoffReason {
    pub fn as_str(self) -> &'static str {
        match self {
            HandoffReason::HumanRequested => "human_requested",
            HandoffReason::Complaint => "complaint",
            HandoffReason::AngryCustomer => "angry_customer",
            HandoffReason::AgentIntent => "agent_intent",
            HandoffReason::Unresolved => "unresolved",
        }
    }
}

/// How soon a hand-off ticket needs a person: normal < high < urgent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Normal,
    High,
    Urgent,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }

    /// One level up; urgent stays urgent.
    pub fn raised(self) -> Priority {
        match self {
            Priority::Normal => Priority::High,
            Priority::High | Priority::Urgent => Priority::Urgent,
        }
    }
}

/// What is known of the customer that bears on a hand-off's priority.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CustomerFactors {
    /// The profile carries the `vip` tag.
    pub vip: bool,
    /// The profile carries the `frequent_after_sales` tag.
    pub frequent_after_sales: bool,
    /// The product the customer names was repaired within the last 90 days.
    pub product_repaired_90d: bool,
}

/// Intents that report something broken: with an earlier repair they make a repeat fault.
pub fn is_fault_intent(intent: &str) -> bool {
    matches!(intent, "repair_request" | "bug_report")
}

/// A hand-off's priority: normal, raised one level for each of a VIP
/// customer, a complaint (the intent, or anger or a complaint as the reason)
/// and a repeat fault (a fault while the customer is a frequent after-sales
/// contact or the product was repaired within 90 days), up to urgent.
pub fn handoff_priority(reason: HandoffReason, intent: &str, customer: &CustomerFactors) -> Priority {
    let complaint = intent == "complaint" || matches!(reason, HandoffReason::Complaint | HandoffReason::AngryCustomer);
    let repeat_fault = is_fault_intent(intent) && (customer.frequent_after_sales || customer.product_repaired_90d);
    [customer.vip, complaint, repeat_fault].into_iter().filter(|raise| *raise).fold(Priority::Normal, |p, _| p.raised())
}

/// What the reply should say; the engine renders it in the customer's language.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The intent's answer.
    IntentAnswer,
    /// Ask which of these intents the customer means.
    WhichOf(Vec<String>),
    /// Out of scope: say what the bot can do and offer a person.
    Rephrase,
    /// Tell the customer a person is taking over.
    Holding,
}

/// The decision for one turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub action: Action,
    /// Intent id or [`OOS`].
    pub intent: String,
    pub lead: bool,
    pub handoff: Option<(HandoffReason, Priority)>,
    pub reply: Reply,
}

/// Tunable policy settings.
#[derive(Debug, Clone, Copy)]
pub struct PolicySettings {
    /// Below this calibrated confidence the bot asks instead of answering.
    pub min_answer_confidence: f32,
    /// How many intents a clarifying question offers.
    pub clarify_options: usize,
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings { min_answer_confidence: 0.5, clarify_options: 3 }
    }
}

/// Decides what to do with a scored message. `decision_of` gives the taxonomy decision of an intent id.
pub fn decide(scored: &Scored, signals: &Signals, decision_of: impl Fn(&str) -> Option<Decision>, settings: &PolicySettings) -> Verdict {
    let intent = scored.intent().to_string();
    let unsure = intent == OOS || scored.confidence < settings.min_answer_confidence;
    // NOTE: anger and explicit asks for a person win over everything, even a
    // confident answerable intent: the taxonomy says they are always hand-offs.
    // When the model found nothing it is sure of, the signal names the intent.
    if signals.angry {
        let intent = if intent == OOS { "complaint".to_string() } else { intent.clone() };
        return handoff(intent, HandoffReason::AngryCustomer);
    }
    if signals.human_request || intent == "request_human" {
        let intent = if unsure { "request_human".to_string() } else { intent.clone() };
        return handoff(intent, HandoffReason::HumanRequested);
    }
    if intent == OOS {
        return Verdict { action: Action::Clarify, intent, lead: false, handoff: None, reply: Reply::Rephrase };
    }
    if scored.confidence < settings.min_answer_confidence {
        let options: Vec<String> = scored.ranked.iter().take(settings.clarify_options).map(|(id, _)| id.clone()).collect();
        return Verdict { action: Action::Clarify, intent, lead: false, handoff: None, reply: Reply::WhichOf(options) };
    }
    let decision = decision_of(&intent);
    settled(intent, decision)
}

/// A hand-off verdict. The customer's profile raises its priority further
/// once it is known (see [`handoff_priority`]).
fn handoff(intent: String, reason: HandoffReason) -> Verdict {
    Verdict {
        handoff: Some((reason, handoff_priority(reason, &intent, &CustomerFactors::default()))),
        action: Action::Handoff,
        intent,
        lead: false,
        reply: Reply::Holding,
    }
}

/// The verdict for an intent the customer is known to mean (confidently
/// scored, or picked from a clarifying question): what its taxonomy decision says.
pub fn settled(intent: String, decision: Option<Decision>) -> Verdict {
    match decision {
        Some(Decision::Handoff) if intent == "complaint" => handoff(intent, HandoffReason::Complaint),
        Some(Decision::Handoff) => handoff(intent, HandoffReason::AgentIntent),
        Some(Decision::Lead) => Verdict { action: Action::Answer, intent, lead: true, handoff: None, reply: Reply::IntentAnswer },
        Some(Decision::Answer) | None => Verdict { action: Action::Answer, intent, lead: false, handoff: None, reply: Reply::IntentAnswer },
    }
}

/// A second clarifying question in a row goes to a person instead: the
/// customer has already rephrased once.
pub fn escalate_unresolved(verdict: Verdict) -> Verdict {
    let priority = handoff_priority(HandoffReason::Unresolved, &verdict.intent, &CustomerFactors::default());
    Verdict { action: Action::Handoff, handoff: Some((HandoffReason::Unresolved, priority)), reply: Reply::Holding, lead: false, ..verdict }
}

/// The agent queue a hand-off of this intent goes to.
pub fn queue_for(intent: &str, scenario: Option<&str>) -> &'static str {
    match (intent, scenario) {
        (_, Some("after_sales")) => "after_sales",
        ("price_inquiry" | "customization", _) => "sales",
        ("renewal" | "invoice" | "refund_status", _) => "billing",
        _ => "general",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(ranked: &[(&str, f32)], confidence: f32, out_of_scope: bool) -> Scored {
        Scored { ranked: ranked.iter().map(|(id, p)| (id.to_string(), *p)).collect(), out_of_scope, confidence, neighbours: Vec::new() }
    }

    fn taxonomy(id: &str) -> Option<Decision> {
        match id {
            "price_inquiry" => Some(Decision::Lead),
            "complaint" | "repair_request" | "request_human" => Some(Decision::Handoff),
            _ => Some(Decision::Answer),
        }
    }

    fn run(s: &Scored, signals: Signals) -> Verdict {
        decide(s, &signals, taxonomy, &PolicySettings::default())
    }

    #[test]
    fn confident_answerable_intent_is_answered() {
        let v = run(&scored(&[("return_address", 0.9)], 0.95, false), Signals::default());
        assert_eq!((v.action, v.intent.as_str(), v.lead, v.reply), (Action::Answer, "return_address", false, Reply::IntentAnswer));
    }

    #[test]
    fn price_inquiry_is_a_lead() {
        let v = run(&scored(&[("price_inquiry", 0.9)], 0.9, false), Signals::default());
        assert_eq!((v.action, v.lead), (Action::Answer, true));
    }

    #[test]
    fn low_confidence_asks_which_of_the_top_candidates() {
        let v = run(&scored(&[("return_policy", 0.4), ("return_address", 0.35), ("exchange", 0.1), ("invoice", 0.05)], 0.3, false), Signals::default());
        assert_eq!(v.action, Action::Clarify);
        assert_eq!(v.reply, Reply::WhichOf(vec!["return_policy".into(), "return_address".into(), "exchange".into()]));
    }

    #[test]
    fn out_of_scope_asks_to_rephrase() {
        let v = run(&scored(&[("greeting", 0.2)], 0.1, true), Signals::default());
        assert_eq!((v.action, v.intent.as_str(), v.reply), (Action::Clarify, OOS, Reply::Rephrase));
    }

    #[test]
    fn handoff_intents_and_complaints() {
        let v = run(&scored(&[("repair_request", 0.9)], 0.9, false), Signals::default());
        assert_eq!(v.handoff, Some((HandoffReason::AgentIntent, Priority::Normal)));
        let v = run(&scored(&[("complaint", 0.9)], 0.9, false), Signals::default());
        assert_eq!(v.handoff, Some((HandoffReason::Complaint, Priority::High)));
    }

    #[test]
    fn a_second_clarify_is_escalated() {
        let v = run(&scored(&[("greeting", 0.2)], 0.1, true), Signals::default());
        let v = escalate_unresolved(v);
        assert_eq!((v.action, v.handoff, v.reply), (Action::Handoff, Some((HandoffReason::Unresolved, Priority::Normal)), Reply::Holding));
        assert_eq!(v.intent, OOS);
    }

    #[test]
    fn queues_by_intent() {
        assert_eq!(queue_for("repair_request", Some("after_sales")), "after_sales");
        assert_eq!(queue_for("price_inquiry", Some("ecommerce")), "sales");
        assert_eq!(queue_for("refund_status", Some("ecommerce")), "billing");
        assert_eq!(queue_for("complaint", Some("general")), "general");
    }

    #[test]
    fn priority_rises_one_level_per_factor_up_to_urgent() {
        let none = CustomerFactors::default();
        let vip = CustomerFactors { vip: true, ..none };
        let frequent = CustomerFactors { frequent_after_sales: true, ..none };
        let repaired = CustomerFactors { product_repaired_90d: true, ..none };
        assert_eq!(handoff_priority(HandoffReason::HumanRequested, "request_human", &none), Priority::Normal);
        assert_eq!(handoff_priority(HandoffReason::HumanRequested, "request_human", &vip), Priority::High);
        assert_eq!(handoff_priority(HandoffReason::Complaint, "complaint", &none), Priority::High);
        assert_eq!(handoff_priority(HandoffReason::AngryCustomer, "order_tracking", &none), Priority::High);
        assert_eq!(handoff_priority(HandoffReason::Complaint, "complaint", &vip), Priority::Urgent);
        // A repeat fault: a fault intent with an earlier repair.
        assert_eq!(handoff_priority(HandoffReason::AgentIntent, "repair_request", &none), Priority::Normal);
        assert_eq!(handoff_priority(HandoffReason::AgentIntent, "repair_request", &frequent), Priority::High);
        assert_eq!(handoff_priority(HandoffReason::AgentIntent, "repair_request", &repaired), Priority::High);
        assert_eq!(handoff_priority(HandoffReason::AgentIntent, "repair_request", &CustomerFactors { vip: true, ..repaired }), Priority::Urgent);
        // A frequent after-sales customer asking for a person is not a fault.
        assert_eq!(handoff_priority(HandoffReason::HumanRequested, "request_human", &frequent), Priority::Normal);
        // All three at once stays urgent.
        let all = CustomerFactors { vip: true, frequent_after_sales: true, product_repaired_90d: true };
        assert_eq!(handoff_priority(HandoffReason::AngryCustomer, "repair_request", &all), Priority::Urgent);
        assert!(Priority::Normal < Priority::High && Priority::High < Priority::Urgent);
        assert_eq!(Priority::Urgent.as_str(), "urgent");
    }

    #[test]
    fn anger_and_human_requests_win_over_any_intent() {
        let confident = scored(&[("order_tracking", 0.99)], 0.99, false);
        let v = run(&confident, Signals { angry: true, human_request: false });
        assert_eq!((v.action, v.handoff), (Action::Handoff, Some((HandoffReason::AngryCustomer, Priority::High))));
        assert_eq!(v.intent, "order_tracking");
        let v = run(&scored(&[("x", 0.1)], 0.1, true), Signals { angry: false, human_request: true });
        assert_eq!(v.handoff, Some((HandoffReason::HumanRequested, Priority::Normal)));
        assert_eq!(v.intent, "request_human");
        let v = run(&scored(&[("x", 0.1)], 0.1, true), Signals { angry: true, human_request: false });
        assert_eq!(v.intent, "complaint");
    }
}
