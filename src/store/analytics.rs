//! Counting for the analytics ([`crate::analytics`]): decisions, latencies,
//! hand-off reasons, question texts, feedback and corrections of a period, and
//! the "to optimise" queue. Counting happens in SQL; percentiles and grouping
//! by meaning happen in `crate::analytics`.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{sealed, stamp, Store, StoreError};
use crate::analytics::{
    DecisionCount, IntentFeedback, NotUsefulReport, OptimiseFilter, Period, QuestionText, StatsData, TicketTiming,
};
use crate::policy::Action;

/// What makes two questions the same: their keyed hash (rows stored before
/// texts were sealed have none and group by their clear text).
const QUESTION: &str = "COALESCE(t.text_key, t.text)";

/// Comments kept per intent among the not-useful answers.
const COMMENTS_PER_INTENT: usize = 3;

/// A COUNT(*) column (BIGINT on PostgreSQL, INTEGER on SQLite) as u64.
fn count(row: &AnyRow, col: &str) -> Result<u64, sqlx::Error> {
    Ok(row.try_get::<i64, _>(col)?.max(0) as u64)
}

/// The period (as stored timestamps) and channel a report counts turns in.
struct Scope<'a> {
    from: String,
    to: String,
    channel: Option<&'a str>,
}

/// How every report query filters turns: $1 <= created_at < $2, channel = $3 when given.
const TURNS_IN: &str = "t.created_at >= $1 AND t.created_at < $2 AND (CAST($3 AS TEXT) IS NULL OR t.channel = $3)";

impl Store {
    /// The rows of `sql`, whose $1 and $2 bound the period and $3 is the channel (or NULL).
    async fn period_rows(&self, sql: &str, scope: &Scope<'_>) -> Result<Vec<AnyRow>, StoreError> {
        Ok(sqlx::query(sql).bind(&scope.from).bind(&scope.to).bind(scope.channel).fetch_all(&self.pool).await?)
    }

    /// The figures of the turns asked in `period` (in `channel` when given),
    /// with at most `max_questions` distinct question texts (the most recently asked).
    pub async fn stats_data(
        &self,
        period: Period,
        channel: Option<&str>,
        max_questions: usize,
    ) -> Result<StatsData, StoreError> {
        let scope = Scope { from: stamp(period.from), to: stamp(period.to), channel };
        let (decisions, latencies, handoff_reasons) =
            (self.decisions(&scope).await?, self.latencies(&scope).await?, self.handoff_reasons(&scope).await?);
        let (corrected_to, corrected_from) = self.corrections(&scope).await?;
        Ok(StatsData {
            decisions,
            latencies,
            handoff_reasons,
            questions_distinct: self.questions_distinct(&scope).await?,
            questions: self.recent_questions(&scope, max_questions).await?,
            feedback: self.feedback(&scope).await?,
            corrected_to,
            corrected_from,
            hourly: self.hourly(&scope).await?,
            intent_decisions: self.intent_decisions(&scope).await?,
            tickets: self.ticket_timings(&scope).await?,
        })
    }

    /// Turns per UTC hour (the stamp's first 13 characters) and decision.
    async fn hourly(&self, scope: &Scope<'_>) -> Result<Vec<(String, Action, u64)>, StoreError> {
        let sql = format!(
            "SELECT SUBSTR(t.created_at, 1, 13) AS hour, t.decision, COUNT(*) AS n
             FROM turns t WHERE {TURNS_IN} GROUP BY SUBSTR(t.created_at, 1, 13), t.decision"
        );
        let rows = self.period_rows(&sql, scope).await?;
        rows.iter().map(|row| Ok((row.try_get("hour")?, super::decoded(row, "decision")?, count(row, "n")?))).collect()
    }

    async fn intent_decisions(&self, scope: &Scope<'_>) -> Result<Vec<(String, Action, u64)>, StoreError> {
        let sql = format!(
            "SELECT t.intent, t.decision, COUNT(*) AS n FROM turns t WHERE {TURNS_IN} GROUP BY t.intent, t.decision"
        );
        let rows = self.period_rows(&sql, scope).await?;
        rows.iter()
            .map(|row| Ok((row.try_get("intent")?, super::decoded(row, "decision")?, count(row, "n")?)))
            .collect()
    }

