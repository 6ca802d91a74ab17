//! `kefu load --pilot`: web chat visitors and workspace agents at once, for
//! the pilot's figures. Each visitor starts a chat, asks for a person and
//! keeps writing while listening to its live stream; each agent logs in,
//! claims tickets and replies to them. At the end every message is counted
//! on both sides: agents' replies sent against replies the visitors' streams
//! received, and visitors' messages handed to agents against the messages
//! the agents' tickets hold.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::{json, Value};

use super::percentile;

/// What visitors write after asking for a person.
const VISITOR_TEXTS: &[&str] =
    &["快递到哪了", "退货地址在哪", "你们几点上班", "我的退款到账了吗", "能开发票吗", "怎么修改收货地址", "多久能发货"];

/// How often a visitor writes and an agent replies.
const VISITOR_PAUSE: Duration = Duration::from_millis(1000);
const AGENT_PAUSE: Duration = Duration::from_millis(500);
/// Tickets one agent works at once.
const AGENT_TICKETS: usize = 10;
/// Time for messages in flight to arrive after the run.
const SETTLE: Duration = Duration::from_secs(3);

#[derive(Debug, Serialize)]
struct PilotSummary {
    visitors: usize,
    agents: usize,
    seconds: f64,
    /// Visitor messages and their latency (the /v1/answer path: the bot answers or hands to the agent).
    messages: usize,
    errors: usize,
    answer_ms_p50: f64,
    answer_ms_p99: f64,
    /// The same for the messages the bot answered, and for those handed to an agent.
    bot_answer_ms_p99: f64,
    to_agent_ms_p99: f64,
    tickets_claimed: usize,
    claim_conflicts: usize,
    agent_replies_sent: usize,
    agent_replies_received: usize,
    customer_messages_to_agents: usize,
    customer_messages_in_tickets: usize,
}

#[derive(Default)]
struct Tally {
    latencies: Vec<f64>,
    bot_latencies: Vec<f64>,
    agent_latencies: Vec<f64>,
    errors: usize,
    replies_sent: HashSet<String>,
    replies_received: HashSet<String>,
    forwarded: Vec<(String, String)>,
    claimed: HashSet<String>,
    conflicts: usize,
}

type Shared = Arc<Mutex<Tally>>;

fn tally(shared: &Shared) -> std::sync::MutexGuard<'_, Tally> {
    shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Agents as `name:password` pairs, comma-separated.
fn parse_agents(agents: &str) -> Result<Vec<(String, String)>> {
    agents
        .split(',')
        .filter(|a| !a.trim().is_empty())
        .map(|a| {
            let (name, password) = a.trim().split_once(':').context("--agents takes name:password pairs")?;
            Ok((name.to_string(), password.to_string()))
        })
        .collect()
}

/// Reads server-sent events from `response`, handing each `data:` line to `on_data`, until `deadline`.
async fn read_events(mut response: reqwest::Response, deadline: Instant, mut on_data: impl FnMut(&str)) {
    let mut buffer = String::new();
    while Instant::now() < deadline {
        let wait = deadline.saturating_duration_since(Instant::now());
        let Ok(Ok(Some(chunk))) = tokio::time::timeout(wait, response.chunk()).await else { break };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find('\n') {
            let line: String = buffer.drain(..=end).collect();
            if let Some(data) = line.trim_end().strip_prefix("data:") {
                on_data(data.trim());
            }
        }
    }
}

