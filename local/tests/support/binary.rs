//! [`spawn_listening`]: the local stack's own binary, started for a test (not
//! in `support`, which the CLI's tests share: only this package's tests have
//! the binary).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// `switchboard-local` started with `args` (add `--addr 127.0.0.1:0`) and the
/// test secret, with no `RUST_LOG`, API key or OIDC issuers taken from the
/// environment, and its "listening" log line, read from stderr within 30 s.
/// The child is killed when dropped; its stderr is drained meanwhile.
pub async fn spawn_listening(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard-local"))
        .args(args)
        .env("TOKEN_SECRET", super::support::SECRET)
        .env_remove("RUST_LOG")
        .env_remove("SWITCHBOARD_API_KEY")
        .env_remove("OIDC_ISSUERS")
        .env_remove("OIDC_AUDIENCE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the switchboard-local binary starts");
    let mut lines = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("stderr reads") {
            if line.contains("listening") {
                return line;
            }
        }
        panic!("stderr ended without a listening line");
    })
    .await
    .expect("no listening line within 30 s");
    // Keep draining stderr, so the child never blocks on (or fails at) a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, line)
}