    /// The tickets opened in the period (on the channel, when given): their
    /// holder, first agent reply, first resolution and whether work resumed after it.
    async fn ticket_timings(&self, scope: &Scope<'_>) -> Result<Vec<TicketTiming>, StoreError> {
        let done = "e.status IN ('resolved', 'closed')";
        let sql = format!(
            "SELECT k.queue, k.assignee, k.created_at,
                    (SELECT MIN(m.created_at) FROM messages m WHERE m.ticket_id = k.id AND m.role = 'agent') AS first_reply_at,
                    (SELECT MIN(e.at) FROM ticket_events e WHERE e.ticket_id = k.id AND {done}) AS resolved_at,
                    (SELECT COUNT(*) FROM ticket_events r WHERE r.ticket_id = k.id AND r.status NOT IN ('resolved', 'closed')
                       AND r.at > (SELECT MIN(e.at) FROM ticket_events e WHERE e.ticket_id = k.id AND {done})) AS reopens
             FROM tickets k
             WHERE k.created_at >= $1 AND k.created_at < $2 AND (CAST($3 AS TEXT) IS NULL OR k.channel = $3)"
        );
        let rows = self.period_rows(&sql, scope).await?;
        rows.iter()
            .map(|row| {
                Ok(TicketTiming {
                    queue: row.try_get("queue")?,
                    assignee: row.try_get("assignee")?,
                    created_at: row.try_get("created_at")?,
                    first_reply_at: row.try_get("first_reply_at")?,
                    resolved_at: row.try_get("resolved_at")?,
                    reopened: count(row, "reopens")? > 0,
                })
            })
            .collect()
    }

    async fn decisions(&self, scope: &Scope<'_>) -> Result<Vec<DecisionCount>, StoreError> {
        let sql = format!(
            "SELECT t.channel, t.decision, COUNT(*) AS n, COUNT(CASE WHEN t.lead <> 0 THEN 1 END) AS leads
             FROM turns t WHERE {TURNS_IN} GROUP BY t.channel, t.decision"
        );
        let rows = self.period_rows(&sql, scope).await?;
        rows.iter()
            .map(|row| {
                Ok(DecisionCount {
                    channel: row.try_get("channel")?,
                    decision: super::decoded(row, "decision")?,
                    count: count(row, "n")?,
                    leads: count(row, "leads")?,
                })
            })
            .collect()
    }

    async fn latencies(&self, scope: &Scope<'_>) -> Result<Vec<(String, f64)>, StoreError> {
        let rows =
            self.period_rows(&format!("SELECT t.channel, t.latency_ms FROM turns t WHERE {TURNS_IN}"), scope).await?;
        rows.iter().map(|row| Ok((row.try_get("channel")?, row.try_get::<f64, _>("latency_ms")?))).collect()
    }

    async fn handoff_reasons(&self, scope: &Scope<'_>) -> Result<Vec<(String, u64)>, StoreError> {
        let sql = format!(
            "SELECT k.reason, COUNT(*) AS n FROM turns t JOIN tickets k ON k.id = t.ticket_id WHERE {TURNS_IN} GROUP BY k.reason"
        );
        let rows = self.period_rows(&sql, scope).await?;
        rows.iter().map(|row| Ok((row.try_get("reason")?, count(row, "n")?))).collect()
    }

    async fn questions_distinct(&self, scope: &Scope<'_>) -> Result<u64, StoreError> {
        let rows = self
            .period_rows(&format!("SELECT COUNT(DISTINCT {QUESTION}) AS n FROM turns t WHERE {TURNS_IN}"), scope)
            .await?;
        Ok(rows.first().map(|row| count(row, "n")).transpose()?.unwrap_or(0))
    }

