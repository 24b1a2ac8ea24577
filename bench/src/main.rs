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
//!
//! The clients live in a child process (`clients` subcommand) so each side has
//! its own file-descriptor budget. Everything runs on 127.0.0.1 and every loop
//! is bounded in count and time.

mod clients;
mod coldstart;
mod fanout;
mod report;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "Switchboard benchmarks (make bench)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every benchmark and write the markdown report.
    All {
        /// Connection counts for the fan-out benchmark.
        #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
        n: Vec<usize>,
        /// Measured sends per case (after one warm-up send).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Directory holding `<function>/bootstrap` (cargo lambda build --release).
        #[arg(long, default_value = "target/lambda")]
        bootstraps: PathBuf,
        /// The hello-world `lambda_runtime` binary built with the same profile.
        #[arg(long, default_value = "target/lambda/bench-hello/bootstrap")]
        hello: PathBuf,
        /// Cold starts per binary.
        #[arg(long, default_value_t = 20)]
        starts: usize,
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
        /// Criterion's output directory, for the handler bench's results.
        #[arg(long, default_value = "target/criterion")]
        criterion: PathBuf,
    },
    /// Only the fan-out benchmark; prints its table.
    Fanout {
        #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
        n: Vec<usize>,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// Only the cold-start benchmark; prints its table.
    Coldstart {
        #[arg(long, default_value = "target/lambda")]
        bootstraps: PathBuf,
        #[arg(long, default_value = "target/lambda/bench-hello/bootstrap")]
        hello: PathBuf,
        #[arg(long, default_value_t = 20)]
        starts: usize,
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
        Command::Fanout { n, rounds } => {
            let rows = fanout::run(&n, rounds).await?;
            println!("{}", report::fanout_table(&rows));
            Ok(())
        }
        Command::Coldstart {
            bootstraps,
            hello,
            starts,
        } => {
            let rows = coldstart::run(&bootstraps, &hello, starts).await?;
            println!("{}", report::coldstart_table(&rows));
            Ok(())
        }
        Command::All {
            n,
            rounds,
            bootstraps,
            hello,
            starts,
            out,
            criterion,
        } => {
            let fanout = fanout::run(&n, rounds).await?;
            println!("{}", report::fanout_table(&fanout));
            let cold = coldstart::run(&bootstraps, &hello, starts).await?;
            println!("{}", report::coldstart_table(&cold));
            let handlers = report::handler_rows(&criterion);
            println!("{}", report::handler_table(&handlers));
            let text = report::document(&fanout, &cold, &handlers);
            std::fs::write(&out, text)
                .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            println!("wrote {}", out.display());
            Ok(())
        }
    }
}
