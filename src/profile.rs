//! Customer profiles: who the customer is (masked), what they bought, what
//! they asked before, and tags from data-defined rules (`vip`,
//! `frequent_after_sales`, ...) with hints for the agent and the bot UI.
//!
//! [`Profile::build`] is pure: the caller gathers the inputs from the
//! enterprise systems and from the kefu history ([`CustomerHistory`], which
//! the store implements) and passes `now`.
//!
//! An **after-sales contact** (metric `after_sales_contacts_90d`) is either a
//! repair case the after-sales system opened in the 90 days before `now`, or
//! a day (in the configured zone) on which the customer talked to kefu about
//! an after-sales intent (the `after_sales` scenario: installation, repair,
//! repair progress, warranty). A chat day on which a counted repair case was
//! reported is the same contact and is not counted again.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::connectors::fields::repairs_in_90_days;
use crate::connectors::{Customer, Order, RepairRecord};
use crate::corpus::{Lang, Role};
use crate::policy::CustomerFactors;
use crate::privacy::{mask, mask_name};
use crate::tickets::Status;

/// How many recent orders and past questions a profile shows.
const RECENT_ORDERS: usize = 3;
const PAST_QUESTIONS: usize = 5;

/// The longest look-back any metric needs: what to ask the history for.
pub const HISTORY_DAYS: i64 = 90;

/// Why the kefu history could not be read.
#[derive(Debug, thiserror::Error)]
#[error("customer history unavailable: {0}")]
pub struct HistoryError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// The future every history method returns; boxed so the trait stays object-safe.
pub type HistoryFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, HistoryError>> + Send + 'a>>;

/// Earlier turns of the customer, as the store recorded them: the newest one
/// by one with what was said, older ones counted together (same intent and
/// decision within an hour), which is all the profile's counts need.
#[derive(Debug, Clone, PartialEq)]
pub struct PastTurn {
    pub intent: String,
    /// "answer" | "clarify" | "handoff".
    pub decision: String,
    /// How many turns this stands for (1 for a turn on its own).
    pub count: usize,
    /// When the first and the last of them happened (the same for one turn).
    pub first_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
    /// The (masked) text and its channel, for a turn on its own.
    pub said: Option<Said>,
}

/// What a customer said in one earlier turn, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct Said {
    pub text: String,
    pub channel: String,
}

/// A hand-off ticket as the customer may hear about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TicketSummary {
    pub id: String,
    pub customer_id: Option<String>,
    pub status: Status,
    pub priority: crate::tickets::Priority,
    pub intent: String,
    pub queue: String,
    pub assignee: Option<String>,
    /// The newest note an agent left (the hand-off's own opening note excluded).
    pub latest_note: Option<String>,
    pub latest_note_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TicketSummary {
    /// Whether work on the ticket is still going on.
    pub fn is_open(&self) -> bool {
        self.status.is_open()
    }
}

/// What kefu itself remembers of a customer: earlier turns and tickets.
pub trait CustomerHistory: Send + Sync {
    /// The customer's turns at or after `since`, newest first (bounded by the
    /// implementation, which may count older ones together: see [`PastTurn`]).
    fn past_turns<'a>(&'a self, customer_id: &'a str, since: DateTime<Utc>) -> HistoryFuture<'a, Vec<PastTurn>>;
    /// The tickets a customer asking about theirs means: open ones, and those
    /// resolved in the last week (so they can read how it ended), newest first.
    fn current_tickets<'a>(&'a self, customer_id: &'a str) -> HistoryFuture<'a, Vec<TicketSummary>>;
    /// One ticket by id, whatever its status; None when there is no such ticket.
    fn ticket_summary<'a>(&'a self, ticket_id: &'a str) -> HistoryFuture<'a, Option<TicketSummary>>;
}

/// A number a tag rule can test. The set is fixed; rules pick from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Metric {
    /// CNY spent over the 12 months before `now` (the CRM's figure, else the orders').
    #[serde(rename = "spend_12m_cny")]
    Spend12mCny,
    /// Orders placed in the last 12 months, not counting unpaid or cancelled ones.
    #[serde(rename = "orders_12m")]
    Orders12m,
    /// After-sales contacts in the last 90 days (see the module docs).
    #[serde(rename = "after_sales_contacts_90d")]
    AfterSalesContacts90d,
    /// Repair cases of any product reported in the last 90 days.
    #[serde(rename = "repairs_90d")]
    Repairs90d,
    /// Days with at least one turn in the last 30 days.
    #[serde(rename = "contacts_30d")]
    Contacts30d,
    /// Turns handed to a person in the last 90 days.
    #[serde(rename = "handoffs_90d")]
    Handoffs90d,
    /// Days with a complaint in the last 90 days.
    #[serde(rename = "complaints_90d")]
    Complaints90d,
    /// Whole days since the customer registered (unknown without the CRM).
    #[serde(rename = "days_since_registration")]
    DaysSinceRegistration,
}

