//! The markdown tables and BENCHMARKS.md.

use std::fmt::Write;

use crate::{coldstart, fanout, firstcall, postcpu, recovery, scale, upstream};

/// The targets the issue sets, checked in the tables.
const FANOUT_TARGET_RATIO: f64 = 3.0;
const COLDSTART_TARGET_RATIO: f64 = 1.5;
const SIZE_TARGET_BYTES: u64 = 6 * 1024 * 1024;

fn verdict(ok: bool) -> &'static str {
    if ok { "yes" } else { "**no**" }
}

pub fn fanout_table(rows: &[fanout::Row]) -> String {
    let mut out = String::from(
        "| target | N | stack posts | stack: ms to the last client | bare broadcast: ms | ratio | stack deliveries/s | within 3x |\n|---|---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let ratio = row.stack_ms / row.bare_ms;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.0} | {} |",
            row.target,
            row.n,
            row.posts,
            row.stack_ms,
            row.bare_ms,
            ratio,
            row.n as f64 / (row.stack_ms / 1000.0),
            if row.n >= 1000 {
                verdict(ratio <= FANOUT_TARGET_RATIO)
            } else {
                "(no target)"
            }
        );
    }
    if let Some(rss) = rows
        .iter()
        .find_map(|r| r.rss_per_connection.map(|b| (r.n, b)))
    {
        let _ = writeln!(
            out,
            "\nStack RSS per idle connection at N = {}: {:.1} KiB.",
            rss.0,
            rss.1 / 1024.0
        );
    }
    out
}

/// The issue's goal at 1,000,000: the last post within 1.15 × the quota bound.
const SCALE_TARGET_RATIO: f64 = 1.15;
/// Retried posts at most 5 % of posts.
const SCALE_TARGET_POSTS: f64 = 1.05;

/// The heading `make bench-scale` writes and `make bench` keeps.
pub const SCALE_HEADING: &str = "## Scale under AWS quotas";

pub fn scale_table(cases: &[scale::Case]) -> String {
    let mut out = String::from(
        "| target | N | connections | post budget (shared) | reached | s to the last post | quota bound s (N ÷ 10,000/s) | ratio | posts per delivered message | 429s | dead letters | `POST /send` answered in s | setup s | RSS after setup MiB | peak RSS MiB | goals: ≤ 1.15x, 0 dead letters, ≤ 1.05 posts per message |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    for c in cases {
        let reached = if c.complete {
            c.reached.to_string()
        } else {
            format!("**{} (timed out)**", c.reached)
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.2} | {:.3} | {} | {} | {:.1} | {:.1} | {:.0} | {:.0} | {} |",
            c.target,
            c.n,
            c.sockets,
            if c.budget == 0 {
                "none (baseline)".to_owned()
            } else {
                format!("{}/s", c.budget)
            },
            reached,
            c.seconds,
            c.quota_seconds,
            c.ratio(),
            c.posts_per_delivered(),
            c.throttled,
            c.dead_letters,
            c.send_seconds,
            c.setup_seconds,
            mib(c.rss_after_setup),
            mib(c.peak_rss),
            if c.budget == 0 {
                "baseline"
            } else {
                verdict(
                    c.complete
                        && c.dead_letters == 0
                        && c.ratio() <= SCALE_TARGET_RATIO
                        && c.posts_per_delivered() <= SCALE_TARGET_POSTS,
                )
            },
        );
    }
    out
}

