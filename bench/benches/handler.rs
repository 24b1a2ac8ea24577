//! Handler cost: CPU per invocation over in-memory adapters, against the floor
//! of receiving the same event and answering it (parse + empty response).
//!
//! `cargo bench -p switchboard-bench --bench handler`; `make bench` copies the
//! estimates into BENCHMARKS.md.

use std::sync::Arc;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use switchboard::adapters::memory::{
    MemoryGateway, MemoryHistory, MemoryMemberships, MemoryQueue, MemorySentLog, MemoryStore,
};
use switchboard::aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use switchboard::handlers::deliver::handle_deliveries;
use switchboard::handlers::notify_connection::handle_notify_connection;
use switchboard::handlers::notify_user::notify_user_batch;
use switchboard::metrics::{Invocation, MetricsSink, measure};
use switchboard::retry::AdaptiveLimit;
use switchboard::services::Services;
use switchboard::services::Settings;

/// What the Lambda mains do at the end of an invocation (`metrics::Emf`),
/// up to the write: the EMF lines are built, then dropped instead of written
/// to stdout.
struct EmfLinesDropped;

impl MetricsSink for EmfLinesDropped {
    fn export(&self, function: &'static str, invocation: &Invocation) {
        std::hint::black_box(invocation.emf_lines(function, 1_800_000_000_000));
    }
}

/// The event as Lambda hands it over: JSON text.
fn wire(bodies: &[String]) -> String {
    let records: Vec<_> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            serde_json::json!({
                "messageId": format!("m{i}"),
                "receiptHandle": "r",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
            })
        })
        .collect();
    serde_json::json!({ "Records": records }).to_string()
}

