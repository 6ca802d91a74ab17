//! Analytics for the weekly review: the report of a period (auto-answer,
//! clarify and hand-off rates, hand-offs by reason, response-time
//! percentiles, per-channel figures, the questions customers ask grouped by
//! meaning, the answers marked not useful, corrections per intent) and its
//! CSV export.
//!
//! Pure: the store counts in SQL ([`StatsData`]), the caller
//! embeds the question texts (the engine in the API, the bare encoder in the
//! CLI), and [`build_report`] does the rest: rates, percentiles and
//! clustering, deterministically.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::policy::Action;
use crate::support::percentile::nearest_rank;
use crate::support::time::stamp;
use crate::support::vector::cosine;

/// Settings of the analytics.
#[derive(Debug, Clone)]
pub struct StatsSettings {
    /// Zone that `YYYY-MM-DD` bounds are read in.
    pub timezone: Tz,
    /// Cosine similarity at or above which a question joins a group.
    pub cluster_threshold: f32,
    /// Most distinct question texts (the most recent) that are embedded and grouped.
    pub max_questions: usize,
    /// Time limit of one analytics request (longer than a customer's answer may take).
    pub timeout: std::time::Duration,
}

impl Default for StatsSettings {
    fn default() -> Self {
        StatsSettings {
            timezone: crate::support::time::DEFAULT_TIMEZONE,
            cluster_threshold: 0.92,
            max_questions: 2000,
            timeout: std::time::Duration::from_secs(120),
        }
    }
}

/// Groups of questions listed in a report unless the caller asks for another number.
pub const DEFAULT_TOP_QUESTIONS: usize = 20;

/// Examples shown per group of questions.
const EXAMPLES_PER_GROUP: usize = 3;

/// A bound the caller got wrong; the API answers 400 with it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PeriodError {
    #[error("{field} must be an RFC 3339 time or a YYYY-MM-DD date, not {value:?}")]
    Unreadable { field: &'static str, value: String },
    #[error("from ({from}) must be before to ({to})")]
    Empty { from: String, to: String },
}

/// A half-open interval of time `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Period {
    /// Reads optional bounds: an RFC 3339 time is taken as is; a date covers
    /// that whole day in `tz` (so `to=2026-06-15` includes the 15th). Without
    /// `to` the period ends `now`; without `from` it starts 7 days before its end.
    pub fn parse(from: Option<&str>, to: Option<&str>, tz: Tz, now: DateTime<Utc>) -> Result<Period, PeriodError> {
        let to = match to.filter(|s| !s.is_empty()) {
            Some(s) => parse_bound("to", s, tz, true)?,
            None => now,
        };
        let from = match from.filter(|s| !s.is_empty()) {
            Some(s) => parse_bound("from", s, tz, false)?,
            None => to - Duration::days(7),
        };
        if from >= to {
            return Err(PeriodError::Empty { from: stamp(from), to: stamp(to) });
        }
        Ok(Period { from, to })
    }

    /// Optional bounds as [`Period::parse`] reads them, without defaults.
    pub fn parse_open(from: Option<&str>, to: Option<&str>, tz: Tz) -> Result<OpenPeriod, PeriodError> {
        let from = from.filter(|s| !s.is_empty()).map(|s| parse_bound("from", s, tz, false)).transpose()?;
        let to = to.filter(|s| !s.is_empty()).map(|s| parse_bound("to", s, tz, true)).transpose()?;
        if let (Some(f), Some(t)) = (from, to) {
            if f >= t {
                return Err(PeriodError::Empty { from: stamp(f), to: stamp(t) });
            }
        }
        Ok(OpenPeriod { from, to })
    }
}

/// An interval `[from, to)` whose bounds may be open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenPeriod {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

fn parse_bound(field: &'static str, value: &str, tz: Tz, end_of_day: bool) -> Result<DateTime<Utc>, PeriodError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    let unreadable = || PeriodError::Unreadable { field, value: value.to_string() };
    let day = NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| unreadable())?;
    let day = if end_of_day { day.succ_opt().ok_or_else(unreadable)? } else { day };
    // A day that starts inside a DST gap has no midnight; its earliest valid instant is close enough.
    tz.from_local_datetime(&day.and_time(NaiveTime::MIN))
        .earliest()
        .or_else(|| tz.from_local_datetime(&day.and_hms_opt(1, 0, 0)?).earliest())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(unreadable)
}

/// The figures of a period as the store counts them (see `store/analytics.rs`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsData {
    /// Turns per channel and decision.
    pub decisions: Vec<DecisionCount>,
    /// (channel, latency_ms) of every turn.
    pub latencies: Vec<(String, f64)>,
    /// Hand-off tickets per reason.
    pub handoff_reasons: Vec<(String, u64)>,
    /// Distinct question texts, the most recent first, up to the cap.
    pub questions: Vec<QuestionText>,
    /// Distinct question texts in the period, without the cap.
    pub questions_distinct: u64,
    /// Feedback per intent of the rated turns.
    pub feedback: Vec<IntentFeedback>,
    /// Corrections per corrected (right) intent.
    pub corrected_to: Vec<(String, u64)>,
    /// Corrections per intent the engine had given the corrected turn.
    pub corrected_from: Vec<(String, u64)>,
    /// Turns per UTC hour (`YYYY-MM-DDTHH`, as stored) and decision.
    pub hourly: Vec<(String, Action, u64)>,
    /// Turns per intent and decision.
    pub intent_decisions: Vec<(String, Action, u64)>,
    /// The hand-off tickets opened in the period, as agents worked them.
    pub tickets: Vec<TicketTiming>,
}

/// How one ticket was worked: who holds it and when things happened (stored stamps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketTiming {
    pub queue: String,
    pub assignee: Option<String>,
    pub created_at: String,
    /// The first reply an agent sent the customer.
    pub first_reply_at: Option<String>,
    /// When it was first resolved or closed.
    pub resolved_at: Option<String>,
    /// It went back to work after being resolved.
    pub reopened: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DecisionCount {
    pub channel: String,
    pub decision: crate::policy::Action,
    pub count: u64,
    /// Of those, turns also routed to sales.
    pub leads: u64,
}

/// One distinct (masked) question text of a period.
#[derive(Debug, Clone, PartialEq)]
pub struct QuestionText {
    pub text: String,
    /// Turns with this text.
    pub count: u64,
    /// Turns per intent given to this text.
    pub intents: Vec<(String, u64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IntentFeedback {
    pub intent: String,
    pub not_useful: u64,
    pub rated: u64,
    /// The answer most often marked not useful.
    pub answer: Option<String>,
    /// The latest comments of not-useful feedback.
    pub comments: Vec<String>,
}

/// Everything the weekly review looks at, for one period (and channel).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsReport {
    pub from: String,
    pub to: String,
    /// The zone days are counted in (`daily`, `YYYY-MM-DD` bounds), e.g. Asia/Shanghai.
    pub timezone: String,
    /// The channel the figures are restricted to, if any.
    pub channel: Option<String>,
    pub turns: u64,
    pub answered: u64,
    pub clarified: u64,
    pub handed_off: u64,
    /// Turns also routed to sales.
    pub leads: u64,
    /// Shares of all turns; null when the period has no turns.
    pub auto_answer_rate: Option<f64>,
    pub clarify_rate: Option<f64>,
    pub handoff_rate: Option<f64>,
    /// Hand-offs by reason, most frequent first; `rate` is the share of all turns.
    pub handoff_by_reason: Vec<ReasonCount>,
    /// Whole-request latency as stored with each turn.
    pub latency_ms: Percentiles,
    pub channels: Vec<ChannelStats>,
    /// Distinct question texts in the period, and how many of them were grouped
    /// (the most recent, up to the configured cap).
    pub questions_distinct: u64,
    pub questions_grouped: u64,
    /// Questions grouped by meaning, most asked first.
    pub top_questions: Vec<QuestionGroup>,
    /// Intents whose answers were marked not useful, most reported first.
    pub not_useful: Vec<NotUsefulAnswers>,
    pub corrections_total: u64,
    /// Agent corrections per intent, most corrected first.
    pub corrections: Vec<IntentCorrections>,
    /// Every day of the period (in the report's time zone), oldest first.
    pub daily: Vec<DayStats>,
    /// Per scenario of the taxonomy (`none` for out of scope), busiest first.
    pub scenarios: Vec<ScenarioStats>,
    /// Of the hand-off tickets opened in the period: time to an agent's first
    /// reply and to resolution, in minutes.
    pub first_response_minutes: Percentiles,
    pub resolution_minutes: Percentiles,
    /// Per agent holding tickets opened in the period, most tickets first.
    pub agents: Vec<WorkStats>,
    /// Per queue of the tickets opened in the period, most tickets first.
    pub queues: Vec<WorkStats>,
}

/// Turns by decision, with the rates of answers and hand-offs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Outcomes {
    pub turns: u64,
    pub answered: u64,
    pub clarified: u64,
    pub handed_off: u64,
    pub auto_answer_rate: Option<f64>,
    pub handoff_rate: Option<f64>,
}

