//! Cold start: from exec to the first `GET /2018-06-01/runtime/invocation/next`
//! on a stub Lambda Runtime API on loopback, for each release bootstrap with
//! the environment template.yaml deploys it with (`TOKEN_SECRET_ARN`,
//! `WEBHOOK_SECRET_ARN`, …: [`crate::deployed_env`]) and for a hello-world
//! `lambda_runtime` binary built with the same profile.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// The functions measured, in the order of the report.
pub const FUNCTIONS: &[&str] = &[
    "connect",
    "disconnect",
    "ping",
    "default",
    "actions",
    "api",
    "commands",
    "deliver",
    "notify-user",
    "notify-connection",
    "upstream",
];

#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    pub bytes: u64,
    /// Median and 90th percentile milliseconds from exec to the first poll.
    pub median_ms: f64,
    pub p90_ms: f64,
}

/// The parameters the benches deploy with beyond the template's defaults: a
/// webhook, so the upstream function has its sender (it refuses to start
/// without `WEBHOOK_URL`) and the route functions their Upstream queue.
pub const PARAMETERS: &[(&str, &str)] = &[("WebhookUrl", "https://app.example.com/handler")];

/// What Lambda sets in every function's environment (a hello-world gets only this).
fn lambda_environment(runtime_api: &str) -> Vec<(String, String)> {
    let fixed = [
        ("AWS_LAMBDA_FUNCTION_NAME", "bench"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "bench"),
        ("AWS_REGION", crate::deployed_env::REGION),
        ("AWS_DEFAULT_REGION", crate::deployed_env::REGION),
        ("AWS_ACCESS_KEY_ID", "AKIDBENCH"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
        ("AWS_SESSION_TOKEN", "bench"),
    ];
    let mut env: Vec<(String, String)> = fixed
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    env.push(("AWS_LAMBDA_RUNTIME_API".into(), runtime_api.to_owned()));
    env
}

/// `binary` as Lambda would start it: only Lambda's environment and, for a
/// `function`, the one template.yaml deploys it with ([`PARAMETERS`]);
/// output discarded, killed when dropped.
pub(crate) fn function_command(
    binary: &Path,
    function: Option<&str>,
    runtime_api: &str,
    home: &Path,
) -> Result<tokio::process::Command, String> {
    let mut env = lambda_environment(runtime_api);
    if let Some(function) = function {
        env.extend(crate::deployed_env::environment(function, PARAMETERS)?);
    }
    let mut command = tokio::process::Command::new(binary);
    command
        .env_clear()
        .envs(env)
        .env("HOME", home)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    Ok(command)
}

/// Starts `binary` once and returns the milliseconds until it polled for work.
async fn one_start(
    binary: &Path,
    function: Option<&str>,
    listener: &TcpListener,
    home: &Path,
) -> Result<f64, String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let mut command = function_command(binary, function, &addr.to_string(), home)?;
    let start = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let polled = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let (mut stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
            let mut buffer = [0u8; 1024];
            let read = stream.read(&mut buffer).await.map_err(|e| e.to_string())?;
            let head = String::from_utf8_lossy(&buffer[..read]);
            if head.starts_with("GET /2018-06-01/runtime/invocation/next") {
                return Ok::<_, String>(start.elapsed());
            }
        }
    })
    .await;
    let _ = child.kill().await;
    match polled {
        Ok(Ok(elapsed)) => Ok(elapsed.as_secs_f64() * 1000.0),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!(
            "{} did not poll for work within 10 s",
            binary.display()
        )),
    }
}

/// `function`'s (or, without one, a hello-world's) cold starts: median and p90.
async fn measure(
    name: &str,
    function: Option<&str>,
    binary: &Path,
    starts: usize,
) -> Result<Row, String> {
    let bytes = std::fs::metadata(binary)
        .map_err(|e| {
            format!(
                "{}: {e} (run cargo lambda build --release first)",
                binary.display()
            )
        })?
        .len();
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let home = std::env::temp_dir().join(format!("switchboard-bench-home-{}", std::process::id()));
    std::fs::create_dir_all(&home).map_err(|e| e.to_string())?;
    // One unmeasured start warms the page cache, as a provisioned sandbox would be.
    one_start(binary, function, &listener, &home).await?;
    let mut times = Vec::with_capacity(starts);
    for _ in 0..starts {
        times.push(one_start(binary, function, &listener, &home).await?);
    }
    times.sort_by(f64::total_cmp);
    Ok(Row {
        name: name.to_owned(),
        bytes,
        median_ms: times[times.len() / 2],
        p90_ms: times[(times.len() * 9 / 10).min(times.len() - 1)],
    })
}

/// The hello-world baseline first, then each of `functions` (every one of
/// [`FUNCTIONS`] if empty), each with the environment the template deploys it with.
pub async fn run(
    bootstraps: &Path,
    hello: &Path,
    starts: usize,
    functions: &[String],
) -> Result<Vec<Row>, String> {
    let starts = starts.clamp(3, 200);
    eprintln!("cold start: hello-world baseline");
    let mut rows = vec![measure("hello-world (baseline)", None, hello, starts).await?];
    for name in FUNCTIONS {
        if !functions.is_empty() && !functions.iter().any(|f| f == name) {
            continue;
        }
        eprintln!("cold start: {name}");
        let binary: PathBuf = bootstraps.join(name).join("bootstrap");
        rows.push(measure(name, Some(name), &binary, starts).await?);
    }
    Ok(rows)
}
