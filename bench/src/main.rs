//! `make bench`: Switchboard's benchmarks, each against a baseline measured in
//! the same run, written to BENCHMARKS.md.
//!
//! - fan-out: one group send or broadcast through the local stack to N real
//!   WebSocket clients, against a bare tokio-tungstenite server broadcasting
//!   the same bytes to the same N clients; plus the stack's RSS per idle
//!   connection.
//! - cold start: each release bootstrap against a hello-world `lambda_runtime`
//!   binary, from exec to its first `GET /runtime/invocation/next` on a stub
//!   Runtime API.
//! - first invocation: notify-connection's first event after init, posting to
//!   a TLS endpoint on loopback, with the connection opened by the first post
//!   or during init (`WARM_CONNECTIONS`).
//! - recovery: 1,000 missed user messages recovered with one `recover`,
//!   against the same 1,000 delivered live, on the local stack.
//!
//! - CPU per post: one Management API post through the SDK's client and
//!   through Switchboard's adapter, against a minimal SigV4-signed POST
//!   with the same connector (getrusage of the posting thread).
//! - scale (`make bench-scale`, separate): broadcast and group send to
//!   100,000 and 1,000,000 virtual connections and 10,000 real sockets under
//!   the emulated AWS Management API quota.
//! - faults: NotifyUser, group and broadcast sends to 1,000 clients with the
//!   template's 60 s visibility timeout and 20 % injected post faults,
//!   against the same sends without faults.
//!
//! - latency: a publish to a group of 5 and of 1,000, a NotifyUser to a user's
//!   2 connections and `POST /send` to one connection, end to end on the
//!   local stack under `--aws-latency`, against the same with no emulated
//!   latency (p50 / p99).
//!
//! - upstream: `$connect` with a connect hook (a loopback receiver) against
//!   the same stack without one, handshakes interleaved.
//!
//! The clients live in a child process (`clients` subcommand) so each side has
//! its own file-descriptor budget. Everything runs on 127.0.0.1 and every loop
//! is bounded in count and time.