pub async fn run(base: reqwest::Url, visitors: usize, agents: &str, seconds: f64, json_out: bool) -> Result<()> {
    let agents = parse_agents(agents)?;
    if agents.is_empty() {
        bail!("--pilot needs agent accounts: --agents name:password,... (or KEFU_LOAD_AGENTS)");
    }
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let stream_client = reqwest::Client::new();
    let shared: Shared = Arc::default();
    let started = Instant::now();
    let stop = started + Duration::from_secs_f64(seconds);
    let listen_until = stop + SETTLE;
    let mut tasks = Vec::new();
    for v in 0..visitors {
        let (client, streams, base, shared) = (client.clone(), stream_client.clone(), base.clone(), shared.clone());
        tasks
            .push(tokio::spawn(async move { visitor(v, &client, &streams, &base, &shared, stop, listen_until).await }));
    }
    let mut agent_tokens = Vec::new();
    for (name, password) in &agents {
        let login = client.post(base.join("/v1/auth/login")?).json(&json!({"agent": name, "password": password}));
        let response: Value = login.send().await?.error_for_status().context("agent login")?.json().await?;
        let token = response["token"].as_str().context("login gave no token")?.to_string();
        agent_tokens.push(token.clone());
        let (client, base, shared) = (client.clone(), base.clone(), shared.clone());
        tasks.push(tokio::spawn(async move { agent(&client, &base, &token, &shared, stop).await }));
    }
    for task in tasks {
        if let Err(err) = task.await? {
            tracing::warn!(error = %err, "a load client stopped early");
            tally(&shared).errors += 1;
        }
    }
    // Every message handed to an agent must be in its ticket.
    let forwarded = tally(&shared).forwarded.clone();
    let token = agent_tokens.first().cloned().unwrap_or_default();
    let mut in_tickets = 0;
    let mut conversations = std::collections::HashMap::new();
    for (ticket, text) in &forwarded {
        if !conversations.contains_key(ticket) {
            let url = base.join(&format!("/v1/tickets/{ticket}"))?;
            let body: Value = client.get(url).bearer_auth(&token).send().await?.json().await?;
            let lines: HashSet<String> = body["conversation"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|l| l["role"] == "customer")
                .filter_map(|l| l["text"].as_str().map(str::to_string))
                .collect();
            conversations.insert(ticket.clone(), lines);
        }
        in_tickets += usize::from(conversations[ticket].contains(text));
    }
    let t = tally(&shared);
    let sorted = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v
    };
    let latencies = sorted(&t.latencies);
    let summary = PilotSummary {
        visitors,
        agents: agents.len(),
        seconds: started.elapsed().as_secs_f64(),
        messages: latencies.len(),
        errors: t.errors,
        answer_ms_p50: percentile(&latencies, 50.0),
        answer_ms_p99: percentile(&latencies, 99.0),
        bot_answer_ms_p99: percentile(&sorted(&t.bot_latencies), 99.0),
        to_agent_ms_p99: percentile(&sorted(&t.agent_latencies), 99.0),
        tickets_claimed: t.claimed.len(),
        claim_conflicts: t.conflicts,
        agent_replies_sent: t.replies_sent.len(),
        agent_replies_received: t.replies_sent.intersection(&t.replies_received).count(),
        customer_messages_to_agents: forwarded.len(),
        customer_messages_in_tickets: in_tickets,
    };
    if json_out {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "{} visitors and {} agents for {:.0}s: {} visitor messages, {} errors, answer p50 {:.1} ms, p99 {:.1} ms \
             (bot answers p99 {:.1} ms, to agents p99 {:.1} ms); \
             {} tickets claimed ({} conflicts refused); agent replies {} sent, {} received; \
             customer messages to agents {} sent, {} in their tickets",
            summary.visitors,
            summary.agents,
            summary.seconds,
            summary.messages,
            summary.errors,
            summary.answer_ms_p50,
            summary.answer_ms_p99,
            summary.bot_answer_ms_p99,
            summary.to_agent_ms_p99,
            summary.tickets_claimed,
            summary.claim_conflicts,
            summary.agent_replies_sent,
            summary.agent_replies_received,
            summary.customer_messages_to_agents,
            summary.customer_messages_in_tickets
        );
    }
    let lost = (summary.agent_replies_sent - summary.agent_replies_received)
        + (summary.customer_messages_to_agents - summary.customer_messages_in_tickets);
    if summary.errors > 0 || lost > 0 {
        bail!("{} errors, {lost} messages lost", summary.errors);
    }
    Ok(())
}

