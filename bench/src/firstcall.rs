//! The first invocation after init, which on AWS includes loading the root
//! certificates and the first TLS handshake.
//!
//! A stub Lambda Runtime API on loopback hands notify-connection one SQS event
//! (one message for one connection); the function posts it to a Management API
//! endpoint served over TLS on 127.0.0.1 (a certificate made for the run and
//! added to a copy of the platform's root bundle, given as `SSL_CERT_FILE`,
//! as on Lambda where one bundle file holds the roots). Measured per start:
//! exec to the first poll (init), the event's hand-over to the function's
//! response (first invocation), and both together; each start must post the
//! message once and answer with no batch item failure.
//!
//! Two ways: roots and connection left to the first request (the default), and
//! `WARM_CONNECTIONS=true`, which opens the Management API connection during
//! init. Each start counts TLS handshakes, so a warmed connection that the
//! invocation failed to reuse shows up.
//!
//! And connect's first connection as deployed (`TOKEN_SECRET_ARN`): the token
//! keys are fetched from a Secrets Manager stand-in on the same TLS endpoint
//! (`AWS_ENDPOINT_URL_SECRETS_MANAGER`), against the same function given the
//! keys in plaintext (`TOKEN_SECRET`). The event is `events/connect.json`,
//! whose token the bench's keys refuse (401): the keys are needed to refuse
//! it, and nothing after the refusal needs DynamoDB.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use switchboard::adapters::management_api::WARM_UP_CONNECTION_ID;

use crate::coldstart::function_command;

/// One way of starting, and its medians over the starts.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    pub init_ms: f64,
    pub first_ms: f64,
    pub total_ms: f64,
    /// TLS handshakes the endpoint saw per start (the same in every start).
    pub handshakes: usize,
}

/// One way of starting a function and what its first invocation must do.
struct Way {
    name: &'static str,
    function: &'static str,
    /// Environment beyond the deployed one (`{endpoint}`: the TLS endpoint's address).
    extra: &'static [(&'static str, &'static str)],
    /// Deployed variables this way removes.
    removed: &'static [&'static str],
    /// The event, and the secret fetches and posts the invocation must make.
    event: fn() -> String,
    fetches: usize,
    posts: usize,
    /// What the response must be.
    answered: fn(&serde_json::Value) -> bool,
}

/// The budget of posts off: it books each batch's posts with a DynamoDB
/// `UpdateItem`, for which the endpoint has no stand-in (with the template's
/// `POST_RATE_LIMIT`, the first invocation would wait for a DynamoDB that is
/// not there).
const UNPACED: &[(&str, &str)] = &[("POST_RATE_LIMIT", "0")];

/// The ways measured.
const WAYS: &[Way] = &[
    Way {
        name: "notify-connection, connection opened by the first post",
        function: "notify-connection",
        extra: UNPACED,
        removed: &[],
        event: sqs_event,
        fetches: 0,
        posts: 1,
        answered: no_failures,
    },
    Way {
        name: "notify-connection, WARM_CONNECTIONS=true (opened during init)",
        function: "notify-connection",
        extra: &[("WARM_CONNECTIONS", "true"), UNPACED[0]],
        removed: &[],
        event: sqs_event,
        fetches: 0,
        posts: 1,
        answered: no_failures,
    },
    Way {
        name: "connect, TOKEN_SECRET_ARN (as deployed: keys fetched by the first connection)",
        function: "connect",
        extra: &[("AWS_ENDPOINT_URL_SECRETS_MANAGER", "https://{endpoint}")],
        removed: &[],
        event: connect_event,
        fetches: 1,
        posts: 0,
        answered: refused,
    },
    Way {
        name: "connect, TOKEN_SECRET (keys in plaintext)",
        function: "connect",
        extra: &[("TOKEN_SECRET", crate::fanout::BENCH_SECRET)],
        removed: &["TOKEN_SECRET_ARN"],
        event: connect_event,
        fetches: 0,
        posts: 0,
        answered: refused,
    },
];

fn no_failures(response: &serde_json::Value) -> bool {
    response["batchItemFailures"].as_array().map(Vec::len) == Some(0)
}

fn refused(response: &serde_json::Value) -> bool {
    response["statusCode"] == 401
}