/// The "Scale under AWS quotas" section, heading included.
pub fn scale_section(cases: &[scale::Case]) -> String {
    format!(
        "{SCALE_HEADING}\n\n\
         Written by `make bench-scale` on {date}; machine: {machine}. The local stack in one\n\
         process per case (release build), with AWS's account-level Management API throttle\n\
         emulated (`--aws-quotas`: 10,000 posts/s, burst 5,000, answering 429\n\
         `LimitExceededException` beyond it), a post latency drawn from a log-normal with median\n\
         and 99th percentile `{latency}`, and the template's Deliveries settings (visibility\n\
         timeout 90 s, maxReceiveCount 5, deliver timeout 15 s, 50 batches at once) and its\n\
         budget of posts (`PostRateLimit`, 9,500/s: every deliver instance books its posts\n\
         from one shared bucket and waits its turn; docs/server-api.md, \"Pacing\"). One row runs without\n\
         the budget, each instance finding the quota by its own 429s: the same-run baseline\n\
         for posts per message. One\n\
         `POST /send` to `\"all\"` or to one group holding every connection goes the real way:\n\
         the HTTP API handler pages the 16 broadcast shards or the group's members and enqueues\n\
         Deliveries messages of 100, the deliver handler posts each (in-process gateway: the\n\
         Management API's own code, its answers, timeout and retries, without the HTTP round\n\
         trip). Virtual connections (docs/local-stack.md, \"Scale\") are made by the real `$connect`, 5 per\n\
         user; the Management API counts their posts. The real-socket rows are 10,000 WebSocket\n\
         clients in a child process, under the same quota, to tie the virtual runs to real ones.\n\
         The time is from the send to the last delivered post (virtual) or the last client's\n\
         frame (real), against the quota bound N ÷ 10,000/s; the goal at 1,000,000 is 1.15x,\n\
         zero dead letters and at most 1.05 posts per delivered message. RSS is the case\n\
         process's (stack and driver). The JSON is in `{json}`. With a burst of 5,000 the\n\
         fastest possible is (N − 5,000) ÷ 10,000/s, so small N can beat the bound; the\n\
         real-socket rows also carry the clients' own receive path on the same 2 cores.\n\n\
         {table}",
        date = today(),
        machine = machine(),
        latency = scale::LATENCY,
        json = scale::JSON_FILE,
        table = scale_table(cases),
    )
}

/// Where the `heading` section of `text` starts and where the next one does.
fn section_span(text: &str, heading: &str) -> Option<(usize, Option<usize>)> {
    let start = text.find(&format!("{heading}\n"))?;
    let after = start + heading.len();
    Some((start, text[after..].find("\n## ").map(|i| after + i + 1)))
}

/// `text` with its `heading` section (up to the next `## ` or the end)
/// replaced by `section`, or `section` added before "## Build choices" (or
/// at the end) if there was none.
pub fn with_section(text: &str, heading: &str, section: &str) -> String {
    let section = format!("{}\n", section.trim_end());
    match section_span(text, heading) {
        Some((start, Some(next))) => format!("{}{section}\n{}", &text[..start], &text[next..]),
        Some((start, None)) => format!("{}{section}", &text[..start]),
        None => match text.find("\n## Build choices") {
            Some(at) => format!("{}{section}\n{}", &text[..at + 1], &text[at + 1..]),
            None => format!("{}\n\n{section}", text.trim_end()),
        },
    }
}

/// The `heading` section of `text` (heading included), if any.
pub fn section_of(text: &str, heading: &str) -> Option<String> {
    let (start, next) = section_span(text, heading)?;
    Some(format!(
        "{}\n",
        text[start..next.unwrap_or(text.len())].trim_end()
    ))
}

pub fn coldstart_table(rows: &[coldstart::Row]) -> String {
    let baseline = rows.first().map_or(f64::NAN, |r| r.median_ms);
    let mut out = String::from(
        "| binary | bootstrap bytes | init median ms | init p90 ms | ratio to hello-world | init within 1.5x | size within 6 MB |\n|---|---|---|---|---|---|---|\n",
    );
    for (i, row) in rows.iter().enumerate() {
        let ratio = row.median_ms / baseline;
        let _ = writeln!(
            out,
            "| {} | {} | {:.2} | {:.2} | {:.2} | {} | {} |",
            row.name,
            row.bytes,
            row.median_ms,
            row.p90_ms,
            ratio,
            if i == 0 {
                "-"
            } else {
                verdict(ratio <= COLDSTART_TARGET_RATIO)
            },
            if i == 0 {
                "-"
            } else {
                verdict(row.bytes <= SIZE_TARGET_BYTES)
            },
        );
    }
    out
}

pub fn firstcall_table(rows: &[firstcall::Row]) -> String {
    let mut out = String::from(
        "| start | init median ms | first invocation median ms | init + first invocation median ms | TLS handshakes |\n|---|---|---|---|---|\n",
    );
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {:.2} | {:.2} | {:.2} | {} |",
            row.name, row.init_ms, row.first_ms, row.total_ms, row.handshakes
        );
    }
    out
}

/// The SDK path's CPU per post may be at most this many times the minimal signed POST's.
const POST_CPU_TARGET_RATIO: f64 = 2.0;