/// How a metric is compared with a rule's threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    #[serde(rename = ">")]
    Above,
    #[serde(rename = ">=")]
    AtLeast,
    #[serde(rename = "<")]
    Below,
    #[serde(rename = "<=")]
    AtMost,
}

impl Comparison {
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Above => value > threshold,
            Comparison::AtLeast => value >= threshold,
            Comparison::Below => value < threshold,
            Comparison::AtMost => value <= threshold,
        }
    }
}

/// Placeholders a hint may use.
const PLACEHOLDERS: [&str; 4] = ["product", "repairs", "spend", "value"];

/// One tag rule: `tag` when `metric op threshold`, with optional hints.
///
/// Hints may use `{product}` (the product of the latest repair), `{repairs}`
/// (its repairs in 90 days), `{spend}` (12-month spend) and `{value}` (the
/// rule's metric). A hint whose placeholder has no value is left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagRule {
    pub tag: String,
    pub metric: Metric,
    pub op: Comparison,
    pub threshold: f64,
    #[serde(default)]
    pub hint_zh: Option<String>,
    #[serde(default)]
    pub hint_en: Option<String>,
}

/// The tag rules of a deployment (`[profile]` in the config file). Rules
/// given there replace the defaults; several rules may give the same tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileRules {
    #[serde(default = "default_rules")]
    pub rules: Vec<TagRule>,
}

impl Default for ProfileRules {
    fn default() -> Self {
        ProfileRules { rules: default_rules() }
    }
}

/// Tags the priority of a hand-off reads (see [`crate::policy::handoff_priority`]).
pub const TAG_VIP: &str = "vip";
pub const TAG_FREQUENT_AFTER_SALES: &str = "frequent_after_sales";

fn default_rules() -> Vec<TagRule> {
    vec![
        TagRule {
            tag: TAG_VIP.into(),
            metric: Metric::Spend12mCny,
            op: Comparison::Above,
            threshold: 10_000.0,
            hint_zh: Some("VIP 客户（近 12 个月消费 {spend} 元）：请用更亲切的措辞，优先安排专属客服。".into()),
            hint_en: Some(
                "VIP customer ({spend} CNY in the last 12 months): use warmer wording and offer the dedicated agent."
                    .into(),
            ),
        },
        TagRule {
            tag: TAG_FREQUENT_AFTER_SALES.into(),
            metric: Metric::AfterSalesContacts90d,
            op: Comparison::AtLeast,
            threshold: 2.0,
            hint_zh: Some("上次的{product}近 90 天已维修过 {repairs} 次，这次是同样的问题吗？".into()),
            hint_en: Some(
                "Their {product} was repaired {repairs} times in the last 90 days: is this the same problem again?"
                    .into(),
            ),
        },
    ]
}

/// A tag rule set that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("rule {index} ({tag:?}): {message}")]
pub struct RuleError {
    pub index: usize,
    pub tag: String,
    pub message: String,
}

