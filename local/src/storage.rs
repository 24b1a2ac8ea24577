//! Where the stack keeps its state: connection records, memberships, the sent
//! log, the stream history and the four queues, in memory or on AWS (DynamoDB
//! and SQS; history in memory unless a history table is named).

use std::sync::Arc;

use aws_config::SdkConfig;
use switchboard::adapters::dynamodb::{DynamoHistory, DynamoMemberships, DynamoStore};
use switchboard::adapters::memory::{MemoryHistory, MemoryMemberships, MemorySentLog, MemoryStore};
use switchboard::adapters::sqs::SqsQueue;
use switchboard::ports::{ConnectionStore, History, MembershipStore, MessageQueue, SentLog};

use crate::config::{Backend, Config};
use crate::delayed::Delayed;
use crate::emulation::Latency;
use crate::producer::{Producer, Producers};
use crate::queues::LocalQueue;

/// The stores and queues the handlers work with.
pub(crate) struct Storage {
    pub(crate) store: Arc<dyn ConnectionStore>,
    pub(crate) memberships: Arc<dyn MembershipStore>,
    /// Stream history (see `switchboard::history`).
    pub(crate) history: Arc<dyn History>,
    /// Idempotency records (message id, connection) with expiry.
    pub(crate) sent_log: Arc<dyn SentLog>,
    /// Where notify-user puts its NotifyConnection messages.
    pub(crate) fanout_queue: Arc<dyn MessageQueue>,
    /// The Deliveries queue as the queue every fan-out writes to.
    pub(crate) deliveries_queue: Arc<dyn MessageQueue>,
    /// The queues as their producers and event sources see them.
    pub(crate) producers: Producers,
}

impl Storage {
    /// Opens the stores and queues `config.backend` names (`sdk` reaches AWS),
    /// each store call taking DynamoDB's time when `--dynamodb-latency` says.
    pub(crate) fn open(config: &Config, sdk: &SdkConfig) -> Storage {
        Storage::open_backend(config, sdk).delayed(config.aws_latency.store)
    }

    /// Every store behind [`Delayed`] (as it is when `latency` is none).
    fn delayed(self, latency: Latency) -> Storage {
        Storage {
            store: Delayed::wrap(self.store, latency),
            memberships: Delayed::wrap(self.memberships, latency),
            history: Delayed::wrap(self.history, latency),
            sent_log: Delayed::wrap(self.sent_log, latency),
            ..self
        }
    }

    fn open_backend(config: &Config, sdk: &SdkConfig) -> Storage {
        match &config.backend {
            Backend::Memory => Storage::memory(config),
            Backend::Aws {
                table,
                memberships_table,
                notify_user_queue_url,
                notify_connection_queue_url,
                commands_queue_url,
                deliveries_queue_url,
                history_table,
                ..
            } => {
                let sqs = switchboard::aws::sqs(sdk);
                let dynamodb = switchboard::aws::dynamodb(sdk);
                let producer = |url: &str| Producer::Sqs {
                    client: sqs.clone(),
                    url: url.to_owned(),
                };
                // Idempotency records live in the connections table, as on AWS.
                let connections = Arc::new(DynamoStore::new(dynamodb.clone(), table));
                let (deliveries, deliveries_queue) = match deliveries_queue_url {
                    Some(url) => (
                        producer(url),
                        Arc::new(SqsQueue::new(sqs.clone(), url)) as Arc<dyn MessageQueue>,
                    ),
                    None => local_pair(config, "deliveries"),
                };
                let history: Arc<dyn History> = match history_table {
                    Some(table) => Arc::new(DynamoHistory::new(dynamodb.clone(), table)),
                    None => Arc::new(MemoryHistory::keeping(config.settings.history.size)),
                };
                Storage {
                    store: connections.clone(),
                    sent_log: connections,
                    history,
                    memberships: Arc::new(DynamoMemberships::new(dynamodb, memberships_table)),
                    fanout_queue: Arc::new(SqsQueue::new(sqs.clone(), notify_connection_queue_url)),
                    deliveries_queue,
                    producers: Producers {
                        notify_user: producer(notify_user_queue_url),
                        notify_connection: producer(notify_connection_queue_url),
                        commands: match commands_queue_url {
                            Some(url) => producer(url),
                            None => Producer::Local(local_queue(config, "commands")),
                        },
                        deliveries,
                        upstream: upstream_queue(config),
                    },
                }
            }
        }
    }

    /// Everything in this process.
    fn memory(config: &Config) -> Storage {
        let (notify_connection, fanout_queue) = local_pair(config, "notify-connection");
        let (deliveries, deliveries_queue) = local_pair(config, "deliveries");
        Storage {
            store: Arc::new(MemoryStore::new()),
            memberships: Arc::new(MemoryMemberships::new()),
            sent_log: Arc::new(MemorySentLog::new()),
            history: Arc::new(MemoryHistory::keeping(config.settings.history.size)),
            fanout_queue,
            deliveries_queue,
            producers: Producers {
                notify_user: Producer::Local(local_queue(config, "notify-user")),
                notify_connection,
                commands: Producer::Local(local_queue(config, "commands")),
                deliveries,
                upstream: upstream_queue(config),
            },
        }
    }
}

/// The Upstream queue, in memory, when `--webhook` is given.
fn upstream_queue(config: &Config) -> Option<Producer> {
    config
        .upstream
        .webhook
        .as_ref()
        .map(|_| Producer::Local(local_queue(config, "upstream")))
}

/// An in-memory queue with the configured visibility timeout and receive count.
fn local_queue(config: &Config, name: &str) -> Arc<LocalQueue> {
    Arc::new(
        LocalQueue::new(name, config.visibility_timeout, config.max_receive_count)
            .with_latency(config.aws_latency.queue),
    )
}

/// An in-memory queue as its producer and as the handlers' queue port.
fn local_pair(config: &Config, name: &str) -> (Producer, Arc<dyn MessageQueue>) {
    let queue = local_queue(config, name);
    (Producer::Local(queue.clone()), queue)
}
