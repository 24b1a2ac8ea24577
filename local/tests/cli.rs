//! The command line, run as the binary users run: the `token` subcommand and usage errors.

use std::process::Command;

use switchboard::auth::{TokenSecret, TokenVerifier};

const SECRET: &str = "cli-test-secret-cli-test-secret-cli!";

fn token_command(args: &[&str], secret: Option<&str>) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard-local"));
    command.arg("token").args(args).env_remove("TOKEN_SECRET");
    if let Some(secret) = secret {
        command.env("TOKEN_SECRET", secret);
    }
    command.output().unwrap()
}

#[test]
fn token_prints_a_token_the_stack_accepts() {
    let out = token_command(
        &["alice", "--ttl", "30m", "--groups", "chat:42,news"],
        Some(SECRET),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let claims = TokenVerifier::new(&TokenSecret::new(SECRET).unwrap())
        .verify(token.trim())
        .unwrap();
    assert_eq!(claims.sub, "alice");
    assert_eq!(claims.groups, ["chat:42", "news"]);
    let ttl = claims.exp - claims.iat.unwrap();
    assert_eq!(ttl, 30 * 60);
}

#[test]
fn token_without_a_secret_fails_with_a_clear_message() {
    let out = token_command(&["alice"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("TOKEN_SECRET is not set."),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn token_with_a_short_secret_is_refused() {
    let out = token_command(&["alice"], Some("short"));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "TOKEN_SECRET is 5 bytes; at least 32 are required"
    );
}

#[test]
fn a_bad_ttl_is_a_usage_error() {
    let out = token_command(&["alice", "--ttl", "soon"], Some(SECRET));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid value 'soon' for '--ttl <TTL>'")
    );
}

#[test]
fn an_unknown_gateway_is_a_usage_error_naming_the_choices() {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard-local"))
        .args(["--gateway", "bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid value 'bogus' for '--gateway <GATEWAY>'")
            && stderr.contains("[possible values: sdk, in-process]"),
        "{stderr}"
    );
}