impl ProfileRules {
    /// Checks tag names, thresholds and hint placeholders.
    pub fn validate(&self) -> Result<(), RuleError> {
        for (index, rule) in self.rules.iter().enumerate() {
            let fail = |message: String| Err(RuleError { index, tag: rule.tag.clone(), message });
            if rule.tag.is_empty()
                || !rule.tag.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return fail("a tag is 1 or more of a-z, 0-9 and _".into());
            }
            if !rule.threshold.is_finite() {
                return fail("threshold must be a finite number".into());
            }
            for hint in [&rule.hint_zh, &rule.hint_en].into_iter().flatten() {
                for name in placeholders(hint).map_err(|m| RuleError { index, tag: rule.tag.clone(), message: m })? {
                    if !PLACEHOLDERS.contains(&name) {
                        return fail(format!(
                            "unknown placeholder {{{name}}} in hint; known: {}",
                            PLACEHOLDERS.join(", ")
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The `{name}` placeholders of a hint, or what is wrong with its braces.
fn placeholders(hint: &str) -> Result<Vec<&str>, String> {
    let mut names = Vec::new();
    let mut rest = hint;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(format!("unmatched '}}' in hint {hint:?}"));
        }
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or_else(|| format!("unclosed '{{' in hint {hint:?}"))?;
        names.push(&after[..close]);
        rest = &after[close + 1..];
    }
    Ok(names)
}

/// One order as a profile shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderBrief {
    pub id: String,
    pub product: String,
    pub product_name: String,
    pub status: String,
    pub placed_at: DateTime<Utc>,
    pub amount_cny: f64,
}

/// The customer's latest repair case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RepairBrief {
    pub id: String,
    pub product: String,
    pub product_name: String,
    pub status: String,
    pub reported_at: DateTime<Utc>,
    /// Repair cases of the same product reported in the last 90 days.
    pub repairs_of_product_90d: usize,
}

/// An earlier question of the customer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PastQuestion {
    pub intent: String,
    /// Masked, as stored.
    pub text: String,
    pub channel: String,
    pub at: DateTime<Utc>,
}

/// What the profile is built from. `None` means the source was not available
/// (not configured, or it failed): its metrics are then unknown or zero.
pub struct ProfileInputs<'a> {
    pub customer_id: &'a str,
    /// The CRM record; None for a customer the CRM does not know, or when it failed.
    pub customer: Option<&'a Customer>,
    pub orders: Option<&'a [Order]>,
    pub repairs: Option<&'a [RepairRecord]>,
    pub past_turns: Option<&'a [PastTurn]>,
    /// Whether an intent id belongs to the after-sales scenario.
    pub is_after_sales_intent: &'a dyn Fn(&str) -> bool,
    /// The taxonomy role of an intent id (complaints, small talk).
    pub role_of: &'a dyn Fn(&str) -> Option<Role>,
    /// Sources that failed, named, to show on the profile.
    pub unavailable: &'a [String],
    /// Zone in which contacts are counted per day.
    pub tz: Tz,
}

/// A customer as an agent (and the bot UI) sees them. Personal data is masked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    pub customer_id: String,
    /// Whether the CRM knows the customer.
    pub known: bool,
    /// Masked: family name kept (张*).
    pub name: Option<String>,
    /// Masked: 138****5678.
    pub phone: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub spend_12m_cny: Option<f64>,
    pub order_count: usize,
    pub orders_12m: usize,
    /// Newest first.
    pub recent_orders: Vec<OrderBrief>,
    pub repairs_90d: usize,
    pub last_repair: Option<RepairBrief>,
    pub after_sales_contacts_90d: usize,
    pub contacts_30d: usize,
    pub handoffs_90d: usize,
    pub complaints_90d: usize,
    /// Newest first.
    pub past_questions: Vec<PastQuestion>,
    pub tags: Vec<String>,
    /// Sources that could not be read for this profile.
    pub unavailable: Vec<String>,
}

/// Distinct days in `tz` of these instants.
fn days(instants: impl Iterator<Item = DateTime<Utc>>, tz: Tz) -> BTreeSet<NaiveDate> {
    instants.map(|at| at.with_timezone(&tz).date_naive()).collect()
}

/// Whether an order counts as a purchase (paid, not cancelled).
fn is_purchase(order: &Order) -> bool {
    !matches!(order.status.as_str(), "pending_payment" | "cancelled")
}

