//! `kefu load`: a bounded load test of a running server's `/v1/answer`, for
//! the latency and throughput figures (p50/p99, requests per second) and a
//! check that every hand-off's ticket can be read back; with `--pilot`, web
//! chat visitors and workspace agents at once ([`pilot`]).

mod pilot;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::{json, Value};

/// Short Chinese customer messages, about one in five a hand-off.
const DEFAULT_TEXTS: &[&str] = &[
    "快递到哪了",
    "退货地址在哪",
    "你们几点上班",
    "我的退款到账了吗",
    "能开发票吗",
    "冰箱不制冷了",
    "这款手机有现货吗",
    "怎么修改收货地址",
    "转人工",
    "多久能发货",
    "忘记密码了怎么办",
    "你们服务太差了，我要投诉",
];

#[derive(clap::Args)]
pub struct LoadArgs {
    /// Base URL of the server; only loopback addresses are allowed.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// How long to run.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Stop after this many requests in all.
    #[arg(long)]
    max_requests: Option<usize>,
    /// File of messages, one per line (default: built-in short Chinese messages).
    #[arg(long)]
    texts: Option<PathBuf>,
    /// API key sent as a bearer token (an agent or admin key, since the
    /// hand-off tickets are read back); none is needed against a server without keys.
    #[arg(long, env = "KEFU_LOAD_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Every message from this customer (default: the demo customers and an anonymous one in turn).
    #[arg(long, conflicts_with = "anonymous")]
    customer: Option<String>,
    /// Every message without a customer id.
    #[arg(long)]
    anonymous: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// The pilot instead: web chat visitors and workspace agents talking to each other.
    #[arg(long)]
    pilot: bool,
    /// With --pilot: concurrent web chat visitors.
    #[arg(long, default_value_t = 50)]
    visitors: usize,
    /// With --pilot: workspace agents as `name:password` pairs, comma-separated.
    #[arg(long, env = "KEFU_LOAD_AGENTS", hide_env_values = true)]
    agents: Option<String>,
}

#[derive(Debug, Serialize)]
struct Summary {
    clients: usize,
    seconds: f64,
    requests: usize,
    errors: usize,
    requests_per_second: f64,
    latency_ms_p50: f64,
    latency_ms_p90: f64,
    latency_ms_p99: f64,
    handoffs: usize,
    lost_tickets: usize,
}

struct Sample {
    latency_ms: f64,
    ok: bool,
    ticket: Option<String>,
}

/// Customers the clients speak as, in turn: the two demo customers and an anonymous one.
const CUSTOMERS: [Option<&str>; 3] = [Some("c1001"), Some("c1002"), None];
const CHANNELS: [&str; 4] = ["web", "app", "wechat", "douyin"];

/// A load test must never be pointed at someone else's machine by mistake.
fn check_loopback(url: &reqwest::Url) -> Result<()> {
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    if !loopback {
        bail!("--url must be a loopback address (127.0.0.1, ::1 or localhost), got {url}");
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    kefu::support::percentile::nearest_rank(sorted, p).unwrap_or(0.0)
}

pub async fn run(args: LoadArgs) -> Result<()> {
    let url = reqwest::Url::parse(&args.url).context("parsing --url")?;
    check_loopback(&url)?;
    if args.pilot {
        return pilot::run(url, args.visitors, args.agents.as_deref().unwrap_or_default(), args.seconds, args.json)
            .await;
    }
    let texts: Vec<String> = match &args.texts {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading {}", path.display()))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
        None => DEFAULT_TEXTS.iter().map(|s| s.to_string()).collect(),
    };
    if texts.is_empty() {
        bail!("no messages to send");
    }
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(key) = &args.api_key {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}")).context("--api-key")?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).default_headers(headers).build()?;
    // A server that is down or still loading would only give a loop of
    // instant errors: say so before measuring anything.
    let ready = url.join("/readyz")?;
    match client.get(ready.clone()).send().await {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => bail!("{url} is not ready ({} from {ready}); try again once it is", r.status()),
        Err(e) => bail!("cannot reach {url}: {e}"),
    }
    let answer_url = url.join("/v1/answer")?;
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let budget = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(args.max_requests.unwrap_or(usize::MAX)));
    let started = Instant::now();
    let customers: Vec<Option<String>> = match (&args.customer, args.anonymous) {
        (Some(id), _) => vec![Some(id.clone())],
        (None, true) => vec![None],
        (None, false) => CUSTOMERS.iter().map(|c| c.map(String::from)).collect(),
    };
    let mut tasks = Vec::new();
    for c in 0..args.clients.max(1) {
        let (client, answer_url, texts, budget) = (client.clone(), answer_url.clone(), texts.clone(), budget.clone());
        let customer = customers[c % customers.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut i = c;
            while Instant::now() < deadline && budget.fetch_update(std::sync::atomic::Ordering::SeqCst, std::sync::atomic::Ordering::SeqCst, |b| b.checked_sub(1)).is_ok() {
                // Known demo customers on some clients, so profiles and hand-off context are part of the load.
                let body = json!({"text": texts[i % texts.len()], "session_id": format!("load-{c}"), "channel": CHANNELS[c % CHANNELS.len()], "customer_id": customer});
                i += 1;
                let sent = Instant::now();
                let response = client.post(answer_url.clone()).json(&body).send().await;
                let (ok, ticket) = match response {
                    Ok(r) if r.status().is_success() => {
                        let v: Value = r.json().await.unwrap_or(Value::Null);
                        (true, v["handoff"]["ticket_id"].as_str().map(String::from))
                    }
                    _ => (false, None),
                };
                samples.push(Sample { latency_ms: sent.elapsed().as_secs_f64() * 1000.0, ok, ticket });
            }
            samples
        }));
    }
    let mut samples = Vec::new();
    for t in tasks {
        samples.extend(t.await?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut lost_tickets = 0;
    let tickets: Vec<&String> = samples.iter().filter_map(|s| s.ticket.as_ref()).collect();
    for id in &tickets {
        let r = client.get(url.join(&format!("/v1/tickets/{id}"))?).send().await;
        if !r.is_ok_and(|r| r.status().is_success()) {
            lost_tickets += 1;
        }
    }
    let mut latencies: Vec<f64> = samples.iter().map(|s| s.latency_ms).collect();
    latencies.sort_by(f64::total_cmp);
    let summary = Summary {
        clients: args.clients.max(1),
        seconds: elapsed,
        requests: samples.len(),
        errors: samples.iter().filter(|s| !s.ok).count(),
        requests_per_second: samples.len() as f64 / elapsed.max(1e-9),
        latency_ms_p50: percentile(&latencies, 50.0),
        latency_ms_p90: percentile(&latencies, 90.0),
        latency_ms_p99: percentile(&latencies, 99.0),
        handoffs: tickets.len(),
        lost_tickets,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "{} requests from {} client(s) in {:.1}s: {:.1} req/s, {} errors; latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms; {} hand-offs, {} tickets missing",
            summary.requests, summary.clients, summary.seconds, summary.requests_per_second, summary.errors,
            summary.latency_ms_p50, summary.latency_ms_p90, summary.latency_ms_p99, summary.handoffs, summary.lost_tickets
        );
    }
    if summary.errors > 0 || summary.lost_tickets > 0 {
        bail!("{} errors, {} lost tickets", summary.errors, summary.lost_tickets);
    }
    Ok(())
}