impl Outcomes {
    /// From the counts per decision, indexed by [`decision_slot`].
    fn of([answered, clarified, handed_off]: [u64; 3]) -> Outcomes {
        let turns = answered + clarified + handed_off;
        Outcomes {
            turns,
            answered,
            clarified,
            handed_off,
            auto_answer_rate: rate(answered, turns),
            handoff_rate: rate(handed_off, turns),
        }
    }
}

/// One day's turns by decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayStats {
    /// `YYYY-MM-DD` in the report's time zone.
    pub day: String,
    #[serde(flatten)]
    pub outcomes: Outcomes,
}

/// One scenario's turns by decision, and its answers marked not useful.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioStats {
    pub scenario: String,
    #[serde(flatten)]
    pub outcomes: Outcomes,
    pub not_useful: u64,
}

/// How the tickets of one agent (or one queue) were worked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkStats {
    /// The agent's or the queue's name.
    pub name: String,
    pub tickets: u64,
    pub resolved: u64,
    /// Medians, in minutes, of the tickets that got a reply / were resolved.
    pub first_response_minutes_p50: Option<f64>,
    pub resolution_minutes_p50: Option<f64>,
    pub reopened: u64,
    /// Of the resolved tickets, the share reopened.
    pub reopen_rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReasonCount {
    pub reason: String,
    pub count: u64,
    pub rate: Option<f64>,
}

/// Latency percentiles in milliseconds (nearest rank); null without turns.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelStats {
    pub channel: String,
    pub turns: u64,
    pub answered: u64,
    pub clarified: u64,
    pub handed_off: u64,
    pub auto_answer_rate: Option<f64>,
    pub clarify_rate: Option<f64>,
    pub handoff_rate: Option<f64>,
    pub latency_ms_p50: Option<f64>,
}

/// Questions that mean the same thing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuestionGroup {
    /// Turns whose text is in the group.
    pub count: u64,
    /// The group's most asked text.
    pub representative: String,
    /// The most asked texts of the group (the representative first).
    pub examples: Vec<String>,
    /// The intent the group's questions were given (each text counts with the intent it was given most).
    pub intent: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotUsefulAnswers {
    pub intent: String,
    /// Feedback saying the answer did not help.
    pub not_useful: u64,
    /// All feedback on the intent's turns.
    pub rated: u64,
    pub not_useful_rate: Option<f64>,
    /// The answer most often reported.
    pub answer: Option<String>,
    /// The latest comments.
    pub comments: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntentCorrections {
    pub intent: String,
    /// Corrections that name this intent as the right one.
    pub corrected_to: u64,
    /// Corrections of turns the engine had given this intent.
    pub corrected_from: u64,
}

/// `part / whole`, or `None` for an empty whole.
pub fn rate(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// p50, p90 and p99 of `values` (any order; non-finite values are ignored).
pub fn percentiles(values: impl IntoIterator<Item = f64>) -> Percentiles {
    let mut sorted: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    Percentiles { p50: nearest_rank(&sorted, 50.0), p90: nearest_rank(&sorted, 90.0), p99: nearest_rank(&sorted, 99.0) }
}

/// Greedy leader clustering: items are taken in the given order (callers put
/// the most asked first); each joins the most similar existing leader at or
/// above `threshold`, or leads a new cluster. Returns the clusters as index
/// lists, each starting with its leader, in order of creation.
///
/// NOTE: leaders, not centroids, so a cluster cannot drift away from what its
/// representative means, and the result depends only on the order and vectors.
pub fn leader_clusters(vectors: &[Vec<f32>], threshold: f32) -> Vec<Vec<usize>> {
    let mut clusters: Vec<Vec<usize>> = Vec::new();
    for (i, v) in vectors.iter().enumerate() {
        let best = clusters
            .iter()
            .enumerate()
            .map(|(c, members)| (c, cosine(v, &vectors[members[0]])))
            .filter(|(_, s)| *s >= threshold)
            .fold(None::<(usize, f32)>, |best, (c, s)| match best {
                Some((_, bs)) if bs >= s => best,
                _ => Some((c, s)),
            });
        match best {
            Some((c, _)) => clusters[c].push(i),
            None => clusters.push(vec![i]),
        }
    }
    clusters
}

/// The texts that will be grouped, in grouping order (most asked first, ties
/// by text): callers embed exactly these, in this order.
pub fn questions_to_embed(data: &StatsData) -> Vec<String> {
    ordered_questions(data).into_iter().map(|q| q.text.clone()).collect()
}

fn ordered_questions(data: &StatsData) -> Vec<&QuestionText> {
    let mut questions: Vec<_> = data.questions.iter().collect();
    questions.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.text.cmp(&b.text)));
    questions
}

/// The intent a text was given most often (ties by name).
fn main_intent(question: &QuestionText) -> &str {
    let mut best: Option<(&str, u64)> = None;
    for (intent, count) in &question.intents {
        if best.is_none_or(|(b, c)| *count > c || (*count == c && intent.as_str() < b)) {
            best = Some((intent, *count));
        }
    }
    best.map_or("", |(intent, _)| intent)
}

/// Groups the period's questions by meaning: texts given the same intent
/// (out-of-scope ones included) whose embeddings are within `threshold`.
/// `vectors` are the embeddings of [`questions_to_embed`], in its order.
///
/// NOTE: grouping within an intent, because a small general-purpose encoder
/// puts different short questions close together ("快递到哪了" and
/// "退货寄到哪个地址" score 0.93 on e5-small) where the fitted intent model
/// tells them apart.
fn group_questions(data: &StatsData, vectors: &[Vec<f32>], threshold: f32, top: usize) -> Vec<QuestionGroup> {
    let questions = ordered_questions(data);
    let n = questions.len().min(vectors.len());
    // Partition by intent, keeping the grouping order inside each part.
    let mut parts: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, q) in questions.iter().enumerate().take(n) {
        parts.entry(main_intent(q)).or_default().push(i);
    }
    let mut groups: Vec<(usize, QuestionGroup)> = Vec::new();
    for (intent, indices) in parts {
        let part: Vec<Vec<f32>> = indices.iter().map(|&i| vectors[i].clone()).collect();
        for members in leader_clusters(&part, threshold) {
            let members: Vec<usize> = members.into_iter().map(|m| indices[m]).collect();
            let group = QuestionGroup {
                count: members.iter().map(|&m| questions[m].count).sum(),
                representative: questions[members[0]].text.clone(),
                examples: members.iter().take(EXAMPLES_PER_GROUP).map(|&m| questions[m].text.clone()).collect(),
                intent: intent.to_string(),
            };
            groups.push((members[0], group));
        }
    }
    // Most asked first; equal counts in the order of their leaders (most asked text first).
    groups.sort_by(|(la, a), (lb, b)| b.count.cmp(&a.count).then(la.cmp(lb)));
    groups.into_iter().take(top).map(|(_, g)| g).collect()
}