pub fn post_cpu_table(row: &postcpu::Row) -> String {
    let baseline = row.baseline();
    let mut out = format!(
        "{} posts per case and round, {} rounds, median of the rounds.\n\n\
         | post | CPU µs per post | wall µs per post | CPU ratio to the minimal signed POST | within 2x |\n|---|---|---|---|---|\n",
        row.posts, row.rounds
    );
    for (i, case) in row.cases.iter().enumerate() {
        let ratio = case.cpu_us / baseline;
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.1} | {:.2} | {} |",
            case.name,
            case.cpu_us,
            case.wall_us,
            ratio,
            if i == 0 {
                "-"
            } else {
                verdict(ratio <= POST_CPU_TARGET_RATIO)
            }
        );
    }
    out
}

/// The "CPU per post" section: the table and the post rates it implies.
pub fn post_cpu_section(row: &postcpu::Row) -> String {
    let adapter = row.cases.last().map_or(f64::NAN, |c| c.cpu_us);
    let rate = |mb: f64| 1e6 / adapter * mb / 1769.0;
    format!(
        "## CPU per post\n\n\
         CPU time (getrusage, user + system, of the one thread that posts: a current-thread\n\
         runtime, so signing, the request pipeline and hyper's connection task all count, the\n\
         server's thread does not) per `POST /@connections/{{id}}` of a 100-byte frame to a\n\
         loopback server answering 200, over one kept-alive plain HTTP connection (TLS on AWS\n\
         adds the same cost to every row). The baseline is a minimal SigV4-signed POST\n\
         (`aws-sigv4`, the same hyper/rustls connector, session-token credentials). Cases\n\
         alternate round by round. `switchboard-bench post-cpu` prints this table alone.\n\n\
         {table}\n\
         The SDK's client spends most of its CPU outside the request: its orchestrator\n\
         (interceptors, endpoint resolution, retry strategy, identity cache, user agent,\n\
         stalled-stream protection) runs per post, and switching its optional layers off\n\
         does not bring it near the target, so `adapters/management_api.rs` signs and sends\n\
         the POST itself (the same connector and signer, credentials cached until 5 minutes\n\
         before they expire, the same attempt timeout, retries and error mapping). Switchboard's\n\
         own side of a post is not worth cutting: deliver's handler over an in-memory gateway,\n\
         metrics included, costs under a microsecond per post (Handler cost below), around 1% of\n\
         the post itself.\n\n\
         Lambda gives a function CPU in proportion to its memory, one vCPU at 1,769 MB\n\
         (<https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html>). At\n\
         {adapter:.1} µs per post, CPU alone allows one instance about {r128:.0} posts/s at\n\
         128 MB, {r512:.0} at 512 MB and {r1769:.0} at 1,769 MB (TLS adds to each post). At\n\
         128 MB the CPU of a deliver invocation's 100 posts takes about as long as their round trips,\n\
         10 at a time; from 256 MB the round trips bound it.\n",
        table = post_cpu_table(row),
        r128 = rate(128.0),
        r512 = rate(512.0),
        r1769 = rate(1769.0),
    )
}

pub fn upstream_table(row: &upstream::Row) -> String {
    format!(
        "| `$connect` | handshakes | median ms | p90 ms | ratio (median) |\n|---|---|---|---|---|\n\
         | without a connect hook (baseline) | {n} | {:.2} | {:.2} | 1.00 |\n\
         | with a connect hook (loopback, 204) | {n} | {:.2} | {:.2} | {:.2} |\n",
        row.plain_median_ms,
        row.plain_p90_ms,
        row.hook_median_ms,
        row.hook_p90_ms,
        row.hook_median_ms / row.plain_median_ms,
        n = row.handshakes,
    )
}

/// AWS requests per upstream event, by sink: what the adapters send
/// (asserted by `shared/tests/upstream.rs`,
/// `aws_requests_per_event_by_sink`).
const UPSTREAM_REQUESTS: &str = "\
| sink | per event, producer side | per event, delivery side |
|---|---|---|
| webhook (Upstream queue) | 1 `SendMessageBatch` (connect, actions, disconnect); `disconnected` also 1 `GetItem` for the record | 1 HTTP POST when the receiver answers 2xx (each retry one more); Lambda's SQS poller receives and deletes in batches of up to 10 |
| EventBridge | 1 `PutEvents` (`disconnected` also 1 `GetItem`) | none: EventBridge delivers to the rules' targets |
| connect hook | 1 HTTP POST per handshake, before any write | - |
| event hook | 1 HTTP POST per `event` action, instead of the asynchronous sinks | - |
";

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or_else(
            || "unknown".into(),
            |kb| format!("{} GiB", kb / 1024 / 1024),
        );
    format!(
        "{cpu}, {cores} cores, {memory} RAM, {}",
        std::env::consts::ARCH
    )
}

