//! The README's first-run flow, driven with the real tools: websocat connects
//! and pings, curl enqueues a NotifyUser, websocat prints it.
//!
//! `make test` installs websocat into the project's .venv and puts it on PATH;
//! plain `cargo test` ignores this test.

use std::process::Stdio;
use std::time::Duration;

use switchboard::auth::{claims_for, mint};
use switchboard_local::Config;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

#[tokio::test]
#[ignore = "needs websocat and curl on PATH; run make test"]
async fn websocat_pings_and_receives_a_notify_user_sent_with_curl() {
    let stack = switchboard_local::start(Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    })
    .await
    .unwrap();
    let token = mint(
        stack.secret(),
        &claims_for("dev-user", Duration::from_secs(300), vec![]),
    )
    .unwrap();
    let mut websocat = Command::new("websocat")
        .arg(format!("{}?token={token}", stack.websocket_url()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("websocat on PATH");
    let mut stdin = websocat.stdin.take().unwrap();
    let mut lines = BufReader::new(websocat.stdout.take().unwrap()).lines();
    let mut next_line = async || {
        tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("websocat printed nothing within 10 s")
            .unwrap()
            .expect("websocat ended")
    };

    stdin
        .write_all(b"{\"action\":\"ping\",\"name\":\"Stepan\"}\n")
        .await
        .unwrap();
    assert_eq!(next_line().await, r#"{"type":"pong","name":"Stepan"}"#);

    // Wait until the connection is registered, then send exactly the README's curl line.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while stack.open_connections() == 0 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let curl = Command::new("curl")
        .args([
            "-s",
            "--json",
            r#"{"userId":"dev-user","data":"hello from Switchboard"}"#,
        ])
        .arg(format!("{}/queues/notify-user", stack.http_url()))
        .output()
        .await
        .expect("curl on PATH");
    let answer = String::from_utf8_lossy(&curl.stdout);
    assert!(answer.starts_with(r#"{"messageId":""#), "{answer}");
    assert_eq!(next_line().await, "hello from Switchboard");

    drop(stdin);
    let _ = tokio::time::timeout(Duration::from_secs(5), websocat.wait()).await;
    stack.shutdown().await;
}