/// Builds the report from the store's figures and the embeddings of
/// [`questions_to_embed`] (an empty slice leaves `top_questions` empty).
/// `scenario_of` names an intent's scenario (`None` out of scope or unknown).
pub fn build_report(
    period: Period,
    channel: Option<&str>,
    data: &StatsData,
    vectors: &[Vec<f32>],
    settings: &StatsSettings,
    top: usize,
    scenario_of: &dyn Fn(&str) -> Option<String>,
) -> StatsReport {
    let timings = TicketTimes::of(&data.tickets);
    let (channels, totals) = channel_stats(data);
    let turns = totals.turns;
    let (corrections, corrections_total) = corrections_per_intent(data);
    StatsReport {
        from: stamp(period.from),
        to: stamp(period.to),
        timezone: settings.timezone.name().to_string(),
        channel: channel.map(str::to_string),
        turns,
        answered: totals.answered,
        clarified: totals.clarified,
        handed_off: totals.handed_off,
        leads: totals.leads,
        auto_answer_rate: rate(totals.answered, turns),
        clarify_rate: rate(totals.clarified, turns),
        handoff_rate: rate(totals.handed_off, turns),
        handoff_by_reason: handoff_reasons(data, turns),
        latency_ms: percentiles(data.latencies.iter().map(|(_, ms)| *ms)),
        channels,
        questions_distinct: data.questions_distinct,
        questions_grouped: vectors.len().min(data.questions.len()) as u64,
        top_questions: group_questions(data, vectors, settings.cluster_threshold, top),
        not_useful: not_useful_answers(data),
        corrections_total,
        corrections,
        daily: daily_stats(period, data, settings.timezone),
        scenarios: scenario_stats(data, scenario_of),
        first_response_minutes: percentiles(timings.iter().filter_map(|t| t.first_response)),
        resolution_minutes: percentiles(timings.iter().filter_map(|t| t.resolution)),
        agents: work_stats(&timings, |t| t.assignee),
        queues: work_stats(&timings, |t| Some(t.queue)),
    }
}

/// Every local day of the period with its turns by decision.
fn daily_stats(period: Period, data: &StatsData, tz: Tz) -> Vec<DayStats> {
    let day_of = |at: DateTime<Utc>| at.with_timezone(&tz).date_naive();
    let mut days: BTreeMap<NaiveDate, [u64; 3]> = BTreeMap::new();
    let (first, last) = (day_of(period.from), day_of(period.to - Duration::microseconds(1)));
    let mut day = first;
    while day <= last {
        days.insert(day, [0; 3]);
        day = day.succ_opt().unwrap_or(last + Duration::days(1));
    }
    for (hour, decision, count) in &data.hourly {
        // NOTE: hours are UTC: a zone whose offset is not whole hours counts a turn near midnight a day off.
        let Ok(at) = DateTime::parse_from_rfc3339(&format!("{hour}:00:00Z")) else { continue };
        let counts = days.entry(day_of(at.with_timezone(&Utc))).or_default();
        counts[decision_slot(*decision)] += count;
    }
    days.into_iter().map(|(day, counts)| DayStats { day: day.to_string(), outcomes: Outcomes::of(counts) }).collect()
}

fn decision_slot(decision: Action) -> usize {
    match decision {
        Action::Answer => 0,
        Action::Clarify => 1,
        Action::Handoff => 2,
    }
}

/// Turns by decision and not-useful answers per scenario, busiest first.
fn scenario_stats(data: &StatsData, scenario_of: &dyn Fn(&str) -> Option<String>) -> Vec<ScenarioStats> {
    let name = |intent: &str| scenario_of(intent).unwrap_or_else(|| "none".to_string());
    let mut scenarios: BTreeMap<String, ([u64; 3], u64)> = BTreeMap::new();
    for (intent, decision, count) in &data.intent_decisions {
        scenarios.entry(name(intent)).or_default().0[decision_slot(*decision)] += count;
    }
    for feedback in &data.feedback {
        scenarios.entry(name(&feedback.intent)).or_default().1 += feedback.not_useful;
    }
    let mut scenarios: Vec<ScenarioStats> = scenarios
        .into_iter()
        .map(|(scenario, (counts, not_useful))| ScenarioStats { scenario, outcomes: Outcomes::of(counts), not_useful })
        .collect();
    scenarios.sort_by(|a, b| b.outcomes.turns.cmp(&a.outcomes.turns).then_with(|| a.scenario.cmp(&b.scenario)));
    scenarios
}

/// One ticket's times in minutes.
struct TicketTimes<'a> {
    queue: &'a str,
    assignee: Option<&'a str>,
    first_response: Option<f64>,
    resolution: Option<f64>,
    reopened: bool,
}

impl TicketTimes<'_> {
    fn of(tickets: &[TicketTiming]) -> Vec<TicketTimes<'_>> {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc));
        tickets
            .iter()
            .filter_map(|t| {
                let created = at(&t.created_at)?;
                let minutes = |later: &Option<String>| {
                    later.as_deref().and_then(at).map(|l| (l - created).num_milliseconds().max(0) as f64 / 60_000.0)
                };
                Some(TicketTimes {
                    queue: &t.queue,
                    assignee: t.assignee.as_deref(),
                    first_response: minutes(&t.first_reply_at),
                    resolution: minutes(&t.resolved_at),
                    reopened: t.reopened,
                })
            })
            .collect()
    }
}

/// Per `key` (an agent, a queue; tickets without one are left out):
/// tickets, resolved, reopened, and median times; most tickets first.
fn work_stats<'a>(timings: &'a [TicketTimes<'a>], key: impl Fn(&TicketTimes<'a>) -> Option<&'a str>) -> Vec<WorkStats> {
    let mut groups: BTreeMap<&str, Vec<&TicketTimes<'_>>> = BTreeMap::new();
    for t in timings {
        if let Some(name) = key(t) {
            groups.entry(name).or_default().push(t);
        }
    }
    let mut groups: Vec<WorkStats> = groups
        .into_iter()
        .map(|(name, tickets)| {
            let resolved = tickets.iter().filter(|t| t.resolution.is_some()).count() as u64;
            let reopened = tickets.iter().filter(|t| t.reopened).count() as u64;
            WorkStats {
                name: name.to_string(),
                tickets: tickets.len() as u64,
                resolved,
                first_response_minutes_p50: percentiles(tickets.iter().filter_map(|t| t.first_response)).p50,
                resolution_minutes_p50: percentiles(tickets.iter().filter_map(|t| t.resolution)).p50,
                reopened,
                reopen_rate: rate(reopened, resolved),
            }
        })
        .collect();
    groups.sort_by(|a, b| b.tickets.cmp(&a.tickets).then_with(|| a.name.cmp(&b.name)));
    groups
}

/// Turns by decision over all channels.
#[derive(Default)]
struct DecisionTotals {
    turns: u64,
    answered: u64,
    clarified: u64,
    handed_off: u64,
    leads: u64,
}