fn today() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// One criterion result: the benchmark's name and its median, nanoseconds.
pub struct HandlerRow {
    pub name: String,
    pub median_ns: f64,
}

/// Reads `cargo bench --bench handler`'s results from criterion's output
/// directory (`<dir>/per invocation/*/new/{benchmark,estimates}.json`).
pub fn handler_rows(dir: &std::path::Path) -> Vec<HandlerRow> {
    let Ok(entries) = std::fs::read_dir(dir.join("per invocation")) else {
        return Vec::new();
    };
    let mut rows: Vec<HandlerRow> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let new = entry.path().join("new");
            let read = |file: &str| -> Option<serde_json::Value> {
                serde_json::from_str(&std::fs::read_to_string(new.join(file)).ok()?).ok()
            };
            let name = read("benchmark.json")?["function_id"].as_str()?.to_owned();
            let median_ns = read("estimates.json")?["median"]["point_estimate"].as_f64()?;
            Some(HandlerRow { name, median_ns })
        })
        .collect();
    // The baseline first, then by cost.
    rows.sort_by(|a, b| {
        (!a.name.starts_with("baseline"))
            .cmp(&!b.name.starts_with("baseline"))
            .then(a.median_ns.total_cmp(&b.median_ns))
    });
    rows
}

pub fn handler_table(rows: &[HandlerRow]) -> String {
    if rows.is_empty() {
        return "(no criterion results found: run `cargo bench -p switchboard-bench --bench handler` first)\n".into();
    }
    let baseline = rows
        .iter()
        .find(|r| r.name.starts_with("baseline"))
        .map_or(f64::NAN, |r| r.median_ns);
    let mut out =
        String::from("| invocation | median µs | ratio to the baseline |\n|---|---|---|\n");
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.2} |",
            row.name,
            row.median_ns / 1000.0,
            row.median_ns / baseline
        );
    }
    out
}

/// The handler bench's pair of NotifyUser runs, without and with history.
const NO_HISTORY: &str = "notify-user: 10 records, no history";
const WITH_HISTORY: &str = "notify-user: 10 records, user streams keep history";

/// History's cost per message against the same handler without it (same run),
/// and recovery against live delivery (same run, same stack).
pub fn history_tables(handlers: &[HandlerRow], recovery: Option<&recovery::Row>) -> String {
    let median = |name: &str| {
        handlers
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.median_ns)
    };
    let mut out = String::new();
    match (median(NO_HISTORY), median(WITH_HISTORY)) {
        (Some(without), Some(with)) => {
            let _ = write!(
                out,
                "| NotifyUser message (user with 3 connections) | handler µs per message | ratio | AWS requests per message |\n|---|---|---|---|\n\
                 | user stream without history (baseline) | {:.2} | 1.00 | 1 (Query `byUser`) + SendMessageBatch |\n\
                 | user stream keeps history (in-memory store) | {:.2} | {:.2} | + 1 GetItem, 1 UpdateItem, 2 PutItem, 1 Query `byEnvelopeUser` |\n",
                without / 10_000.0,
                with / 10_000.0,
                with / without
            );
        }
        _ => out.push_str("(no history handler results: run the handler bench first)\n"),
    }
    out.push('\n');
    match recovery {
        Some(row) => {
            let _ = write!(
                out,
                "| {n} user messages to one client | median ms ({rounds} rounds) | ratio |\n|---|---|---|\n\
                 | live: enqueued to notify-user, the client connected (baseline) | {live:.1} | 1.00 |\n\
                 | missed: one `recover` after a reconnect | {rec:.1} | {ratio:.2} |\n",
                n = row.messages,
                rounds = row.rounds,
                live = row.live_ms,
                rec = row.recover_ms,
                ratio = row.recover_ms / row.live_ms,
            );
        }
        None => out.push_str("(recovery not measured)\n"),
    }
    out
}

/// The AWS request counts, as `shared/tests/moto.rs` asserts them.
const REQUEST_COUNTS: &str = "\
| target | delivered | Query | GetItem | SendMessageBatch | Deliveries messages | posts | AWS requests per delivered message |
|---|---|---|---|---|---|---|---|
| connection | 1 | 0 | 0 | 1 | 1 | 1 | 2.000 |
| user with 3 connections | 3 | 1 | 0 | 1 | 1 | 3 | 1.667 |
| user within a group | 3 | 1 | 3 | 1 | 1 | 3 | 2.667 |
| group of 250 (pages of 100) | 250 | 3 | 0 | 1 | 3 | 250 | 1.016 |
| broadcast to 250 | 250 | 16 | 0 | 1 | 3 | 250 | 1.068 |
";