impl Profile {
    /// Builds the profile and its tags. Pure: everything comes from `inputs` and `now`.
    pub fn build(inputs: &ProfileInputs<'_>, rules: &ProfileRules, now: DateTime<Utc>) -> Profile {
        let tz = inputs.tz;
        let year_ago = now - TimeDelta::days(365);
        let window_90d = now - TimeDelta::days(HISTORY_DAYS);
        let window_30d = now - TimeDelta::days(30);
        let orders = inputs.orders.unwrap_or_default();
        let repairs = inputs.repairs.unwrap_or_default();
        let turns = inputs.past_turns.unwrap_or_default();

        let purchases_12m: Vec<&Order> =
            orders.iter().filter(|o| is_purchase(o) && o.placed_at >= year_ago && o.placed_at <= now).collect();
        // NOTE: the CRM's figure wins: it may know of purchases outside the order system.
        let spend_12m_cny = match (inputs.customer, inputs.orders) {
            (Some(c), _) => Some(c.spend_12m_cny),
            (None, Some(_)) => Some(purchases_12m.iter().map(|o| o.amount_cny).sum()),
            (None, None) => None,
        };
        let mut recent: Vec<&Order> = orders.iter().collect();
        recent.sort_by_key(|o| std::cmp::Reverse(o.placed_at));

        let cases_90d: Vec<&RepairRecord> =
            repairs.iter().filter(|r| r.reported_at >= window_90d && r.reported_at <= now).collect();
        let last_repair = repairs.iter().max_by_key(|r| r.reported_at).map(|r| RepairBrief {
            id: r.id.clone(),
            product: r.product.clone(),
            product_name: r.product_name.clone(),
            status: r.status.clone(),
            reported_at: r.reported_at,
            repairs_of_product_90d: repairs_in_90_days(repairs, Some(&r.product), now),
        });

        // NOTE: turns are stored at the server's clock while `now` may be a
        // caller's reference time; a turn later than `now` still happened, so
        // the windows only bound the past.
        let recent_turns = |since: DateTime<Utc>| turns.iter().filter(move |t| t.at >= since);
        // A counted group's first and last turn cover every day it spans (an hour spans at most two).
        let turn_days = |t: &PastTurn| [t.first_at, t.at].into_iter().filter(move |at| *at >= window_90d);
        let case_days = days(cases_90d.iter().map(|r| r.reported_at), tz);
        let chat_days = days(
            recent_turns(window_90d).filter(|t| (inputs.is_after_sales_intent)(&t.intent)).flat_map(turn_days),
            tz,
        );
        let after_sales_contacts_90d = cases_90d.len() + chat_days.difference(&case_days).count();

        let mut newest: Vec<(&PastTurn, &Said)> = turns
            .iter()
            .filter(|t| (inputs.role_of)(&t.intent) != Some(Role::Smalltalk))
            .filter_map(|t| t.said.as_ref().map(|said| (t, said)))
            .collect();
        newest.sort_by_key(|(t, _)| std::cmp::Reverse(t.at));

        let mut profile = Profile {
            customer_id: inputs.customer_id.to_string(),
            known: inputs.customer.is_some(),
            name: inputs.customer.map(|c| mask_name(&c.name)),
            phone: inputs.customer.map(|c| mask(&c.phone).into_owned()),
            since: inputs.customer.map(|c| c.since),
            spend_12m_cny,
            order_count: orders.len(),
            orders_12m: purchases_12m.len(),
            recent_orders: recent
                .iter()
                .take(RECENT_ORDERS)
                .map(|o| OrderBrief {
                    id: o.id.clone(),
                    product: o.product.clone(),
                    product_name: o.product_name.clone(),
                    status: o.status.clone(),
                    placed_at: o.placed_at,
                    amount_cny: o.amount_cny,
                })
                .collect(),
            repairs_90d: cases_90d.len(),
            last_repair,
            after_sales_contacts_90d,
            contacts_30d: days(
                recent_turns(window_30d).flat_map(|t| [t.first_at, t.at]).filter(|at| *at >= window_30d),
                tz,
            )
            .len(),
            handoffs_90d: recent_turns(window_90d).filter(|t| t.decision == "handoff").map(|t| t.count).sum(),
            complaints_90d: days(
                recent_turns(window_90d)
                    .filter(|t| (inputs.role_of)(&t.intent) == Some(Role::Complaint))
                    .flat_map(turn_days),
                tz,
            )
            .len(),
            past_questions: newest
                .iter()
                .take(PAST_QUESTIONS)
                .map(|(t, said)| PastQuestion {
                    intent: t.intent.clone(),
                    text: said.text.clone(),
                    channel: said.channel.clone(),
                    at: t.at,
                })
                .collect(),
            tags: Vec::new(),
            unavailable: inputs.unavailable.to_vec(),
        };
        for rule in &rules.rules {
            if profile.satisfies(rule, now) && !profile.has_tag(&rule.tag) {
                profile.tags.push(rule.tag.clone());
            }
        }
        profile
    }

    /// The value of a metric, None when its source is unknown.
    pub fn metric(&self, metric: Metric, now: DateTime<Utc>) -> Option<f64> {
        Some(match metric {
            Metric::Spend12mCny => self.spend_12m_cny?,
            Metric::Orders12m => self.orders_12m as f64,
            Metric::AfterSalesContacts90d => self.after_sales_contacts_90d as f64,
            Metric::Repairs90d => self.repairs_90d as f64,
            Metric::Contacts30d => self.contacts_30d as f64,
            Metric::Handoffs90d => self.handoffs_90d as f64,
            Metric::Complaints90d => self.complaints_90d as f64,
            Metric::DaysSinceRegistration => (now - self.since?).num_days() as f64,
        })
    }

