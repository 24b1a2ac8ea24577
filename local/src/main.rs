//! `cargo run -p switchboard-local`: Switchboard's WebSocket API on this machine.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use switchboard::auth::{TokenSecret, claims_for, mint};
use switchboard::enqueue::EnqueuePolicy;
use switchboard::history::HistorySettings;
use switchboard::oidc::OidcOptions;
use switchboard::posting::PostingPolicy;
use switchboard::rate::Rate;
use switchboard::services::{Limits, Settings};
use switchboard_local::emulation::{AWS_ACCOUNT_BURST, AWS_ACCOUNT_RATE, AwsLatency, Latency};
use switchboard_local::logs::{self, LogFormat};
use switchboard_local::virtual_connections::VirtualSpread;
use switchboard_local::{Backend, Config, GatewayMode, RunningStack, UpstreamConfig, demo};

/// Switchboard's whole WebSocket API on one machine: API Gateway's WebSocket
/// semantics, the Management API and the queues, running the Lambdas' handlers.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: Serve,
}

#[derive(Subcommand)]
enum Command {
    /// Print a client token for USER_ID, signed with TOKEN_SECRET.
    Token {
        user_id: String,
        /// How long the token is valid, e.g. 30m, 1h, 2days.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// Groups the connection joins at connect, comma-separated.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// Groups it may subscribe to itself: names or prefix:* patterns, comma-separated.
        #[arg(long, value_delimiter = ',')]
        subscribe: Vec<String>,
        /// Groups it may publish client events to: names or prefix:* patterns, comma-separated.
        #[arg(long, value_delimiter = ',')]
        publish: Vec<String>,
        /// Event names it may send to the application (the `event` action): names or prefix:* patterns.
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
    },
}