/// Measurements behind the build settings (`Cargo.toml`, `aws::http_client`), made
/// when each was chosen; not re-measured by every run.
const BUILD_CHOICES: &str = r#"## Build choices

Measured when each choice was made (x86_64, `cargo lambda build --release --compiler cargo`, one
build each); kept here so the reasons outlive the commits. The current sizes are in the cold-start
table above.

Release profile, `opt-level` (connect / notify-connection bootstrap bytes, same flags otherwise):
3: 10,105,336 / 9,454,192; "s": 6,529,336 / 6,161,304; "z": 6,164,992 / 5,795,544 (chosen: the
functions are I/O-bound, and smaller bootstraps load faster).

TLS and crypto backend (bytes; limit 6,000,000; commit c19c03b):

| AWS SDK HTTPS client | jsonwebtoken | connect | api | notify-connection |
|---|---|---|---|---|
| rustls + aws-lc-rs (SDK default-https-client) | rust_crypto | 6,749,528 | 6,762,904 | 5,908,504 |
| rustls + aws-lc-rs | aws_lc_rs | 6,471,960 | 6,482,424 | 5,912,296 |
| rustls + ring | aws_lc_rs | 6,797,632 | 6,808,704 | 5,160,520 |
| rustls + ring (chosen) | rust_crypto | 5,987,912 | 5,999,552 | 5,150,536 |

Then jsonwebtoken lost its crypto feature: an HMAC-only provider on ring (`shared/src/auth.rs`)
drops the RSA/EC/Ed25519 code an HS256-pinned verifier never runs. The SDK crates are built without
a default HTTP client; `shared/src/aws.rs` supplies the ring one, so nothing links aws-lc (no C
crypto, no cmake in the build).