/// Per channel (busiest first) and in all: turns by decision, rates and the channel's median latency.
fn channel_stats(data: &StatsData) -> (Vec<ChannelStats>, DecisionTotals) {
    let mut channels: BTreeMap<&str, ChannelStats> = BTreeMap::new();
    let mut totals = DecisionTotals::default();
    for row in &data.decisions {
        let c = channels.entry(row.channel.as_str()).or_insert_with(|| ChannelStats {
            channel: row.channel.clone(),
            turns: 0,
            answered: 0,
            clarified: 0,
            handed_off: 0,
            auto_answer_rate: None,
            clarify_rate: None,
            handoff_rate: None,
            latency_ms_p50: None,
        });
        c.turns += row.count;
        totals.turns += row.count;
        totals.leads += row.leads;
        let (total, per_channel) = match row.decision {
            Action::Answer => (&mut totals.answered, &mut c.answered),
            Action::Clarify => (&mut totals.clarified, &mut c.clarified),
            Action::Handoff => (&mut totals.handed_off, &mut c.handed_off),
        };
        *total += row.count;
        *per_channel += row.count;
    }
    let mut latencies: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for (channel, ms) in &data.latencies {
        latencies.entry(channel.as_str()).or_default().push(*ms);
    }
    let mut channels: Vec<ChannelStats> = channels
        .into_values()
        .map(|c| ChannelStats {
            auto_answer_rate: rate(c.answered, c.turns),
            clarify_rate: rate(c.clarified, c.turns),
            handoff_rate: rate(c.handed_off, c.turns),
            latency_ms_p50: percentiles(latencies.get(c.channel.as_str()).into_iter().flatten().copied()).p50,
            ..c
        })
        .collect();
    channels.sort_by(|a, b| b.turns.cmp(&a.turns).then_with(|| a.channel.cmp(&b.channel)));
    (channels, totals)
}

/// Hand-offs by reason, most frequent first, with their share of all turns.
fn handoff_reasons(data: &StatsData, turns: u64) -> Vec<ReasonCount> {
    let mut reasons: Vec<ReasonCount> = data
        .handoff_reasons
        .iter()
        .map(|(reason, count)| ReasonCount { reason: reason.clone(), count: *count, rate: rate(*count, turns) })
        .collect();
    reasons.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
    reasons
}

/// Intents whose answers were marked not useful, most reported first.
fn not_useful_answers(data: &StatsData) -> Vec<NotUsefulAnswers> {
    let mut not_useful: Vec<NotUsefulAnswers> = data
        .feedback
        .iter()
        .filter(|f| f.not_useful > 0)
        .map(|f| NotUsefulAnswers {
            intent: f.intent.clone(),
            not_useful: f.not_useful,
            rated: f.rated,
            not_useful_rate: rate(f.not_useful, f.rated),
            answer: f.answer.clone(),
            comments: f.comments.clone(),
        })
        .collect();
    not_useful.sort_by(|a, b| b.not_useful.cmp(&a.not_useful).then_with(|| a.intent.cmp(&b.intent)));
    not_useful
}

/// Corrections per intent (most corrected first), and how many corrections were made in all.
fn corrections_per_intent(data: &StatsData) -> (Vec<IntentCorrections>, u64) {
    let mut corrections: BTreeMap<&str, IntentCorrections> = BTreeMap::new();
    let blank = |intent: &str| IntentCorrections { intent: intent.to_string(), corrected_to: 0, corrected_from: 0 };
    for (intent, n) in &data.corrected_to {
        corrections.entry(intent.as_str()).or_insert_with(|| blank(intent)).corrected_to += n;
    }
    for (intent, n) in &data.corrected_from {
        corrections.entry(intent.as_str()).or_insert_with(|| blank(intent)).corrected_from += n;
    }
    let total = data.corrected_to.iter().map(|(_, n)| n).sum();
    let mut corrections: Vec<IntentCorrections> = corrections.into_values().collect();
    corrections.sort_by(|a, b| {
        (b.corrected_to + b.corrected_from)
            .cmp(&(a.corrected_to + a.corrected_from))
            .then_with(|| a.intent.cmp(&b.intent))
    });
    (corrections, total)
}

/// Which feedback the "to optimise" queue lists.
#[derive(Debug, Clone, Default)]
pub struct OptimiseFilter {
    pub intent: Option<String>,
    pub channel: Option<String>,
    /// Verdicts given at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Verdicts given before this time.
    pub to: Option<DateTime<Utc>>,
}

/// One not-useful verdict on a turn nobody has corrected yet, as the store reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct NotUsefulReport {
    pub intent: String,
    pub trace_id: String,
    pub text: String,
    pub answer: Option<String>,
    pub channel: String,
    pub asked_at: String,
    pub comment: Option<String>,
    pub reported_at: String,
}

/// The "to optimise" queue: answers marked not useful, per intent. A turn
/// leaves the queue once an agent stores a correction for its trace id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimiseQueue {
    /// Turns in the queue.
    pub turns: u64,
    /// Not-useful verdicts on them.
    pub reports: u64,
    /// Most reported intent first.
    pub intents: Vec<OptimiseIntent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimiseIntent {
    pub intent: String,
    /// Not-useful verdicts on the intent's queued turns.
    pub reports: u64,
    /// Most reported turn first, then the most recently reported.
    pub items: Vec<OptimiseItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimiseItem {
    pub trace_id: String,
    /// The customer's (masked) question.
    pub text: String,
    pub answer: Option<String>,
    pub channel: String,
    pub asked_at: String,
    pub reports: u64,
    /// Comments left with the verdicts, the latest first.
    pub comments: Vec<String>,
    pub last_reported_at: String,
}

/// Groups not-useful verdicts into the queue (any input order).
pub fn optimise_queue(reports: Vec<NotUsefulReport>) -> OptimiseQueue {
    let mut by_intent: BTreeMap<String, BTreeMap<String, OptimiseItem>> = BTreeMap::new();
    let mut comments: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for r in reports {
        if let Some(c) = r.comment.filter(|c| !c.trim().is_empty()) {
            comments.entry(r.trace_id.clone()).or_default().push((r.reported_at.clone(), c));
        }
        let item = by_intent.entry(r.intent).or_default().entry(r.trace_id.clone()).or_insert_with(|| OptimiseItem {
            trace_id: r.trace_id,
            text: r.text,
            answer: r.answer,
            channel: r.channel,
            asked_at: r.asked_at,
            reports: 0,
            comments: Vec::new(),
            last_reported_at: String::new(),
        });
        item.reports += 1;
        item.last_reported_at = item.last_reported_at.clone().max(r.reported_at);
    }
    let mut intents: Vec<OptimiseIntent> = by_intent
        .into_iter()
        .map(|(intent, items)| {
            let mut items: Vec<OptimiseItem> = items
                .into_values()
                .map(|mut item| {
                    let mut cs = comments.remove(&item.trace_id).unwrap_or_default();
                    cs.sort_by(|a, b| b.cmp(a));
                    item.comments = cs.into_iter().map(|(_, c)| c).collect();
                    item
                })
                .collect();
            items.sort_by(|a, b| {
                b.reports
                    .cmp(&a.reports)
                    .then_with(|| b.last_reported_at.cmp(&a.last_reported_at))
                    .then_with(|| a.trace_id.cmp(&b.trace_id))
            });
            OptimiseIntent { intent, reports: items.iter().map(|i| i.reports).sum(), items }
        })
        .collect();
    intents.sort_by(|a, b| b.reports.cmp(&a.reports).then_with(|| a.intent.cmp(&b.intent)));
    OptimiseQueue {
        turns: intents.iter().map(|i| i.items.len() as u64).sum(),
        reports: intents.iter().map(|i| i.reports).sum(),
        intents,
    }
}

/// Columns of the CSV export. One flat table: `section` says what a row is,
/// `key` names the figure (or reason, rank, ...), and the other columns hold
/// what applies to it; empty cells do not apply.
pub const CSV_HEADER: [&str; 9] = ["section", "key", "channel", "intent", "count", "rate", "value", "text", "examples"];

#[derive(Default)]
struct CsvRow<'a> {
    section: &'a str,
    key: String,
    channel: &'a str,
    intent: &'a str,
    count: Option<u64>,
    rate: Option<f64>,
    value: Option<f64>,
    text: &'a str,
    examples: String,
}