/// The ways of `functions` (every way if empty).
pub async fn run(
    bootstraps: &Path,
    starts: usize,
    functions: &[String],
) -> Result<Vec<Row>, String> {
    let starts = starts.clamp(3, 200);
    let endpoint = TlsEndpoint::start().await?;
    let mut rows = Vec::new();
    for way in WAYS {
        if !functions.is_empty() && !functions.iter().any(|f| f == way.function) {
            continue;
        }
        let binary = bootstraps.join(way.function).join("bootstrap");
        if !binary.exists() {
            return Err(format!(
                "{}: not found (run cargo lambda build --release first)",
                binary.display()
            ));
        }
        let name = way.name;
        eprintln!("first invocation: {name}");
        // One unmeasured start warms the page cache, as for the cold start.
        one_start(&binary, &endpoint, way).await?;
        let mut samples = Vec::with_capacity(starts);
        for _ in 0..starts {
            samples.push(one_start(&binary, &endpoint, way).await?);
        }
        let handshakes = samples[0].handshakes;
        if samples.iter().any(|s| s.handshakes != handshakes) {
            return Err(format!("{name}: the handshake count varied between starts"));
        }
        let median = |f: fn(&Sample) -> f64| {
            let mut v: Vec<f64> = samples.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        rows.push(Row {
            name: (*name).to_owned(),
            init_ms: median(|s| s.init_ms),
            first_ms: median(|s| s.first_ms),
            total_ms: median(|s| s.init_ms + s.first_ms),
            handshakes,
        });
    }
    Ok(rows)
}

struct Sample {
    init_ms: f64,
    first_ms: f64,
    handshakes: usize,
}

/// What the stub Runtime API saw, in order.
#[derive(Debug)]
enum Seen {
    Poll(Instant),
    Response(Instant, String),
    Error(String),
}

#[derive(Clone)]
struct Runtime {
    seen: mpsc::UnboundedSender<Seen>,
    polls: Arc<AtomicUsize>,
    event: Arc<String>,
}

const REQUEST_ID: &str = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";

async fn next(State(runtime): State<Runtime>) -> Response {
    let _ = runtime.seen.send(Seen::Poll(Instant::now()));
    if runtime.polls.fetch_add(1, Ordering::SeqCst) > 0 {
        // The second poll: the function is idle again; it waits here until killed.
        std::future::pending::<()>().await;
    }
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        + 30_000;
    let mut headers = HeaderMap::new();
    let pairs = [
        ("lambda-runtime-aws-request-id", REQUEST_ID.to_owned()),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:eu-central-1:123456789012:function:bench".to_owned(),
        ),
        (
            "lambda-runtime-trace-id",
            "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1".to_owned(),
        ),
        ("content-type", "application/json".to_owned()),
    ];
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    (headers, runtime.event.as_str().to_owned()).into_response()
}

async fn response(
    State(runtime): State<Runtime>,
    UrlPath(_id): UrlPath<String>,
    body: String,
) -> StatusCode {
    let _ = runtime.seen.send(Seen::Response(Instant::now(), body));
    StatusCode::ACCEPTED
}

async fn error(State(runtime): State<Runtime>, body: String) -> StatusCode {
    let _ = runtime.seen.send(Seen::Error(body));
    StatusCode::ACCEPTED
}

/// `$connect` as API Gateway sends it (`events/connect.json`).
fn connect_event() -> String {
    include_str!("../../events/connect.json").to_owned()
}

/// One NotifyConnection record for one connection.
fn sqs_event() -> String {
    let body = serde_json::json!({"connectionId": "first-call", "data": "hello"}).to_string();
    serde_json::json!({
        "Records": [{
            "messageId": "0a7c9e4e-6b1f-4c8a-9d2e-000000000000",
            "receiptHandle": "bench",
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:eu-central-1:123456789012:notify-connection",
            "awsRegion": "eu-central-1"
        }]
    })
    .to_string()
}

async fn one_start(binary: &Path, endpoint: &TlsEndpoint, way: &Way) -> Result<Sample, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let runtime_api = listener.local_addr().map_err(|e| e.to_string())?;
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(error))
        .with_state(Runtime {
            seen: seen_tx,
            polls: Arc::new(AtomicUsize::new(0)),
            event: Arc::new((way.event)()),
        });
    // Both stubs answer without Nagle's delay, as the real services do.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let (posts_before, handshakes_before) = endpoint.counts();
    let fetches_before = endpoint.fetches.load(Ordering::SeqCst);

    let home = std::env::temp_dir().join(format!("switchboard-bench-home-{}", std::process::id()));
    std::fs::create_dir_all(&home).map_err(|e| e.to_string())?;
    let mut command =
        function_command(binary, Some(way.function), &runtime_api.to_string(), &home)?;
    command
        .env(
            "WEBSOCKET_ENDPOINT",
            format!("https://{}/prod", endpoint.addr),
        )
        .env("SSL_CERT_FILE", &endpoint.bundle)
        .envs(way.extra.iter().map(|(name, value)| {
            (
                *name,
                value.replace("{endpoint}", &endpoint.addr.to_string()),
            )
        }));
    for name in way.removed {
        command.env_remove(name);
    }
    let start = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        let mut polled = None;
        loop {
            match seen.recv().await {
                Some(Seen::Poll(at)) if polled.is_none() => polled = Some(at),
                Some(Seen::Poll(_)) => {}
                Some(Seen::Response(at, body)) => {
                    let polled = polled.ok_or("a response before the first poll")?;
                    return Ok::<_, String>((polled, at, body));
                }
                Some(Seen::Error(body)) => return Err(format!("the function failed: {body}")),
                None => return Err("the stub Runtime API stopped".to_owned()),
            }
        }
    })
    .await;
    let _ = child.kill().await;
    server.abort();
    let (polled, answered, body) = match outcome {
        Ok(result) => result?,
        Err(_) => return Err("no response to the first invocation within 10 s".to_owned()),
    };
    // A start counts only if the invocation did what it must, and answered so.
    let response = serde_json::from_str::<serde_json::Value>(&body).unwrap_or_default();
    if !(way.answered)(&response) {
        return Err(format!("{}: unexpected response {body}", way.name));
    }
    let (posts, handshakes) = endpoint.counts();
    let fetches = endpoint.fetches.load(Ordering::SeqCst) - fetches_before;
    if posts - posts_before != way.posts || fetches != way.fetches {
        return Err(format!(
            "{}: the endpoint saw {} posts and {fetches} secret fetches, not {} and {}",
            way.name,
            posts - posts_before,
            way.posts,
            way.fetches
        ));
    }
    Ok(Sample {
        init_ms: (polled - start).as_secs_f64() * 1000.0,
        first_ms: (answered - polled).as_secs_f64() * 1000.0,
        handshakes: handshakes - handshakes_before,
    })
}

