//! Personal data never lands in clear in the server log or the database (its
//! file, WAL and shared memory): a phone number, an ID card, a bank card, an
//! address and a name go through every route that takes text, over real HTTP,
//! with keys, an agent's login and the CLI, and each file is then searched.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{model_installed, repo, Server};
use serde_json::{json, Value};

const BOT: &str = "bot-privacy-test-secret-0001";
const ADMIN: &str = "admin-privacy-test-secret-0001";
const PASSWORD: &str = "privacy test password";

const PHONE: &str = "13912345678";
const ID_CARD: &str = "11010519491231002X";
const BANK_CARD: &str = "6222021234567890123";
const ADDRESS: &str = "杭州市西湖区文三路478号";
const NAME: &str = "欧阳娜娜";

fn everything() -> String {
    format!("我叫{NAME}，手机{PHONE}，身份证{ID_CARD}，银行卡{BANK_CARD}，地址{ADDRESS}")
}

async fn call(base: &str, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut request = client.request(method.parse().unwrap(), format!("{base}{path}")).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `kefu agent add` against the server's database, the password on standard input.
fn add_agent(server: &Server, name: &str) {
    let dir = server.dir.path();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .current_dir(repo())
        .args(["agent", "add", name, "--role", "agent"])
        .env("KEFU_DATABASE_URL", format!("sqlite://{}/kefu.db", dir.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kefu agent add");
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn personal_data_reaches_neither_log_nor_database_in_clear() {
    assert!(model_installed(), "model missing");
    let mut server = Server::start(&[("KEFU_API_KEYS", &format!("bot:{BOT},admin:{ADMIN}"))]).await;
    let base = server.base.clone();
    add_agent(&server, "li");
    let (status, login) =
        call(&base, "", "POST", "/v1/auth/login", Some(json!({"agent": "li", "password": PASSWORD}))).await;
    assert_eq!(status, 200, "{login}");
    let li = login["token"].as_str().unwrap().to_string();
    let pii = everything();

    // The customer: a message with all five, a hand-off, and a comment.
    let (status, turn) = call(
        &base,
        BOT,
        "POST",
        "/v1/answer",
        Some(json!({"text": format!("{pii}，我要投诉，转人工"), "customer_id": "c1001"})),
    )
    .await;
    assert_eq!((status, turn["decision"].as_str()), (200, Some("handoff")), "{turn}");
    let trace = turn["trace_id"].as_str().unwrap();
    let (status, _) =
        call(&base, BOT, "POST", "/v1/feedback", Some(json!({"trace_id": trace, "useful": false, "comment": pii})))
            .await;
    assert_eq!(status, 201);

    // The agent: a ticket by hand, assignment, notes, status, a reveal, the conversation.
    let (status, ticket) =
        call(&base, ADMIN, "POST", "/v1/tickets", Some(json!({"customer_id": "c1001", "note": pii}))).await;
    assert_eq!(status, 201, "{ticket}");
    let id = ticket["id"].as_str().unwrap();
    for (path, body) in [
        (format!("/v1/tickets/{id}/assign"), json!({"note": pii})),
        (format!("/v1/tickets/{id}/notes"), json!({"note": pii})),
        (format!("/v1/tickets/{id}/status"), json!({"status": "in_progress", "note": pii})),
        (format!("/v1/tickets/{id}/reveal"), json!({})),
    ] {
        let (status, body) = call(&base, &li, "POST", &path, Some(body)).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    // Now li owns the conversation: the customer's message goes to her, and she replies.
    let (status, forwarded) =
        call(&base, BOT, "POST", "/v1/answer", Some(json!({"text": pii, "customer_id": "c1001"}))).await;
    assert_eq!((status, forwarded["handoff"]["reason"].as_str()), (200, Some("agent_active")), "{forwarded}");
    let (status, body) =
        call(&base, &li, "POST", &format!("/v1/tickets/{id}/messages"), Some(json!({"text": pii}))).await;
    assert_eq!(status, 202, "{body}");
    let (status, shown) = call(&base, &li, "GET", &format!("/v1/tickets/{id}"), None).await;
    assert_eq!(status, 200);
    for number in [PHONE, ID_CARD, BANK_CARD] {
        assert!(!shown.to_string().contains(number), "{number} shown in clear: {shown}");
    }
    let (status, _) = call(&base, &li, "GET", "/v1/customers/c1001/conversation", None).await;
    assert_eq!(status, 200);
    let (status, body) = call(
        &base,
        &li,
        "POST",
        "/v1/corrections",
        Some(json!({"text": pii, "intent": "request_human", "answer": pii, "note": pii})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // A website chat visitor writes it too.
    let (status, session) = call(&base, "", "POST", "/v1/widget/session", Some(json!({}))).await;
    assert_eq!(status, 200, "{session}");
    let chat = reqwest::Client::new()
        .post(format!("{base}/v1/widget/messages"))
        .header("x-kefu-visitor", session["visitor"].as_str().unwrap())
        .json(&json!({"text": pii}))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 200);
    // A failed login with personal data as the name.
    let (status, _) = call(&base, "", "POST", "/v1/auth/login", Some(json!({"agent": NAME, "password": PHONE}))).await;
    assert_eq!(status, 401);
    let (status, _) = call(&base, ADMIN, "GET", "/v1/audit", None).await;
    assert_eq!(status, 200);

    server.kill();
    let log = server.log_text();
    assert!(log.contains("answered"), "turns are logged:\n{log}");
    let mut files = vec![("server log".to_string(), log.into_bytes())];
    for file in ["kefu.db", "kefu.db-wal", "kefu.db-shm"] {
        files.push((file.to_string(), std::fs::read(server.dir.path().join(file)).unwrap_or_default()));
    }
    let sealed = files[1..].iter().any(|(_, bytes)| bytes.windows(5).any(|w| w == b"enc1:"));
    assert!(sealed, "the database holds the sealed turns");
    for (kind, clear) in
        [("phone", PHONE), ("ID card", ID_CARD), ("bank card", BANK_CARD), ("address", ADDRESS), ("name", NAME)]
    {
        for (file, bytes) in &files {
            assert!(!bytes.windows(clear.len()).any(|w| w == clear.as_bytes()), "{kind} {clear} in clear in {file}");
        }
    }
}