#[derive(Args)]
struct Serve {
    /// Address for WebSocket, the Management API and the queue endpoints. A
    /// non-loopback address (e.g. 0.0.0.0) needs --expose.
    #[arg(long, default_value = "127.0.0.1:3001", env = "SWITCHBOARD_ADDR")]
    addr: SocketAddr,
    /// Allow a non-loopback --addr. The HTTP API, the Management API and the
    /// queue endpoints then require the API key (SWITCHBOARD_API_KEY, or one
    /// generated and printed at startup); the WebSocket endpoint keeps its token.
    #[arg(long, env = "SWITCHBOARD_EXPOSE")]
    expose: bool,
    /// The API key (at least 32 bytes) those endpoints require as
    /// "Authorization: Bearer <key>"; also required on loopback when set.
    #[arg(long, env = "SWITCHBOARD_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Host names the stack answers to besides IP addresses and localhost
    /// (comma-separated). Any other Host is refused with 403: a DNS name
    /// could be rebound to this machine by another site's page.
    #[arg(long, value_delimiter = ',', env = "SWITCHBOARD_ALLOWED_HOSTS")]
    allowed_host: Vec<String>,
    /// Browser origins that may call the stack (HTTP API, queues, WebSocket)
    /// besides its own and pages served from this machine (comma-separated,
    /// e.g. https://app.example; * allows any). Others are refused with 403.
    #[arg(long, value_delimiter = ',', env = "SWITCHBOARD_ALLOWED_ORIGINS")]
    allowed_origin: Vec<String>,
    /// Bytes one connection's outbound queue may hold (each message counts
    /// its length plus 64); a post beyond it answers 429, as a throttled post.
    #[arg(long, default_value_t = switchboard_local::OUTBOUND_LIMIT_BYTES as u64,
          env = "SWITCHBOARD_OUTBOUND_LIMIT", value_parser = outbound_limit)]
    outbound_limit: u64,
    /// Stage name shown in URLs (any path prefix is accepted).
    #[arg(long, default_value = "local")]
    stage: String,
    /// Close connections after this long without a client message (API Gateway: 10 minutes).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    idle_timeout: Duration,
    /// Close connections after this long (API Gateway: 2 hours).
    #[arg(long, default_value = "2h", value_parser = humantime::parse_duration)]
    max_duration: Duration,
    /// How long a failed queue message waits before redelivery (in-memory queues).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    visibility_timeout: Duration,
    /// Receives before a failing queue message becomes a dead letter (in-memory queues).
    #[arg(long, default_value_t = 5)]
    max_receive_count: u32,
    /// Use DynamoDB and SQS at this endpoint (moto, LocalStack) instead of memory.
    #[arg(long, env = "SWITCHBOARD_AWS_ENDPOINT")]
    aws_endpoint: Option<String>,
    /// Use DynamoDB and SQS on AWS with the environment's credentials.
    #[arg(long, conflicts_with = "aws_endpoint")]
    aws: bool,
    /// Connections table (with --aws-endpoint or --aws).
    #[arg(long, env = "TABLE_NAME")]
    table: Option<String>,
    /// Memberships table (with --aws-endpoint or --aws).
    #[arg(long, env = "MEMBERSHIPS_TABLE")]
    memberships_table: Option<String>,
    /// NotifyUser queue URL (with --aws-endpoint or --aws).
    #[arg(long, env = "NOTIFY_USER_QUEUE_URL")]
    notify_user_queue_url: Option<String>,
    /// Commands queue URL (with --aws-endpoint or --aws; group sends need it and --deliveries-queue-url).
    #[arg(long, env = "COMMANDS_QUEUE_URL")]
    commands_queue_url: Option<String>,
    /// Deliveries queue URL (with --aws-endpoint or --aws).
    #[arg(long, env = "DELIVERIES_QUEUE_URL")]
    deliveries_queue_url: Option<String>,
    /// NotifyConnection queue URL (with --aws-endpoint or --aws).
    #[arg(long, env = "NOTIFY_CONNECTION_QUEUE_URL")]
    notify_connection_queue_url: Option<String>,
    /// Groups whose joins and leaves are announced: patterns, comma-separated, or "none".
    #[arg(long, default_value = "presence:*", env = "PRESENCE_GROUPS")]
    presence_groups: String,
    /// Client events (publish) one user may send per --publish-window, over all
    /// their connections (a token bucket: this many at once, refilled over the window).
    #[arg(long, default_value_t = 10, env = "PUBLISH_LIMIT")]
    publish_limit: u32,
    /// The rate-limit window for client events.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    publish_window: Duration,
    /// Client actions (subscribe, unsubscribe, publish, presence) one connection may
    /// send per --action-window.
    #[arg(long, default_value_t = 20, env = "ACTION_LIMIT")]
    action_limit: u32,
    /// Client actions and handshakes one user may make per --action-window, over
    /// all their connections.
    #[arg(long, default_value_t = 40, env = "USER_ACTION_LIMIT")]
    user_action_limit: u32,
    /// The rate-limit window for client actions.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    action_window: Duration,
    /// Subscribes and unsubscribes one user may make in one presence group per
    /// --presence-change-window.
    #[arg(long, default_value_t = 10, env = "PRESENCE_CHANGE_LIMIT")]
    presence_change_limit: u32,
    /// The rate-limit window for presence changes.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    presence_change_window: Duration,
    /// Open connections one user may have; the next handshake is refused with 429.
    #[arg(long, default_value_t = 10, env = "MAX_CONNECTIONS_PER_USER")]
    max_connections_per_user: u32,
    /// The most groups one connection may be in at once.
    #[arg(long, default_value_t = switchboard::services::DEFAULT_MAX_GROUPS_PER_CONNECTION,
        value_parser = clap::value_parser!(u32).range(1..), env = "MAX_GROUPS_PER_CONNECTION")]
    max_groups_per_connection: u32,
    /// The most users one presence group may have; a new user's subscribe past
    /// it answers limit_exceeded, and a token group past it is not joined.
    #[arg(long, default_value_t = switchboard::services::DEFAULT_MAX_PRESENCE_MEMBERS,
        value_parser = clap::value_parser!(u32).range(1..), env = "MAX_PRESENCE_MEMBERS")]
    max_presence_members: u32,
    /// Whether every user's stream keeps history (recover / history actions).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, env = "HISTORY_USERS")]
    history_users: bool,
    /// Groups whose streams keep history: patterns, comma-separated, or "none".
    #[arg(long, default_value = "none", env = "HISTORY_GROUPS")]
    history_groups: String,
    /// Messages kept per stream.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..),
        env = "HISTORY_SIZE")]
    history_size: u64,
    /// How long a message is kept.
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    history_ttl: Duration,
    /// The most messages one recover or history request sends.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=1000),
        env = "HISTORY_RECOVER_LIMIT")]
    history_recover_limit: u64,
    /// Recover and history requests one user may make per 10 seconds.
    #[arg(long, default_value_t = 20, env = "HISTORY_READ_LIMIT")]
    history_read_limit: u32,
    /// Bytes of recover and history answers one user may receive per 10
    /// seconds (at least 262144).
    #[arg(long, default_value_t = 4 * 1024 * 1024,
        value_parser = clap::value_parser!(u64).range(switchboard::history::MIN_READ_BYTES..),
        env = "HISTORY_READ_BYTES")]
    history_read_bytes: u64,
    /// The DynamoDB history table (with --aws-endpoint or --aws); without it
    /// history is kept in memory.
    #[arg(long, env = "HISTORY_TABLE")]
    history_table: Option<String>,
    /// Fault injection: this share of Management API posts (0 to 1) answers 429 or
    /// 500, or stalls for --fault-stall, a third each.
    #[arg(long, default_value_t = 0.0, value_parser = fault_rate)]
    fault_rate: f64,
    /// How long an injected stall lasts (past the 3 s post timeout by default).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    fault_stall: Duration,
    /// Cut a queue handler off after this long and redeliver its whole batch (Lambda's timeout).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    handler_timeout: Duration,
    /// Batches each queue's handler works on at once at most; each queue also stays within
    /// its event source's MaximumConcurrency in template.yaml (notify-user 5, notify-connection
    /// 20, commands 5, deliveries 50, upstream 5).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1000))]
    source_concurrency: u16,
    /// Log lines as human-readable text or as JSON objects (as on Lambda).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "SWITCHBOARD_LOG_FORMAT")]
    log_format: LogFormat,
    /// How the handlers post to connections: "sdk" (the AWS SDK client over HTTP to
    /// this stack's Management API, as on AWS) or "in-process" (same answers, faults,
    /// timeouts and retries, without the HTTP round trip; for load).
    #[arg(long, value_enum, default_value_t = Gateway::Sdk)]
    gateway: Gateway,
    /// Send upstream events (connected, disconnected, message) to this URL as signed
    /// CloudEvents, through the in-memory Upstream queue (retries, dead letters).
    #[arg(long, env = "SWITCHBOARD_WEBHOOK")]
    webhook: Option<String>,
    /// The secret (at least 32 bytes) every webhook and hook request is signed with.
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<String>,
    /// Ask this URL at every $connect (401/403 refuses; a JSON answer may set the user and grants).
    #[arg(long, env = "SWITCHBOARD_CONNECT_HOOK")]
    connect_hook: Option<String>,
    /// Let connections in when the connect hook times out or fails (default: refuse).
    #[arg(long, env = "SWITCHBOARD_CONNECT_HOOK_FAIL_OPEN")]
    connect_hook_fail_open: bool,
    /// Ask this URL to answer each client `event`; its answer goes back to that client.
    #[arg(long, env = "SWITCHBOARD_EVENT_HOOK")]
    event_hook: Option<String>,
    /// How long each hook may take.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration, env = "SWITCHBOARD_HOOK_TIMEOUT")]
    hook_timeout: Duration,
    /// Also put upstream events on this EventBridge bus (needs --aws-endpoint).
    #[arg(long, env = "SWITCHBOARD_EVENT_BUS")]
    event_bus: Option<String>,
    /// Also accept tokens from this OpenID Connect issuer (repeatable): its keys
    /// by discovery at URL/.well-known/openid-configuration (https://, or
    /// http:// on loopback); its tokens connect with ?token= as ours do.
    #[arg(
        long = "oidc-issuer",
        value_name = "URL",
        value_delimiter = ',',
        env = "OIDC_ISSUERS"
    )]
    oidc_issuers: Vec<String>,
    /// The audience (or client id) the OIDC issuers' tokens must be for (repeatable; required with --oidc-issuer).
    #[arg(
        long = "oidc-audience",
        value_name = "AUD",
        value_delimiter = ',',
        env = "OIDC_AUDIENCE"
    )]
    oidc_audiences: Vec<String>,
    /// The issuer's JWKS URL instead of discovery (with one --oidc-issuer).
    #[arg(long, value_name = "URL", env = "OIDC_JWKS_URL")]
    oidc_jwks_url: Option<String>,
    /// The claim holding the user id in OIDC tokens [default: sub].
    #[arg(long, env = "OIDC_USER_CLAIM")]
    oidc_user_claim: Option<String>,
    /// The claim whose groups an OIDC token's connection joins [default:
    /// cognito:groups for Cognito issuers, else none].
    #[arg(long, env = "OIDC_GROUPS_CLAIM")]
    oidc_groups_claim: Option<String>,
    /// Make this many virtual connections at start (ids virtual-0, virtual-1, …),
    /// each by the real $connect: records and memberships without a socket,
    /// whose posts the Management API counts (docs/local-stack.md, "Scale").
    #[arg(long, default_value_t = 0, env = "SWITCHBOARD_VIRTUAL_CONNECTIONS",
          value_parser = clap::value_parser!(u32).range(0..=10_000_000))]
    virtual_connections: u32,
    /// The users the virtual connections belong to (0: one user each); at most
    /// --max-connections-per-user connections per user.
    #[arg(long, default_value_t = 0)]
    virtual_users: u32,
    /// Groups the virtual connections join (virtual:0, virtual:1, …; 0: none).
    #[arg(long, default_value_t = 0)]
    virtual_groups: u32,
    /// Members per virtual group (0: the virtual connections spread evenly over the groups).
    #[arg(long, default_value_t = 0)]
    virtual_group_size: u32,
    /// The account-level throttle on Management API posts, requests per second
    /// (AWS: 10,000); beyond it a post answers 429 LimitExceededException. 0: no limit.
    #[arg(long, default_value_t = 0)]
    management_rate: u32,
    /// The throttle's burst (AWS: 5,000); default: the rate.
    #[arg(long)]
    management_burst: Option<u32>,
    /// AWS's default quotas: --management-rate 10000 --management-burst 5000.
    #[arg(long, conflicts_with_all = ["management_rate", "management_burst"])]
    aws_quotas: bool,
    /// The stack's budget of posts a second, shared by every deliver and
    /// notify-connection run (POST_RATE_LIMIT on AWS; 0: unpaced). Default:
    /// POST_RATE_LIMIT if set, else 95% of the emulated throttle's rate (the
    /// template's default of 9,500 under --aws-quotas), else 0.
    #[arg(long)]
    post_rate: Option<u32>,
    /// The most of that budget, in percent, one booker (a user, or a group the
    /// application sends to) may book; 100 turns the share off.
    #[arg(long, default_value_t = switchboard::pacing::DEFAULT_BOOKER_SHARE,
        value_parser = clap::value_parser!(u32).range(1..=100), env = "POST_BOOKER_SHARE")]
    post_booker_share: u32,

    /// Every hop takes AWS's time, a log-normal from a cited median and 99th
    /// percentile: route integration 10ms,50ms, SQS to handler 16.2ms,105ms,
    /// DynamoDB call 7.55ms,16.2ms, Management API post 10ms,40ms
    /// (docs/local-stack.md, "AWS latency"). Each flag below overrides its hop.
    #[arg(long)]
    aws_latency: bool,
    /// How long each Management API post takes: 0 (default), a fixed time (25ms),
    /// or a log-normal from its median and 99th percentile (20ms,80ms).
    #[arg(long, value_parser = Latency::parse)]
    post_latency: Option<Latency>,
    /// How long an SQS message takes from its send to its handler's start
    /// (the same forms; default 0).
    #[arg(long, value_parser = Latency::parse)]
    queue_latency: Option<Latency>,
    /// How long each DynamoDB call takes (the same forms; default 0).
    #[arg(long, value_parser = Latency::parse)]
    dynamodb_latency: Option<Latency>,
    /// How long a route integration takes, client frame or HTTP API request
    /// to its handler's start (the same forms; default 0).
    #[arg(long, value_parser = Latency::parse)]
    route_latency: Option<Latency>,
}

