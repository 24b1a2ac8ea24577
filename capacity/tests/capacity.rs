//! The capacity table in docs/server-api.md is what `switchboard_capacity` computes from
//! the fan-out's constants, template.yaml's memory size and deliver
//! concurrency, and the measured CPU per post: change any of them and this
//! test names the table to paste.

use switchboard_capacity::{Model, Target, US_EAST_1};

/// Measured: the adapter's CPU per post (BENCHMARKS.md, "CPU per post",
/// Switchboard's adapter row), microseconds.
const CPU_PER_POST_US: f64 = 139.2;

fn template() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap()
}

/// The number after `key:` on the first line at or after the line holding `after`.
fn number_after(text: &str, after: &str, key: &str) -> f64 {
    let start = text
        .find(after)
        .unwrap_or_else(|| panic!("{after} not in template.yaml"));
    text[start..]
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix(key)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {key} after {after} in template.yaml"))
}

fn model() -> Model {
    let template = template();
    Model {
        memory_mb: number_after(&template, "Globals:", "MemorySize:"),
        deliver_max_concurrency: number_after(&template, "  DeliverMaxConcurrency:", "Default:"),
        post_concurrency: switchboard::posting::PostingPolicy::default().concurrency as f64,
        post_rate: number_after(&template, "  PostRateLimit:", "Default:"),
        cpu_per_post_us: CPU_PER_POST_US,
        post_latency_ms: 10.0,
        call_latency_ms: 10.0,
        invocation_overhead_ms: 5.0,
        pipeline_s: 0.5,
        shard_entry_bytes: 135.0,
        member_item_bytes: 200.0,
        frame_bytes: 200.0,
        prices: US_EAST_1,
    }
}

#[test]
fn the_documented_capacity_table_is_the_computed_one() {
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/server-api.md"
    ))
    .unwrap();
    let begin = "<!-- capacity table: capacity/tests/capacity.rs -->\n";
    let end = "<!-- end of the capacity table -->";
    let start = page
        .find(begin)
        .expect("docs/server-api.md has no capacity table")
        + begin.len();
    let stop = start
        + page[start..]
            .find(end)
            .expect("the capacity table has no end");
    let expected = model().table();
    assert_eq!(
        &page[start..stop],
        expected,
        "the capacity table in docs/server-api.md is stale; paste:\n{expected}"
    );
}

#[test]
fn the_quota_bounds_the_big_sends_and_nothing_reads_every_item_twice() {
    let model = model();
    let million = model.row(Target::Broadcast, 1_000_000);
    // 1,000,000 posts at the budget's 9,500/s, plus the pipeline.
    assert!(
        (million.seconds - (0.5 + 1e6 / 9_500.0)).abs() < 1e-9,
        "{}",
        million.seconds
    );
    assert_eq!(million.invocations, 10_001);
    assert_eq!(million.messages, 1_000_000);
    // 1,000 SendMessageBatch calls, 10,000 receives and 10,000 deletes.
    assert_eq!(million.sqs_requests, 21_000);
    // One booking of the post budget per Deliveries message.
    assert_eq!(million.write_units, 10_000);
    // 50 instances taking turns at 9,500 posts/s: 527 ms an invocation.
    assert_eq!(model.paced_deliver_ms(), 527.0);
    // Keys only: one read unit per 50 connections or better.
    assert!(
        million.read_units < 1_000_000.0 / 50.0,
        "{}",
        million.read_units
    );
    let group = model.row(Target::Group, 10_000);
    assert_eq!(group.queries, 2);
}
