//! `switchboard`: the operator CLI for a deployed stack.
//!
//! - `switchboard status --stack NAME`: the stack's status, its outputs and
//!   the depth of every dead-letter queue;
//! - `switchboard dlq list --stack NAME [--queue Q]`: the messages waiting in
//!   the dead-letter queues (id, receives, first sent, body);
//! - `switchboard dlq redrive --stack NAME --queue Q [--max N]`: moves a
//!   dead-letter queue's messages back to the queue they came from.
//!
//! Stack outputs come from CloudFormation `DescribeStacks`; requests use the
//! standard credential chain and region, and the standard endpoint overrides
//! (`AWS_ENDPOINT_URL`, for moto or LocalStack). `--json` prints one JSON
//! document for scripts. Exit codes: 0 done (and, for `status`, every
//! dead-letter queue empty), 1 an AWS or stack error (named on stderr), 2 a
//! usage error, 3 `status` found messages in a dead-letter queue.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use switchboard_cli::{CliError, DeadLetterQueue, Stack, list, redrive};

#[derive(Parser)]
#[command(version, about = "Operate a deployed Switchboard stack")]
struct Cli {
    /// The CloudFormation stack name.
    #[arg(long, global = true, env = "SWITCHBOARD_STACK")]
    stack: Option<String>,
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
}

#[derive(Subcommand)]
enum Dlq {
    /// The messages waiting (without removing them), at most --max per queue.
    List {
        /// One queue: notify-user, notify-connection, commands or deliveries (default: all).
        #[arg(long)]
        queue: Option<String>,
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
        max: u32,
    },
    /// Moves the queue's messages back to the queue they failed in, at most --max.
    Redrive {
        /// notify-user, notify-connection, commands or deliveries.
        #[arg(long)]
        queue: String,
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        max: u32,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(stack_name) = cli.stack.clone() else {
        eprintln!("name the stack: --stack NAME (or SWITCHBOARD_STACK)");
        return ExitCode::from(2);
    };
    match run(&cli, &stack_name).await {
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
            ExitCode::from(if e.is_usage() { 2 } else { 1 })
        }
    }
}

async fn run(cli: &Cli, stack_name: &str) -> Result<(Value, String, u8), CliError> {
    let sdk = switchboard::aws::load().await;
    let stack = Stack::describe(&sdk, stack_name).await?;
    let sqs = switchboard::aws::sqs(&sdk);
    match &cli.command {
        Command::Status => {
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
        Command::Dlq {
            command: Dlq::List { queue, max },
        } => {
            let queues = stack.select(queue.as_deref())?;
            let mut text = String::new();
            let mut listed = Vec::new();
            for (name, url) in queues {
                let messages = list(&sqs, &url, *max).await?;
                text.push_str(&format!("{name}: {} messages\n", messages.len()));
                for m in &messages {
                    text.push_str(&format!(
                        "  {} receives={} sent={} {}\n",
                        m["messageId"].as_str().unwrap_or(""),
                        m["receiveCount"],
                        m["sentTimestamp"],
                        m["body"].as_str().unwrap_or("")
                    ));
                }
                listed.push(json!({ "queue": name, "messages": messages }));
            }
            Ok((json!({ "queues": listed }), text, 0))
        }
        Command::Dlq {
            command: Dlq::Redrive { queue, max },
        } => {
            let (name, url) = stack
                .select(Some(queue))?
                .into_iter()
                .next()
                .ok_or_else(|| CliError::UnknownQueue(queue.clone()))?;
            let outcome = redrive(&sqs, &url, *max).await?;
            let text = format!(
                "{name}: moved {} messages back to {}\n",
                outcome.moved, outcome.source
            );
            let document =
                json!({ "queue": name, "moved": outcome.moved, "source": outcome.source });
            Ok((document, text, 0))
        }
    }
}