/// Each hop's latency: its own flag, else AWS's with `--aws-latency`, else none.
fn aws_latency(serve: &Serve) -> AwsLatency {
    let base = if serve.aws_latency {
        AwsLatency::aws()
    } else {
        AwsLatency::default()
    };
    AwsLatency {
        route: serve.route_latency.unwrap_or(base.route),
        queue: serve.queue_latency.unwrap_or(base.queue),
        store: serve.dynamodb_latency.unwrap_or(base.store),
        post: serve.post_latency.unwrap_or(base.post),
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Gateway {
    Sdk,
    InProcess,
}

fn fault_rate(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!("{value} is not a share between 0 and 1")),
    }
}

fn outbound_limit(value: &str) -> Result<u64, String> {
    let min = switchboard_local::config::MIN_OUTBOUND_LIMIT_BYTES as u64;
    match value.parse::<u64>() {
        Ok(bytes) if bytes >= min => Ok(bytes),
        _ => Err(format!(
            "{value} is not a number of bytes of at least {min} (one 128 KB message)"
        )),
    }
}

fn token_secret() -> Option<String> {
    switchboard::config::token_secret_text()
}

fn config(serve: Serve) -> Result<Config, String> {
    let notify_connection = posting_policy(&serve)?;
    let aws_latency = aws_latency(&serve);
    let backend = if serve.aws || serve.aws_endpoint.is_some() {
        let need = |value: Option<String>, flag: &str| {
            value.ok_or_else(|| format!("--aws-endpoint and --aws need {flag}"))
        };
        Backend::Aws {
            endpoint: serve.aws_endpoint,
            table: need(serve.table, "--table (or TABLE_NAME)")?,
            memberships_table: need(
                serve.memberships_table,
                "--memberships-table (or MEMBERSHIPS_TABLE)",
            )?,
            notify_user_queue_url: need(
                serve.notify_user_queue_url,
                "--notify-user-queue-url (or NOTIFY_USER_QUEUE_URL)",
            )?,
            notify_connection_queue_url: need(
                serve.notify_connection_queue_url,
                "--notify-connection-queue-url (or NOTIFY_CONNECTION_QUEUE_URL)",
            )?,
            commands_queue_url: serve.commands_queue_url,
            deliveries_queue_url: serve.deliveries_queue_url,
            history_table: serve.history_table,
        }
    } else {
        Backend::Memory
    };
    let action_window = serve.action_window.max(Duration::from_millis(1));
    Ok(Config {
        addr: serve.addr,
        expose: serve.expose,
        api_key: serve.api_key,
        allowed_hosts: serve.allowed_host,
        allowed_origins: serve.allowed_origin,
        outbound_limit: usize::try_from(serve.outbound_limit).unwrap_or(usize::MAX),
        stage: serve.stage,
        token_secret: token_secret(),
        idle_timeout: serve.idle_timeout,
        max_duration: serve.max_duration,
        visibility_timeout: serve.visibility_timeout,
        max_receive_count: serve.max_receive_count,
        backend,
        fault_rate: serve.fault_rate,
        source_concurrency: usize::from(serve.source_concurrency),
        fault_stall: serve.fault_stall,
        handler_timeout: serve.handler_timeout,
        gateway: match serve.gateway {
            Gateway::Sdk => GatewayMode::Sdk,
            Gateway::InProcess => GatewayMode::InProcess,
        },
        upstream: UpstreamConfig {
            webhook: serve.webhook,
            secret: serve.webhook_secret,
            connect_hook: serve.connect_hook,
            event_hook: serve.event_hook,
            hook_timeout: Some(serve.hook_timeout),
            connect_hook_fail_open: serve.connect_hook_fail_open,
            event_bus: serve.event_bus,
            delivery: Default::default(),
        },
        virtual_connections: VirtualSpread {
            connections: serve.virtual_connections as usize,
            users: serve.virtual_users as usize,
            groups: serve.virtual_groups as usize,
            group_size: serve.virtual_group_size as usize,
        },
        management_quota: if serve.aws_quotas {
            Some((AWS_ACCOUNT_RATE, AWS_ACCOUNT_BURST))
        } else if serve.management_rate > 0 {
            Some((
                serve.management_rate,
                serve.management_burst.unwrap_or(serve.management_rate),
            ))
        } else {
            None
        },
        aws_latency,
        oidc: OidcOptions {
            issuers: serve.oidc_issuers,
            audiences: serve.oidc_audiences,
            jwks_url: serve.oidc_jwks_url,
            user_claim: serve.oidc_user_claim,
            groups_claim: serve.oidc_groups_claim,
            ..OidcOptions::default()
        },
        settings: Settings {
            enqueue: EnqueuePolicy::from_env().map_err(|e| e.to_string())?,
            posting: notify_connection,
            presence: switchboard::config::presence_groups(&serve.presence_groups)
                .map_err(|e| e.to_string())?,
            publish_limit: serve.publish_limit,
            publish_window: serve.publish_window.max(Duration::from_millis(1)),
            limits: Limits {
                connection_actions: Rate::new(serve.action_limit, action_window),
                user_actions: Rate::new(serve.user_action_limit, action_window),
                presence_changes: Rate::new(
                    serve.presence_change_limit,
                    serve.presence_change_window.max(Duration::from_millis(1)),
                ),
                max_connections_per_user: serve.max_connections_per_user,
            },
            max_groups_per_connection: serve.max_groups_per_connection,
            max_presence_members: serve.max_presence_members,
            history: HistorySettings {
                users: serve.history_users,
                groups: switchboard::config::history_groups(&serve.history_groups)
                    .map_err(|e| e.to_string())?,
                size: serve.history_size,
                ttl: serve.history_ttl.max(Duration::from_secs(1)),
                recover_limit: usize::try_from(serve.history_recover_limit).unwrap_or(1000),
                reads: Rate::new(serve.history_read_limit, Duration::from_secs(10)),
                read_bytes: serve.history_read_bytes,
            },
        },
    })
}

