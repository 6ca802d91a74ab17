//! `kefu practice`: realistic demo customers for new agents to rehearse on.
//! Their conversations go through a running server's `/v1/answer` on the
//! `practice` channel, so the hand-offs land in the workspace like real ones
//! and are found by filtering the queue on that channel; nothing touches a
//! real customer's chat.

use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::{json, Value};

use kefu::service::PRACTICE_CHANNEL;

/// A rehearsal: who writes, and what, in order.
struct Script {
    name: &'static str,
    /// A demo customer with a profile, or none for an anonymous visitor.
    customer_id: Option<&'static str>,
    messages: &'static [&'static str],
}

const SCRIPTS: &[Script] = &[
    Script {
        name: "vip_repeat_fault",
        customer_id: Some("c1001"),
        messages: &["冰箱又不制冷了", "上个月刚修过，这已经是第三次了", "我要找人工处理"],
    },
    Script {
        name: "angry_parcel_chaser",
        customer_id: Some("c1002"),
        messages: &["我的耳机到哪了", "都一个星期了还没到！", "你们到底能不能送到？？？太离谱了！！！"],
    },
    Script {
        name: "sales_lead",
        customer_id: None,
        messages: &["你们的双门冰箱多少钱", "我们公司想采购 50 台，有优惠吗"],
    },
];

#[derive(clap::Args)]
pub struct PracticeArgs {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// A bot (or higher) API key; none is needed against a server without keys.
    #[arg(long, env = "KEFU_PRACTICE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Rehearsal {
    scenario: &'static str,
    session_id: String,
    /// What the bot did with the last message.
    decision: String,
    /// Whether the bot flagged a sales lead.
    lead: bool,
    ticket_id: Option<String>,
}

pub async fn run(args: PracticeArgs) -> Result<()> {
    let base = reqwest::Url::parse(&args.url).context("parsing --url")?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let mut rehearsals = Vec::new();
    for script in SCRIPTS {
        let session_id = format!("practice-{}-{run_id}", script.name);
        let mut last = Value::Null;
        for text in script.messages {
            let body = json!({"text": text, "session_id": session_id, "customer_id": script.customer_id, "channel": PRACTICE_CHANNEL});
            let mut request = client.post(base.join("/v1/answer")?).json(&body);
            if let Some(key) = &args.api_key {
                request = request.bearer_auth(key);
            }
            let response = request.send().await.with_context(|| format!("sending to {base}"))?;
            let status = response.status();
            last = response.json().await.unwrap_or(Value::Null);
            if !status.is_success() {
                anyhow::bail!("the server refused a practice message ({status}): {last}");
            }
        }
        rehearsals.push(Rehearsal {
            scenario: script.name,
            session_id,
            decision: last["decision"].as_str().unwrap_or_default().to_string(),
            lead: last["lead"].as_bool().unwrap_or_default(),
            ticket_id: last["handoff"]["ticket_id"].as_str().map(str::to_string),
        });
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rehearsals)?);
        return Ok(());
    }
    for r in &rehearsals {
        let lead = if r.lead { ", a sales lead" } else { "" };
        let outcome = r
            .ticket_id
            .as_deref()
            .map_or_else(|| format!("bot: {}{lead}", r.decision), |t| format!("ticket {t}{lead}"));
        println!("{:<22} {outcome}", r.scenario);
    }
    println!(
        "open {}console, tab 全部 / All, channel filter \"{PRACTICE_CHANNEL}\": these customers are for practice",
        base
    );
    Ok(())
}
