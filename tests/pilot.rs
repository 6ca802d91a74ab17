//! The pilot end to end in a real browser (headless Chromium through
//! chromedriver): a customer chats in the website widget on the demo shop
//! page, an agent works the hand-off in the workspace, and each sees the
//! other live. Screenshots go to target/screenshots/ for a person to look at.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use common::{model_installed, repo, Server};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const SHOP_SECRET: &str = "demo-shop-secret-for-tests";
const WAIT: Duration = Duration::from_secs(30);

/// chromedriver on a free port; killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The browser, or a loud skip where none is installed (CI installs one, so there it fails).
fn browser_installed() -> bool {
    let ok = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !ok {
        eprintln!("\n!!! SKIPPED: the browser tests need Debian's chromium and chromium-driver (apt-get install chromium chromium-driver); .ci/run installs them\n");
        assert!(std::env::var("CI").is_err(), "CI must have the browser: .ci/run installs it");
    }
    ok
}

async fn start_driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while reqwest::get(format!("{url}/status")).await.is_err() {
        assert!(started.elapsed() < WAIT, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Driver { child, url }
}

/// A fresh headless browser window (its own profile, so its own local storage and cookies).
async fn browser(driver: &Driver) -> Client {
    let caps = json!({
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--window-size=1400,900", "--lang=zh-CN"]
        }
    });
    let caps = caps.as_object().unwrap().clone().into_iter().collect();
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector).capabilities(caps).connect(&driver.url).await.expect("a browser session")
}