/// Writes the report as CSV (see [`CSV_HEADER`]). Sections, in order:
/// `period` (from/to/channel in `text`), `totals` (turns, answered, clarified,
/// handed_off, leads, questions_distinct, questions_grouped, corrections: `count`, and
/// `rate` for the decisions), `latency_ms` (p50/p90/p99 in `value`, overall
/// and per `channel`), `channel` (turns, answered, clarified, handed_off per
/// channel), `handoff_reason`, `top_question` (key = rank; representative in
/// `text`, examples joined by " | "), `not_useful` (key = intent; count = not
/// useful, value = rated, answer in `text`, comments in `examples`),
/// `corrections` (key = corrected_to / corrected_from), `day` (key = the
/// day; count = turns, rate = auto-answer rate, value = hand-off rate),
/// `scenario` (likewise per scenario), `agent` and `queue` (key = the agent
/// or queue; count = tickets, rate = reopen rate, value = median first response in minutes)
/// and `agent_work` (`first_response_minutes` / `resolution_minutes`, p50/p90/p99 in `value`).
pub fn write_csv<W: std::io::Write>(report: &StatsReport, out: W) -> Result<(), csv::Error> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(CSV_HEADER)?;
    let num = |v: Option<f64>| v.map(|x| format!("{}", (x * 1e6).round() / 1e6)).unwrap_or_default();
    let rows = [totals_rows(report), channel_rows(report), ranking_rows(report), trend_rows(report)];
    for r in rows.into_iter().flatten() {
        w.write_record([
            r.section,
            &r.key,
            r.channel,
            r.intent,
            &r.count.map(|c| c.to_string()).unwrap_or_default(),
            &num(r.rate),
            &num(r.value),
            r.text,
            &r.examples,
        ])?;
    }
    w.flush()?;
    Ok(())
}

/// The `day`, `scenario`, `agent`, `queue` and `agent_work` sections.
fn trend_rows(report: &StatsReport) -> Vec<CsvRow<'_>> {
    let mut rows = Vec::new();
    let outcomes = report.daily.iter().map(|d| ("day", &d.day, &d.outcomes));
    for (section, key, o) in outcomes.chain(report.scenarios.iter().map(|s| ("scenario", &s.scenario, &s.outcomes))) {
        let (count, rate, value) = (Some(o.turns), o.auto_answer_rate, o.handoff_rate);
        rows.push(CsvRow { section, key: key.clone(), count, rate, value, ..Default::default() });
    }
    for (section, groups) in [("agent", &report.agents), ("queue", &report.queues)] {
        for g in groups {
            let (count, rate, value) = (Some(g.tickets), g.reopen_rate, g.first_response_minutes_p50);
            rows.push(CsvRow { section, key: g.name.clone(), count, rate, value, ..Default::default() });
        }
    }
    for (name, p) in
        [("first_response_minutes", &report.first_response_minutes), ("resolution_minutes", &report.resolution_minutes)]
    {
        for (key, value) in [("p50", p.p50), ("p90", p.p90), ("p99", p.p99)] {
            rows.push(CsvRow { section: "agent_work", key: format!("{name}_{key}"), value, ..Default::default() });
        }
    }
    rows
}

/// The `period` and `totals` sections.
fn totals_rows(report: &StatsReport) -> Vec<CsvRow<'_>> {
    vec![
        CsvRow { section: "period", key: "from".into(), text: &report.from, ..Default::default() },
        CsvRow { section: "period", key: "to".into(), text: &report.to, ..Default::default() },
        CsvRow {
            section: "period",
            key: "channel".into(),
            text: report.channel.as_deref().unwrap_or(""),
            ..Default::default()
        },
        CsvRow { section: "totals", key: "turns".into(), count: Some(report.turns), ..Default::default() },
        CsvRow {
            section: "totals",
            key: "answered".into(),
            count: Some(report.answered),
            rate: report.auto_answer_rate,
            ..Default::default()
        },
        CsvRow {
            section: "totals",
            key: "clarified".into(),
            count: Some(report.clarified),
            rate: report.clarify_rate,
            ..Default::default()
        },
        CsvRow {
            section: "totals",
            key: "handed_off".into(),
            count: Some(report.handed_off),
            rate: report.handoff_rate,
            ..Default::default()
        },
        CsvRow {
            section: "totals",
            key: "leads".into(),
            count: Some(report.leads),
            rate: rate(report.leads, report.turns),
            ..Default::default()
        },
        CsvRow {
            section: "totals",
            key: "questions_distinct".into(),
            count: Some(report.questions_distinct),
            ..Default::default()
        },
        CsvRow {
            section: "totals",
            key: "questions_grouped".into(),
            count: Some(report.questions_grouped),
            ..Default::default()
        },
        CsvRow {
            section: "totals",
            key: "corrections".into(),
            count: Some(report.corrections_total),
            ..Default::default()
        },
    ]
}

/// The `latency_ms` (overall and per channel) and `channel` sections.
fn channel_rows(report: &StatsReport) -> Vec<CsvRow<'_>> {
    let mut rows = Vec::new();
    let l = &report.latency_ms;
    for (key, value) in [("p50", l.p50), ("p90", l.p90), ("p99", l.p99)] {
        rows.push(CsvRow { section: "latency_ms", key: key.into(), value, ..Default::default() });
    }
    for c in &report.channels {
        rows.push(CsvRow {
            section: "latency_ms",
            key: "p50".into(),
            channel: &c.channel,
            value: c.latency_ms_p50,
            ..Default::default()
        });
    }
    for c in &report.channels {
        rows.push(CsvRow {
            section: "channel",
            key: "turns".into(),
            channel: &c.channel,
            count: Some(c.turns),
            ..Default::default()
        });
        for (key, count, r) in [
            ("answered", c.answered, c.auto_answer_rate),
            ("clarified", c.clarified, c.clarify_rate),
            ("handed_off", c.handed_off, c.handoff_rate),
        ] {
            rows.push(CsvRow {
                section: "channel",
                key: key.into(),
                channel: &c.channel,
                count: Some(count),
                rate: r,
                ..Default::default()
            });
        }
    }
    rows
}

/// The `handoff_reason`, `top_question`, `not_useful` and `corrections` sections.
fn ranking_rows(report: &StatsReport) -> Vec<CsvRow<'_>> {
    let mut rows = Vec::new();
    for r in &report.handoff_by_reason {
        rows.push(CsvRow {
            section: "handoff_reason",
            key: r.reason.clone(),
            count: Some(r.count),
            rate: r.rate,
            ..Default::default()
        });
    }
    for (rank, q) in report.top_questions.iter().enumerate() {
        rows.push(CsvRow {
            section: "top_question",
            key: (rank + 1).to_string(),
            intent: &q.intent,
            count: Some(q.count),
            rate: rate(q.count, report.turns),
            text: &q.representative,
            examples: q.examples.join(" | "),
            ..Default::default()
        });
    }
    for n in &report.not_useful {
        rows.push(CsvRow {
            section: "not_useful",
            key: n.intent.clone(),
            intent: &n.intent,
            count: Some(n.not_useful),
            rate: n.not_useful_rate,
            value: Some(n.rated as f64),
            text: n.answer.as_deref().unwrap_or(""),
            examples: n.comments.join(" | "),
            ..Default::default()
        });
    }
    for c in &report.corrections {
        for (key, count) in [("corrected_to", c.corrected_to), ("corrected_from", c.corrected_from)] {
            rows.push(CsvRow {
                section: "corrections",
                key: key.into(),
                intent: &c.intent,
                count: Some(count),
                ..Default::default()
            });
        }
    }
    rows
}