/// One web chat visitor: a session, a live stream, a request for a person, then a message a second.
async fn visitor(
    n: usize,
    client: &reqwest::Client,
    streams: &reqwest::Client,
    base: &reqwest::Url,
    shared: &Shared,
    stop: Instant,
    listen_until: Instant,
) -> Result<()> {
    let session: Value =
        client.post(base.join("/v1/widget/session")?).json(&json!({})).send().await?.error_for_status()?.json().await?;
    let token = session["visitor"].as_str().context("no visitor token")?.to_string();
    let cursor = session["cursor"].as_i64().unwrap_or(0);
    let mut events = base.join("/v1/widget/events")?;
    events.query_pairs_mut().append_pair("visitor", &token).append_pair("after", &cursor.to_string());
    let stream = streams.get(events).send().await?.error_for_status()?;
    let listener = {
        let shared = shared.clone();
        tokio::spawn(read_events(stream, listen_until, move |data| {
            if let Some(text) =
                serde_json::from_str::<Value>(data).ok().and_then(|m| m["text"].as_str().map(str::to_string))
            {
                tally(&shared).replies_received.insert(text);
            }
        }))
    };
    let mut i = 0;
    while Instant::now() < stop {
        // The first message asks for a person; the rest carry a mark to find them by.
        let text = if i == 0 {
            "转人工".to_string()
        } else {
            format!("{} (v{n} m{i})", VISITOR_TEXTS[i % VISITOR_TEXTS.len()])
        };
        let sent = Instant::now();
        let response = client
            .post(base.join("/v1/widget/messages")?)
            .header("x-kefu-visitor", &token)
            .json(&json!({"text": text}))
            .send()
            .await;
        let latency = sent.elapsed().as_secs_f64() * 1000.0;
        let reply: Option<Value> = match response {
            Ok(r) if r.status().is_success() => r.json().await.ok(),
            _ => None,
        };
        {
            let mut t = tally(shared);
            t.latencies.push(latency);
            match reply {
                Some(reply) if reply["reason"] == "agent_active" => {
                    let ticket = reply["ticket_id"].as_str().unwrap_or_default().to_string();
                    t.forwarded.push((ticket, text));
                    t.agent_latencies.push(latency);
                }
                Some(_) => t.bot_latencies.push(latency),
                None => t.errors += 1,
            }
        }
        i += 1;
        tokio::time::sleep(VISITOR_PAUSE).await;
    }
    listener.await?;
    Ok(())
}

/// One agent: claims unassigned tickets (up to a handful) and replies to them in turn.
async fn agent(
    client: &reqwest::Client,
    base: &reqwest::Url,
    token: &str,
    shared: &Shared,
    stop: Instant,
) -> Result<()> {
    let mut mine: Vec<String> = Vec::new();
    let mut n = 0;
    while Instant::now() < stop {
        if mine.len() < AGENT_TICKETS {
            let list: Value = client
                .get(base.join("/v1/tickets?unassigned=true&limit=20")?)
                .bearer_auth(token)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            for ticket in list["tickets"].as_array().into_iter().flatten().take(2) {
                let id = ticket["id"].as_str().unwrap_or_default().to_string();
                let claim =
                    client.post(base.join(&format!("/v1/tickets/{id}/assign"))?).bearer_auth(token).json(&json!({}));
                match claim.send().await?.status().as_u16() {
                    200 => {
                        tally(shared).claimed.insert(id.clone());
                        mine.push(id);
                    }
                    // Another agent was first: refused, never two owners.
                    409 => tally(shared).conflicts += 1,
                    _ => tally(shared).errors += 1,
                }
            }
        }
        if let Some(ticket) = mine.get(n % mine.len().max(1)).cloned() {
            let text = format!("您好，这是第 {n} 条回复（{ticket}）");
            let reply = client
                .post(base.join(&format!("/v1/tickets/{ticket}/messages"))?)
                .bearer_auth(token)
                .json(&json!({"text": text}))
                .send()
                .await?;
            let delivered: Value = if reply.status().as_u16() == 202 { reply.json().await? } else { Value::Null };
            if delivered["delivery"] == "sent" {
                tally(shared).replies_sent.insert(text);
            } else {
                tally(shared).errors += 1;
            }
            n += 1;
        }
        tokio::time::sleep(AGENT_PAUSE).await;
    }
    Ok(())
}