/// The posting policy from the environment, with the budget of posts of
/// `--post-rate` (see its help).
fn posting_policy(serve: &Serve) -> Result<PostingPolicy, String> {
    let mut policy = PostingPolicy::from_env().map_err(|e| e.to_string())?;
    let emulated = if serve.aws_quotas {
        AWS_ACCOUNT_RATE
    } else {
        serve.management_rate
    };
    policy.rate_limit = match serve.post_rate {
        Some(rate) => rate,
        None if std::env::var_os("POST_RATE_LIMIT").is_some() => policy.rate_limit,
        // 95 %, at least one post a second under any throttle.
        None if emulated > 0 => u32::try_from(u64::from(emulated) * 19 / 20)
            .unwrap_or(u32::MAX)
            .max(1),
        None => 0,
    };
    policy.booker_share = serve.post_booker_share;
    Ok(policy)
}

fn banner(stack: &RunningStack, generated_secret: bool) -> String {
    let user = demo::USER;
    let token = mint(
        stack.secret(),
        &claims_for(user, Duration::from_secs(12 * 3600), vec![]),
    )
    .unwrap_or_default();
    let secret_note = if generated_secret {
        "TOKEN_SECRET is not set: this run signs tokens with a random development secret.\n\
         Set TOKEN_SECRET (at least 32 bytes) to keep tokens valid across restarts.\n"
    } else {
        "Tokens are verified with TOKEN_SECRET.\n"
    };
    let (auth, header) = match stack.api_key() {
        None => (String::new(), String::new()),
        Some(key) => {
            let shown = if stack.api_key_generated() {
                format!("API key (generated for this run): {key}\n")
            } else {
                "API key: the one in SWITCHBOARD_API_KEY.\n".to_owned()
            };
            (
                format!(
                    "Listening on {addr}: the HTTP API, the Management API and the queues \
                     require \"Authorization: Bearer <key>\" (401 without it);\n\
                     the WebSocket endpoint requires its token, as on AWS.\n{shown}",
                    addr = stack.addr()
                ),
                " -H \"Authorization: Bearer $SWITCHBOARD_API_KEY\"".to_owned(),
            )
        }
    };
    format!(
        "\nSwitchboard local stack\n\
         \n  WebSocket       {ws}\
         \n  Management API  {mgmt}/@connections/{{connectionId}}\
         \n  Queues          POST {http}/queues/notify-user  |  notify-connection  |  commands\
         \n  HTTP API        POST {http}/send | /notify | /negotiate;  GET {http}/groups/{{group}} | /users/{{id}} | /connections/{{id}}\
         \n{upstream}\
         \n\n{auth}{secret_note}\
         \nConnect as \"{user}\" (token valid 12 h):\
         \n  websocat \"{ws}?token={token}\"\
         \n\nThen, from another shell, send that user a message:\
         \n  curl{header} --json '{{\"userId\":\"{user}\",\"data\":\"hello from Switchboard\"}}' {http}/queues/notify-user\
         \n\nOr open the demo page (chat room with presence, notifications) as \"{user}\":\
         \n  {http}{demo}?user={user}\
         \nand send it a notification:\
         \n  curl{header} --json '{{\"userId\":\"{user}\",\"data\":\"{notification}\"}}' {http}/queues/notify-user\
         \n\nMore tokens: TOKEN_SECRET=… cargo run -p switchboard-local -- token <user-id> [--ttl 1h] [--groups a,b] [--subscribe 'chat:*'] [--publish 'chat:*']\
         \n  or: curl{header} --json '{{\"userId\":\"alice\",\"subscribe\":[\"chat:*\"]}}' {http}/negotiate\
         \nCtrl-C stops the stack.\n",
        ws = stack.websocket_url(),
        mgmt = stack.management_url(),
        http = stack.http_url(),
        demo = demo::PATH,
        notification = demo::NOTIFICATION,
        upstream = upstream_lines(stack),
    )
}