/// Runs `script` in the page until it returns something truthy; returns that.
async fn wait_for(page: &Client, what: &str, script: &str) -> Value {
    let started = Instant::now();
    loop {
        let value = page.execute(script, vec![]).await.expect("script runs");
        if !(value.is_null() || value == json!(false) || value == json!("") || value == json!(0)) {
            return value;
        }
        if started.elapsed() > WAIT {
            let text = page.execute("return document.body.innerText", vec![]).await.unwrap_or_default();
            panic!("waited {WAIT:?} for {what}; the page shows:\n{}", text.as_str().unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn run(page: &Client, script: &str) -> Value {
    page.execute(script, vec![]).await.expect("script runs")
}

/// target/screenshots, or KEFU_SCREENSHOTS (the agent guide's pictures are refreshed with docs/screenshots).
fn screenshot_dir() -> PathBuf {
    let dir = std::env::var_os("KEFU_SCREENSHOTS").map_or_else(|| repo().join("target/screenshots"), PathBuf::from);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(page: &Client, name: &str) {
    let png = page.screenshot().await.expect("screenshot");
    std::fs::write(screenshot_dir().join(name), png).unwrap();
}

fn add_agent(server: &Server, name: &str, password: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .current_dir(repo())
        .args(["agent", "add", name])
        .env("KEFU_DATABASE_URL", format!("sqlite://{}", server.db_path().display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    assert!(child.wait().unwrap().success(), "kefu agent add {name}");
}

/// An agent's session for API checks beside the browser.
async fn api_login(base: &str, name: &str, password: &str) -> String {
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"agent": name, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string()
}

async fn api(base: &str, token: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, format!("{base}{path}")).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let r = request.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

/// Types into the widget and sends, as a customer does.
async fn customer_says(widget: &Client, text: &str) {
    let input = widget.find(Locator::Id("kefu-input")).await.unwrap();
    input.send_keys(text).await.unwrap();
    widget.find(Locator::Id("kefu-send")).await.unwrap().click().await.unwrap();
}

/// Waits until the widget shows `n` bot answers; returns the last one's text.
async fn nth_bot_answer(widget: &Client, n: usize) -> String {
    let script = format!(
        "var b = document.querySelectorAll('.kefu-bot .kefu-bubble'); return b.length >= {n} ? b[{n} - 1].textContent : null"
    );
    wait_for(widget, &format!("bot answer {n}"), &script).await.as_str().unwrap().to_string()
}

/// Says which step the test is at: a hang or failure in CI names its step.
fn step(n: u32) {
    eprintln!("pilot: step {n}");
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Records when each bubble matching `selector` inside `root` first appears (page clock, ms).
const OBSERVE: &str = "var root = document.getElementById(arguments[0]), selector = arguments[1];
  window.kefuSeen = window.kefuSeen || {};
  new MutationObserver(function () {
    root.querySelectorAll(selector).forEach(function (b) {
      if (!(b.textContent in window.kefuSeen)) window.kefuSeen[b.textContent] = Date.now();
    });
  }).observe(root, {childList: true, subtree: true});
  return true;";

async fn observe(page: &Client, root: &str, selector: &str) {
    page.execute(OBSERVE, vec![json!(root), json!(selector)]).await.expect("observer installed");
}

async fn seen_at(page: &Client, text: &str) -> f64 {
    let script = format!("return (window.kefuSeen || {{}})[{text:?}] || null");
    wait_for(page, &format!("{text:?} to show"), &script).await.as_f64().unwrap()
}

#[tokio::test]
async fn pilot_in_a_real_browser() {
    if !model_installed() || !browser_installed() {
        return;
    }
    // A key exists, so the server is not in protected mode and the workspace asks for a login.
    let server =
        Server::start(&[("KEFU_WIDGET_SECRET", SHOP_SECRET), ("KEFU_API_KEYS", "admin:pilot-admin-key-0123456789")])
            .await;
    let base = server.base.clone();
    add_agent(&server, "alice", "alice-password-1");
    add_agent(&server, "bob", "bobby-password-1");
    eprintln!("pilot: server ready, agents added");
    let driver = start_driver().await;
    let (widget, console) = (browser(&driver).await, browser(&driver).await);

    step(1);
    // 1. The customer, logged in to the shop as c1001, opens the demo shop page with the widget.
    let expires = chrono::Utc::now().timestamp() + 3600;
    let token = kefu::service::widget::mint_customer_token(SHOP_SECRET, "c1001", expires);
    widget.goto(&format!("{base}/chat?customer_token={token}")).await.unwrap();
    wait_for(&widget, "the open widget", "return document.querySelector('#kefu-panel.kefu-open') !== null").await;

    step(2);
    // 2. A plain question gets the answer, with 有用 / 没用 buttons.
    customer_says(&widget, "退货地址是哪里").await;
    let answer = nth_bot_answer(&widget, 1).await;
    assert!(answer.contains("退货"), "{answer}");
    let rate = "return document.querySelectorAll('.kefu-bot .kefu-rate').length >= 2";
    wait_for(&widget, "feedback buttons", rate).await;
    step(3);
    // 3. A question the bot gets wrong (an agent corrects it below).
    customer_says(&widget, "可以用花呗分期吗").await;
    let first_answer = nth_bot_answer(&widget, 2).await;

    step(4);
    // 4. An angry message is handed off: the widget says so with the ticket number.
    customer_says(&widget, "你们这什么破服务，气死我了，我要投诉！").await;
    let note = wait_for(
        &widget,
        "the hand-off note",
        "var n = [...document.querySelectorAll('.kefu-note')].find(x => /T[0-9A-F]{12}/.test(x.textContent)); return n ? n.textContent : null",
    )
    .await;
    let ticket = regex::Regex::new("T[0-9A-F]{12}").unwrap().find(note.as_str().unwrap()).unwrap().as_str().to_string();
    screenshot(&widget, "widget-handoff.png").await;

    step(5);
    // 5. The agent logs in to the workspace and finds the ticket unassigned, with its SLA badge.
    console.goto(&format!("{base}/console")).await.unwrap();
    wait_for(&console, "the login form", "return !document.getElementById('login').hidden").await;
    console.find(Locator::Id("login-agent")).await.unwrap().send_keys("alice").await.unwrap();
    console.find(Locator::Id("login-password")).await.unwrap().send_keys("alice-password-1").await.unwrap();
    screenshot(&console, "console-login.png").await;
    console.find(Locator::Css("#login-form button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_for(&console, "the workspace", "return !document.getElementById('app').hidden").await;
    console.find(Locator::Css("#tabs [data-tab=unassigned]")).await.unwrap().click().await.unwrap();
    let row = format!("#tickets li[data-id={ticket}]");
    let badge = wait_for(
        &console,
        "the ticket in the queue",
        &format!("var b = document.querySelector('{row} .badge'); return b ? b.className + '|' + b.textContent : null"),
    )
    .await;
    assert!(badge.as_str().unwrap().contains("sla-green"), "a fresh ticket is well within its SLA: {badge}");

    step(6);
    // 6. Opening it shows the conversation (bot turns with intent and confidence) and the profile.
    console.find(Locator::Css(&row)).await.unwrap().click().await.unwrap();
    let conversation = wait_for(
        &console,
        "the conversation",
        "var c = document.getElementById('conversation'); return c.textContent.includes('气死我了') ? c.textContent : null",
    )
    .await;
    assert!(conversation.as_str().unwrap().contains("complaint"), "turns carry their intent: {conversation}");
    let profile = wait_for(
        &console,
        "the profile",
        "var p = document.getElementById('profile').textContent; return p.includes('vip') ? p : null",
    )
    .await;
    assert!(profile.as_str().unwrap().contains("c1001"), "{profile}");
    let hints = run(&console, "return document.querySelectorAll('#profile .hint').length").await;
    assert!(hints.as_u64().unwrap() >= 1, "a VIP with repairs gets hints");
    screenshot(&console, "console-ticket.png").await;

    step(7);
    // 7. The agent claims it; a second agent's claim is refused, never two owners.
    console.find(Locator::Id("claim")).await.unwrap().click().await.unwrap();
    wait_for(&console, "the claim", "return document.getElementById('t-owner').textContent.includes('alice')").await;
    let bob = api_login(&base, "bob", "bobby-password-1").await;
    let (status, body) =
        api(&base, &bob, reqwest::Method::POST, &format!("/v1/tickets/{ticket}/assign"), Some(json!({}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("already_assigned")), "{body}");
    let (_, shown) = api(&base, &bob, reqwest::Method::GET, &format!("/v1/tickets/{ticket}"), None).await;
    assert_eq!(shown["assignee"], "alice");
    // The owner may see the customer's phone in clear (audited); the panel shows it masked until then.
    let reveal = "document.querySelector('#profile .reveal').click(); return true";
    wait_for(&console, "the reveal button", "return document.querySelector('#profile .reveal') !== null").await;
    run(&console, reveal).await;
    wait_for(
        &console,
        "the phone in clear",
        "return document.getElementById('profile').textContent.includes('13812345678')",
    )
    .await;

    step(8);
    // 8. Agent replies reach the widget live; latency over 20 replies (page clocks of one machine).
    observe(&widget, "kefu-log", ".kefu-agent .kefu-bubble").await;
    let mut to_customer = Vec::new();
    for i in 0..20 {
        let text = format!("您好，我是客服 alice，第 {i} 条回复");
        let sent = run(
            &console,
            &format!("document.getElementById('reply').value = {text:?}; var t = Date.now(); document.getElementById('send-reply').click(); return t"),
        )
        .await;
        to_customer.push(seen_at(&widget, &text).await - sent.as_f64().unwrap());
    }
    screenshot(&widget, "widget-agent-reply.png").await;

    step(9);
    // 9. The customer's next messages reach the agent, not the bot; latency over 20.
    observe(&console, "conversation", ".customer .bubble").await;
    let bot_answers = run(&widget, "return document.querySelectorAll('.kefu-bot').length").await;
    let mut to_agent = Vec::new();
    for i in 0..20 {
        let text = format!("好的，我等你消息（{i}）");
        let sent = run(
            &widget,
            &format!("document.getElementById('kefu-input').value = {text:?}; var t = Date.now(); document.getElementById('kefu-form').requestSubmit(); return t"),
        )
        .await;
        to_agent.push(seen_at(&console, &text).await - sent.as_f64().unwrap());
    }
    wait_for(
        &widget,
        "the forwarded mark",
        "return [...document.querySelectorAll('.kefu-customer .kefu-who')].some(x => x.textContent.includes('alice'))",
    )
    .await;
    assert_eq!(
        run(&widget, "return document.querySelectorAll('.kefu-bot').length").await,
        bot_answers,
        "the bot stays silent"
    );
    screenshot(&console, "console-live.png").await;

    step(10);
    // 10. 机器人没听懂: the agent corrects the misunderstood turn to price_inquiry.
    run(
        &console,
        "var bot = [...document.querySelectorAll('#conversation li.bot')].find(li => li.previousElementSibling && li.previousElementSibling.textContent.includes('花呗'));
         bot.querySelector('.fix').click(); return true",
    )
    .await;
    wait_for(&console, "the correction dialog", "return document.getElementById('fix').open").await;
    console.find(Locator::Id("fix-search")).await.unwrap().send_keys("price_inquiry").await.unwrap();
    run(&console, "var s = document.getElementById('fix-intent'); s.value = 'price_inquiry'; return s.value").await;
    screenshot(&console, "console-correction.png").await;
    console.find(Locator::Id("fix-save")).await.unwrap().click().await.unwrap();
    wait_for(
        &console,
        "the correction to be stored",
        "return document.getElementById('toast').textContent.includes('已纠正')",
    )
    .await;

    step(11);
    // 11. A public note, then the ticket is worked and resolved; the bot answers again.
    run(&console, "document.getElementById('reply').value = '已为您登记，补偿券已发放到账户'; document.getElementById('public-note').click(); return true").await;
    wait_for(&console, "the note", "return document.getElementById('history').textContent.includes('补偿券')").await;
    for status in ["in_progress", "resolved"] {
        console.find(Locator::Css(&format!("#t-actions [data-status={status}]"))).await.unwrap().click().await.unwrap();
        wait_for(
            &console,
            status,
            &format!(
                "return document.getElementById('t-title').textContent.includes({:?})",
                if status == "resolved" { "已解决" } else { "处理中" }
            ),
        )
        .await;
    }

    step(12);
    // 12. The same question now gets the corrected intent; and the customer can read the ticket's progress.
    customer_says(&widget, "可以用花呗分期吗").await;
    let corrected = nth_bot_answer(&widget, 4).await;
    assert_ne!(corrected, first_answer, "the corrected answer differs from the wrong one");
    let (_, conversation) =
        api(&base, &bob, reqwest::Method::GET, "/v1/customers/c1001/conversation?limit=5", None).await;
    let last_question = conversation["conversation"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|l| l["role"] == "customer" && l["text"] == "可以用花呗分期吗")
        .cloned()
        .unwrap();
    assert_eq!(last_question["intent"], "price_inquiry", "{conversation}");
    customer_says(&widget, "我的工单处理得怎么样了").await;
    let progress = nth_bot_answer(&widget, 5).await;
    assert!(progress.contains(&ticket) && progress.contains("补偿券"), "{progress}");
    screenshot(&widget, "widget-progress.png").await;

    step(13);
    // 13. Bad input gets a clear error in the widget, in the customer's language (the server's
    // detail on hover): an oversize message, then an expired and a forged customer token.
    run(&widget, "document.getElementById('kefu-input').value = '退'.repeat(3000); document.getElementById('kefu-form').requestSubmit(); return true").await;
    let error = wait_for(
        &widget,
        "the oversize error",
        "var e = document.querySelector('.kefu-error'); return e ? e.textContent + ' | ' + e.title : null",
    )
    .await;
    assert!(error.as_str().unwrap().contains("消息太长了") && error.as_str().unwrap().contains("limit"), "{error}");
    let expired = kefu::service::widget::mint_customer_token(SHOP_SECRET, "c1001", expires - 7200);
    widget.goto(&format!("{base}/chat?customer_token={expired}")).await.unwrap();
    let error = wait_for(
        &widget,
        "the expired token error",
        "var e = document.querySelector('.kefu-error'); return e ? e.textContent + ' | ' + e.title : null",
    )
    .await;
    assert!(error.as_str().unwrap().starts_with("登录已过期，请刷新页面后再试。 | "), "{error}");
    assert!(error.as_str().unwrap().contains("expired"), "{error}");
    let forged = kefu::service::widget::mint_customer_token("not-the-shop-secret", "c1002", expires);
    widget.goto(&format!("{base}/chat?customer_token={forged}")).await.unwrap();
    let error = wait_for(
        &widget,
        "the forged token error",
        "var e = document.querySelectorAll('.kefu-error'); return e.length ? [e.length, e[0].textContent, e[0].title].join(' | ') : null",
    )
    .await;
    assert!(
        error.as_str().unwrap().starts_with("1 | 登录信息无效，请重新登录后再试。 | "),
        "one notice, in Chinese: {error}"
    );
    assert!(error.as_str().unwrap().contains("not valid"), "{error}");
    screenshot(&widget, "widget-error.png").await;

    let (to_customer, to_agent) = (median(to_customer), median(to_agent));
    println!("LATENCY agent reply -> widget: median {to_customer:.0} ms over 20");
    println!("LATENCY customer message -> console: median {to_agent:.0} ms over 20");
    widget.close().await.unwrap();
    console.close().await.unwrap();
}

#[tokio::test]
async fn dashboard_draws_the_weeks_figures_in_a_real_browser() {
    if !model_installed() || !browser_installed() {
        return;
    }
    let bot = "dashboard-bot-key-0123456789";
    let keys = format!("bot:{bot},admin:dashboard-admin-key-0123456789");
    let server = Server::start(&[("KEFU_API_KEYS", &keys)]).await;
    let base = server.base.clone();
    add_agent(&server, "carol", "carol-password-1");
    // Seeded turns: answers, a clarifying question, hand-offs; an answer marked not useful.
    let mut traces = Vec::new();
    for (n, text) in [
        "退货地址在哪",
        "你们几点上班",
        "运费谁出",
        "我要投诉，马上转人工",
        "我的快递到哪了",
        "转人工",
        "退货地址是哪里",
    ]
    .iter()
    .enumerate()
    {
        let body = json!({"text": text, "customer_id": format!("c-dash-{n}"), "channel": if n % 2 == 0 { "web" } else { "app" }});
        let (status, turn) = api(&base, bot, reqwest::Method::POST, "/v1/answer", Some(body)).await;
        assert_eq!(status, 200, "{turn}");
        traces.push(turn);
    }
    let (status, _) = api(
        &base,
        bot,
        reqwest::Method::POST,
        "/v1/feedback",
        Some(json!({"trace_id": traces[0]["trace_id"], "useful": false, "comment": "地址不对"})),
    )
    .await;
    assert_eq!(status, 201);
    // Carol works one hand-off: claims, replies, resolves.
    let carol = api_login(&base, "carol", "carol-password-1").await;
    let ticket = traces.iter().find_map(|t| t["handoff"]["ticket_id"].as_str()).expect("a hand-off").to_string();
    for (path, body) in [
        (format!("/v1/tickets/{ticket}/assign"), json!({})),
        (format!("/v1/tickets/{ticket}/messages"), json!({"text": "您好，我来处理"})),
        (format!("/v1/tickets/{ticket}/status"), json!({"status": "in_progress"})),
        (format!("/v1/tickets/{ticket}/status"), json!({"status": "resolved"})),
    ] {
        let (status, answer) = api(&base, &carol, reqwest::Method::POST, &path, Some(body)).await;
        assert!((200..300).contains(&status), "{path}: {status} {answer}");
    }

    let driver = start_driver().await;
    let page = browser(&driver).await;
    // Without a session the page says to log in first.
    page.goto(&format!("{base}/console/dashboard")).await.unwrap();
    wait_for(&page, "the login notice", "return !document.getElementById('signin').hidden").await;
    page.goto(&format!("{base}/console")).await.unwrap();
    wait_for(&page, "the login form", "return !document.getElementById('login').hidden").await;
    page.find(Locator::Id("login-agent")).await.unwrap().send_keys("carol").await.unwrap();
    page.find(Locator::Id("login-password")).await.unwrap().send_keys("carol-password-1").await.unwrap();
    page.find(Locator::Css("#login-form button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_for(&page, "the workspace", "return !document.getElementById('app').hidden").await;
    page.find(Locator::Id("to-dashboard")).await.unwrap().click().await.unwrap();
    let figures = wait_for(
        &page,
        "the charts",
        "if (document.getElementById('board').getAttribute('aria-busy')) return null;
         var k = function (n) { var e = document.querySelector('[data-figure=' + n + '] .value'); return e && e.textContent; };
         var days = [].map.call(document.querySelectorAll('#daily g.day'), function (g) { return [g.dataset.day, +g.dataset.turns]; });
         if (!days.length) return null;
         return {turns: k('turns'), auto: k('autoRate'), handoff: k('handoffRate'), days: days,
           bars: document.querySelectorAll('#daily rect').length,
           reasons: [].map.call(document.querySelectorAll('#reasons .bar-row'), function (g) { return [g.dataset.key, +g.dataset.value]; }),
           scenarios: [].map.call(document.querySelectorAll('#scenarios tbody tr'), function (r) { return [r.dataset.key, +r.cells[1].textContent]; }),
           channels: [].map.call(document.querySelectorAll('#channels tbody tr'), function (r) { return [r.dataset.key, +r.cells[1].textContent]; }),
           agents: [].map.call(document.querySelectorAll('#agents tbody tr'), function (r) { return [r.dataset.key, +r.cells[1].textContent, +r.cells[2].textContent]; }),
           queues: [].map.call(document.querySelectorAll('#queues tbody tr'), function (r) { return r.dataset.key; }),
           notUseful: [].map.call(document.querySelectorAll('#not-useful tbody tr'), function (r) { return [r.dataset.key, r.querySelector('a').getAttribute('href')]; }),
           csv: document.getElementById('csv').getAttribute('href'),
           from: document.getElementById('from').value, to: document.getElementById('to').value};",
    )
    .await;
    screenshot(&page, "dashboard.png").await;
    run(&page, "document.getElementById('agents').scrollIntoView()").await;
    screenshot(&page, "dashboard-agents.png").await;

    // The figures shown are the API's for the same period.
    let query = format!("/v1/stats?from={}&to={}", figures["from"].as_str().unwrap(), figures["to"].as_str().unwrap());
    let (status, report) = api(&base, &carol, reqwest::Method::GET, &query, None).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["turns"], 7);
    assert_eq!(figures["turns"], report["turns"].to_string());
    let pct = |rate: &Value| format!("{:.1}%", rate.as_f64().unwrap() * 100.0);
    assert_eq!(figures["auto"].as_str(), Some(pct(&report["auto_answer_rate"]).as_str()));
    assert_eq!(figures["handoff"].as_str(), Some(pct(&report["handoff_rate"]).as_str()));
    let days: Vec<Value> = report["daily"].as_array().unwrap().iter().map(|d| json!([d["day"], d["turns"]])).collect();
    assert_eq!(figures["days"], json!(days), "one bar per day of the period");
    assert_eq!(days.len(), 7);
    let reasons: Vec<Value> =
        report["handoff_by_reason"].as_array().unwrap().iter().map(|r| json!([r["reason"], r["count"]])).collect();
    assert!(!reasons.is_empty());
    assert_eq!(figures["reasons"], json!(reasons));
    let scenarios: Vec<Value> =
        report["scenarios"].as_array().unwrap().iter().map(|s| json!([s["scenario"], s["turns"]])).collect();
    assert_eq!(figures["scenarios"], json!(scenarios));
    let channels: Vec<Value> =
        report["channels"].as_array().unwrap().iter().map(|c| json!([c["channel"], c["turns"]])).collect();
    assert_eq!(figures["channels"], json!(channels));
    assert_eq!(figures["agents"], json!([["carol", 1, 1]]), "carol holds and resolved one ticket");
    assert_eq!(report["agents"][0]["resolved"], 1);
    assert_eq!(figures["queues"].as_array().unwrap().len(), report["queues"].as_array().unwrap().len());
    assert!(report["first_response_minutes"]["p50"].is_number(), "{report}");
    let not_useful = &figures["notUseful"][0];
    assert_eq!(not_useful[0], report["not_useful"][0]["intent"]);
    assert!(not_useful[1].as_str().unwrap().starts_with("/console?tab=optimise"), "{not_useful}");
    // The CSV export of the same period, with the session the page has.
    let csv = figures["csv"].as_str().unwrap();
    let body = run(&page, &format!("return fetch('{csv}').then(function (r) {{ return r.text(); }})")).await;
    let body = body.as_str().unwrap();
    assert!(body.starts_with("section,") && body.contains("\nday,") && body.contains("\nagent,carol,"), "{body}");
    // The link back to correct answers opens the workspace's "to improve" tab.
    page.goto(&format!("{base}{}", not_useful[1].as_str().unwrap())).await.unwrap();
    wait_for(&page, "the optimise tab", "var b = document.querySelector('#tabs [data-tab=optimise]'); return b && b.getAttribute('aria-selected') === 'true'").await;
    page.close().await.unwrap();
}
