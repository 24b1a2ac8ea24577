//! The capacity model behind the capacity table in docs/server-api.md: what one broadcast
//! or one group send to N connections costs on AWS and how long it takes,
//! from the fan-out's own constants ([`SHARDS`], [`DELIVERY_BATCH`],
//! [`MAX_BATCH`]), the template's memory size and deliver concurrency, the
//! measured CPU per post (BENCHMARKS.md, "CPU per post") and list prices.
//! `tests/capacity.rs` recomputes the table and compares it with the
//! page, so the two cannot drift.

use std::fmt::Write;

use switchboard::ports::{MAX_BATCH, SHARDS};
use switchboard::protocol::DELIVERY_BATCH;

/// Lambda gives a function one vCPU's worth of CPU at 1,769 MB, in
/// proportion below it (<https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html>).
pub const MB_PER_VCPU: f64 = 1769.0;

/// API Gateway's account-level throttle per Region (steady rate), shared by
/// every API of the account including `POST @connections`
/// (<https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html>).
pub const ACCOUNT_REQUESTS_PER_SECOND: f64 = 10_000.0;

/// DynamoDB's largest Query page.
const PAGE_BYTES: f64 = 1024.0 * 1024.0;
/// One read request unit: 4 KB read strongly, or twice that eventually consistent.
const READ_UNIT_BYTES: f64 = 4096.0;

/// List prices, us-east-1.
#[derive(Debug, Clone, Copy)]
pub struct Prices {
    /// API Gateway WebSocket messages, per million (32 KB increments),
    /// <https://aws.amazon.com/api-gateway/pricing/>.
    pub websocket_message: f64,
    /// Lambda requests, per million, <https://aws.amazon.com/lambda/pricing/>.
    pub lambda_request: f64,
    /// Lambda duration on arm64 (the template's architecture), per GB-second.
    pub lambda_gb_second: f64,
    /// DynamoDB on-demand read request units, per million,
    /// <https://aws.amazon.com/dynamodb/pricing/on-demand/>.
    pub read_request_unit: f64,
    /// DynamoDB on-demand write request units, per million (same page).
    pub write_request_unit: f64,
    /// SQS standard requests (64 KB chunks), per million, <https://aws.amazon.com/sqs/pricing/>.
    pub sqs_request: f64,
}

pub const US_EAST_1: Prices = Prices {
    websocket_message: 1.00,
    lambda_request: 0.20,
    lambda_gb_second: 0.000_013_333_4,
    read_request_unit: 0.125,
    write_request_unit: 0.625,
    sqs_request: 0.40,
};

/// What the table is computed from. `measured` figures come from `make
/// bench`; `modelled` ones are assumptions stated in docs/server-api.md.
#[derive(Debug, Clone, Copy)]
pub struct Model {
    /// Every function's `MemorySize` (template.yaml, Globals).
    pub memory_mb: f64,
    /// `DeliverMaxConcurrency`'s default (template.yaml).
    pub deliver_max_concurrency: f64,
    /// Posts in flight per deliver invocation (`POST_CONCURRENCY`'s default).
    pub post_concurrency: f64,
    /// The stack's budget of posts a second (`PostRateLimit`'s default; see
    /// [`switchboard::pacing`]), at most the account's throttle.
    pub post_rate: f64,
    /// Measured: CPU per post, microseconds (the adapter, no TLS).
    pub cpu_per_post_us: f64,
    /// Modelled: one post's round trip to the Management API, ms.
    pub post_latency_ms: f64,
    /// Modelled: one DynamoDB or SQS call's round trip, ms.
    pub call_latency_ms: f64,
    /// Modelled: a deliver invocation's fixed cost (event, runtime), ms.
    pub invocation_overhead_ms: f64,
    /// Modelled: from the send to the first deliver invocation, seconds.
    pub pipeline_s: f64,
    /// Modelled: bytes of one `byShard` index entry as DynamoDB meters it.
    pub shard_entry_bytes: f64,
    /// Modelled: bytes of one membership item.
    pub member_item_bytes: f64,
    /// The frame posted, bytes (one 32 KB API Gateway message at most).
    pub frame_bytes: f64,
    pub prices: Prices,
}

/// Broadcast or group send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Broadcast,
    Group,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub target: Target,
    pub connections: u64,
    pub seconds: f64,
    pub invocations: u64,
    pub gb_seconds: f64,
    pub queries: u64,
    pub read_units: f64,
    /// Bookings of the post budget: one conditional UpdateItem (one write
    /// unit) per Deliveries message.
    pub write_units: u64,
    pub sqs_requests: u64,
    pub messages: u64,
    pub cost: f64,
}

fn ceil_div(a: u64, b: u64) -> u64 {
    a.div_ceil(b.max(1))
}

impl Model {
    /// One deliver invocation (100 posts) on its own, ms: booking them from
    /// the post budget (one call), then the posts' round trips
    /// `post_concurrency` at a time, or the CPU they need at this memory
    /// size, whichever is longer.
    pub fn deliver_ms(&self) -> f64 {
        let batch = DELIVERY_BATCH as f64;
        let cpu_share = self.memory_mb / MB_PER_VCPU;
        let cpu_bound = batch * self.cpu_per_post_us / 1000.0 / cpu_share;
        let latency_bound = (batch / self.post_concurrency).ceil() * self.post_latency_ms;
        self.invocation_overhead_ms + self.call_latency_ms + cpu_bound.max(latency_bound)
    }