/// Where upstream events go, for the banner.
fn upstream_lines(stack: &RunningStack) -> String {
    let c = &stack.config().upstream;
    let mut lines = String::new();
    let mut line = |what: &str, to: &str| lines.push_str(&format!("\n  {what:<15} {to}"));
    match &c.webhook {
        Some(url) => line(
            "Upstream events",
            &format!(
                "POST {url} (signed; dead letters: GET {}/queues/upstream/dead-letters)",
                stack.http_url()
            ),
        ),
        None => line("Upstream events", "off (--webhook URL --webhook-secret S)"),
    }
    if let Some(bus) = &c.event_bus {
        line("EventBridge", bus);
    }
    let spread = stack.config().virtual_connections;
    if spread.connections > 0 {
        line(
            "Virtual",
            &format!(
                "{} connections (virtual-0 …), counted at GET {}/management/stats",
                spread.connections,
                stack.http_url()
            ),
        );
    }
    if let Some(url) = &c.connect_hook {
        let mode = if c.connect_hook_fail_open {
            "fails open"
        } else {
            "fails closed"
        };
        line("Connect hook", &format!("POST {url} ({mode})"));
    }
    if let Some(url) = &c.event_hook {
        line("Event hook", &format!("POST {url}"));
    }
    lines
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Token {
        user_id,
        ttl,
        groups,
        subscribe,
        publish,
        events,
    }) = cli.command
    {
        let Some(secret) = token_secret() else {
            eprintln!(
                "TOKEN_SECRET is not set. Set the same TOKEN_SECRET for the stack and for this command \
                 (at least 32 bytes), or use the token the running stack printed."
            );
            return ExitCode::from(2);
        };
        let secret = match TokenSecret::new(secret) {
            Ok(secret) => secret,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        };
        let mut claims = claims_for(&user_id, ttl, groups);
        claims.subscribe = subscribe;
        claims.publish = publish;
        claims.events = events;
        return match mint(&secret, &claims) {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cannot sign the token: {e}");
                ExitCode::FAILURE
            }
        };
    }

    let subscriber = logs::subscriber(
        cli.serve.log_format,
        logs::default_filter(),
        std::io::stderr,
    );
    if let Err(e) = tracing::subscriber::set_global_default(subscriber) {
        eprintln!("cannot set up logging: {e}");
        return ExitCode::FAILURE;
    }
    let config = match config(cli.serve) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let generated_secret = config.token_secret.is_none();
    let stack = match switchboard_local::start(config).await {
        Ok(stack) => stack,
        Err(e) if e.is_usage() => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", banner(&stack, generated_secret));
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("cannot listen for Ctrl-C: {e}");
    }
    eprintln!("shutting down: closing sockets and running $disconnect for each");
    stack.shutdown().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(args: &[&str]) -> u32 {
        let mut argv = vec!["switchboard-local"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).expect("valid flags");
        posting_policy(&cli.serve).expect("policy").rate_limit
    }

    fn latency(args: &[&str]) -> Result<AwsLatency, String> {
        let mut argv = vec!["switchboard-local"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv)
            .map_err(|e| e.to_string().lines().next().unwrap_or_default().to_owned())?;
        Ok(aws_latency(&cli.serve))
    }

    #[test]
    fn aws_latency_sets_every_hop_and_each_flag_overrides_its_own() {
        let ms = |n| Latency::Fixed(Duration::from_millis(n));
        assert_eq!(latency(&[]), Ok(AwsLatency::default()), "off by default");
        assert_eq!(latency(&["--aws-latency"]), Ok(AwsLatency::aws()));
        assert_eq!(
            AwsLatency::aws(),
            AwsLatency {
                route: AwsLatency::ROUTE,
                queue: AwsLatency::QUEUE,
                store: AwsLatency::STORE,
                post: AwsLatency::POST,
            }
        );
        assert_eq!(
            latency(&[
                "--aws-latency",
                "--queue-latency",
                "0",
                "--post-latency",
                "25ms"
            ]),
            Ok(AwsLatency {
                queue: Latency::None,
                post: ms(25),
                ..AwsLatency::aws()
            })
        );
        assert_eq!(
            latency(&["--dynamodb-latency", "3ms", "--route-latency", "4ms"]),
            Ok(AwsLatency {
                store: ms(3),
                route: ms(4),
                ..AwsLatency::default()
            }),
            "one hop alone, without --aws-latency"
        );
        assert_eq!(
            latency(&["--queue-latency", "80ms,20ms"]),
            Err(
                "error: invalid value '80ms,20ms' for '--queue-latency <QUEUE_LATENCY>': \
                 80ms,20ms: the median must be above 0 and the 99th percentile at least the median"
                    .to_owned()
            ),
            "a bad latency is a usage error"
        );
    }

    #[test]
    fn the_post_budget_follows_the_emulated_throttle_unless_given() {
        // POST_RATE_LIMIT is not set in the test environment (the template sets it on AWS).
        assert!(std::env::var_os("POST_RATE_LIMIT").is_none());
        assert_eq!(budget(&[]), 0, "no throttle, no pacing");
        assert_eq!(budget(&["--aws-quotas"]), 9_500, "the template's default");
        assert_eq!(budget(&["--management-rate", "200"]), 190);
        assert_eq!(
            budget(&["--management-rate", "1"]),
            1,
            "never off under a throttle"
        );
        assert_eq!(budget(&["--aws-quotas", "--post-rate", "0"]), 0);
        assert_eq!(budget(&["--post-rate", "1234"]), 1_234);
    }
}