/// A Management API stand-in over TLS: every `POST /prod/@connections/{id}`
/// succeeds and is counted, but the warm-up's, which gets a 410. And a
/// Secrets Manager stand-in (`POST /`, `GetSecretValue`): the token keys
/// `{"kid":"1","secret":BENCH_SECRET}`, every fetch counted.
struct TlsEndpoint {
    addr: std::net::SocketAddr,
    bundle: PathBuf,
    posts: Arc<AtomicUsize>,
    fetches: Arc<AtomicUsize>,
    handshakes: Arc<AtomicUsize>,
}

impl TlsEndpoint {
    async fn start() -> Result<TlsEndpoint, String> {
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
            .map_err(|e| e.to_string())?;
        // The platform bundle plus this run's certificate, so the function loads
        // and parses as many roots as it would on Lambda.
        let platform = std::fs::read("/etc/ssl/certs/ca-certificates.crt").unwrap_or_default();
        let bundle = std::env::temp_dir().join(format!(
            "switchboard-bench-roots-{}.pem",
            std::process::id()
        ));
        let mut pem = platform;
        pem.extend_from_slice(certified.cert.pem().as_bytes());
        std::fs::write(&bundle, pem).map_err(|e| e.to_string())?;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(
                vec![certified.cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(
                    certified.signing_key.serialize_der().into(),
                ),
            )
            .map_err(|e| e.to_string())?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let posts = Arc::new(AtomicUsize::new(0));
        let handshakes = Arc::new(AtomicUsize::new(0));
        let tls = TlsListener {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            handshakes: handshakes.clone(),
        };
        let counter = posts.clone();
        let fetches = Arc::new(AtomicUsize::new(0));
        let fetched = fetches.clone();
        let app = Router::new().route(
            "/",
            post(move |headers: HeaderMap| {
                let fetched = fetched.clone();
                async move {
                    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
                    if target != Some("secretsmanager.GetSecretValue") {
                        return StatusCode::BAD_REQUEST.into_response();
                    }
                    fetched.fetch_add(1, Ordering::SeqCst);
                    let keys = serde_json::json!({"kid": "1", "secret": crate::fanout::BENCH_SECRET});
                    let answer = serde_json::json!({
                        "ARN": "arn:aws:secretsmanager:eu-central-1:123456789012:secret:TokenKeys-AbCdEf",
                        "Name": "TokenKeys",
                        "SecretString": keys.to_string(),
                        "VersionStages": ["AWSCURRENT"],
                    });
                    (
                        [("content-type", "application/x-amz-json-1.1")],
                        answer.to_string(),
                    )
                        .into_response()
                }
            }),
        );
        let app = app.route(
            "/prod/@connections/{id}",
            post(move |UrlPath(id): UrlPath<String>| {
                let counter = counter.clone();
                async move {
                    if id == WARM_UP_CONNECTION_ID {
                        // As API Gateway answers for an id it never issued.
                        return (
                            StatusCode::GONE,
                            [("x-amzn-errortype", "GoneException")],
                            "{\"message\":null}",
                        )
                            .into_response();
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    StatusCode::OK.into_response()
                }
            }),
        );
        tokio::spawn(async move { axum::serve(tls, app).await });
        Ok(TlsEndpoint {
            addr,
            bundle,
            posts,
            fetches,
            handshakes,
        })
    }

    fn counts(&self) -> (usize, usize) {
        (
            self.posts.load(Ordering::SeqCst),
            self.handshakes.load(Ordering::SeqCst),
        )
    }
}

impl Drop for TlsEndpoint {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.bundle);
    }
}

struct TlsListener {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: Arc<AtomicUsize>,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            // A failed handshake (a client that hung up) is skipped, not served.
            if let Ok(Ok(tls)) =
                tokio::time::timeout(Duration::from_secs(5), self.acceptor.accept(stream)).await
            {
                self.handshakes.fetch_add(1, Ordering::SeqCst);
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}