OIDC issuers (issue 26) brought RS256, ES256 and EdDSA verification back to connect. Candidates
(connect bootstrap bytes, one build each, same commit): HMAC-only before 5,624,024; jsonwebtoken's
`rust_crypto` provider (RustCrypto's `rsa`, `p256`, `ed25519-dalek`) 5,980,064 (+356,040);
verifiers on ring in the same provider (chosen) 5,682,384 (+58,360, the OIDC code included). ring
is linked for TLS already, and webpki verifies certificate signatures with the same RSA, ECDSA and
Ed25519 code; `aws_lc_rs` costs most (the table above) and would link aws-lc's C code. Init did not
move: 30 starts each, both binaries within the same 1.8 to 4.2 ms band of medians on a loaded
machine.

Root certificates at init: the SDK builds a throwaway TLS connector whenever a client is
constructed, only so root certificates load early, and parses every root certificate again each
time. Measured on the SDK functions before `aws::http_client` deferred it to the first request,
init took 4.1x a hello-world's with the platform's roots (bundle and certificate directory), 2.9x
with the bundle alone and 1.9x with no roots at all.
"#;

pub fn document(
    fanout: &[fanout::Row],
    cold: &[coldstart::Row],
    first: &[firstcall::Row],
    handlers: &[HandlerRow],
    recovery: Option<&recovery::Row>,
    hook: &upstream::Row,
    post_cpu: &postcpu::Row,
) -> String {
    format!(
        "# Benchmarks\n\n\
         Written by `make bench` on {date}; machine: {machine}. Every figure is compared with a\n\
         baseline measured in the same run on the same machine; read the ratios, not the\n\
         absolute times (a shared 2-core machine is noisy).\n\n\
         ## Fan-out\n\n\
         One message through the local stack reaches N real WebSocket clients (one child\n\
         process, loopback): a NotifyUser message to a user with N connections\n\
         (`POST /queues/notify-user`: notify-user enqueues one NotifyConnection message per\n\
         connection, notify-connection posts each), or one `POST /send` to a group or to\n\
         `\"all\"` (the HTTP API handler pages the members or the 16 broadcast shards and\n\
         enqueues Deliveries messages of 100; the deliver handler posts them). The handlers\n\
         post either way the stack offers (`--gateway`): \"SDK over HTTP\" (the default) is what\n\
         happens on AWS, a SigV4-signed `POST /@connections/{{id}}` through the AWS SDK's\n\
         Management API client, here to the stack's own Management API; \"in-process\" hands the\n\
         post to the same Management API code directly, with the same answers, faults, attempt\n\
         timeout and retries. The baseline is a bare tokio-tungstenite server handing the same\n\
         bytes to the same N clients from memory, with the same socket buffer settings. Times\n\
         are the median of the measured rounds, from the send to the moment the last client had\n\
         it.\n\n\
         {fanout}\n\
         With SDK posts the stack misses 3x: each delivery is one signed HTTP request (the SDK's\n\
         request pipeline, SigV4, the hyper client, the stack's HTTP server) on the same two\n\
         cores that also run the 10,000 clients, against one in-memory channel send in the\n\
         baseline. In-process posts keep everything else (queues, handlers, idempotency,\n\
         Management API rules) and meet it. On AWS the posts of one fan-out run in many Lambda\n\
         instances at once (100 connections per deliver invocation), so throughput grows with\n\
         concurrency rather than with one machine's cores.\n\n\
         ## Cold start\n\n\
         Time from exec to the first `GET /2018-06-01/runtime/invocation/next` on a stub Lambda\n\
         Runtime API on loopback, after one unmeasured start; the baseline is a hello-world\n\
         `lambda_runtime` function built with the same release profile. Each function runs with\n\
         the environment template.yaml deploys it with, read from the template (parameter\n\
         defaults, and a `WebhookUrl`): the token keys and the webhook secret by ARN\n\
         (`TOKEN_SECRET_ARN`, `WEBHOOK_SECRET_ARN`), read on first use. The size target is\n\
         6 MiB (6,291,456 bytes).\n\n\
         {cold}\n\
         Init does no TLS and builds no client: the SDK's clients are built on first use\n\
         (each service crate parses its endpoint partition table when its first client is\n\
         built), the TLS connector and root certificates are loaded by the first request, and\n\
         credentials and region come from the environment before aws-config's default chains\n\
         (which would build STS and IMDS clients) are ever built. Before that work the SDK\n\
         functions took 6 times the hello-world's init here, mostly root-certificate loading\n\
         (bundle and certificate directory) repeated for every client.\n\n\
         ## First invocation\n\n\
         What init no longer does, the first invocation does. notify-connection (unpaced,\n\
         `POST_RATE_LIMIT=0`: the budget's DynamoDB booking has no stand-in) gets one SQS\n\
         event from the stub Runtime API and posts one message to a Management API stand-in\n\
         served over TLS on 127.0.0.1 (a certificate made for the run, added to a copy of the\n\
         platform bundle given as `SSL_CERT_FILE`, as Lambda's one bundle file): the column is\n\
         the time from handing over the event to the function's response, which must report no\n\
         failure after exactly one post. `WARM_CONNECTIONS=true` opens that connection during\n\
         init instead (one post to a connection id API Gateway never issues, answered 410); the\n\
         handshake count shows the invocation reused it. For an on-demand cold start, init and\n\
         the first invocation add up, so warming is off by default; it pays where init happens\n\
         ahead of traffic (provisioned concurrency, pre-warmed sandboxes).\n\n\
         connect's first connection after a deploy also fetches the token keys: with\n\
         `TOKEN_SECRET_ARN`, one `GetSecretValue` to a Secrets Manager stand-in on the same TLS\n\
         endpoint (`AWS_ENDPOINT_URL_SECRETS_MANAGER`), against the keys given in plaintext\n\
         (`TOKEN_SECRET`). The event is `events/connect.json`, whose token the stand-in's keys\n\
         refuse (401): refusing it needs the keys, and nothing after the refusal needs DynamoDB,\n\
         so the difference between the two rows is the fetch.\n\n\
         {first}\n\
         {post_cpu}\n\
         ## Handler cost\n\n\
         CPU per invocation over in-memory adapters (criterion, `cargo bench -p switchboard-bench\n\
         --bench handler`), against the floor of parsing the same 10-record SQS event and\n\
         answering it. \"with ids\" is the idempotency check and record on an in-memory log; on\n\
         AWS it is one BatchGetItem and one BatchWriteItem per post instead.\n\n\
         {handlers}\n\
         ## History and recovery\n\n\
         Handler cost per message of NotifyUser with and without user-stream history (the two\n\
         notify-user rows above, 10 records of 10 users with 3 connections, one asking for\n\
         envelopes; fresh SQS message ids every round, so every append is new), and the AWS\n\
         requests history adds per message, as `shared/tests/moto.rs`\n\
         (`history_request_counts_per_message_and_per_recovery`) asserts them. On AWS the\n\
         appends' DynamoDB round trips, not this CPU, are the cost.\n\n\
         Recovery: on the local stack (SDK posts, as on AWS), one client with `?envelope=1`\n\
         receives N NotifyUser messages live (from the first enqueue to the last frame); then it\n\
         disconnects, N more are sent and kept, it reconnects and sends one `recover` (from\n\
         sending it to the `recovered` frame). Recovery posts each missed message in order from\n\
         the actions handler; live delivery goes through notify-user, the NotifyConnection queue\n\
         and notify-connection's concurrent posts.\n\n\
         {history}\n\
         ## AWS requests per delivered message\n\n\
         Counted at the adapter layer on moto by `shared/tests/moto.rs`\n\
         (`request_counts_per_delivered_message_by_target`, part of `make test`, which asserts these\n\
         exact numbers; 250 connections, group pages of 100). Idempotency ids add, per delivered\n\
         message, 0.05 requests on group and broadcast sends and 2 on notify-connection.\n\n\
         {requests}\n\
         ## Upstream events\n\n\
         `$connect` through the local stack with a connect hook (a loopback receiver answering\n\
         204, the request signed) against the same stack without one; handshakes alternate\n\
         between the two, after 20 unmeasured each, from the TCP connect to the 101.\n\n\
         {hook}\n\
         AWS requests per event, by sink (counted at the adapter layer by\n\
         `shared/tests/upstream.rs`, `aws_requests_per_event_by_sink`):\n\n\
         {upstream_requests}\n\
         ## Client library size\n\n\
         `clients/js` as a page loads it (esbuild: bundled, minified, gzip level 9), beside the\n\
         browser clients of two peers measured the same way in the same run\n\
         (`clients/js/scripts/size.mjs`, pinned devDependencies). Budget: 6 KB.\n\n\
         {js}\n\
         {build}",
        date = today(),
        machine = machine(),
        fanout = fanout_table(fanout),
        cold = coldstart_table(cold),
        first = firstcall_table(first),
        post_cpu = post_cpu_section(post_cpu),
        handlers = handler_table(handlers),
        history = history_tables(handlers, recovery),
        requests = REQUEST_COUNTS,
        hook = upstream_table(hook),
        upstream_requests = UPSTREAM_REQUESTS,
        js = js_size_table(JS_SIZE_FILE),
        build = BUILD_CHOICES,
    )
}

/// Where `make bench` leaves `node clients/js/scripts/size.mjs --json`.
pub const JS_SIZE_FILE: &str = "target/js-size.json";

/// The client library's size beside the peers' (from [`JS_SIZE_FILE`]).
pub fn js_size_table(path: &str) -> String {
    let Some(sizes) = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
    else {
        return format!("(not measured: {path} is missing; `make bench` writes it)\n");
    };
    let own = sizes["own"]["gzipped"].as_u64().unwrap_or(0).max(1);
    let row = |size: &serde_json::Value| {
        let gzipped = size["gzipped"].as_u64().unwrap_or(0);
        format!(
            "| {} | {} | {} | {:.2} |\n",
            size["name"].as_str().unwrap_or("?"),
            size["minified"].as_u64().unwrap_or(0),
            gzipped,
            gzipped as f64 / own as f64
        )
    };
    let mut table = String::from(
        "| client | minified bytes | minified+gzipped bytes | ratio (gzipped) |\n|---|---|---|---|\n",
    );
    table.push_str(&row(&sizes["own"]));
    for peer in sizes["peers"].as_array().into_iter().flatten() {
        table.push_str(&row(peer));
    }
    table
}

/// The faults table: time to the last client with and without injected faults.
pub fn faults_table(rows: &[crate::faults::Row]) -> String {
    let mut out = String::from(
        "| target | N | no faults: ms to the last client | faults: ms to the last client | ratio | within 10 s |\n|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.0} | {:.1} | {} |",
            row.target,
            row.n,
            row.clean_ms,
            row.faults_ms,
            row.faults_ms / row.clean_ms,
            verdict(row.faults_ms <= crate::faults::GOAL_MS)
        );
    }
    out
}

