//! The answer / clarify / hand-off decision: a pure function of the scored
//! intents, the hand-off signals and the taxonomy (each intent's decision and
//! role). No intent id is known here: roles say which intent is a complaint,
//! an ask for a person or a fault.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::corpus::{Decision, Role, Taxonomy, OOS};
use crate::nlu::intent::Scored;
use crate::nlu::signals::Signals;
pub use crate::tickets::{HandoffReason, Priority};

/// What the bot should do with this turn (the contract's `decision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

impl FromStr for Action {
    type Err = crate::tickets::UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::tickets::named("decision", &[Action::Answer, Action::Clarify, Action::Handoff], Action::as_str, s)
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

/// A hand-off's priority: normal, raised one level for each of a VIP
/// customer, a complaint (an intent with the complaint role, or anger or a
/// complaint as the reason) and a repeat fault (an intent with the fault role
/// while the customer is a frequent after-sales contact or the product was
/// repaired within 90 days), up to urgent. `role` is the intent's.
pub fn handoff_priority(reason: HandoffReason, role: Option<Role>, customer: &CustomerFactors) -> Priority {
    let complaint =
        role == Some(Role::Complaint) || matches!(reason, HandoffReason::Complaint | HandoffReason::AngryCustomer);
    let repeat_fault = role == Some(Role::Fault) && (customer.frequent_after_sales || customer.product_repaired_90d);
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

/// Decides what to do with a scored message of a deployment with this taxonomy.
pub fn decide(scored: &Scored, signals: &Signals, taxonomy: &Taxonomy, settings: &PolicySettings) -> Verdict {
    let intent = scored.intent().to_string();
    let unsure = intent == OOS || scored.confidence < settings.min_answer_confidence;
    // NOTE: anger, exasperation and explicit asks for a person win over everything, even a
    // confident answerable intent: the taxonomy says they are always hand-offs.
    // When the model found nothing it is sure of, the signal names the intent
    // (the deployment's intent of that role, if it has one).
    if signals.angry || signals.exasperated {
        let intent = match taxonomy.intent_with_role(Role::Complaint) {
            Some(complaint) if intent == OOS => complaint.to_string(),
            _ => intent,
        };
        return handoff(intent, HandoffReason::AngryCustomer, taxonomy);
    }
    if signals.human_request || taxonomy.role(&intent) == Some(Role::HumanRequest) {
        let intent = match taxonomy.intent_with_role(Role::HumanRequest) {
            Some(human) if unsure => human.to_string(),
            _ => intent,
        };
        return handoff(intent, HandoffReason::HumanRequested, taxonomy);
    }
    if intent == OOS {
        return Verdict { action: Action::Clarify, intent, lead: false, handoff: None, reply: Reply::Rephrase };
    }
    if scored.confidence < settings.min_answer_confidence {
        let options: Vec<String> =
            scored.ranked.iter().take(settings.clarify_options).map(|(id, _)| id.clone()).collect();
        return Verdict { action: Action::Clarify, intent, lead: false, handoff: None, reply: Reply::WhichOf(options) };
    }
    settled(intent, taxonomy)
}

/// A hand-off verdict. The customer's profile raises its priority further
/// once it is known (see [`handoff_priority`]).
fn handoff(intent: String, reason: HandoffReason, taxonomy: &Taxonomy) -> Verdict {
    Verdict {
        handoff: Some((reason, handoff_priority(reason, taxonomy.role(&intent), &CustomerFactors::default()))),
        action: Action::Handoff,
        intent,
        lead: false,
        reply: Reply::Holding,
    }
}

/// The verdict for an intent the customer is known to mean (confidently
/// scored, or picked from a clarifying question): what its taxonomy decision says.
pub fn settled(intent: String, taxonomy: &Taxonomy) -> Verdict {
    let def = taxonomy.intent(&intent);
    match def.map(|d| (d.decision, d.role)) {
        Some((Decision::Handoff, Some(Role::Complaint))) => handoff(intent, HandoffReason::Complaint, taxonomy),
        Some((Decision::Handoff, _)) => handoff(intent, HandoffReason::AgentIntent, taxonomy),
        Some((Decision::Lead, _)) => {
            Verdict { action: Action::Answer, intent, lead: true, handoff: None, reply: Reply::IntentAnswer }
        }
        Some((Decision::Answer, _)) | None => {
            Verdict { action: Action::Answer, intent, lead: false, handoff: None, reply: Reply::IntentAnswer }
        }
    }
}

/// A second clarifying question in a row goes to a person instead: the
/// customer has already rephrased once.
pub fn escalate_unresolved(verdict: Verdict, taxonomy: &Taxonomy) -> Verdict {
    let priority =
        handoff_priority(HandoffReason::Unresolved, taxonomy.role(&verdict.intent), &CustomerFactors::default());
    Verdict {
        action: Action::Handoff,
        handoff: Some((HandoffReason::Unresolved, priority)),
        reply: Reply::Holding,
        lead: false,
        ..verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(ranked: &[(&str, f32)], confidence: f32, out_of_scope: bool) -> Scored {
        Scored {
            ranked: ranked.iter().map(|(id, p)| (id.to_string(), *p)).collect(),
            out_of_scope,
            confidence,
            neighbours: Vec::new(),
        }
    }

    /// A small taxonomy: the roles, not the ids, are what the policy reads.
    fn taxonomy() -> Taxonomy {
        let mut text = String::from("[scenarios]\nshop = \"Shop\"\n");
        for (id, decision, role) in [
            ("return_address", "answer", ""),
            ("return_policy", "answer", ""),
            ("exchange", "answer", ""),
            ("order_tracking", "answer", ""),
            ("greeting", "answer", "smalltalk"),
            ("price_inquiry", "lead", ""),
            ("complaint", "handoff", "complaint"),
            ("repair_request", "handoff", "fault"),
            ("request_human", "handoff", "human_request"),
        ] {
            let role = if role.is_empty() { String::new() } else { format!("role = \"{role}\"\n") };
            text += &format!("[[intent]]\nid = \"{id}\"\nscenario = \"shop\"\ndecision = \"{decision}\"\n{role}");
        }
        Taxonomy::from_toml(&text).unwrap()
    }

    fn run(s: &Scored, signals: Signals) -> Verdict {
        decide(s, &signals, &taxonomy(), &PolicySettings::default())
    }

    #[test]
    fn confident_answerable_intent_is_answered() {
        let v = run(&scored(&[("return_address", 0.9)], 0.95, false), Signals::default());
        assert_eq!(
            (v.action, v.intent.as_str(), v.lead, v.reply),
            (Action::Answer, "return_address", false, Reply::IntentAnswer)
        );
    }

    #[test]
    fn price_inquiry_is_a_lead() {
        let v = run(&scored(&[("price_inquiry", 0.9)], 0.9, false), Signals::default());
        assert_eq!((v.action, v.lead), (Action::Answer, true));
    }

    #[test]
    fn low_confidence_asks_which_of_the_top_candidates() {
        let v = run(
            &scored(
                &[("return_policy", 0.4), ("return_address", 0.35), ("exchange", 0.1), ("invoice", 0.05)],
                0.3,
                false,
            ),
            Signals::default(),
        );
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
        let v = escalate_unresolved(v, &taxonomy());
        assert_eq!(
            (v.action, v.handoff, v.reply),
            (Action::Handoff, Some((HandoffReason::Unresolved, Priority::Normal)), Reply::Holding)
        );
        assert_eq!(v.intent, OOS);
    }

    #[test]
    fn priority_rises_one_level_per_factor_up_to_urgent() {
        let none = CustomerFactors::default();
        let vip = CustomerFactors { vip: true, ..none };
        let frequent = CustomerFactors { frequent_after_sales: true, ..none };
        let repaired = CustomerFactors { product_repaired_90d: true, ..none };
        let (human, complaint, fault) = (Some(Role::HumanRequest), Some(Role::Complaint), Some(Role::Fault));
        assert_eq!(handoff_priority(HandoffReason::HumanRequested, human, &none), Priority::Normal);
        assert_eq!(handoff_priority(HandoffReason::HumanRequested, human, &vip), Priority::High);
        assert_eq!(handoff_priority(HandoffReason::Complaint, complaint, &none), Priority::High);
        assert_eq!(handoff_priority(HandoffReason::AngryCustomer, None, &none), Priority::High);
        assert_eq!(handoff_priority(HandoffReason::Complaint, complaint, &vip), Priority::Urgent);
        // A repeat fault: a fault intent with an earlier repair.
        assert_eq!(handoff_priority(HandoffReason::AgentIntent, fault, &none), Priority::Normal);
        assert_eq!(handoff_priority(HandoffReason::AgentIntent, fault, &frequent), Priority::High);
        assert_eq!(handoff_priority(HandoffReason::AgentIntent, fault, &repaired), Priority::High);
        assert_eq!(
            handoff_priority(HandoffReason::AgentIntent, fault, &CustomerFactors { vip: true, ..repaired }),
            Priority::Urgent
        );
        // A frequent after-sales customer asking for a person is not a fault.
        assert_eq!(handoff_priority(HandoffReason::HumanRequested, human, &frequent), Priority::Normal);
        // All three at once stays urgent.
        let all = CustomerFactors { vip: true, frequent_after_sales: true, product_repaired_90d: true };
        assert_eq!(handoff_priority(HandoffReason::AngryCustomer, fault, &all), Priority::Urgent);
        assert!(Priority::Normal < Priority::High && Priority::High < Priority::Urgent);
        assert_eq!(Priority::Urgent.as_str(), "urgent");
    }

    #[test]
    fn anger_exasperation_and_human_requests_win_over_any_intent() {
        let confident = scored(&[("order_tracking", 0.99)], 0.99, false);
        let v = run(&confident, Signals { angry: true, ..Signals::default() });
        assert_eq!((v.action, v.handoff), (Action::Handoff, Some((HandoffReason::AngryCustomer, Priority::High))));
        assert_eq!(v.intent, "order_tracking");
        let v = run(&scored(&[("x", 0.1)], 0.1, true), Signals { human_request: true, ..Signals::default() });
        assert_eq!(v.handoff, Some((HandoffReason::HumanRequested, Priority::Normal)));
        assert_eq!(v.intent, "request_human");
        let v = run(&scored(&[("x", 0.1)], 0.1, true), Signals { angry: true, ..Signals::default() });
        assert_eq!(v.intent, "complaint");
        let v = run(&confident, Signals { exasperated: true, ..Signals::default() });
        assert_eq!((v.action, v.handoff), (Action::Handoff, Some((HandoffReason::AngryCustomer, Priority::High))));
    }

    #[test]
    fn without_the_roles_signals_keep_the_scored_intent() {
        let bare = Taxonomy::from_toml(
            "[scenarios]\na = \"A\"\n[[intent]]\nid = \"x\"\nscenario = \"a\"\ndecision = \"answer\"\n",
        )
        .unwrap();
        let oos = scored(&[("x", 0.1)], 0.1, true);
        let v = decide(&oos, &Signals { angry: true, ..Signals::default() }, &bare, &PolicySettings::default());
        assert_eq!((v.action, v.intent.as_str()), (Action::Handoff, OOS));
        let v = decide(&oos, &Signals { human_request: true, ..Signals::default() }, &bare, &PolicySettings::default());
        assert_eq!(
            (v.action, v.intent.as_str(), v.handoff.map(|h| h.0)),
            (Action::Handoff, OOS, Some(HandoffReason::HumanRequested))
        );
    }
}
