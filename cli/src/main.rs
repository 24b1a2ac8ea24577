//! `switchboard`: the operator CLI for a deployed stack or the local stack.
//!
//! - `status`: the stack's status, its outputs and every dead-letter queue's depth;
//! - `dlq list` / `dlq redrive`: the dead letters (with `--errors`, each one's
//!   last error from the function's logs) and moving them back (an SQS message
//!   move task, or the receive-and-send copy);
//! - `send`, `notify`, `negotiate` (`token`), `who`, `close`: the server
//!   operations, through the IAM-signed HTTP API (or the NotifyUser and
//!   NotifyConnection queues for `notify`);
//! - `doctor`: the stack's concurrency and rate settings against what its
//!   account has (Lambda concurrency, API Gateway's throttle quota, the
//!   WebSocket stage's throttles), each finding with the command that fixes it.
//!
//! On AWS the stack's outputs come from CloudFormation `DescribeStacks`;
//! requests use the standard credential chain, region and endpoint overrides
//! (`AWS_ENDPOINT_URL`, for moto or LocalStack). `--local[=URL]` talks plain
//! HTTP to the local stack instead (`http://127.0.0.1:3001`), with its API key
//! (`--api-key`, `SWITCHBOARD_API_KEY`) when it has one. `--json` prints one
//! JSON document for scripts. Exit codes: 0 done (and, for `status`, every
//! dead-letter queue empty; for `doctor`, no finding fails), 1 an error (named
//! on stderr), 2 a usage error, 3 `status` found messages in a dead-letter
//! queue, 4 the connection, user or group does not exist, 5 `doctor` found a
//! setting that fails.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};
use switchboard_cli::dlq::{self, DeadLetterQueue};
use switchboard_cli::doctor;
use switchboard_cli::http::{Answer, Api, DEFAULT_LOCAL_URL};
use switchboard_cli::ops::{self, Negotiate, Subject, Target};
use switchboard_cli::{CliError, Stack};