    fn satisfies(&self, rule: &TagRule, now: DateTime<Utc>) -> bool {
        self.metric(rule.metric, now).is_some_and(|v| rule.op.holds(v, rule.threshold))
    }

    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// What of this customer bears on a hand-off's priority; `product` is the
    /// product the customer names, `repairs` their repair cases.
    pub fn priority_factors(
        &self,
        repairs: &[RepairRecord],
        product: Option<&str>,
        now: DateTime<Utc>,
    ) -> CustomerFactors {
        CustomerFactors {
            vip: self.has_tag(TAG_VIP),
            frequent_after_sales: self.has_tag(TAG_FREQUENT_AFTER_SALES),
            product_repaired_90d: product.is_some_and(|p| repairs_in_90_days(repairs, Some(p), now) > 0),
        }
    }

    /// Hints for the agent and the bot UI in `lang`, from the rules that hold,
    /// in rule order and without repeats. `product_name` names a catalogue
    /// product type in a language (the repair's own name is used otherwise).
    pub fn hints(
        &self,
        rules: &ProfileRules,
        lang: Lang,
        now: DateTime<Utc>,
        product_name: &dyn Fn(&str, Lang) -> Option<String>,
    ) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for rule in rules.rules.iter().filter(|r| self.satisfies(r, now)) {
            let template = match lang {
                Lang::Zh => rule.hint_zh.as_deref(),
                Lang::En => rule.hint_en.as_deref(),
            };
            let Some(template) = template else { continue };
            let value = |name: &str| -> Option<String> {
                match name {
                    "product" => self
                        .last_repair
                        .as_ref()
                        .map(|r| product_name(&r.product, lang).unwrap_or_else(|| r.product_name.clone())),
                    "repairs" => self.last_repair.as_ref().map(|r| r.repairs_of_product_90d.to_string()),
                    "spend" => self.spend_12m_cny.map(|s| format!("{s:.0}")),
                    "value" => self.metric(rule.metric, now).map(|v| {
                        if v.fract() == 0.0 {
                            format!("{v:.0}")
                        } else {
                            format!("{v:.2}")
                        }
                    }),
                    _ => None,
                }
            };
            if let Some(hint) = render_hint(template, &value) {
                if !out.contains(&hint) {
                    out.push(hint);
                }
            }
        }
        out
    }
}