    /// The post rate of a big fan-out: the budget (at most the account's
    /// throttle), unless the deliver concurrency bounds it first.
    pub fn fanout_rate(&self) -> f64 {
        let instances = self.deliver_max_concurrency * DELIVERY_BATCH as f64 * 1000.0
            / self.deliver_ms().ceil();
        self.post_rate
            .min(ACCOUNT_REQUESTS_PER_SECOND)
            .min(instances)
    }

    /// One deliver invocation in a big fan-out, ms: when the instances could
    /// post faster than the rate, each waits its booked turn, so an
    /// invocation lasts as long as every instance's 100 posts take at the rate.
    pub fn paced_deliver_ms(&self) -> f64 {
        let turn =
            self.deliver_max_concurrency * DELIVERY_BATCH as f64 * 1000.0 / self.fanout_rate();
        self.deliver_ms().ceil().max(turn.ceil())
    }

    /// Posts per second one instance can make on CPU alone at `memory_mb`.
    pub fn posts_per_second_per_instance(&self, memory_mb: f64) -> f64 {
        1e6 / self.cpu_per_post_us * (memory_mb / MB_PER_VCPU)
    }

    pub fn row(&self, target: Target, connections: u64) -> Row {
        let n = connections as f64;
        let deliveries = ceil_div(connections, DELIVERY_BATCH as u64);
        let batches = ceil_div(deliveries, MAX_BATCH as u64);
        // Reads: the 16 shards' keys-only index, or the group's items, in 1 MB
        // pages, each page metered in 4 KB units at half a unit (eventually
        // consistent).
        let (queries, read_units) = match target {
            Target::Broadcast => {
                let shard_bytes = (n / f64::from(SHARDS)).ceil() * self.shard_entry_bytes;
                let pages = (shard_bytes / PAGE_BYTES).ceil().max(1.0);
                let units = (shard_bytes / READ_UNIT_BYTES).ceil() * 0.5;
                (u64::from(SHARDS) * pages as u64, f64::from(SHARDS) * units)
            }
            Target::Group => {
                let bytes = n * self.member_item_bytes;
                let pages = (bytes / PAGE_BYTES).ceil().max(1.0);
                (pages as u64, (bytes / READ_UNIT_BYTES).ceil() * 0.5)
            }
        };
        // The api (or commands) invocation: pages read one after another,
        // batches sent as they fill.
        let sender_ms = self.invocation_overhead_ms
            + (queries as f64
                / f64::from(if target == Target::Broadcast {
                    SHARDS
                } else {
                    1
                }))
            .ceil()
                * self.call_latency_ms
            + batches as f64 * self.call_latency_ms;
        // A send smaller than every instance's turn together takes no turn.
        let deliver_ms = if deliveries as f64 > self.deliver_max_concurrency {
            self.paced_deliver_ms()
        } else {
            self.deliver_ms().ceil()
        };
        let seconds = self.pipeline_s + n / self.fanout_rate();
        let invocations = deliveries + 1;
        let gb = self.memory_mb / 1024.0;
        let gb_seconds = (deliveries as f64 * deliver_ms + sender_ms.ceil()) / 1000.0 * gb;
        // SendMessageBatch calls, plus one receive and one delete per
        // Deliveries message by the event source (an upper bound: Lambda's
        // pollers may receive and delete several at once).
        let sqs_requests = batches + 2 * deliveries;
        let messages = connections * (self.frame_bytes / 32768.0).ceil().max(1.0) as u64;
        let p = &self.prices;
        let cost = messages as f64 * p.websocket_message / 1e6
            + invocations as f64 * p.lambda_request / 1e6
            + gb_seconds * p.lambda_gb_second
            + read_units * p.read_request_unit / 1e6
            + deliveries as f64 * p.write_request_unit / 1e6
            + sqs_requests as f64 * p.sqs_request / 1e6;
        Row {
            target,
            connections,
            seconds,
            invocations,
            gb_seconds,
            queries,
            read_units,
            write_units: deliveries,
            sqs_requests,
            messages,
            cost,
        }
    }

    /// The documented table: broadcast and group send to 10k, 100k and 1M.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| send | connections | time to reach everyone | Lambda invocations | Lambda GB-s | DynamoDB Queries (read units) | DynamoDB writes (post budget) | SQS requests | API Gateway messages | cost, us-east-1 |\n\
             |---|---|---|---|---|---|---|---|---|---|\n",
        );
        for target in [Target::Broadcast, Target::Group] {
            for n in [10_000, 100_000, 1_000_000] {
                let r = self.row(target, n);
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.1} s | {} | {:.1} | {} ({}) | {} | {} | {} | ${:.4} |",
                    match target {
                        Target::Broadcast => "broadcast",
                        Target::Group => "group send to all",
                    },
                    thousands(n),
                    r.seconds,
                    thousands(r.invocations),
                    r.gb_seconds,
                    thousands(r.queries),
                    thousands(r.read_units.ceil() as u64),
                    thousands(r.write_units),
                    thousands(r.sqs_requests),
                    thousands(r.messages),
                    r.cost,
                );
            }
        }
        let d = self.deliver_ms().ceil();
        let p = self.paced_deliver_ms();
        let rate = thousands(self.fanout_rate() as u64);
        let _ = writeln!(
            out,
            "\nOne deliver invocation (100 posts at {} MB): {d:.0} ms on its own, {p:.0} ms in a big fan-out (50 instances taking turns at {rate} posts/s); CPU alone allows {} posts/s per instance at 128 MB, {} at 512 MB and {} at 1,769 MB.",
            self.memory_mb,
            thousands(self.posts_per_second_per_instance(128.0) as u64),
            thousands(self.posts_per_second_per_instance(512.0) as u64),
            thousands(self.posts_per_second_per_instance(1769.0) as u64),
        );
        out
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separates_groups() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }
}