pub const LATENCY_HEADING: &str = "## Latency under AWS latency";

/// The latency table: each case's p50 and p99 in every column of
/// [`crate::latency::COLUMNS`], same run.
pub fn latency_table(rows: &[crate::latency::Row]) -> String {
    let columns = crate::latency::COLUMNS;
    let mut out = String::from("| case | rounds |");
    for column in columns {
        let _ = write!(out, " {0}: p50 ms | {0}: p99 ms |", column.name);
    }
    out.push_str("\n|---|---|");
    out.push_str(&"---|---|".repeat(columns.len()));
    out.push('\n');
    for row in rows {
        let _ = write!(out, "| {} | {} |", row.case.name, row.case.rounds);
        for times in &row.times {
            let _ = write!(out, " {:.1} | {:.1} |", times.p50_ms, times.p99_ms);
        }
        out.push('\n');
    }
    out
}

/// The latency section of BENCHMARKS.md, heading included.
pub fn latency_section(rows: &[crate::latency::Row]) -> String {
    format!(
        "{LATENCY_HEADING}\n\n\
         The common sends end to end on the local stack (posts in process), real WebSocket\n\
         clients on 127.0.0.1: from the sender's frame (a client `publish`, the sender a member\n\
         and excluded) or request (`POST /queues/notify-user`, `POST /send`) to the last\n\
         receiver's frame, one message at a time, after one warm-up round; p50 and p99 of the\n\
         rounds (nearest rank). Each case runs on a stack of its own with no emulated latency\n\
         and with `--aws-latency` (every hop at AWS's time:\n\
         [docs/local-stack.md](docs/local-stack.md#aws-latency)), same run. Every send takes the\n\
         queued path: a publish and `POST /send` cross the Deliveries queue, a NotifyUser the\n\
         NotifyUser and NotifyConnection queues. The goal for a publish to 5 under AWS latency\n\
         is p50 50 ms and p99 150 ms.\n\n\
         {table}",
        table = latency_table(rows)
    )
}