mod clients;
mod coldstart;
mod deployed_env;
mod fanout;
mod faults;
mod firstcall;
mod latency;
mod postcpu;
mod recovery;
mod report;
mod scale;
mod upstream;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "Switchboard benchmarks (make bench)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The fan-out benchmark's cases.
#[derive(Args)]
struct FanoutArgs {
    /// Connection counts.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    n: Vec<usize>,
    /// Measured sends per case (after one warm-up send).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

/// The cold-start benchmark's binaries.
#[derive(Args)]
struct ColdstartArgs {
    /// Directory holding `<function>/bootstrap` (cargo lambda build --release).
    #[arg(long, default_value = "target/lambda")]
    bootstraps: PathBuf,
    /// The hello-world `lambda_runtime` binary built with the same profile.
    #[arg(long, default_value = "target/lambda/bench-hello/bootstrap")]
    hello: PathBuf,
    /// Cold starts per binary.
    #[arg(long, default_value_t = 20)]
    starts: usize,
    /// Only these functions (comma-separated; default: every one).
    #[arg(long, value_delimiter = ',')]
    functions: Vec<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run every benchmark and write the markdown report.
    All {
        #[command(flatten)]
        fanout: FanoutArgs,
        #[command(flatten)]
        coldstart: ColdstartArgs,
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
        /// Criterion's output directory, for the handler bench's results.
        #[arg(long, default_value = "target/criterion")]
        criterion: PathBuf,
    },
    /// Only the fan-out benchmark; prints its table.
    Fanout(FanoutArgs),
    /// Only the cold-start benchmark; prints its table.
    Coldstart(ColdstartArgs),
    /// Only the recovery benchmark (N missed messages recovered against N
    /// live); prints the History section's tables with the handler bench's
    /// history rows from `--criterion`.
    Recovery {
        #[arg(long, default_value_t = 1000)]
        n: usize,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        #[arg(long, default_value = "target/criterion")]
        criterion: PathBuf,
    },
    /// Only the faults benchmark (N clients, with and without injected faults); prints its table.
    Faults {
        #[arg(long, default_value_t = 1000)]
        n: usize,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        #[arg(long, default_value_t = 0.2)]
        fault_rate: f64,
    },
    /// Only the latency benchmark (every case with no emulated latency and
    /// with --aws-latency's); prints its section.
    Latency,
    /// Only the connect-hook benchmark; prints its table.
    Upstream {
        #[arg(long, default_value_t = 200)]
        handshakes: usize,
    },
    /// Only the CPU-per-post benchmark; prints its table.
    PostCpu {
        /// Posts per case and round.
        #[arg(long, default_value_t = 2000)]
        posts: usize,
        #[arg(long, default_value_t = 7)]
        rounds: usize,
    },
    /// `make bench-scale`: broadcast and group send to virtual connections and
    /// to real sockets under the emulated AWS quota; writes the "Scale under
    /// AWS quotas" section of --out (keeping the others) and the JSON.
    Scale {
        /// Virtual connection counts.
        #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
        n: Vec<usize>,
        /// Real sockets for the tie-in rows (0: none).
        #[arg(long, default_value_t = 10_000)]
        real: usize,
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
        #[arg(long, default_value = scale::JSON_FILE)]
        json: PathBuf,
    },
    /// The "Scale under AWS quotas" section again from a run's JSON (no run).
    ScaleReport {
        #[arg(long, default_value = scale::JSON_FILE)]
        json: PathBuf,
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
    },
    /// Internal: one scale case in this process; prints its JSON line.
    #[command(hide = true)]
    ScaleCase {
        #[arg(long)]
        target: String,
        #[arg(long)]
        n: usize,
        #[arg(long)]
        real: bool,
        /// The stack's budget of posts a second (0: unpaced).
        #[arg(long, default_value_t = switchboard::pacing::TEMPLATE_RATE)]
        budget: u32,
    },
    /// Internal: N WebSocket clients driven over stdin/stdout by `fanout`.
    #[command(hide = true)]
    Clients {
        #[arg(long)]
        url: String,
        #[arg(long)]
        n: usize,
    },
}

#[tokio::main]
async fn main() -> Result<(), String> {
    match Cli::parse().command {
        Command::Clients { url, n } => clients::run(&url, n).await,
        Command::ScaleCase {
            target,
            n,
            real,
            budget,
        } => scale::case(&target, n, real, budget).await,
        Command::ScaleReport { json, out } => {
            let text = std::fs::read_to_string(&json)
                .map_err(|e| format!("cannot read {}: {e}", json.display()))?;
            let cases = scale::cases_from_json(&text)?;
            let section = report::scale_section(&cases);
            let old = std::fs::read_to_string(&out).unwrap_or_else(|_| "# Benchmarks\n".into());
            std::fs::write(
                &out,
                report::with_section(&old, report::SCALE_HEADING, &section),
            )
            .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            println!("{section}");
            Ok(())
        }
        Command::Scale { n, real, out, json } => {
            let cases = scale::run(&n, real).await?;
            let section = report::scale_section(&cases);
            println!("{section}");
            let old = std::fs::read_to_string(&out).unwrap_or_else(|_| "# Benchmarks\n".into());
            let text = report::with_section(&old, report::SCALE_HEADING, &section);
            std::fs::write(&out, text)
                .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            let values: Vec<_> = cases.iter().map(scale::Case::to_json).collect();
            let pretty = serde_json::to_string_pretty(&values).map_err(|e| e.to_string())?;
            std::fs::write(&json, pretty + "\n")
                .map_err(|e| format!("cannot write {}: {e}", json.display()))?;
            println!("wrote {} and {}", out.display(), json.display());
            Ok(())
        }
        Command::Fanout(args) => {
            let rows = fanout::run(&args.n, args.rounds).await?;
            println!("{}", report::fanout_table(&rows));
            Ok(())
        }
        Command::Recovery {
            n,
            rounds,
            criterion,
        } => {
            let row = recovery::run(n, rounds).await?;
            let handlers = report::handler_rows(&criterion);
            println!("{}", report::history_tables(&handlers, Some(&row)));
            Ok(())
        }
        Command::PostCpu { posts, rounds } => {
            let row = postcpu::run(posts, rounds)?;
            println!("{}", report::post_cpu_section(&row));
            Ok(())
        }
        Command::Faults {
            n,
            rounds,
            fault_rate,
        } => {
            let rows = faults::run(n, rounds, fault_rate).await?;
            println!("{}", report::faults_table(&rows));
            Ok(())
        }
        Command::Latency => {
            let rows = latency::run().await?;
            println!("{}", report::latency_section(&rows));
            Ok(())
        }
        Command::Upstream { handshakes } => {
            let row = upstream::run(handshakes).await?;
            println!("{}", report::upstream_table(&row));
            Ok(())
        }
        Command::Coldstart(args) => {
            let rows =
                coldstart::run(&args.bootstraps, &args.hello, args.starts, &args.functions).await?;
            println!("{}", report::coldstart_table(&rows));
            let first = firstcall::run(&args.bootstraps, args.starts, &args.functions).await?;
            println!("{}", report::firstcall_table(&first));
            Ok(())
        }
        Command::All {
            fanout: cases,
            coldstart: binaries,
            out,
            criterion,
        } => {
            let fanout = fanout::run(&cases.n, cases.rounds).await?;
            println!("{}", report::fanout_table(&fanout));
            let cold = coldstart::run(
                &binaries.bootstraps,
                &binaries.hello,
                binaries.starts,
                &binaries.functions,
            )
            .await?;
            println!("{}", report::coldstart_table(&cold));
            let first =
                firstcall::run(&binaries.bootstraps, binaries.starts, &binaries.functions).await?;
            println!("{}", report::firstcall_table(&first));
            let handlers = report::handler_rows(&criterion);
            println!("{}", report::handler_table(&handlers));
            let recovery = recovery::run(1000, 3).await?;
            println!("{}", report::history_tables(&handlers, Some(&recovery)));
            let hook = upstream::run(200).await?;
            println!("{}", report::upstream_table(&hook));
            let faults = faults::run(1000, 3, 0.2).await?;
            println!("{}", report::faults_table(&faults));
            let latency = latency::run().await?;
            println!("{}", report::latency_table(&latency));
            let post_cpu = postcpu::run(2000, 7)?;
            println!("{}", report::post_cpu_table(&post_cpu));
            let mut text = report::document(
                &fanout,
                &cold,
                &first,
                &handlers,
                Some(&recovery),
                &hook,
                &post_cpu,
            );
            text = report::with_section(
                &text,
                report::FAULTS_HEADING,
                &report::faults_section(&faults),
            );
            text = report::with_section(
                &text,
                report::LATENCY_HEADING,
                &report::latency_section(&latency),
            );
            // `make bench-scale`'s section stays until that command rewrites it.
            let old = std::fs::read_to_string(&out).unwrap_or_default();
            if let Some(scale) = report::section_of(&old, report::SCALE_HEADING) {
                text = report::with_section(&text, report::SCALE_HEADING, &scale);
            }
            std::fs::write(&out, text)
                .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            println!("wrote {}", out.display());
            Ok(())
        }
    }
}