/// How a report is written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// A short summary for people.
    Text,
    Json,
    Csv,
}

impl ExportFormat {
    /// The format a file name's extension asks for (`.json`, `.csv`).
    pub fn from_path(path: &std::path::Path) -> Option<ExportFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "json" => Some(ExportFormat::Json),
            "csv" => Some(ExportFormat::Csv),
            "txt" => Some(ExportFormat::Text),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot write the CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("cannot write the JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The report in `format`.
pub fn render(report: &StatsReport, format: ExportFormat) -> Result<Vec<u8>, RenderError> {
    Ok(match format {
        ExportFormat::Text => format!("{report}\n").into_bytes(),
        ExportFormat::Json => {
            let mut out = serde_json::to_vec_pretty(report)?;
            out.push(b'\n');
            out
        }
        ExportFormat::Csv => {
            let mut out = Vec::new();
            write_csv(report, &mut out)?;
            out
        }
    })
}

impl std::fmt::Display for StatsReport {
    /// A short summary for people.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pct = |r: Option<f64>| r.map_or("n/a".to_string(), |r| format!("{:.1}%", r * 100.0));
        let ms = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.0}"));
        writeln!(
            f,
            "{} .. {}{}",
            self.from,
            self.to,
            self.channel.as_deref().map(|c| format!(" (channel {c})")).unwrap_or_default()
        )?;
        writeln!(
            f,
            "{} turns: answered {} ({}), clarified {} ({}), handed off {} ({}), leads {}",
            self.turns,
            self.answered,
            pct(self.auto_answer_rate),
            self.clarified,
            pct(self.clarify_rate),
            self.handed_off,
            pct(self.handoff_rate),
            self.leads
        )?;
        writeln!(
            f,
            "latency ms: p50 {} p90 {} p99 {}",
            ms(self.latency_ms.p50),
            ms(self.latency_ms.p90),
            ms(self.latency_ms.p99)
        )?;
        for c in &self.channels {
            writeln!(
                f,
                "  {:<10} {:>6} turns, answered {}, handed off {}, p50 {} ms",
                c.channel,
                c.turns,
                pct(c.auto_answer_rate),
                pct(c.handoff_rate),
                ms(c.latency_ms_p50)
            )?;
        }
        if !self.handoff_by_reason.is_empty() {
            let reasons: Vec<String> =
                self.handoff_by_reason.iter().map(|r| format!("{} {}", r.reason, r.count)).collect();
            writeln!(f, "hand-offs by reason: {}", reasons.join(", "))?;
        }
        writeln!(
            f,
            "top questions ({} groups from {} of {} distinct texts):",
            self.top_questions.len(),
            self.questions_grouped,
            self.questions_distinct
        )?;
        for q in self.top_questions.iter().take(10) {
            writeln!(f, "  {:>5}  {}  [{}]", q.count, q.representative, q.intent)?;
        }
        for n in self.not_useful.iter().take(5) {
            writeln!(f, "not useful: {} {}/{} rated", n.intent, n.not_useful, n.rated)?;
        }
        write!(f, "corrections: {}", self.corrections_total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn periods_read_times_dates_and_defaults() {
        let tz = chrono_tz::Asia::Shanghai;
        let now = utc("2026-06-15T02:00:00Z");
        let p = Period::parse(None, None, tz, now).unwrap();
        assert_eq!((p.from, p.to), (utc("2026-06-08T02:00:00Z"), now));
        // Dates are whole days in the zone: Shanghai midnight is 16:00 UTC the day before.
        let p = Period::parse(Some("2026-06-08"), Some("2026-06-14"), tz, now).unwrap();
        assert_eq!((p.from, p.to), (utc("2026-06-07T16:00:00Z"), utc("2026-06-14T16:00:00Z")));
        let p = Period::parse(Some("2026-06-10T00:00:00+08:00"), None, tz, now).unwrap();
        assert_eq!((p.from, p.to), (utc("2026-06-09T16:00:00Z"), now));
        assert!(matches!(
            Period::parse(Some("last week"), None, tz, now),
            Err(PeriodError::Unreadable { field: "from", .. })
        ));
        assert!(matches!(
            Period::parse(None, Some("2026-13-01"), tz, now),
            Err(PeriodError::Unreadable { field: "to", .. })
        ));
        assert!(matches!(
            Period::parse(Some("2026-06-15"), Some("2026-06-14"), tz, now),
            Err(PeriodError::Empty { .. })
        ));
        assert_eq!(
            Period::parse_open(None, Some("2026-06-14"), tz).unwrap(),
            OpenPeriod { from: None, to: Some(utc("2026-06-14T16:00:00Z")) }
        );
        assert!(Period::parse_open(Some("2026-06-15"), Some("2026-06-15T00:00:00+08:00"), tz).is_err());
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = percentiles(values.iter().rev().copied());
        assert_eq!((p.p50, p.p90, p.p99), (Some(50.0), Some(90.0), Some(99.0)));
        let p = percentiles([7.0, f64::NAN]);
        assert_eq!((p.p50, p.p90, p.p99), (Some(7.0), Some(7.0), Some(7.0)));
        assert_eq!(percentiles([]), Percentiles::default());
        assert_eq!(nearest_rank(&[1.0, 2.0, 3.0, 4.0], 50.0), Some(2.0));
        assert_eq!(nearest_rank(&[1.0, 2.0, 3.0, 4.0], 0.0), Some(1.0));
    }

    #[test]
    fn rates_are_null_without_turns() {
        assert_eq!(rate(1, 4), Some(0.25));
        assert_eq!(rate(0, 0), None);
    }

    #[test]
    fn leader_clustering_groups_near_vectors_deterministically() {
        let v = |x: f32, y: f32| vec![x, y];
        // Two directions, 90 degrees apart, with a near neighbour each, and a loner at 45 degrees.
        let vectors = vec![v(1.0, 0.0), v(0.0, 1.0), v(0.99, 0.1), v(0.1, 0.99), v(0.7, 0.7)];
        let clusters = leader_clusters(&vectors, 0.95);
        assert_eq!(clusters, vec![vec![0, 2], vec![1, 3], vec![4]]);
        assert_eq!(leader_clusters(&vectors, 0.95), clusters);
        // A low threshold puts the loner with its most similar leader, not the first one.
        assert_eq!(leader_clusters(&[v(1.0, 0.0), v(0.0, 1.0), v(0.2, 0.9)], 0.1), vec![vec![0], vec![1, 2]]);
        // Length does not matter, and zero vectors join nothing.
        assert_eq!(leader_clusters(&[v(2.0, 0.0), v(0.5, 0.0), v(0.0, 0.0)], 0.9), vec![vec![0, 1], vec![2]]);
        assert!(leader_clusters(&[], 0.9).is_empty());
    }

    fn data() -> StatsData {
        let d = |channel: &str, decision: &str, count, leads| DecisionCount {
            channel: channel.into(),
            decision: decision.parse().unwrap(),
            count,
            leads,
        };
        let q = |text: &str, intents: &[(&str, u64)]| QuestionText {
            text: text.into(),
            count: intents.iter().map(|(_, n)| n).sum(),
            intents: intents.iter().map(|(i, n)| (i.to_string(), *n)).collect(),
        };
        StatsData {
            decisions: vec![
                d("web", "answer", 6, 1),
                d("web", "handoff", 2, 0),
                d("app", "answer", 1, 0),
                d("app", "clarify", 1, 0),
            ],
            latencies: [
                ("web", 10.0),
                ("web", 20.0),
                ("web", 30.0),
                ("web", 40.0),
                ("web", 50.0),
                ("web", 60.0),
                ("web", 70.0),
                ("web", 80.0),
                ("app", 5.0),
                ("app", 15.0),
            ]
            .iter()
            .map(|(c, ms)| (c.to_string(), *ms))
            .collect(),
            handoff_reasons: vec![("complaint".into(), 1), ("angry_customer".into(), 1)],
            questions: vec![
                q("退货地址", &[("return_address", 2)]),
                q("快递到哪了", &[("order_tracking", 3)]),
                q("退货寄到哪里", &[("return_address", 2), ("return_policy", 1)]),
                q("转人工", &[("human", 2)]),
                q("包裹在哪", &[("order_tracking", 2)]),
            ],
            questions_distinct: 6,
            feedback: vec![
                IntentFeedback {
                    intent: "return_address".into(),
                    not_useful: 2,
                    rated: 3,
                    answer: Some("寄到杭州".into()),
                    comments: vec!["地址不对".into()],
                },
                IntentFeedback {
                    intent: "order_tracking".into(),
                    not_useful: 0,
                    rated: 1,
                    answer: None,
                    comments: vec![],
                },
            ],
            corrected_to: vec![("return_policy".into(), 2), ("order_tracking".into(), 1)],
            corrected_from: vec![("return_address".into(), 2)],
            hourly: vec![
                // 15:00 UTC is 23:00 in Shanghai (June 8); 16:00 UTC is midnight, June 9.
                ("2026-06-08T15".into(), Action::Answer, 3),
                ("2026-06-08T16".into(), Action::Answer, 4),
                ("2026-06-08T16".into(), Action::Handoff, 2),
                ("2026-06-10T02".into(), Action::Clarify, 1),
            ],
            intent_decisions: vec![
                ("return_address".into(), Action::Answer, 5),
                ("order_tracking".into(), Action::Answer, 2),
                ("human".into(), Action::Handoff, 2),
                ("oos".into(), Action::Clarify, 1),
            ],
            tickets: vec![
                timing(
                    Some("li"),
                    "2026-06-09T01:00:00Z",
                    Some("2026-06-09T01:04:00Z"),
                    Some("2026-06-09T01:30:00Z"),
                    false,
                ),
                timing(
                    Some("li"),
                    "2026-06-09T02:00:00Z",
                    Some("2026-06-09T02:10:00Z"),
                    Some("2026-06-09T03:00:00Z"),
                    true,
                ),
                timing(Some("wang"), "2026-06-09T04:00:00Z", None, None, false),
                timing(None, "2026-06-09T05:00:00Z", None, None, false),
            ],
        }
    }

    fn timing(
        agent: Option<&str>,
        created: &str,
        reply: Option<&str>,
        resolved: Option<&str>,
        reopened: bool,
    ) -> TicketTiming {
        TicketTiming {
            queue: if agent == Some("wang") { "vip".into() } else { "general".into() },
            assignee: agent.map(str::to_string),
            created_at: created.into(),
            first_reply_at: reply.map(str::to_string),
            resolved_at: resolved.map(str::to_string),
            reopened,
        }
    }

    #[test]
    fn days_scenarios_and_how_agents_worked() {
        let period = Period { from: utc("2026-06-07T16:00:00Z"), to: utc("2026-06-10T16:00:00Z") };
        let scenario_of = |intent: &str| match intent {
            "return_address" => Some("after_sales".to_string()),
            "order_tracking" | "human" => Some("orders".to_string()),
            _ => None,
        };
        let report = build_report(period, None, &data(), &[], &StatsSettings::default(), 10, &scenario_of);
        let days: Vec<(&str, u64, u64, Option<f64>)> = report
            .daily
            .iter()
            .map(|d| (d.day.as_str(), d.outcomes.turns, d.outcomes.handed_off, d.outcomes.auto_answer_rate))
            .collect();
        assert_eq!(
            days,
            [("2026-06-08", 3, 0, Some(1.0)), ("2026-06-09", 6, 2, Some(4.0 / 6.0)), ("2026-06-10", 1, 0, Some(0.0)),],
            "every local day of the period, a day without turns too"
        );
        let scenarios: Vec<(&str, u64, u64, u64)> = report
            .scenarios
            .iter()
            .map(|s| (s.scenario.as_str(), s.outcomes.turns, s.outcomes.handed_off, s.not_useful))
            .collect();
        assert_eq!(scenarios, [("after_sales", 5, 0, 2), ("orders", 4, 2, 0), ("none", 1, 0, 0)]);
        let li = &report.agents[0];
        assert_eq!((li.name.as_str(), li.tickets, li.resolved, li.reopened), ("li", 2, 2, 1));
        assert_eq!(
            (li.first_response_minutes_p50, li.resolution_minutes_p50, li.reopen_rate),
            (Some(4.0), Some(30.0), Some(0.5))
        );
        let wang = &report.agents[1];
        assert_eq!((wang.name.as_str(), wang.tickets, wang.resolved, wang.reopen_rate), ("wang", 1, 0, None));
        assert_eq!(report.agents.len(), 2, "unassigned tickets belong to nobody");
        let queues: Vec<(&str, u64, Option<f64>)> =
            report.queues.iter().map(|q| (q.name.as_str(), q.tickets, q.first_response_minutes_p50)).collect();
        assert_eq!(queues, [("general", 3, Some(4.0)), ("vip", 1, None)], "every ticket counts in its queue");
        assert_eq!((report.first_response_minutes.p50, report.first_response_minutes.p99), (Some(4.0), Some(10.0)));
        let mut csv = Vec::new();
        write_csv(&report, &mut csv).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        assert!(csv.contains("day,2026-06-09,,,6,0.666667,0.333333"), "{csv}");
        assert!(csv.contains("agent,li,,,2,0.5,4,"), "{csv}");
    }

    #[test]
    fn report_counts_rates_channels_groups_and_corrections() {
        let data = data();
        let period = Period { from: utc("2026-06-08T00:00:00Z"), to: utc("2026-06-15T00:00:00Z") };
        // Toy embeddings of questions_to_embed's order: tracking along x, returns along y, hand-off along z.
        let texts = questions_to_embed(&data);
        assert_eq!(texts, ["快递到哪了", "退货寄到哪里", "包裹在哪", "转人工", "退货地址"]);
        let vectors = vec![
            vec![1.0, 0.0, 0.0],
            vec![0.0, 1.0, 0.0],
            vec![0.98, 0.1, 0.0],
            vec![0.0, 0.0, 1.0],
            vec![0.1, 0.97, 0.0],
        ];
        let report = build_report(period, None, &data, &vectors, &StatsSettings::default(), 10, &|_| None);

        assert_eq!(
            (report.turns, report.answered, report.clarified, report.handed_off, report.leads),
            (10, 7, 1, 2, 1)
        );
        assert_eq!(
            (report.auto_answer_rate, report.clarify_rate, report.handoff_rate),
            (Some(0.7), Some(0.1), Some(0.2))
        );
        // All ten latencies: 5 10 15 20 30 40 50 60 70 80.
        assert_eq!(
            (report.latency_ms.p50, report.latency_ms.p90, report.latency_ms.p99),
            (Some(30.0), Some(70.0), Some(80.0))
        );
        let channels: Vec<(&str, u64, Option<f64>, Option<f64>)> = report
            .channels
            .iter()
            .map(|c| (c.channel.as_str(), c.turns, c.auto_answer_rate, c.latency_ms_p50))
            .collect();
        assert_eq!(channels, [("web", 8, Some(0.75), Some(40.0)), ("app", 2, Some(0.5), Some(5.0))]);
        let reasons: Vec<(&str, u64)> = report.handoff_by_reason.iter().map(|r| (r.reason.as_str(), r.count)).collect();
        assert_eq!(reasons, [("angry_customer", 1), ("complaint", 1)]);

        let groups: Vec<(u64, &str, &str)> =
            report.top_questions.iter().map(|g| (g.count, g.representative.as_str(), g.intent.as_str())).collect();
        assert_eq!(
            groups,
            [(5, "快递到哪了", "order_tracking"), (5, "退货寄到哪里", "return_address"), (2, "转人工", "human")]
        );
        assert_eq!(report.top_questions[1].examples, ["退货寄到哪里", "退货地址"]);
        assert_eq!((report.questions_distinct, report.questions_grouped), (6, 5));

        assert_eq!(report.not_useful.len(), 1);
        assert_eq!(
            (report.not_useful[0].intent.as_str(), report.not_useful[0].not_useful_rate),
            ("return_address", Some(2.0 / 3.0))
        );
        assert_eq!(report.corrections_total, 3);
        let corrections: Vec<(&str, u64, u64)> =
            report.corrections.iter().map(|c| (c.intent.as_str(), c.corrected_to, c.corrected_from)).collect();
        assert_eq!(corrections, [("return_address", 0, 2), ("return_policy", 2, 0), ("order_tracking", 1, 0)]);

        // Without embeddings there are no groups, and the rest is unchanged.
        let bare = build_report(period, None, &data, &[], &StatsSettings::default(), 10, &|_| None);
        assert!(bare.top_questions.is_empty());
        assert_eq!((bare.turns, bare.questions_grouped), (10, 0));
        // `top` caps the groups.
        assert_eq!(
            build_report(period, None, &data, &vectors, &StatsSettings::default(), 1, &|_| None).top_questions.len(),
            1
        );
    }

    #[test]
    fn questions_of_different_intents_stay_apart() {
        let q = |text: &str, intent: &str, count| QuestionText {
            text: text.into(),
            count,
            intents: vec![(intent.into(), count)],
        };
        let data = StatsData {
            questions: vec![
                q("快递到哪了", "order_tracking", 3),
                q("退货寄到哪个地址", "return_address", 2),
                q("快递到哪里了", "order_tracking", 1),
            ],
            ..StatsData::default()
        };
        // All three are close, but the return question was given another intent.
        let vectors = vec![vec![1.0, 0.0], vec![0.96, 0.28], vec![0.99, 0.14]];
        let groups = group_questions(&data, &vectors, 0.9, 10);
        let got: Vec<(u64, &str, &str)> =
            groups.iter().map(|g| (g.count, g.representative.as_str(), g.intent.as_str())).collect();
        assert_eq!(got, [(4, "快递到哪了", "order_tracking"), (2, "退货寄到哪个地址", "return_address")]);
        assert_eq!(groups[0].examples, ["快递到哪了", "快递到哪里了"]);
        // A text given two intents counts with the one it was given most.
        let mixed = QuestionText { text: "x".into(), count: 3, intents: vec![("b".into(), 1), ("a".into(), 2)] };
        assert_eq!(main_intent(&mixed), "a");
    }

    #[test]
    fn an_empty_period_has_null_rates() {
        let period = Period { from: utc("2026-06-08T00:00:00Z"), to: utc("2026-06-15T00:00:00Z") };
        let report =
            build_report(period, Some("web"), &StatsData::default(), &[], &StatsSettings::default(), 10, &|_| None);
        assert_eq!((report.turns, report.auto_answer_rate, report.latency_ms.p50), (0, None, None));
        assert_eq!(report.channel.as_deref(), Some("web"));
        let mut csv = Vec::new();
        write_csv(&report, &mut csv).unwrap();
        assert!(String::from_utf8(csv).unwrap().contains("totals,turns,,,0,,,,"));
    }

    #[test]
    fn csv_export_holds_the_report() {
        let data = data();
        let period = Period { from: utc("2026-06-08T00:00:00Z"), to: utc("2026-06-15T00:00:00Z") };
        let vectors = vec![
            vec![1.0, 0.0, 0.0],
            vec![0.0, 1.0, 0.0],
            vec![1.0, 0.0, 0.0],
            vec![0.0, 0.0, 1.0],
            vec![0.0, 1.0, 0.0],
        ];
        let report = build_report(period, None, &data, &vectors, &StatsSettings::default(), 10, &|_| None);
        let mut out = Vec::new();
        write_csv(&report, &mut out).unwrap();
        let mut reader = csv::Reader::from_reader(out.as_slice());
        assert_eq!(reader.headers().unwrap().iter().collect::<Vec<_>>(), CSV_HEADER);
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        let find = |section: &str, key: &str, channel: &str| {
            rows.iter()
                .find(|r| &r[0] == section && &r[1] == key && &r[2] == channel)
                .unwrap_or_else(|| panic!("no row {section},{key},{channel}"))
        };
        assert_eq!(&find("totals", "turns", "")[4], "10");
        assert_eq!((&find("totals", "answered", "")[4], &find("totals", "answered", "")[5]), ("7", "0.7"));
        assert_eq!(&find("channel", "turns", "web")[4], "8");
        assert_eq!(&find("latency_ms", "p90", "")[6], "70");
        assert_eq!(&find("handoff_reason", "complaint", "")[4], "1");
        assert_eq!(
            (&find("top_question", "1", "")[3], &find("top_question", "1", "")[7]),
            ("order_tracking", "快递到哪了")
        );
        assert_eq!(&find("top_question", "2", "")[8], "退货寄到哪里 | 退货地址");
        assert_eq!(&find("not_useful", "return_address", "")[8], "地址不对");
        let channel_turns: u64 =
            rows.iter().filter(|r| &r[0] == "channel" && &r[1] == "turns").map(|r| r[4].parse::<u64>().unwrap()).sum();
        assert_eq!(channel_turns, report.turns);
    }

    #[test]
    fn optimise_queue_groups_reports_per_intent() {
        let r = |intent: &str, trace: &str, comment: Option<&str>, at: &str| NotUsefulReport {
            intent: intent.into(),
            trace_id: trace.into(),
            text: format!("text of {trace}"),
            answer: Some("answer".into()),
            channel: "web".into(),
            asked_at: "2026-06-10T00:00:00.000000Z".into(),
            comment: comment.map(str::to_string),
            reported_at: at.into(),
        };
        let queue = optimise_queue(vec![
            r("invoice", "a", Some("没用"), "2026-06-10T01:00:00.000000Z"),
            r("return_address", "b", None, "2026-06-10T02:00:00.000000Z"),
            r("invoice", "a", Some("还是没用"), "2026-06-11T01:00:00.000000Z"),
            r("invoice", "c", Some(" "), "2026-06-12T01:00:00.000000Z"),
        ]);
        assert_eq!((queue.turns, queue.reports), (3, 4));
        let intents: Vec<(&str, u64)> = queue.intents.iter().map(|i| (i.intent.as_str(), i.reports)).collect();
        assert_eq!(intents, [("invoice", 3), ("return_address", 1)]);
        let invoice = &queue.intents[0];
        assert_eq!(invoice.items.iter().map(|i| i.trace_id.as_str()).collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(invoice.items[0].reports, 2);
        assert_eq!(invoice.items[0].comments, ["还是没用", "没用"]);
        assert_eq!(invoice.items[0].last_reported_at, "2026-06-11T01:00:00.000000Z");
        assert!(invoice.items[1].comments.is_empty());
        assert_eq!(optimise_queue(Vec::new()), OptimiseQueue { turns: 0, reports: 0, intents: Vec::new() });
    }
}
