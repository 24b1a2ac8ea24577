//! The demo page served by the stack from the binary (no Node, no files on disk at run time),
//! and the banner's lines for it. The page itself runs in a real browser in
//! clients/js/test/browser/ (`make js`).

mod support;

use std::process::Stdio;
use std::time::Duration;

use support::*;
use tokio::io::{AsyncBufReadExt, BufReader};

const PAGE: &str = include_str!("../../clients/js/demo/index.html");
const STYLE: &str = include_str!("../../clients/js/demo/style.css");
const SCRIPT: &str = include_str!("../../clients/js/demo/app.js");

#[tokio::test]
async fn the_page_its_style_and_its_script_are_served_as_committed() {
    let stack = stack().await;
    for (path, body, content_type) in [
        ("/demo/", PAGE, "text/html; charset=utf-8"),
        ("/demo/index.html", PAGE, "text/html; charset=utf-8"),
        ("/demo/style.css", STYLE, "text/css; charset=utf-8"),
        ("/demo/app.js", SCRIPT, "text/javascript; charset=utf-8"),
    ] {
        let answer = http(&stack, "GET", path, "").await;
        assert_eq!(answer.status, 200, "{path}");
        assert_eq!(answer.header("content-type"), Some(content_type), "{path}");
        assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
        let policy = answer.header("content-security-policy").unwrap_or("");
        assert!(
            policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
        assert_eq!(answer.body, body, "{path}");
    }
    // The page loads exactly the files served next to it.
    assert!(PAGE.contains(r#"href="style.css""#) && PAGE.contains(r#"src="app.js""#));
}

#[tokio::test]
async fn nothing_else_is_served_under_the_demo_path() {
    let stack = stack().await;
    for path in [
        "/demo/app.ts",
        "/demo/README.md",
        "/demo/..%2F..%2FCargo.toml",
        "/demo/%2e%2e/Cargo.toml",
        "/demo/style.css/x",
    ] {
        let answer = http(&stack, "GET", path, "").await;
        assert_eq!(answer.status, 404, "{path}: {}", answer.body);
        assert!(!answer.body.contains("[package]"), "{path}");
    }
    assert_eq!(http(&stack, "POST", "/demo/", "").await.status, 405);
    // The routes next to it are untouched: negotiate still answers, the WebSocket still connects.
    let negotiated = http(&stack, "POST", "/negotiate", r#"{"userId":"dev-user"}"#).await;
    assert_eq!(negotiated.status, 200, "{}", negotiated.body);
    connect(&stack, "dev-user").await;
}

/// The banner names the page and a curl line that sends the demo user "your download is ready";
/// the page it names is served, and the curl line's body is what the notify-user queue takes.
#[tokio::test]
async fn the_banner_prints_the_demo_page_and_the_notification_curl_line() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard-local"))
        .args(["--addr", "127.0.0.1:0"])
        .env("NO_COLOR", "1")
        .env_remove("TOKEN_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = Vec::new();
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let done = line.starts_with("Ctrl-C stops the stack.");
            banner.push(line);
            if done {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("no banner within 20 s");
    let after = |heading: &str| {
        let at = banner.iter().position(|l| l.starts_with(heading));
        let at = at.unwrap_or_else(|| panic!("no {heading:?} in {banner:#?}"));
        banner[at + 1].trim().to_owned()
    };
    let page = after("Or open the demo page");
    let base = page
        .strip_suffix("/demo/?user=dev-user")
        .unwrap_or_else(|| panic!("{page}"))
        .to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    assert_eq!(
        after("and send it a notification:"),
        format!(
            r#"curl --json '{{"userId":"dev-user","data":"your download is ready"}}' {base}/queues/notify-user"#
        )
    );
    let served = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ])
        .arg(&page)
        .output()
        .expect("curl (the websocat test needs it too)");
    assert_eq!(String::from_utf8_lossy(&served.stdout), "200", "{page}");
    child.kill().await.unwrap();
}