/// `template` with its placeholders filled, None when one has no value.
fn render_hint(template: &str, value: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}')?;
        out.push_str(&value(&after[..close])?);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn now() -> DateTime<Utc> {
        at("2026-06-15T02:00:00Z")
    }

    fn days_ago(d: i64) -> DateTime<Utc> {
        now() - TimeDelta::days(d)
    }

    fn customer(spend: f64) -> Customer {
        Customer {
            id: "c1".into(),
            name: "张伟".into(),
            phone: "13812345678".into(),
            spend_12m_cny: spend,
            since: days_ago(400),
        }
    }

    fn order(id: &str, status: &str, placed_days_ago: i64, amount: f64) -> Order {
        Order {
            id: id.into(),
            customer_id: "c1".into(),
            product: "dress".into(),
            product_name: "连衣裙".into(),
            status: status.into(),
            placed_at: days_ago(placed_days_ago),
            amount_cny: amount,
            address: String::new(),
            carrier: None,
            tracking_no: None,
            logistics: Vec::new(),
            eta: None,
        }
    }

    fn repair(id: &str, product: &str, reported_days_ago: i64) -> RepairRecord {
        RepairRecord {
            id: id.into(),
            product: product.into(),
            product_name: "十字对开门冰箱".into(),
            order_id: None,
            reported_at: days_ago(reported_days_ago),
            status: "completed".into(),
            technician_visit: None,
            note: String::new(),
        }
    }

    fn turn(intent: &str, decision: &str, at: DateTime<Utc>) -> PastTurn {
        PastTurn {
            intent: intent.into(),
            decision: decision.into(),
            count: 1,
            first_at: at,
            at,
            said: Some(Said { text: format!("about {intent}"), channel: "web".into() }),
        }
    }

    fn after_sales(intent: &str) -> bool {
        matches!(intent, "repair_request" | "repair_progress" | "installation" | "warranty_policy")
    }

    fn role_of(intent: &str) -> Option<Role> {
        match intent {
            "complaint" => Some(Role::Complaint),
            "greeting" | "thanks" => Some(Role::Smalltalk),
            _ => None,
        }
    }

    struct Sources {
        customer: Option<Customer>,
        orders: Option<Vec<Order>>,
        repairs: Option<Vec<RepairRecord>>,
        turns: Option<Vec<PastTurn>>,
    }

    impl Sources {
        fn build(&self, rules: &ProfileRules) -> Profile {
            let inputs = ProfileInputs {
                customer_id: "c1",
                customer: self.customer.as_ref(),
                orders: self.orders.as_deref(),
                repairs: self.repairs.as_deref(),
                past_turns: self.turns.as_deref(),
                is_after_sales_intent: &after_sales,
                role_of: &role_of,
                unavailable: &[],
                tz: chrono_tz::Asia::Shanghai,
            };
            Profile::build(&inputs, rules, now())
        }
    }

    fn empty() -> Sources {
        Sources { customer: None, orders: Some(Vec::new()), repairs: Some(Vec::new()), turns: Some(Vec::new()) }
    }

    #[test]
    fn a_big_spender_with_two_recent_repairs_gets_both_default_tags() {
        let sources = Sources {
            customer: Some(customer(15_056.0)),
            orders: Some(vec![
                order("1", "delivered", 240, 8999.0),
                order("2", "paid", 1, 459.0),
                order("3", "cancelled", 9, 199.0),
                order("4", "delivered", 420, 3999.0),
            ]),
            repairs: Some(vec![repair("W1", "refrigerator", 70), repair("W2", "refrigerator", 12)]),
            turns: Some(Vec::new()),
        };
        let p = sources.build(&ProfileRules::default());
        assert_eq!(p.tags, ["vip", "frequent_after_sales"]);
        assert_eq!((p.name.as_deref(), p.phone.as_deref()), (Some("张*"), Some("138****5678")));
        assert_eq!((p.order_count, p.orders_12m, p.repairs_90d, p.after_sales_contacts_90d), (4, 2, 2, 2));
        assert_eq!(p.recent_orders.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(), ["2", "3", "1"]);
        let last = p.last_repair.as_ref().unwrap();
        assert_eq!((last.id.as_str(), last.repairs_of_product_90d), ("W2", 2));
    }

    #[test]
    fn a_new_customer_has_no_tags() {
        let mut sources = empty();
        sources.customer = Some(Customer { since: days_ago(4), ..customer(1299.0) });
        sources.orders = Some(vec![order("23456", "shipped", 3, 1299.0)]);
        let p = sources.build(&ProfileRules::default());
        assert!(p.tags.is_empty(), "{:?}", p.tags);
        assert_eq!(p.metric(Metric::DaysSinceRegistration, now()), Some(4.0));
        assert!(p.hints(&ProfileRules::default(), Lang::Zh, now(), &|_, _| None).is_empty());
    }

    #[test]
    fn vip_threshold_is_strict_and_spend_falls_back_to_orders() {
        let mut sources = empty();
        sources.customer = Some(customer(10_000.0));
        assert!(!sources.build(&ProfileRules::default()).has_tag("vip"));
        // Without the CRM, the paid orders of the last 12 months count.
        sources.customer = None;
        sources.orders = Some(vec![
            order("1", "delivered", 100, 6000.0),
            order("2", "delivered", 200, 4500.0),
            order("3", "cancelled", 5, 9000.0),
            order("4", "delivered", 400, 9000.0),
        ]);
        let p = sources.build(&ProfileRules::default());
        assert_eq!(p.spend_12m_cny, Some(10_500.0));
        assert!(p.has_tag("vip") && !p.known);
        // Neither source: unknown spend, no tag.
        sources.orders = None;
        let p = sources.build(&ProfileRules::default());
        assert_eq!(p.spend_12m_cny, None);
        assert!(!p.has_tag("vip"));
    }

    #[test]
    fn after_sales_contacts_count_cases_and_chat_days_once() {
        let mut sources = empty();
        // One case 20 days ago; a chat about it the same day is the same contact.
        sources.repairs = Some(vec![repair("W1", "washing_machine", 20), repair("W0", "washing_machine", 120)]);
        sources.turns = Some(vec![
            turn("repair_request", "handoff", days_ago(20)),
            turn("repair_progress", "answer", days_ago(20) + TimeDelta::hours(1)),
        ]);
        let p = sources.build(&ProfileRules::default());
        assert_eq!(p.after_sales_contacts_90d, 1);
        assert!(!p.has_tag("frequent_after_sales"));
        // A progress question on another day is a second contact; ecommerce chats are not contacts.
        sources.turns.as_mut().unwrap().push(turn("repair_progress", "answer", days_ago(5)));
        sources.turns.as_mut().unwrap().push(turn("order_tracking", "answer", days_ago(3)));
        let p = sources.build(&ProfileRules::default());
        assert_eq!(p.after_sales_contacts_90d, 2);
        assert!(p.has_tag("frequent_after_sales"));
        // Chats older than 90 days do not count.
        sources.turns =
            Some(vec![turn("repair_request", "handoff", days_ago(91)), turn("installation", "answer", days_ago(100))]);
        assert_eq!(sources.build(&ProfileRules::default()).after_sales_contacts_90d, 1);
    }

    #[test]
    fn history_metrics_and_past_questions() {
        let mut sources = empty();
        sources.turns = Some(vec![
            turn("greeting", "answer", days_ago(1)),
            turn("complaint", "handoff", days_ago(2)),
            turn("complaint", "handoff", days_ago(2) + TimeDelta::minutes(5)),
            turn("order_tracking", "answer", days_ago(10)),
            turn("refund_status", "answer", days_ago(40)),
            // Later than the request's `now`: still a past turn.
            turn("invoice", "answer", now() + TimeDelta::days(30)),
        ]);
        let p = sources.build(&ProfileRules::default());
        assert_eq!((p.contacts_30d, p.handoffs_90d, p.complaints_90d), (4, 2, 1));
        let intents: Vec<&str> = p.past_questions.iter().map(|q| q.intent.as_str()).collect();
        assert_eq!(intents, ["invoice", "complaint", "complaint", "order_tracking", "refund_status"]);
    }

    #[test]
    fn counted_turns_count_each_turn_and_every_day_they_span() {
        let mut sources = empty();
        // Seven hand-offs between 23:40 and 00:20 Shanghai time, counted as one
        // group by the store, and one turn on its own.
        let midnight = at("2026-06-10T16:00:00Z");
        let group = PastTurn {
            count: 7,
            first_at: midnight - TimeDelta::minutes(20),
            at: midnight + TimeDelta::minutes(20),
            said: None,
            ..turn("complaint", "handoff", midnight)
        };
        sources.turns = Some(vec![turn("order_tracking", "answer", days_ago(1)), group]);
        let p = sources.build(&ProfileRules::default());
        assert_eq!((p.contacts_30d, p.handoffs_90d, p.complaints_90d), (3, 7, 2));
        let intents: Vec<&str> = p.past_questions.iter().map(|q| q.intent.as_str()).collect();
        assert_eq!(intents, ["order_tracking"], "only turns on their own have texts to show");
    }

    #[test]
    fn configured_rules_replace_the_defaults_and_may_share_a_tag() {
        let rules: ProfileRules = toml::from_str(
            r#"
            [[rules]]
            tag = "vip"
            metric = "orders_12m"
            op = ">="
            threshold = 2
            [[rules]]
            tag = "vip"
            metric = "spend_12m_cny"
            op = ">"
            threshold = 50000
            [[rules]]
            tag = "new_customer"
            metric = "days_since_registration"
            op = "<"
            threshold = 30
            hint_zh = "新客户（注册 {value} 天）：多介绍一下服务。"
            "#,
        )
        .unwrap();
        rules.validate().unwrap();
        assert_eq!(rules.rules.len(), 3);
        let mut sources = empty();
        sources.customer = Some(Customer { since: days_ago(4), ..customer(100.0) });
        sources.orders = Some(vec![order("1", "delivered", 10, 50.0), order("2", "delivered", 20, 50.0)]);
        let p = sources.build(&rules);
        assert_eq!(p.tags, ["vip", "new_customer"]);
        assert_eq!(p.hints(&rules, Lang::Zh, now(), &|_, _| None), ["新客户（注册 4 天）：多介绍一下服务。"]);
        assert!(p.hints(&rules, Lang::En, now(), &|_, _| None).is_empty());
        // An empty [profile] keeps the defaults.
        let defaults: ProfileRules = toml::from_str("").unwrap();
        assert_eq!(defaults, ProfileRules::default());
    }

    #[test]
    fn bad_rules_are_named() {
        for (text, expect) in [
            ("[[rules]]\ntag = \"VIP!\"\nmetric = \"orders_12m\"\nop = \">\"\nthreshold = 1", "a-z"),
            (
                "[[rules]]\ntag = \"x\"\nmetric = \"orders_12m\"\nop = \">\"\nthreshold = 1\nhint_zh = \"{nope}\"",
                "unknown placeholder {nope}",
            ),
            (
                "[[rules]]\ntag = \"x\"\nmetric = \"orders_12m\"\nop = \">\"\nthreshold = 1\nhint_en = \"{product\"",
                "unclosed",
            ),
            ("[[rules]]\ntag = \"x\"\nmetric = \"orders_12m\"\nop = \">\"\nthreshold = nan", "finite"),
        ] {
            let rules: ProfileRules = toml::from_str(text).unwrap();
            let err = rules.validate().unwrap_err();
            assert!(err.to_string().contains(expect), "{text}: {err}");
        }
        for text in [
            "[[rules]]\ntag = \"x\"\nmetric = \"age\"\nop = \">\"\nthreshold = 1",
            "[[rules]]\ntag = \"x\"\nmetric = \"orders_12m\"\nop = \"=\"\nthreshold = 1",
        ] {
            assert!(toml::from_str::<ProfileRules>(text).is_err(), "{text}");
        }
    }

    #[test]
    fn hints_name_the_repaired_product_in_the_turns_language() {
        let sources = Sources {
            customer: Some(customer(15_000.0)),
            orders: Some(Vec::new()),
            repairs: Some(vec![repair("W1", "refrigerator", 70), repair("W2", "refrigerator", 12)]),
            turns: Some(Vec::new()),
        };
        let p = sources.build(&ProfileRules::default());
        let names = |id: &str, lang: Lang| {
            (id == "refrigerator").then(|| if lang == Lang::Zh { "冰箱" } else { "refrigerator" }.to_string())
        };
        let zh = p.hints(&ProfileRules::default(), Lang::Zh, now(), &names);
        assert_eq!(zh.len(), 2, "{zh:?}");
        assert!(zh[0].contains("15000") && zh[0].contains("专属客服"), "{zh:?}");
        assert_eq!(zh[1], "上次的冰箱近 90 天已维修过 2 次，这次是同样的问题吗？");
        let en = p.hints(&ProfileRules::default(), Lang::En, now(), &names);
        assert!(en[1].starts_with("Their refrigerator was repaired 2 times"), "{en:?}");
        // Without a catalogue name the repair's own name is used.
        assert!(p.hints(&ProfileRules::default(), Lang::Zh, now(), &|_, _| None)[1].contains("十字对开门冰箱"));
    }

    #[test]
    fn a_hint_whose_placeholder_has_no_value_is_left_out() {
        // Frequent after-sales from chats alone: no repair to name.
        let mut sources = empty();
        sources.turns =
            Some(vec![turn("repair_request", "handoff", days_ago(30)), turn("warranty_policy", "answer", days_ago(2))]);
        let p = sources.build(&ProfileRules::default());
        assert!(p.has_tag("frequent_after_sales"));
        assert!(p.hints(&ProfileRules::default(), Lang::Zh, now(), &|_, _| None).is_empty());
    }

    #[test]
    fn priority_factors_read_the_tags_and_the_named_products_repairs() {
        let sources = Sources {
            customer: Some(customer(15_000.0)),
            orders: Some(Vec::new()),
            repairs: Some(vec![repair("W1", "refrigerator", 70), repair("W2", "washing_machine", 120)]),
            turns: Some(Vec::new()),
        };
        let p = sources.build(&ProfileRules::default());
        let repairs = sources.repairs.as_deref().unwrap();
        let f = p.priority_factors(repairs, Some("refrigerator"), now());
        assert_eq!(f, CustomerFactors { vip: true, frequent_after_sales: false, product_repaired_90d: true });
        assert!(!p.priority_factors(repairs, Some("washing_machine"), now()).product_repaired_90d);
        assert!(!p.priority_factors(repairs, None, now()).product_repaired_90d);
    }

    #[test]
    fn names_are_masked() {
        assert_eq!(mask_name("张伟"), "张*");
        assert_eq!(mask_name("欧阳娜娜"), "欧***");
        assert_eq!(mask_name("John Smith"), "J*** S****");
    }

    #[test]
    fn comparisons() {
        assert!(Comparison::Above.holds(2.0, 1.0) && !Comparison::Above.holds(1.0, 1.0));
        assert!(Comparison::AtLeast.holds(1.0, 1.0) && !Comparison::AtLeast.holds(0.5, 1.0));
        assert!(Comparison::Below.holds(0.5, 1.0) && !Comparison::Below.holds(1.0, 1.0));
        assert!(Comparison::AtMost.holds(1.0, 1.0) && !Comparison::AtMost.holds(1.5, 1.0));
    }
}
