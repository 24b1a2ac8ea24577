//! The `switchboard` binary against a real local stack on 127.0.0.1 (started
//! in this process on an ephemeral port), with real WebSocket clients
//! receiving what it sends: `send`, `notify`, `negotiate`, `who`, `close`,
//! `dlq list` and `dlq redrive` with `--local`, their JSON and exit codes, the
//! API key, and errors that name the problem with nothing sent.

mod fake;
#[path = "../../local/tests/support/mod.rs"]
mod support;

use std::process::Output;
use std::time::Duration;

use serde_json::{Value, json};
use support::{connect, eventually, http, next_text, silent, stack, stack_with_fast_retries};
use tokio::io::AsyncWriteExt;

/// Runs the binary with `args` (and `stdin`), without the caller's environment settings.
async fn switchboard(args: &[&str], stdin: Option<&str>, api_key: Option<&str>) -> Output {
    switchboard_with(args, stdin, api_key, &[]).await
}

async fn switchboard_with(
    args: &[&str],
    stdin: Option<&str>,
    api_key: Option<&str>,
    env: &[(&str, &str)],
) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
    command
        .args(args)
        .env_remove("SWITCHBOARD_STACK")
        .env_remove("SWITCHBOARD_HTTP_API_URL")
        .env_remove("SWITCHBOARD_API_KEY")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(key) = api_key {
        command.env("SWITCHBOARD_API_KEY", key);
    }
    command.envs(env.iter().copied());
    let mut child = command.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.unwrap();
    }
    drop(input);
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the CLI did not finish within 60 s")
        .unwrap()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_notify_who_and_close_reach_a_real_client() {
    let stack = stack().await;
    let local = format!("--local={}", stack.http_url());
    let local = local.as_str();
    let mut alice = connect(&stack, "alice").await;

    // send to a user: the data parsed as JSON.
    let out = switchboard(
        &[
            local,
            "send",
            "--user",
            "alice",
            r#"{"text":"hi"}"#,
            "--json",
        ],
        None,
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(json_of(&out), json!({"addressed": 1}));
    assert_eq!(
        next_text(&mut alice).await,
        r#"{"type":"message","from":"server","data":{"text":"hi"}}"#
    );

    // send to everyone, the data from stdin, with an idempotency id: text, not JSON.
    let out = switchboard(
        &[local, "send", "--all", "--id", "maint-1"],
        Some("maintenance at 18:00\n"),
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out), "addressed 1\n");
    assert_eq!(
        next_text(&mut alice).await,
        r#"{"type":"message","from":"server","data":"maintenance at 18:00"}"#
    );
    // The same id again reaches nobody twice.
    let out = switchboard(
        &[
            local,
            "send",
            "--all",
            "--id",
            "maint-1",
            "maintenance at 18:00",
        ],
        None,
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    silent(&mut alice, Duration::from_millis(300)).await;

    // notify: the seed's NotifyUser body on the notify-user queue; data arrives verbatim.
    let out = switchboard(
        &[local, "notify", "--user", "alice", r#"{"n":1}"#, "--json"],
        None,
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let document = json_of(&out);
    assert_eq!(document["queue"], "notify-user");
    assert!(
        document["messageId"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{document}"
    );
    assert_eq!(next_text(&mut alice).await, r#"{"n":1}"#);

    // who: a user's connections; a user without any is exit 4.
    let out = switchboard(&[local, "who", "--user", "alice", "--json"], None, None).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let who = json_of(&out);
    assert_eq!(
        (who["exists"].clone(), who["connections"].clone()),
        (json!(true), json!(1))
    );
    let connection = support::connections_of(&stack, "alice").await.remove(0);
    let out = switchboard(
        &[local, "who", "--connection", &connection, "--json"],
        None,
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(json_of(&out)["userId"], "alice");
    let out = switchboard(&[local, "who", "--user", "nobody", "--json"], None, None).await;
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(json_of(&out)["exists"], false);

    // A bad field: named, exit 2, nothing sent.
    let long = "u".repeat(300);
    let out = switchboard(&[local, "send", "--user", &long, "x"], None, None).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        stderr(&out),
        "switchboard: user id too long (300 bytes, at most 256)\n"
    );
    let out = switchboard(
        &[local, "send", "--user", "alice", "--all", "x"],
        None,
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        stderr(&out),
        "switchboard: name one target: --connection, --user, --group, --user with --group, or --all\n"
    );
    let out = switchboard(
        &[local, "close", "--connection", "no-such-connection"],
        None,
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(
        stderr(&out),
        "switchboard: connection \"no-such-connection\" does not exist\n"
    );
    silent(&mut alice, Duration::from_millis(300)).await;

    // negotiate: a URL and token the stack accepts, with the group joined at connect.
    let out = switchboard(
        &[
            local, "token", "--user", "bob", "--group", "chat:42", "--ttl", "60", "--json",
        ],
        None,
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let url = json_of(&out)["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&stack.websocket_url()), "{url}");
    let (mut bob, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let out = switchboard(
        &[local, "send", "--group", "chat:42", "hello room"],
        None,
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        next_text(&mut bob).await,
        r#"{"type":"message","from":"server","group":"chat:42","data":"hello room"}"#
    );
    let out = switchboard(&[local, "who", "--group", "chat:42", "--json"], None, None).await;
    assert_eq!(json_of(&out)["connections"], 1);

    // close: every connection of a user, with the reason sent first.
    let out = switchboard(
        &[
            local, "close", "--user", "alice", "--reason", "bye", "--json",
        ],
        None,
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(json_of(&out), json!({"closed": 1, "userId": "alice"}));
    assert_eq!(
        next_text(&mut alice).await,
        r#"{"type":"close","reason":"bye"}"#
    );
    eventually("alice gone", || async {
        support::connections_of(&stack, "alice").await.is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_stack_and_a_missing_api_key_are_named() {
    // A port nothing listens on.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let out = switchboard(
        &[
            &format!("--local={url}"),
            "who",
            "--user",
            "alice",
            "--json",
        ],
        None,
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let error = json_of(&out)["error"].as_str().unwrap().to_owned();
    assert!(
        error.starts_with(&format!("the local stack at {url} is not reachable (")),
        "{error}"
    );

    let key = "k".repeat(32);
    let stack = support::stack_with(switchboard_local::Config {
        api_key: Some(key.clone()),
        ..switchboard_local::Config::default()
    })
    .await;
    let local = format!("--local={}", stack.http_url());
    let out = switchboard(&[&local, "send", "--all", "x"], None, None).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).starts_with("switchboard: refused (401): this stack listens beyond loopback"),
        "{}",
        stderr(&out)
    );
    let out = switchboard(&[&local, "send", "--all", "x", "--json"], None, Some(&key)).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(json_of(&out), json!({"addressed": 0}));
    // The key from a file (not on the command line, where `ps` shows it), and a file without one.
    let dir = std::env::temp_dir().join(format!("switchboard-cli-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (file, empty) = (dir.join("key"), dir.join("empty"));
    std::fs::write(&file, format!("{key}\n")).unwrap();
    std::fs::write(&empty, "\n").unwrap();
    let with_file = format!("--api-key-file={}", file.display());
    let out = switchboard(
        &[&local, &with_file, "send", "--all", "x", "--json"],
        None,
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let without = format!("--api-key-file={}", empty.display());
    let out = switchboard(&[&local, &without, "send", "--all", "x"], None, None).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr(&out).contains("the file holds no key"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let out = switchboard(&[&local, "dlq", "list", "--json"], None, Some(&key)).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // Without --webhook the local stack has no Upstream queue: the list skips it.
    let names: Vec<String> = json_of(&out)["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["queue"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        ["notify-user", "notify-connection", "commands", "deliveries"]
    );
    // The dead-letter endpoints sit behind the same key.
    let out = switchboard(
        &[&local, "dlq", "redrive", "--queue", "commands"],
        None,
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).starts_with("switchboard: refused (401): "),
        "{}",
        stderr(&out)
    );
    let out = switchboard(
        &[&local, "dlq", "redrive", "--queue", "commands", "--json"],
        None,
        Some(&key),
    )
    .await;
    assert_eq!(
        json_of(&out),
        json!({"queue": "commands", "moved": 0, "method": "local"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_with_their_error_and_redriven() {
    let stack = stack_with_fast_retries().await;
    let local = format!("--local={}", stack.http_url());
    let local = local.as_str();
    let answer = http(
        &stack,
        "POST",
        "/queues/commands",
        r#"{"version":1,"type":"nope"}"#,
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let listed = || async {
        let out = switchboard(
            &[local, "dlq", "list", "--queue", "commands", "--json"],
            None,
            None,
        )
        .await;
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        json_of(&out)["queues"][0]["messages"]
            .as_array()
            .unwrap()
            .clone()
    };
    eventually("a dead letter", || async { listed().await.len() == 1 }).await;
    let letter = listed().await.remove(0);
    assert_eq!(letter["body"], r#"{"version":1,"type":"nope"}"#);
    assert_eq!(letter["receiveCount"], 3);
    let error = letter["lastError"].as_str().unwrap();
    assert!(
        error.contains("nope"),
        "the last error names the unknown type: {error}"
    );
    let text =
        stdout(&switchboard(&[local, "dlq", "list", "--queue", "commands"], None, None).await);
    assert!(text.starts_with("commands: 1 messages\n"), "{text}");
    assert!(text.contains(&format!("error={error}")), "{text}");

    // An unknown queue: exit 2, named.
    let out = switchboard(&[local, "dlq", "redrive", "--queue", "nope"], None, None).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        stderr(&out),
        "switchboard: no dead-letter queue named \"nope\": use notify-user, notify-connection, commands, deliveries or upstream\n"
    );

    // The endpoint refuses a bad count and moves nothing.
    let answer = http(
        &stack,
        "POST",
        "/queues/commands/dead-letters/redrive?max=0",
        "",
    )
    .await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.body,
        r#"{"error":"\"max\" must be an integer from 1 to 10000"}"#
    );
    assert_eq!(listed().await.len(), 1);

    // Redrive: the message goes back to the queue (and, still bad, dies again
    // after three more receives: nothing is lost on the way).
    let out = switchboard(
        &[local, "dlq", "redrive", "--queue", "commands", "--json"],
        None,
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        json_of(&out),
        json!({"queue": "commands", "moved": 1, "method": "local"})
    );
    eventually("the redriven message dead again", || async {
        let letters = listed().await;
        letters.len() == 1 && letters[0]["messageId"] != letter["messageId"]
    })
    .await;
    let again = listed().await.remove(0);
    assert_eq!(again["body"], letter["body"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_to_the_deployed_http_api_are_signed_with_sigv4() {
    let (url, seen) = fake::serve(|_| (202, r#"{"addressed":0}"#.to_owned()));
    let env = [
        ("AWS_ACCESS_KEY_ID", "AKIDTEST"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_SESSION_TOKEN", "session-token"),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_PROFILE", "none"),
    ];
    let out = switchboard_with(
        &[
            "send",
            "--http-api-url",
            &format!("{url}/"),
            "--group",
            "chat:42",
            "x",
            "--json",
        ],
        None,
        None,
        &env,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(json_of(&out), json!({"addressed": 0}));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert!(
        request.head.starts_with("POST /send HTTP/1.1\n"),
        "{}",
        request.head
    );
    assert_eq!(request.body, r#"{"data":"x","group":"chat:42"}"#);
    let authorization = request.header("authorization").unwrap();
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
            && authorization.contains("/eu-west-1/execute-api/aws4_request, SignedHeaders=")
            && authorization.contains("content-type")
            && authorization.contains(", Signature="),
        "{authorization}"
    );
    assert_eq!(
        request.header("x-amz-security-token"),
        Some("session-token")
    );
    assert!(request.header("x-amz-date").is_some());

    // A path segment is percent-encoded before it is signed.
    let (url, seen) =
        fake::serve(|_| (404, r#"{"connectionId":"a/b=","exists":false}"#.to_owned()));
    let out = switchboard_with(
        &["who", "--http-api-url", &url, "--connection", "a/b="],
        None,
        None,
        &env,
    )
    .await;
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(stdout(&out), "connectionId a/b=\nexists       false\n");
    let head = seen.lock().unwrap()[0].head.clone();
    assert!(
        head.starts_with("GET /connections/a%2Fb%3D HTTP/1.1\n"),
        "{head}"
    );

    // An answer over 4 MiB is not read to its end.
    let (url, _) = fake::serve(|_| (200, format!("\"{}\"", "x".repeat(5 << 20))));
    let out = switchboard_with(
        &["who", "--http-api-url", &url, "--user", "alice"],
        None,
        None,
        &env,
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        stderr(&out),
        format!(
            "switchboard: the HTTP API at {url} answered with more than 4194304 bytes (read no further)\n"
        )
    );
}