    /// The `max_questions` most recently asked distinct texts, with their counts per intent, newest first.
    async fn recent_questions(&self, scope: &Scope<'_>, max_questions: usize) -> Result<Vec<QuestionText>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {QUESTION} AS question, MIN(t.text) AS text, t.intent, COUNT(*) AS n, MAX(t.created_at) AS last_at
             FROM turns t
             JOIN (SELECT {QUESTION} AS question, MAX(t.created_at) AS last_at FROM turns t WHERE {TURNS_IN}
                   GROUP BY {QUESTION} ORDER BY last_at DESC, question LIMIT $4) recent ON recent.question = {QUESTION}
             WHERE {TURNS_IN}
             GROUP BY {QUESTION}, t.intent"
        ))
        .bind(&scope.from)
        .bind(&scope.to)
        .bind(scope.channel)
        .bind(i64::try_from(max_questions).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        let mut questions: BTreeMap<String, (QuestionText, String)> = BTreeMap::new();
        for row in &rows {
            let question: String = row.try_get("question")?;
            let text = self.opened(row, "text", sealed::TURN_TEXT)?;
            let (intent, n, last_at): (String, u64, String) =
                (row.try_get("intent")?, count(row, "n")?, row.try_get("last_at")?);
            let (q, latest) = questions
                .entry(question)
                .or_insert_with(|| (QuestionText { text, count: 0, intents: Vec::new() }, String::new()));
            q.count += n;
            q.intents.push((intent, n));
            *latest = latest.clone().max(last_at);
        }
        let mut questions: Vec<(QuestionText, String)> = questions.into_values().collect();
        questions.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.text.cmp(&b.0.text)));
        Ok(questions.into_iter().map(|(q, _)| q).collect())
    }

    /// Per intent: ratings, not-useful verdicts, the answer most reported and the latest comments.
    async fn feedback(&self, scope: &Scope<'_>) -> Result<Vec<IntentFeedback>, StoreError> {
        let sql = format!(
            "SELECT t.intent, COUNT(*) AS rated, COUNT(CASE WHEN f.useful = 0 THEN 1 END) AS not_useful
             FROM feedback f JOIN turns t ON t.trace_id = f.trace_id WHERE {TURNS_IN} GROUP BY t.intent"
        );
        let mut feedback: BTreeMap<String, IntentFeedback> = BTreeMap::new();
        for row in &self.period_rows(&sql, scope).await? {
            let intent: String = row.try_get("intent")?;
            let rated = IntentFeedback {
                intent: intent.clone(),
                not_useful: count(row, "not_useful")?,
                rated: count(row, "rated")?,
                answer: None,
                comments: Vec::new(),
            };
            feedback.insert(intent, rated);
        }
        let sql = format!(
            "SELECT t.intent, f.comment FROM feedback f JOIN turns t ON t.trace_id = f.trace_id
             WHERE f.useful = 0 AND f.comment IS NOT NULL AND f.comment <> '' AND {TURNS_IN}
             ORDER BY f.created_at DESC, f.id"
        );
        for row in &self.period_rows(&sql, scope).await? {
            let intent: String = row.try_get("intent")?;
            if let Some(f) = feedback.get_mut(&intent).filter(|f| f.comments.len() < COMMENTS_PER_INTENT) {
                f.comments.push(self.opened(row, "comment", sealed::FEEDBACK_COMMENT)?);
            }
        }
        for (intent, answer) in self.most_reported_answers(scope).await? {
            if let Some(f) = feedback.get_mut(&intent) {
                f.answer = Some(answer);
            }
        }
        Ok(feedback.into_values().collect())
    }

    /// Per intent, the answer most often marked not useful.
    async fn most_reported_answers(&self, scope: &Scope<'_>) -> Result<BTreeMap<String, String>, StoreError> {
        let sql = format!(
            "SELECT t.intent, MIN(t.answer) AS answer, COUNT(*) AS n FROM feedback f JOIN turns t ON t.trace_id = f.trace_id
             WHERE f.useful = 0 AND t.answer IS NOT NULL AND {TURNS_IN} GROUP BY t.intent, COALESCE(t.answer_key, t.answer)"
        );
        let mut most_reported: BTreeMap<String, (u64, String)> = BTreeMap::new();
        for row in &self.period_rows(&sql, scope).await? {
            let (intent, answer, n): (String, String, u64) =
                (row.try_get("intent")?, self.opened(row, "answer", sealed::TURN_ANSWER)?, count(row, "n")?);
            let best = most_reported.entry(intent).or_insert((0, String::new()));
            // Most reported; equal counts go to the first text in order, so the pick is stable.
            if n > best.0 || (n == best.0 && answer < best.1) {
                *best = (n, answer);
            }
        }
        Ok(most_reported.into_iter().map(|(intent, (_, answer))| (intent, answer)).collect())
    }

    /// Corrections per intent they name, and per intent the engine had given the corrected turn.
    ///
    /// NOTE: corrections count by when the agent made them; a channel filter
    /// keeps only corrections of turns (free-text corrections have no channel).
    async fn corrections(&self, scope: &Scope<'_>) -> Result<(Vec<(String, u64)>, Vec<(String, u64)>), StoreError> {
        let sql = "SELECT c.intent, COUNT(*) AS n FROM corrections c LEFT JOIN turns t ON t.trace_id = c.trace_id
                   WHERE c.created_at >= $1 AND c.created_at < $2 AND (CAST($3 AS TEXT) IS NULL OR t.channel = $3)
                   GROUP BY c.intent";
        let to = self.period_rows(sql, scope).await?;
        let sql = "SELECT t.intent, COUNT(*) AS n FROM corrections c JOIN turns t ON t.trace_id = c.trace_id
                   WHERE c.intent <> t.intent AND c.created_at >= $1 AND c.created_at < $2 AND (CAST($3 AS TEXT) IS NULL OR t.channel = $3)
                   GROUP BY t.intent";
        let from = self.period_rows(sql, scope).await?;
        let counted = |rows: Vec<AnyRow>| -> Result<Vec<(String, u64)>, StoreError> {
            rows.iter().map(|row| Ok((row.try_get("intent")?, count(row, "n")?))).collect()
        };
        Ok((counted(to)?, counted(from)?))
    }

    /// Not-useful verdicts on turns no agent has corrected yet (one row per
    /// verdict), oldest first: the input of [`crate::analytics::optimise_queue`].
    pub async fn not_useful_reports(&self, filter: &OptimiseFilter) -> Result<Vec<NotUsefulReport>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.intent, t.trace_id, t.text, t.answer, t.channel, t.created_at AS asked_at, f.comment, f.created_at AS reported_at
             FROM feedback f JOIN turns t ON t.trace_id = f.trace_id
             WHERE f.useful = 0
               AND NOT EXISTS (SELECT 1 FROM corrections c WHERE c.trace_id = f.trace_id)
               AND (CAST($1 AS TEXT) IS NULL OR t.intent = $1)
               AND (CAST($2 AS TEXT) IS NULL OR t.channel = $2)
               AND (CAST($3 AS TEXT) IS NULL OR f.created_at >= $3)
               AND (CAST($4 AS TEXT) IS NULL OR f.created_at < $4)
             ORDER BY f.created_at, f.id",
        )
        .bind(filter.intent.as_deref())
        .bind(filter.channel.as_deref())
        .bind(filter.from.map(stamp))
        .bind(filter.to.map(stamp))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(NotUsefulReport {
                    intent: row.try_get("intent")?,
                    trace_id: row.try_get("trace_id")?,
                    text: self.opened(row, "text", sealed::TURN_TEXT)?,
                    answer: self.opened_optional(row, "answer", sealed::TURN_ANSWER)?,
                    channel: row.try_get("channel")?,
                    asked_at: row.try_get("asked_at")?,
                    comment: self.opened_optional(row, "comment", sealed::FEEDBACK_COMMENT)?,
                    reported_at: row.try_get("reported_at")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, Utc};

    use super::*;
    use crate::store::{NewTicket, NewTurn};

    fn turn(
        trace: &str,
        channel: &str,
        text: &str,
        intent: &str,
        decision: &str,
        latency_ms: f64,
        at: DateTime<Utc>,
    ) -> NewTurn {
        NewTurn {
            trace_id: trace.into(),
            session_id: None,
            customer_id: None,
            channel: channel.into(),
            text: text.into(),
            intent: intent.into(),
            confidence: 0.9,
            decision: decision.parse().unwrap(),
            answer: Some(format!("answer of {intent}")),
            slots: serde_json::json!({}),
            lead: intent == "price_inquiry",
            latency_ms,
            options: Vec::new(),
            at,
        }
    }

    #[tokio::test]
    async fn counts_a_period_and_lists_the_uncorrected_not_useful_turns() {
        // Also on PostgreSQL when KEFU_TEST_POSTGRES_URL is set.
        for t in crate::store::testing::test_stores().await {
            eprintln!("backend: {}", t.backend);
            counts_and_lists(&t.store).await;
            t.cleanup().await;
        }
    }

    async fn counts_and_lists(store: &Store) {
        let now = Utc::now();
        let t = |minutes: i64| now - Duration::minutes(minutes);
        for (trace, channel, text, intent, decision, ms, at) in [
            ("a", "web", "退货地址在哪", "return_address", "answer", 10.0, t(50)),
            ("b", "web", "退货地址在哪", "return_address", "answer", 20.0, t(40)),
            ("c", "app", "这个多少钱", "price_inquiry", "answer", 30.0, t(30)),
            ("d", "app", "帮我写诗", "oos", "clarify", 40.0, t(20)),
            // Outside the period: counted nowhere.
            ("old", "web", "退货地址在哪", "return_address", "answer", 99.0, now - Duration::days(30)),
        ] {
            store.record_turn(&turn(trace, channel, text, intent, decision, ms, at), None).await.unwrap();
        }
        let ticket = NewTicket {
            id: "T1".into(),
            priority: crate::tickets::Priority::High,
            queue: "general".into(),
            reason: "complaint".into(),
            due_at: now,
            context: serde_json::json!({}),
        };
        store
            .record_turn(&turn("e", "web", "我要投诉", "complaint", "handoff", 50.0, t(10)), Some(&ticket))
            .await
            .unwrap();
        // Li takes T1, answers 2 minutes after it opened, resolves it, and the customer reopens it.
        use crate::tickets::Status;
        store.move_ticket("T1", Status::Assigned, Some("li"), None, "li", t(9)).await.unwrap();
        let reply = crate::store::NewMessage {
            ticket_id: Some("T1"),
            customer_id: None,
            session_id: None,
            channel: "web",
            role: crate::store::MessageRole::Agent,
            author: Some("li"),
            text: "您好",
            delivery: crate::store::Delivery::Sent,
        };
        store.add_message(&reply, t(8)).await.unwrap();
        for (status, at) in [(Status::InProgress, t(8)), (Status::Resolved, t(7)), (Status::InProgress, t(6))] {
            store.move_ticket("T1", status, None, None, "li", at).await.unwrap();
        }
        store.add_feedback("a", false, Some("地址不对"), t(9)).await.unwrap();
        store.add_feedback("b", false, None, t(8)).await.unwrap();
        store.add_feedback("b", false, Some("没用"), t(7)).await.unwrap();
        store.add_feedback("c", true, None, t(6)).await.unwrap();
        store.add_feedback("old", false, None, t(5)).await.unwrap();
        store.add_correction(Some("d"), "帮我写诗", "return_policy", None, None, t(4)).await.unwrap();
        store.add_correction(Some("a"), "退货地址在哪", "return_address", None, None, t(3)).await.unwrap();

        let period = Period { from: now - Duration::days(7), to: now };
        let data = store.stats_data(period, None, 100).await.unwrap();
        let mut decisions: Vec<(String, String, u64, u64)> = data
            .decisions
            .iter()
            .map(|d| (d.channel.clone(), d.decision.as_str().to_string(), d.count, d.leads))
            .collect();
        decisions.sort();
        let expected =
            [("app", "answer", 1, 1), ("app", "clarify", 1, 0), ("web", "answer", 2, 0), ("web", "handoff", 1, 0)];
        assert_eq!(decisions, expected.map(|(c, d, n, l)| (c.to_string(), d.to_string(), n, l)));
        assert_eq!(data.latencies.len(), 5);
        let hourly: u64 = data.hourly.iter().map(|(_, _, n)| n).sum();
        assert_eq!(hourly, 5, "every turn of the period in some hour");
        assert!(data.hourly.iter().all(|(hour, _, _)| hour.len() == 13 && hour.as_bytes()[10] == b'T'));
        assert!(data.intent_decisions.contains(&("return_address".to_string(), crate::policy::Action::Answer, 2)));
        let [ticket] = data.tickets.as_slice() else { panic!("{:?}", data.tickets) };
        assert_eq!(ticket.assignee.as_deref(), Some("li"));
        assert!(ticket.first_reply_at.as_deref() == Some(crate::support::time::stamp(t(8)).as_str()), "{ticket:?}");
        assert_eq!(ticket.resolved_at.as_deref(), Some(crate::support::time::stamp(t(7)).as_str()));
        assert!(ticket.reopened);
        assert_eq!(data.handoff_reasons, [("complaint".to_string(), 1)]);
        assert_eq!(data.questions_distinct, 4);
        // Most recently asked first; the repeated question counts both turns.
        let questions: Vec<(&str, u64)> = data.questions.iter().map(|q| (q.text.as_str(), q.count)).collect();
        assert_eq!(questions, [("我要投诉", 1), ("帮我写诗", 1), ("这个多少钱", 1), ("退货地址在哪", 2)]);
        let feedback: Vec<(&str, u64, u64)> =
            data.feedback.iter().map(|f| (f.intent.as_str(), f.not_useful, f.rated)).collect();
        assert_eq!(feedback, [("price_inquiry", 0, 1), ("return_address", 3, 3)]);
        assert_eq!(data.feedback[1].answer.as_deref(), Some("answer of return_address"));
        assert_eq!(data.feedback[1].comments, ["没用", "地址不对"]);
        let mut corrected_to = data.corrected_to.clone();
        corrected_to.sort();
        assert_eq!(corrected_to, [("return_address".to_string(), 1), ("return_policy".to_string(), 1)]);
        // Confirming the intent the engine gave is not a correction away from it.
        assert_eq!(data.corrected_from, [("oos".to_string(), 1)]);

        // The cap keeps the most recent texts; the channel filter applies everywhere.
        assert_eq!(store.stats_data(period, None, 2).await.unwrap().questions.len(), 2);
        let app = store.stats_data(period, Some("app"), 100).await.unwrap();
        assert_eq!(app.latencies.iter().map(|(_, ms)| *ms).sum::<f64>(), 70.0);
        assert!(app.handoff_reasons.is_empty());
        assert_eq!(app.corrected_to, [("return_policy".to_string(), 1)]);

        // Turn "a" was corrected, so it left the queue; "b" (two verdicts) and "old" remain.
        let reports = store.not_useful_reports(&OptimiseFilter::default()).await.unwrap();
        let traces: Vec<&str> = reports.iter().map(|r| r.trace_id.as_str()).collect();
        assert_eq!(traces, ["b", "b", "old"]);
        let recent = OptimiseFilter {
            from: Some(t(7) - Duration::seconds(1)),
            intent: Some("return_address".into()),
            ..Default::default()
        };
        let traces: Vec<String> =
            store.not_useful_reports(&recent).await.unwrap().into_iter().map(|r| r.trace_id).collect();
        assert_eq!(traces, ["b", "old"]);
        let none = OptimiseFilter { channel: Some("app".into()), ..Default::default() };
        assert!(store.not_useful_reports(&none).await.unwrap().is_empty());
    }
}
