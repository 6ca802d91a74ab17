//! The access layer over real HTTP, as deployments meet it: a server on every
//! interface with no key answers only loopback clients (protected mode), and
//! `kefu serve` terminates TLS itself with a certificate and key.

mod common;

use std::net::{IpAddr, UdpSocket};
use std::process::Command;

use common::{model_installed, Server};

/// This machine's address on its first non-loopback interface.
fn outside_address() -> IpAddr {
    // NOTE: connecting a UDP socket sends nothing; it only picks the interface of the route.
    let socket = UdpSocket::bind("0.0.0.0:0").expect("udp socket");
    let ip = ["192.0.2.1:9", "10.255.255.255:9", "198.51.100.1:9"]
        .iter()
        .find_map(|target| socket.connect(target).ok().and_then(|()| socket.local_addr().ok()).map(|a| a.ip()))
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified());
    ip.expect("this test needs a network interface besides loopback")
}

async fn status_from(client: &reqwest::Client, url: &str) -> (u16, serde_json::Value) {
    let response = client.get(url).send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn with_no_key_only_loopback_clients_are_answered() {
    assert!(model_installed(), "model missing");
    let server = Server::start_on("0.0.0.0", &[]).await;
    assert!(server.log_text().contains("protected mode"), "the start says so:\n{}", server.log_text());
    let port = server.base.rsplit(':').next().unwrap();
    let outside = outside_address();
    let local = reqwest::Client::new();
    let (status, _) = status_from(&local, &format!("{}/v1/tickets", server.base)).await;
    assert_eq!(status, 200, "loopback is served");

    // From the machine's own network address, as another host would connect.
    let remote = reqwest::Client::builder().local_address(outside).build().unwrap();
    let host = match outside {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    let (status, body) = status_from(&remote, &format!("http://{host}:{port}/v1/tickets")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("protected_mode")), "{body}");
    let (status, _) = status_from(&remote, &format!("http://{host}:{port}/healthz")).await;
    assert_eq!(status, 200, "health needs no key");
}

#[tokio::test]
async fn serve_terminates_tls_itself() {
    assert!(model_installed(), "model missing");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let (cert_s, key_s) = (cert.display().to_string(), key.display().to_string());
    let key_env = "admin:tls-test-admin-secret-0001";
    let server =
        Server::start_tls(&[("KEFU_TLS_CERT", &cert_s), ("KEFU_TLS_KEY", &key_s), ("KEFU_API_KEYS", key_env)]).await;
    let https = server.base.replace("http://", "https://");
    let curl = |args: &[&str]| {
        let out = Command::new("curl").args(["-s", "--cacert", &cert_s]).args(args).output().expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(curl(&[&format!("{https}/healthz")]).contains("ok"));
    let tickets = curl(&["-H", "Authorization: Bearer tls-test-admin-secret-0001", &format!("{https}/v1/tickets")]);
    assert!(tickets.contains("\"tickets\""), "{tickets}");
    // Plain HTTP on the TLS port gets no API answer.
    let plain = curl(&[&format!("{}/healthz", server.base)]);
    assert!(!plain.contains("\"ok\""), "{plain}");
    // Session cookies of a TLS server carry Secure.
    let headers = curl(&["-D", "-", "-o", "/dev/null", "-X", "POST", &format!("{https}/v1/auth/logout")]);
    assert!(headers.to_lowercase().contains("set-cookie: kefu_session=;"), "{headers}");
    assert!(headers.contains("HttpOnly; SameSite=Strict; Max-Age=0; Secure"), "{headers}");
}

/// `kefu <args>` against the server's database.
fn kefu_on(server: &Server, args: &[&str]) -> (bool, String, String) {
    let url = format!("sqlite://{}", server.db_path().display());
    let out = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .current_dir(common::repo())
        .args(["--database-url", &url])
        .args(args)
        .output()
        .expect("run kefu");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn get_as(base: &str, path: &str, key: Option<&str>) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new().get(format!("{base}{path}"));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn keys_from_the_cli_work_at_once_and_data_keys_rotate_under_a_running_server() {
    assert!(model_installed(), "model missing");
    let server = Server::start(&[]).await;
    let base = server.base.as_str();
    let (status, turn) = common::post(
        base,
        "/v1/answer",
        serde_json::json!({"text": "我叫欧阳娜娜，我要投诉，转人工", "customer_id": "c1001"}),
    )
    .await;
    assert_eq!((status, turn["decision"].as_str()), (200, Some("handoff")), "{turn}");
    let ticket = format!("/v1/tickets/{}", turn["handoff"]["ticket_id"].as_str().unwrap());
    assert_eq!(get_as(base, &ticket, None).await.0, 200, "protected mode serves loopback");

    let (ok, out, err) = kefu_on(&server, &["keys", "add", "--role", "admin", "--label", "ops", "--json"]);
    assert!(ok, "{err}");
    let key: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (id, secret) = (key["id"].as_str().unwrap(), key["secret"].as_str().unwrap());
    assert_eq!(get_as(base, &ticket, None).await.0, 401, "a key exists: no more anonymous callers");
    assert_eq!(get_as(base, &ticket, Some(secret)).await.0, 200);
    let (ok, listed, _) = kefu_on(&server, &["keys", "list", "--json"]);
    assert!(ok && listed.contains(id) && !listed.contains(secret), "{listed}");

    // A new data key: every stored text is sealed again under it, and the
    // running server, which started with the old key, still reads them.
    let (ok, out, err) = kefu_on(&server, &["keys", "rotate-data", "--new-key", "--json"]);
    assert!(ok, "{err}");
    let rotated: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(rotated["resealed"].as_u64().unwrap() >= 2, "{rotated}");
    let (status, shown) = get_as(base, &ticket, Some(secret)).await;
    assert_eq!(status, 200, "{shown}");
    assert!(shown["conversation"][0]["text"].as_str().unwrap().contains("欧阳娜娜"), "{shown}");
    let key_file = std::fs::read_to_string(server.dir.path().join("kefu.key")).unwrap();
    assert_eq!(
        key_file.lines().filter(|l| !l.starts_with('#')).count(),
        2,
        "the old key stays until the operator drops it"
    );

    let (ok, _, err) = kefu_on(&server, &["keys", "revoke", id]);
    assert!(ok, "{err}");
    assert_eq!(get_as(base, &ticket, Some(secret)).await.0, 401, "revoked at once");
    assert_eq!(get_as(base, &ticket, None).await.0, 200, "no live key: protected mode again");
}