pub const FAULTS_HEADING: &str = "## Under injected faults";

/// The faults section of BENCHMARKS.md, heading included.
pub fn faults_section(rows: &[crate::faults::Row]) -> String {
    let rate = rows.first().map_or(0.2, |r| r.fault_rate);
    format!(
        "{FAULTS_HEADING}\n\n\
         The fan-out sends above (SDK posts) with the template's 60 s visibility timeout, on a\n\
         stack whose Management API fails {pct:.0} % of posts (`--fault-rate {rate}`: a third\n\
         each 429, 500, and a 5 s stall, past the 1 s attempt timeout), against the same sends\n\
         on the same stack settings without faults, same run; median of the measured rounds.\n\
         A failed post is retried inside the invocation with jittered backoff, then handed\n\
         back to its queue for a try in 1-2 s (docs/protocol.md, \"Delivery semantics\"); before that, a\n\
         failed NotifyConnection record waited out the 60 s visibility timeout (63 to 126 s to\n\
         the last of 100 clients). The goal: every client within 10 s.\n\n\
         {table}",
        pct = rate * 100.0,
        table = faults_table(rows)
    )
}

#[cfg(test)]
mod js_size_tests {
    #[test]
    fn the_js_size_table_reads_the_size_script_output() {
        let path = std::env::temp_dir().join(format!("js-size-{}.json", std::process::id()));
        std::fs::write(
            &path,
            r#"{"budget":6144,"own":{"name":"switchboard-client","minified":100,"gzipped":40},"peers":[{"name":"p 1.0","minified":900,"gzipped":200}]}"#,
        )
        .unwrap();
        let table = super::js_size_table(path.to_str().unwrap());
        assert!(
            table.contains("| switchboard-client | 100 | 40 | 1.00 |"),
            "{table}"
        );
        assert!(table.contains("| p 1.0 | 900 | 200 | 5.00 |"), "{table}");
        assert!(super::js_size_table("/nonexistent/x.json").contains("not measured"));
    }
}

#[cfg(test)]
mod scale_section_tests {
    use super::{SCALE_HEADING, section_of, with_section};

    #[test]
    fn the_scale_section_replaces_its_own_and_keeps_the_others() {
        let doc = "# B\n\n## Fan-out\n\nf\n\n## Build choices\n\nb\n";
        let added = with_section(doc, SCALE_HEADING, "## Scale under AWS quotas\n\none\n");
        assert_eq!(
            added,
            "# B\n\n## Fan-out\n\nf\n\n## Scale under AWS quotas\n\none\n\n## Build choices\n\nb\n"
        );
        let replaced = with_section(&added, SCALE_HEADING, "## Scale under AWS quotas\n\ntwo\n");
        assert_eq!(replaced, added.replace("one", "two"));
        assert_eq!(
            section_of(&replaced, SCALE_HEADING).as_deref(),
            Some("## Scale under AWS quotas\n\ntwo\n")
        );
        // make bench rewrites the document and keeps the section.
        let kept = with_section(
            doc,
            SCALE_HEADING,
            &section_of(&replaced, SCALE_HEADING).unwrap(),
        );
        assert_eq!(kept, replaced);
    }
}
