//! Tickets, the rules: status and its transitions, priority, why a
//! conversation went to a person, the id format and the pick-up deadline.
//! Pure: the store persists tickets, the services open and move them.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::corpus::Lang;

/// Where a ticket is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    New,
    Assigned,
    InProgress,
    WaitingCustomer,
    Resolved,
    Closed,
}

impl Status {
    /// In their usual order.
    pub const ALL: [Status; 6] =
        [Status::New, Status::Assigned, Status::InProgress, Status::WaitingCustomer, Status::Resolved, Status::Closed];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Assigned => "assigned",
            Status::InProgress => "in_progress",
            Status::WaitingCustomer => "waiting_customer",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
        }
    }

    /// Whether a ticket may move from this status to `to`. Work can be
    /// reopened (resolved -> in_progress) but a closed ticket stays closed.
    pub fn can_move_to(self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (New, Assigned)
                | (Assigned, Assigned | InProgress)
                | (InProgress, WaitingCustomer | Resolved | Assigned)
                | (WaitingCustomer, InProgress | Resolved)
                | (Resolved, Closed | InProgress)
        )
    }

    /// Whether work on the ticket is still going on.
    pub fn is_open(self) -> bool {
        !matches!(self, Status::Resolved | Status::Closed)
    }

    /// The status in the customer's words.
    pub fn words(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (Status::New, Lang::Zh) => "新建待处理",
            (Status::Assigned, Lang::Zh) => "已分配给客服",
            (Status::InProgress, Lang::Zh) => "处理中",
            (Status::WaitingCustomer, Lang::Zh) => "等待你的回复",
            (Status::Resolved, Lang::Zh) => "已解决",
            (Status::Closed, Lang::Zh) => "已关闭",
            (Status::New, Lang::En) => "waiting for an agent",
            (Status::Assigned, Lang::En) => "assigned to an agent",
            (Status::InProgress, Lang::En) => "in progress",
            (Status::WaitingCustomer, Lang::En) => "waiting for your reply",
            (Status::Resolved, Lang::En) => "resolved",
            (Status::Closed, Lang::En) => "closed",
        }
    }
}

/// A word that names no value of the enum; the message lists the ones that do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{what} must be one of {allowed}, not {given:?}")]
pub struct UnknownValue {
    pub what: &'static str,
    pub allowed: String,
    pub given: String,
}

/// The value among `all` whose `name` is `given`.
pub fn named<T: Copy>(
    what: &'static str,
    all: &[T],
    name: fn(T) -> &'static str,
    given: &str,
) -> Result<T, UnknownValue> {
    all.iter().copied().find(|v| name(*v) == given).ok_or_else(|| UnknownValue {
        what,
        allowed: all.iter().map(|v| name(*v)).collect::<Vec<_>>().join(", "),
        given: given.to_string(),
    })
}

impl FromStr for Status {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        named("status", &Status::ALL, Status::as_str, s)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How soon a ticket needs a person: normal < high < urgent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Normal,
    High,
    Urgent,
}

impl Priority {
    pub const ALL: [Priority; 3] = [Priority::Normal, Priority::High, Priority::Urgent];

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

impl FromStr for Priority {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        named("priority", &Priority::ALL, Priority::as_str, s)
    }
}

/// Why the bot gave a conversation to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
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
    /// The bot asked twice in a row without getting anywhere, or the
    /// customer asked a third time what it had answered twice.
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

/// Why the bot did not answer a message: an agent owns the conversation.
pub const AGENT_ACTIVE_REASON: &str = "agent_active";

/// The reason of a ticket an agent or a form opened by hand, unless it gives its own.
pub const MANUAL_REASON: &str = "manual";

/// A fresh ticket id: "T" and 12 upper-case hex digits.
pub fn new_ticket_id() -> String {
    format!("T{}", &uuid::Uuid::new_v4().simple().to_string()[..12].to_uppercase())
}

/// A ticket id as [`new_ticket_id`] makes them (e.g. T3F9A0B12C4D5) named in
/// a customer's text, upper-cased.
pub fn ticket_id_in(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let alnum_at = |i: usize| bytes.get(i).is_some_and(|b| b.is_ascii_alphanumeric());
    (0..bytes.len()).find_map(|i| {
        let candidate = bytes.get(i..i + 13)?;
        let fits = candidate[0].eq_ignore_ascii_case(&b'T')
            && candidate[1..].iter().all(u8::is_ascii_hexdigit)
            && !(i > 0 && alnum_at(i - 1))
            && !alnum_at(i + 13);
        fits.then(|| text[i..i + 13].to_ascii_uppercase())
    })
}

/// When a ticket opened at `opened` must have been picked up.
pub fn due_at(opened: DateTime<Utc>, sla: chrono::Duration) -> DateTime<Utc> {
    opened + sla
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_lifecycle() {
        use Status::*;
        let path = [New, Assigned, InProgress, WaitingCustomer, InProgress, Resolved, Closed];
        assert!(path.windows(2).all(|w| w[0].can_move_to(w[1])), "{path:?}");
        for (from, to) in [(New, Resolved), (Closed, InProgress), (New, Closed), (Resolved, New)] {
            assert!(!from.can_move_to(to), "{from} -> {to}");
        }
        assert!(Status::ALL.iter().all(|s| Status::ALL.iter().any(|t| s.can_move_to(*t)) || *s == Closed));
        assert!(InProgress.is_open() && !Resolved.is_open());
    }

    #[test]
    fn statuses_and_priorities_parse_from_their_names_only() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        let err = "done".parse::<Status>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "status must be one of new, assigned, in_progress, waiting_customer, resolved, closed, not \"done\""
        );
        assert_eq!("urgent".parse::<Priority>(), Ok(Priority::Urgent));
        assert!("asap".parse::<Priority>().is_err());
        assert!(Priority::Normal < Priority::High && Priority::High.raised() == Priority::Urgent);
    }

    #[test]
    fn ticket_ids_are_found_only_in_their_format() {
        assert_eq!(ticket_id_in("工单T3F9A0B12C4D5进度如何").as_deref(), Some("T3F9A0B12C4D5"));
        assert_eq!(ticket_id_in("ticket t3f9a0b12c4d5?").as_deref(), Some("T3F9A0B12C4D5"));
        // 13 digits is someone else's number; too short or not hex is not ours either.
        for text in
            ["工单号 T2026061800012 现在什么状态", "T3F9A0B12C4D", "T3F9A0B12C4DZ", "AT3F9A0B12C4D5", "我的工单"]
        {
            assert_eq!(ticket_id_in(text), None, "{text}");
        }
    }

    #[test]
    fn new_ticket_ids_are_found_in_text() {
        let id = new_ticket_id();
        assert_eq!(ticket_id_in(&format!("工单{id}进度如何")), Some(id.clone()));
        assert_eq!(ticket_id_in(&format!("ticket {}?", id.to_lowercase())), Some(id));
    }
}
