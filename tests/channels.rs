//! A real `kefu serve` with a WeChat Official Account, driven by wechatpy (an
//! independent implementation of WeChat's scheme, from PyPI) and replying
//! through a loopback fake of WeChat's API: round trips in plain and safe
//! mode, retries answered once, passive-reply latency under 20 concurrent
//! senders, and a SIGKILL with 100 replies pending in the outbox.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::fake_platforms::FakePlatforms;
use common::Server;
use serde_json::Value;

const TOKEN: &str = "kefu-test-token";
const AES_KEY: &str = "kefu0test0key0abcdefghijklmnopqrstuvwxyz012";
const APP_ID: &str = "wx5f1e0c0ffee0d00d";
const CORP_ID: &str = "ww0c0ffee0d00d0001";

/// A config file with the WeChat account "demo" and the WeCom account "kf",
/// whose APIs are at `api_base`.
fn config(dir: &Path, api_base: &str, passive_reply_ms: u64, retries: u32) -> PathBuf {
    let path = dir.join("kefu.toml");
    let text = format!(
        "[channels]\npassive_reply_ms = {passive_reply_ms}\nsend_retries = {retries}\nsend_backoff_ms = 300\n\n\
         [channels.wechat.demo]\ntoken = \"{TOKEN}\"\nencoding_aes_key = \"{AES_KEY}\"\napp_id = \"{APP_ID}\"\n\
         app_secret = \"not-a-real-secret\"\napi_base = \"{api_base}\"\n\n\
         [channels.wecom.kf]\ntoken = \"{TOKEN}\"\nencoding_aes_key = \"{AES_KEY}\"\ncorp_id = \"{CORP_ID}\"\n\
         secret = \"not-a-real-secret\"\nopen_kfid = \"wk-test\"\napi_base = \"{api_base}\"\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs the wechatpy client against the WeChat account's callback URL (the
/// WeCom account's for `wecom`); its JSON summary.
fn client(python: &Path, server: &Server, args: &[&str]) -> Value {
    let (path, receiver) = if args[0] == "wecom" { ("wecom/kf", CORP_ID) } else { ("wechat/demo", APP_ID) };
    let url = format!("{}/v1/channels/{path}", server.base);
    let args: Vec<&str> = [url.as_str(), TOKEN, AES_KEY, receiver].into_iter().chain(args.iter().copied()).collect();
    common::run_client(python, "wechatpy_client.py", &args, server)
}

async fn eventually(what: &str, limit: Duration, check: impl Fn() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn wechatpy_round_trips_and_passive_reply_latency() {
    let Some(python) = common::client_python() else { return };
    if !common::model_installed() {
        return;
    }
    let (api, fake) = FakePlatforms::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &api, 4000, 5);
    let server = Server::start(&[("KEFU_CONFIG", config.to_str().unwrap())]).await;

    let summary = client(&python, &server, &["roundtrip"]);
    println!("WECHATPY round trips: {summary}");
    assert_eq!(summary["url_checks"], 2, "{summary}");
    assert_eq!((summary["plain"].as_u64(), summary["safe"].as_u64()), (Some(24), Some(24)), "{summary}");
    assert!(summary["safe_long_padding"].as_u64().unwrap() >= 5, "paddings above 16 bytes: {summary}");
    assert_eq!((summary["retries_answered_once"].as_u64(), summary["forged_refused"].as_u64()), (Some(1), Some(1)));

    // 20 customers at once, half of them in safe mode.
    let load = client(&python, &server, &["load", "20", "10"]);
    let fallbacks = load["async_fallbacks"].as_u64().unwrap() as usize;
    println!(
        "WECHAT passive replies under 20 concurrent senders: {} replies, p50 {} ms, p99 {} ms, max {} ms, {fallbacks} ({:.1}%) fell back to the customer-service API",
        load["replies"], load["p50_ms"], load["p99_ms"], load["max_ms"],
        100.0 * fallbacks as f64 / load["replies"].as_f64().unwrap()
    );
    assert_eq!(load["replies"], 200);
    // Every reply that missed the window reaches the customer through the API, once.
    let sent_to_load =
        || fake.sends_per_user().iter().filter(|(u, _)| u.starts_with("o-load-")).map(|(_, n)| n).sum::<usize>();
    eventually("the fallback replies", Duration::from_secs(30), || sent_to_load() == fallbacks).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sent_to_load(), fallbacks);
    assert!(fake.tokens.load(Ordering::SeqCst) <= 1, "one access token for all sends");

    // WeCom: wechatpy rings the doorbell; kefu pulls what the customers wrote and answers each once.
    for (n, user) in ["wm-1", "wm-2", "wm-3"].iter().enumerate() {
        fake.kf_customer_says(&format!("kf-{n}-a"), user, "退货地址是哪里");
        fake.kf_customer_says(&format!("kf-{n}-b"), user, "你们几点上班");
    }
    let wecom = client(&python, &server, &["wecom", "12"]);
    println!("WECHATPY WeCom: {wecom}");
    assert_eq!((wecom["url_checks"].as_u64(), wecom["doorbells"].as_u64()), (Some(1), Some(12)), "{wecom}");
    assert!(wecom["long_padding"].as_u64().unwrap() >= 3, "{wecom}");
    assert_eq!(wecom["forged_refused"], 1);
    let answered = || ["wm-1", "wm-2", "wm-3"].iter().map(|u| fake.sent_to(u).len()).sum::<usize>();
    eventually("WeCom replies", Duration::from_secs(30), || answered() == 6).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(answered(), 6, "twelve doorbells, six messages, six replies");
}

#[tokio::test]
async fn sigkill_with_100_replies_pending_delivers_each_once_after_restart() {
    let Some(python) = common::client_python() else { return };
    if !common::model_installed() {
        return;
    }
    let (api, fake) = FakePlatforms::start().await;
    fake.failing.store(true, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    // Every reply through the outbox, retried (almost) forever while WeChat is down.
    let config = config(dir.path(), &api, 0, 1000);
    let mut server = Server::start(&[("KEFU_CONFIG", config.to_str().unwrap())]).await;
    let burst = client(&python, &server, &["burst", "100"]);
    assert_eq!(burst["sent"], 100);
    // Each of the 100 replies is in the outbox once WeChat has refused it.
    eventually("100 replies tried and refused", Duration::from_secs(120), || fake.attempted_users() == 100).await;
    assert!(fake.sends.lock().unwrap().is_empty());
    server.kill();
    fake.failing.store(false, Ordering::SeqCst);
    let restarted = Instant::now();
    server.restart().await;
    eventually("100 replies after the restart", Duration::from_secs(120), || fake.sends.lock().unwrap().len() >= 100)
        .await;
    let delivered_in = restarted.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let per_user = fake.sends_per_user();
    println!(
        "OUTBOX after SIGKILL with 100 pending: {} replies to {} customers, the most to one customer {}, all within {:.1} s of the restart",
        per_user.values().sum::<usize>(),
        per_user.len(),
        per_user.values().max().unwrap_or(&0),
        delivered_in.as_secs_f64()
    );
    assert_eq!(per_user.len(), 100, "every customer got their reply");
    assert!(per_user.values().all(|&n| n == 1), "exactly once each: {per_user:?}");
}