#[derive(Parser)]
#[command(version, about = "Operate a Switchboard stack, deployed or local")]
struct Cli {
    /// The CloudFormation stack name.
    #[arg(long, global = true, env = "SWITCHBOARD_STACK")]
    stack: Option<String>,
    /// The local stack (plain HTTP) instead of AWS: `--local` or `--local=URL`.
    #[arg(long, global = true, num_args = 0..=1, require_equals = true,
          default_missing_value = DEFAULT_LOCAL_URL, value_name = "URL")]
    local: Option<String>,
    /// The local stack's API key (when it listens beyond loopback). On a
    /// command line it is visible to every user of the machine (`ps`): prefer
    /// SWITCHBOARD_API_KEY or --api-key-file.
    #[arg(
        long,
        global = true,
        env = "SWITCHBOARD_API_KEY",
        hide_env_values = true
    )]
    api_key: Option<String>,
    /// A file holding the local stack's API key (its first line), instead of --api-key.
    #[arg(
        long,
        global = true,
        env = "SWITCHBOARD_API_KEY_FILE",
        conflicts_with = "api_key"
    )]
    api_key_file: Option<std::path::PathBuf>,
    /// The deployed HTTP API's URL (default: the stack's output HttpApiUrl).
    #[arg(long, global = true, env = "SWITCHBOARD_HTTP_API_URL")]
    http_api_url: Option<String>,
    /// One JSON document on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The stack's status, outputs and dead-letter queue depths (exit 3 if any holds messages).
    Status,
    /// Dead-letter queues: list their messages or move them back.
    Dlq {
        #[command(subcommand)]
        command: Dlq,
    },
    /// Sends data to a connection, a user, a group (or a user in a group), or everyone.
    Send {
        #[command(flatten)]
        target: SendTarget,
        /// Leave out this connection (with --group or --all; repeatable).
        #[arg(long = "exclude", value_name = "CONNECTION_ID")]
        exclude: Vec<String>,
        #[command(flatten)]
        message: Message,
    },
    /// Puts a NotifyUser {userId,data} or NotifyConnection {connectionId,data} message on its queue.
    Notify {
        #[arg(
            long,
            conflicts_with = "connection",
            required_unless_present = "connection"
        )]
        user: Option<String>,
        #[arg(long)]
        connection: Option<String>,
        #[command(flatten)]
        message: Message,
    },
    /// Mints a client URL and token for a user (the HTTP API's negotiate).
    #[command(alias = "token")]
    Negotiate {
        #[arg(long)]
        user: String,
        /// A group to join at connect (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// A group pattern the client may subscribe to (repeatable).
        #[arg(long)]
        subscribe: Vec<String>,
        /// A group pattern the client may publish to (repeatable).
        #[arg(long)]
        publish: Vec<String>,
        /// The token's lifetime (default and cap: the stack's negotiate settings).
        #[arg(long = "ttl", value_name = "SECONDS")]
        ttl_seconds: Option<u64>,
    },
    /// A connection, a user's connections and groups, or a group's members.
    Who {
        #[command(flatten)]
        subject: WhoSubject,
    },
    /// Checks the stack's settings against its account: queue consumers' concurrency, PostRateLimit, stage throttles.
    ///
    /// Reads the account's Lambda concurrency (GetAccountSettings), the stack's
    /// parameters (DescribeStacks), API Gateway's account throttle quota
    /// (Service Quotas apigateway L-8A5B8E43, which the Management API's posts
    /// count against) and the WebSocket stage's default route throttles
    /// (apigatewayv2 GetStage). Checks: the five queue consumers' maximum
    /// concurrencies + 2 x RouteReservedConcurrency + a headroom for the
    /// routes (10% of the account's concurrency, at least 5) fit in the
    /// account's unreserved concurrency, else $connect is throttled when the
    /// queues are busy; each consumer's maximum fits in what is left; a
    /// reservation leaves Lambda's 100 unreserved; PostRateLimit is above 0
    /// and at most 95% of the quota; the stage's rate and burst are above 0,
    /// the burst at least a tenth of the rate, the rate within the quota, and
    /// both as the stack's parameters set them. Each finding is ok, warn or
    /// fail; one that is not ok gives the `sam deploy --parameter-overrides`
    /// or Service Quotas request that fixes it. A reading that fails (no
    /// permission, an API the endpoint lacks) is a warn finding,
    /// "could not read ...: <error>", and the checks go on without it.
    ///
    /// Exit codes: 0 no finding fails (warnings allowed), 5 a finding fails,
    /// 1 an error (the stack cannot be read), 2 a usage error.
    ///
    /// IAM: cloudformation:DescribeStacks on the stack,
    /// lambda:GetAccountSettings, servicequotas:GetServiceQuota and
    /// servicequotas:GetAWSDefaultServiceQuota, and apigateway:GET on
    /// arn:aws:apigateway:<region>::/apis/<api-id>/stages/<stage>.
    Doctor,
    /// Closes a connection, or every connection of a user.
    Close {
        #[arg(long, conflicts_with = "user", required_unless_present = "user")]
        connection: Option<String>,
        #[arg(long)]
        user: Option<String>,
        /// Sent to the client as {"type":"close","reason":…} (at most 123 bytes).
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Args)]
#[group(required = true, multiple = true)]
struct SendTarget {
    #[arg(long)]
    connection: Option<String>,
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    group: Option<String>,
    /// Every connection.
    #[arg(long)]
    all: bool,
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct WhoSubject {
    #[arg(long)]
    connection: Option<String>,
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    group: Option<String>,
}

#[derive(Args)]
struct Message {
    /// The data: JSON, or else a string; `-` or nothing reads it from stdin.
    data: Option<String>,
    /// Send the data as a JSON string even when it parses as JSON.
    #[arg(long)]
    string: bool,
    /// An idempotency id (a redelivery is not posted twice to a connection).
    #[arg(long)]
    id: Option<String>,
}

#[derive(Subcommand)]
enum Dlq {
    /// The messages waiting (without removing them), at most --max per queue.
    List {
        /// One queue: notify-user, notify-connection, commands, deliveries or upstream (default: all).
        #[arg(long)]
        queue: Option<String>,
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
        max: u32,
        /// On AWS: each message's last error, from the consuming function's logs.
        #[arg(long)]
        errors: bool,
    },
    /// Moves the queue's messages back to the queue they failed in.
    Redrive {
        /// notify-user, notify-connection, commands, deliveries or upstream.
        #[arg(long)]
        queue: String,
        /// At most this many (on AWS: copies them by receive and send instead of a move task).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        max: Option<u32>,
        /// On AWS: copy by receive and send rather than start a move task.
        #[arg(long)]
        copy: bool,
        /// On AWS: poll the move task until it ends (at most --timeout seconds).
        #[arg(long)]
        wait: bool,
        #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        timeout: u64,
    },
}

/// A command's result: the JSON document, the text, the exit code.
use switchboard_cli::dlq::Done;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli).await {
        Ok((document, text, code)) => {
            if cli.json {
                println!("{document}");
            } else {
                print!("{text}");
            }
            ExitCode::from(code)
        }
        Err(e) => {
            if cli.json {
                println!("{}", json!({ "error": e.to_string() }));
            }
            eprintln!("switchboard: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Where the command goes.
enum Place {
    Local(Api),
    Aws {
        sdk: Box<aws_config::SdkConfig>,
        stack_name: Option<String>,
    },
}

impl Place {
    /// Where a dead-letter command runs: the local stack, or the deployed stack.
    async fn dead_letters(&self) -> Result<dlq::Place<'_>, CliError> {
        Ok(match self {
            Place::Local(api) => dlq::Place::Local(api),
            Place::Aws { .. } => {
                let (stack, sdk) = self.stack().await?;
                dlq::Place::Aws(stack, sdk)
            }
        })
    }

    async fn stack(&self) -> Result<(Stack, &aws_config::SdkConfig), CliError> {
        match self {
            Place::Local(_) => Err(CliError::Usage(
                "this command reads a deployed stack: leave out --local".into(),
            )),
            Place::Aws { sdk, stack_name } => {
                let name = stack_name.as_deref().ok_or_else(|| {
                    CliError::Usage("name the stack: --stack NAME (or SWITCHBOARD_STACK)".into())
                })?;
                Ok((Stack::describe(sdk, name).await?, sdk))
            }
        }
    }

    /// The HTTP API: the local stack's, or the deployed one signed with SigV4.
    async fn api(&self, cli: &Cli) -> Result<Api, CliError> {
        match self {
            Place::Local(api) => Ok(api.clone()),
            Place::Aws { sdk, .. } => {
                let url = match &cli.http_api_url {
                    Some(url) => url.clone(),
                    None => self.stack().await?.0.output("HttpApiUrl")?.to_owned(),
                };
                let region = sdk.region().map(|r| r.to_string()).ok_or_else(|| {
                    CliError::Credentials("no AWS region (set AWS_REGION)".into())
                })?;
                Ok(Api::signed(&url, region, sdk.credentials_provider()))
            }
        }
    }
}

/// The API key: given, or the first line of `--api-key-file`.
fn api_key(cli: &Cli) -> Result<Option<String>, CliError> {
    let Some(path) = &cli.api_key_file else {
        return Ok(cli.api_key.clone());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("--api-key-file {}: {e}", path.display())))?;
    match text.lines().next().map(str::trim).filter(|k| !k.is_empty()) {
        Some(key) => Ok(Some(key.to_owned())),
        None => Err(CliError::Usage(format!(
            "--api-key-file {}: the file holds no key",
            path.display()
        ))),
    }
}

async fn run(cli: &Cli) -> Result<Done, CliError> {
    let place = match &cli.local {
        Some(url) => Place::Local(Api::local(url, api_key(cli)?)?),
        None => Place::Aws {
            sdk: Box::new(switchboard::aws::load().await),
            stack_name: cli.stack.clone(),
        },
    };
    match &cli.command {
        Command::Status => status(&place).await,
        Command::Doctor => doctor(&place).await,
        Command::Dlq {
            command: Dlq::List { queue, max, errors },
        } => dlq::list_command(place.dead_letters().await?, queue.as_deref(), *max, *errors).await,
        Command::Dlq {
            command:
                Dlq::Redrive {
                    queue,
                    max,
                    copy,
                    wait,
                    timeout,
                },
        } => {
            // An unknown queue is the answer before any stack is read.
            dlq::queue_names(Some(queue))?;
            let place = place.dead_letters().await?;
            dlq::redrive_command(place, queue, *max, *copy, *wait, *timeout).await
        }
        Command::Send {
            target,
            exclude,
            message,
        } => {
            let target = Target {
                connection: target.connection.clone(),
                user: target.user.clone(),
                group: target.group.clone(),
                all: target.all,
                exclude: exclude.clone(),
            };
            let data = ops::data(message.data.as_deref(), message.string)?;
            let body = ops::send_body(&target, data, message.id.as_deref())?;
            let answer = ok(place
                .api(cli)
                .await?
                .call("POST", "/send", Some(&body))
                .await?)?;
            let text = format!("addressed {}\n", answer.body["addressed"]);
            Ok((answer.body, text, 0))
        }
        Command::Notify {
            user,
            connection,
            message,
        } => {
            let data = ops::data(message.data.as_deref(), message.string)?;
            let (queue, body) = ops::notify_body(
                user.as_deref(),
                connection.as_deref(),
                data,
                message.id.as_deref(),
            )?;
            let message_id = match &place {
                Place::Local(api) => {
                    let path = format!("/queues/{}", queue.local_name());
                    let answer = ok(api.call("POST", &path, Some(&body)).await?)?;
                    answer.body["messageId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                }
                Place::Aws { .. } => {
                    let (stack, sdk) = place.stack().await?;
                    let url = stack.output(queue.output())?;
                    switchboard::aws::sqs(sdk)
                        .send_message()
                        .queue_url(url)
                        .message_body(body.to_string())
                        .send()
                        .await
                        .map_err(|e| CliError::Queue {
                            queue: queue.local_name().to_owned(),
                            what: aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
                        })?
                        .message_id()
                        .unwrap_or_default()
                        .to_owned()
                }
            };
            let text = format!("queued on {} as {message_id}\n", queue.local_name());
            Ok((
                json!({ "queue": queue.local_name(), "messageId": message_id }),
                text,
                0,
            ))
        }
        Command::Negotiate {
            user,
            groups,
            subscribe,
            publish,
            ttl_seconds,
        } => {
            let body = ops::negotiate_body(&Negotiate {
                user: user.clone(),
                groups: groups.clone(),
                subscribe: subscribe.clone(),
                publish: publish.clone(),
                ttl_seconds: *ttl_seconds,
            })?;
            let answer = ok(place
                .api(cli)
                .await?
                .call("POST", "/negotiate", Some(&body))
                .await?)?;
            let text = format!("{}\n", answer.body["url"].as_str().unwrap_or_default());
            Ok((answer.body, text, 0))
        }
        Command::Who { subject } => {
            let path = ops::who_path(&Subject {
                connection: subject.connection.clone(),
                user: subject.user.clone(),
                group: subject.group.clone(),
            })?;
            let answer = place.api(cli).await?.call("GET", &path, None).await?;
            if answer.status == 404 {
                let text = who_text(&answer.body);
                return Ok((answer.body, text, 4));
            }
            let answer = ok(answer)?;
            let text = who_text(&answer.body);
            Ok((answer.body, text, 0))
        }
        Command::Close {
            connection,
            user,
            reason,
        } => {
            let path = ops::close_path(
                &Subject {
                    connection: connection.clone(),
                    user: user.clone(),
                    group: None,
                },
                reason.as_deref(),
            )?;
            let answer = ok(place.api(cli).await?.call("DELETE", &path, None).await?)?;
            let text = match answer.body.get("closed") {
                Some(Value::Bool(true)) => "closed 1\n".to_owned(),
                Some(n) => format!("closed {n}\n"),
                None => "closed\n".to_owned(),
            };
            Ok((answer.body, text, 0))
        }
    }
}

/// A success, or the API's refusal as the error.
fn ok(answer: Answer) -> Result<Answer, CliError> {
    if answer.is_success() {
        Ok(answer)
    } else {
        Err(CliError::refused(&answer))
    }
}

/// `who`'s answer as `key value` lines.
fn who_text(body: &Value) -> String {
    let mut text = String::new();
    if let Some(map) = body.as_object() {
        for (key, value) in map {
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            text.push_str(&format!("{key:<12} {value}\n"));
        }
    }
    text
}

async fn status(place: &Place) -> Result<Done, CliError> {
    let (stack, sdk) = place.stack().await?;
    let sqs = switchboard::aws::sqs(sdk);
    let queues = stack.dead_letter_queues(&sqs).await?;
    let waiting: i64 = queues.iter().map(|q| q.messages).sum();
    let mut text = format!("stack {} {}\n", stack.name, stack.status);
    for (key, value) in &stack.outputs {
        text.push_str(&format!("  {key:<36} {value}\n"));
    }
    text.push_str("dead-letter queues\n");
    for q in &queues {
        text.push_str(&format!(
            "  {:<18} {:>6} waiting {:>6} in flight\n",
            q.name, q.messages, q.in_flight
        ));
    }
    let document = json!({
        "stack": stack.name,
        "status": stack.status,
        "outputs": stack.outputs,
        "deadLetterQueues": queues.iter().map(DeadLetterQueue::to_json).collect::<Vec<_>>(),
    });
    Ok((document, text, if waiting > 0 { 3 } else { 0 }))
}

async fn doctor(place: &Place) -> Result<Done, CliError> {
    let (stack, sdk) = place.stack().await?;
    let region = sdk
        .region()
        .map(|r| r.to_string())
        .ok_or_else(|| CliError::Credentials("no AWS region (set AWS_REGION)".into()))?;
    let readings = doctor::read(sdk, &region, &stack).await;
    let findings = doctor::findings(&readings);
    Ok((
        doctor::to_json(&readings, &findings),
        doctor::text(&readings, &findings),
        doctor::exit_code(&findings),
    ))
}