fn handlers(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let gateway = Arc::new(MemoryGateway::discarding());
    let ids: Vec<String> = (0..100).map(|i| format!("conn-{i:03}")).collect();
    for id in &ids {
        gateway.open(id);
    }
    let notify: Vec<String> = ids[..10]
        .iter()
        .map(|id| {
            format!(r#"{{"connectionId":"{id}","data":{{"download":"report.pdf","ready":true}}}}"#)
        })
        .collect();
    let notify_wire = wire(&notify);
    // One instance's limit on posts in flight, as the main holds it.
    let limit = AdaptiveLimit::new(Settings::default().posting.concurrency);
    let services = Services {
        store: Arc::new(MemoryStore::new()),
        memberships: Arc::new(MemoryMemberships::new()),
        gateway: gateway.clone(),
        deliveries: Arc::new(MemoryQueue::new()),
        sent_log: None,
        history: None,
        settings: Arc::new(Settings::default()),
        upstream: Default::default(),
    };

    let mut group = c.benchmark_group("per invocation");
    group.bench_function(
        "baseline: parse a 10-record SQS event, answer no failures",
        |b| {
            b.iter(|| {
                let event: SqsEvent = serde_json::from_str(&notify_wire).expect("event");
                let response = SqsBatchResponse::default();
                std::hint::black_box((event, response))
            })
        },
    );
    group.bench_function("notify-connection: 10 records", |b| {
        b.iter(|| {
            let event: SqsEvent = serde_json::from_str(&notify_wire).expect("event");
            runtime.block_on(handle_notify_connection(&services, &limit, event))
        })
    });
    // The same invocation measured as the main measures it: counters, then the EMF line.
    group.bench_function("notify-connection: 10 records, with metrics", |b| {
        b.iter(|| {
            let event: SqsEvent = serde_json::from_str(&notify_wire).expect("event");
            let handled = handle_notify_connection(&services, &limit, event);
            runtime.block_on(measure(&EmfLinesDropped, "notify-connection", handled))
        })
    });
    // Idempotency: every record carries an id. First deliveries get fresh ids
    // (made outside the timed part); redeliveries repeat ids already posted.
    let with_ids = |round: u64| -> String {
        let bodies: Vec<String> = ids[..10]
            .iter()
            .map(|id| {
                format!(
                    r#"{{"connectionId":"{id}","data":{{"download":"report.pdf","ready":true}},"id":"m-{round}"}}"#
                )
            })
            .collect();
        wire(&bodies)
    };
    let idempotent = Services {
        sent_log: Some(Arc::new(MemorySentLog::new())),
        ..services.clone()
    };
    // One invocation with ids: parse the event, then handle it.
    let idempotent_run = |wire: &str| {
        let event: SqsEvent = serde_json::from_str(wire).expect("event");
        runtime.block_on(handle_notify_connection(&idempotent, &limit, event))
    };
    let mut round = 0u64;
    group.bench_function(
        "notify-connection: 10 records with ids, first delivery",
        |b| {
            b.iter_batched(
                || {
                    round += 1;
                    with_ids(round)
                },
                |w| idempotent_run(&w),
                BatchSize::SmallInput,
            )
        },
    );
    let repeat = with_ids(0);
    idempotent_run(&repeat);
    group.bench_function(
        "notify-connection: 10 records with ids, redelivery (skipped)",
        |b| b.iter(|| idempotent_run(&repeat)),
    );
    let frame = r#"{"type":"message","from":"server","group":"g","data":{"download":"report.pdf","ready":true}}"#;
    let batch = vec![
        serde_json::json!({"connectionIds": ids, "frame": serde_json::from_str::<serde_json::Value>(frame).expect("frame"), "attempt": 1})
            .to_string(),
    ];
    let deliver_wire = wire(&batch);
    group.bench_function("deliver: 1 record, 100 connections", |b| {
        b.iter(|| {
            let event: SqsEvent = serde_json::from_str(&deliver_wire).expect("event");
            runtime.block_on(handle_deliveries(&services, event))
        })
    });
    group.bench_function("deliver: 1 record, 100 connections, with metrics", |b| {
        b.iter(|| {
            let event: SqsEvent = serde_json::from_str(&deliver_wire).expect("event");
            let handled = handle_deliveries(&services, event);
            runtime.block_on(measure(&EmfLinesDropped, "deliver", handled))
        })
    });
    // History: the same NotifyUser records (10 users with 3 connections each,
    // one asking for envelopes) without history and with the user streams
    // kept (in memory), fresh SQS message ids each round so every append is new.
    let users = Arc::new(MemoryStore::new());
    for u in 0..10 {
        for c in 0..3 {
            let record = switchboard::ports::ConnectionRecord {
                connection_id: format!("u{u}-c{c}"),
                user_id: format!("user-{u}"),
                envelope: c == 0,
                ..Default::default()
            };
            runtime
                .block_on(switchboard::ports::ConnectionStore::put_connection(
                    &*users, &record,
                ))
                .expect("record");
        }
    }
    let notify_users = |round: u64| -> String {
        let records: Vec<_> = (0..10)
            .map(|u| {
                serde_json::json!({
                    "messageId": format!("r{round}-m{u}"),
                    "receiptHandle": "r",
                    "body": format!(r#"{{"userId":"user-{u}","data":{{"download":"report.pdf","ready":true}}}}"#),
                    "attributes": {"ApproximateReceiveCount": "1"},
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                })
            })
            .collect();
        serde_json::json!({ "Records": records }).to_string()
    };
    let fanout_queue = Arc::new(MemoryQueue::new());
    let no_history = Services {
        store: users,
        deliveries: fanout_queue.clone(),
        ..services.clone()
    };
    let kept = Services {
        history: Some(Arc::new(MemoryHistory::new())),
        ..no_history.clone()
    };
    let notify_user_run = |wire: &str, services: &Services| {
        let event: SqsEvent = serde_json::from_str(wire).expect("event");
        let response = runtime
            .block_on(notify_user_batch(services, event))
            .into_response();
        fanout_queue.drain();
        response
    };
    let mut round = 0u64;
    group.bench_function("notify-user: 10 records, no history", |b| {
        b.iter_batched(
            || {
                round += 1;
                notify_users(round)
            },
            |w| notify_user_run(&w, &no_history),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("notify-user: 10 records, user streams keep history", |b| {
        b.iter_batched(
            || {
                round += 1;
                notify_users(round)
            },
            |w| notify_user_run(&w, &kept),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, handlers);
criterion_main!(benches);
