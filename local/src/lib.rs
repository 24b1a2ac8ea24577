//! Switchboard's local stack: the whole WebSocket API on one machine.
//!
//! It emulates API Gateway's WebSocket semantics (the handshake is held while
//! `$connect` runs, route selection on `$request.body.action`, route
//! responses, 128 KB messages, 32 KB frames, idle and maximum-duration
//! timeouts, `$disconnect`), serves the Management API on the same port, and
//! drives the queue handlers with SQS semantics. It calls the same handler
//! code as the Lambdas.

pub mod connections;
pub mod events;
mod management;
pub mod queues;
mod server;
mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use switchboard::adapters::dynamodb::{DynamoMemberships, DynamoStore};
use switchboard::adapters::management_api::ManagementApi;
use switchboard::adapters::memory::{MemoryMemberships, MemorySentLog, MemoryStore};
use switchboard::adapters::sqs::SqsQueue;
use switchboard::auth::{SecretError, TokenSecret, TokenVerifier};
use switchboard::config::{
    EnqueuePolicy, NEGOTIATE_DEFAULT_TTL, NEGOTIATE_MAX_TTL, NegotiateSettings, PostingPolicy,
    Settings,
};
use switchboard::groups::Grants;
use switchboard::handlers::commands::commands_batch;
use switchboard::handlers::deliver::deliveries_batch;
use switchboard::handlers::notify_connection::notify_connection_batch;
use switchboard::handlers::notify_user::notify_user_batch;
use switchboard::ports::{ConnectionStore, Gateway, MembershipStore, MessageQueue, SentLog};
use switchboard::posting::Posting;
use switchboard::services::Services;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use crate::connections::Connections;
use crate::management::{InProcessGateway, Management};
use crate::queues::{BatchHandler, DeadLetter, LocalQueue};

/// API Gateway's limits and timeouts, as the local stack applies them.
pub const MAX_MESSAGE_BYTES: usize = switchboard::protocol::MAX_MESSAGE_BYTES;
pub const MAX_FRAME_BYTES: usize = 32 * 1024;
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
pub const MAX_DURATION: Duration = Duration::from_secs(2 * 3600);

/// Where connections and queues live.
#[derive(Debug, Clone)]
pub enum Backend {
    /// In memory: nothing else to start.
    Memory,
    /// DynamoDB and SQS, at `endpoint` (moto, LocalStack) or at AWS.
    Aws {
        endpoint: Option<String>,
        table: String,
        memberships_table: String,
        notify_user_queue_url: String,
        notify_connection_queue_url: String,
        /// Commands and Deliveries queues; without them the stack keeps these
        /// two queues in memory.
        commands_queue_url: Option<String>,
        deliveries_queue_url: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    /// The stage path segment in URLs (`ws://host/{stage}`); any prefix is accepted.
    pub stage: String,
    /// The HS256 secret; `None` makes the stack generate a random one.
    pub token_secret: Option<String>,
    pub idle_timeout: Duration,
    pub max_duration: Duration,
    /// How long a failed queue message stays invisible before redelivery (in-memory queues).
    pub visibility_timeout: Duration,
    /// Receives before a failing message moves to the dead letters (in-memory queues).
    pub max_receive_count: u32,
    pub backend: Backend,
    pub notify_user: EnqueuePolicy,
    pub notify_connection: PostingPolicy,
    /// Groups whose joins and leaves are announced.
    pub presence: Grants,
    /// Client events one connection may publish per `publish_window`.
    pub publish_limit: u32,
    pub publish_window: Duration,
    /// Fault injection: the share of Management API posts (0.0 to 1.0) that
    /// answer 429 or 500 or stall for `fault_stall`, a third each.
    pub fault_rate: f64,
    pub fault_stall: Duration,
    /// How long a queue handler may run before it is cut off (Lambda's
    /// function timeout); its whole batch is then redelivered.
    pub handler_timeout: Duration,
    /// Batches each queue's handler works on at once (Lambda's maximum
    /// concurrency for an SQS event source).
    pub source_concurrency: usize,
    /// How the handlers reach the Management API.
    pub gateway: GatewayMode,
}

/// How the handlers' posts reach the connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GatewayMode {
    /// As on AWS: the AWS SDK's Management API client, SigV4-signed HTTP to
    /// this stack's own `/@connections/{id}`. Exercises the production adapter
    /// (error mapping, the SDK's timeouts and retries) on every post.
    #[default]
    Sdk,
    /// Straight to the stack's Management API code, with the same answers,
    /// faults, attempt timeout and retries, but no HTTP round trip. For load.
    InProcess,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 3001)),
            stage: "local".into(),
            token_secret: None,
            idle_timeout: IDLE_TIMEOUT,
            max_duration: MAX_DURATION,
            visibility_timeout: Duration::from_secs(2),
            max_receive_count: 5,
            backend: Backend::Memory,
            notify_user: EnqueuePolicy::default(),
            notify_connection: PostingPolicy::default(),
            presence: Settings::default().presence,
            publish_limit: Settings::default().publish_limit,
            publish_window: Settings::default().publish_window,
            fault_rate: 0.0,
            fault_stall: Duration::from_secs(5),
            handler_timeout: Duration::from_secs(30),
            source_concurrency: 16,
            gateway: GatewayMode::Sdk,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// Where producers' messages go: an in-memory queue or an SQS queue.
pub(crate) enum Producer {
    Local(Arc<LocalQueue>),
    Sqs {
        client: aws_sdk_sqs::Client,
        url: String,
    },
}

impl Producer {
    pub(crate) async fn send(&self, body: String) -> Result<String, String> {
        match self {
            Producer::Local(queue) => Ok(queue.send(body)),
            Producer::Sqs { client, url } => client
                .send_message()
                .queue_url(url)
                .message_body(body)
                .send()
                .await
                .map(|out| out.message_id().unwrap_or_default().to_owned())
                .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string()),
        }
    }

    pub(crate) fn dead_letters(&self) -> Option<Vec<DeadLetter>> {
        match self {
            Producer::Local(queue) => Some(queue.dead_letters()),
            Producer::Sqs { .. } => None,
        }
    }
}

/// State shared by the server, the sockets and the queue sources.
pub(crate) struct Stack {
    pub(crate) config: Config,
    pub(crate) services: Services,
    pub(crate) http: NegotiateSettings,
    pub(crate) verifier: Result<TokenVerifier, SecretError>,
    pub(crate) connections: Arc<Connections>,
    /// The Management API's post and delete (shares `connections` and `posts`).
    pub(crate) management: Arc<Management>,
    pub(crate) notify_user: Producer,
    pub(crate) notify_connection: Producer,
    pub(crate) commands: Producer,
    pub(crate) deliveries: Producer,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Management API posts by connection id (fault-tolerance tests read it);
    /// an entry goes when its connection closes.
    pub(crate) posts: Arc<std::sync::Mutex<std::collections::HashMap<String, u64>>>,
    /// Queue handlers cut off at `handler_timeout`.
    pub(crate) handler_timeouts: Arc<std::sync::atomic::AtomicU64>,
}

/// A started stack. Dropping it does not stop it; call [`RunningStack::shutdown`].
pub struct RunningStack {
    addr: SocketAddr,
    stack: Arc<Stack>,
    secret: TokenSecret,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningStack {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:3001/local`
    pub fn websocket_url(&self) -> String {
        format!("ws://{}/{}", self.addr, self.stack.config.stage)
    }

    /// `http://127.0.0.1:3001/local`: the Management API endpoint (`WEBSOCKET_ENDPOINT`).
    pub fn management_url(&self) -> String {
        format!("http://{}/{}", self.addr, self.stack.config.stage)
    }

    /// `http://127.0.0.1:3001`
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn secret(&self) -> &TokenSecret {
        &self.secret
    }

    pub fn store(&self) -> Arc<dyn ConnectionStore> {
        self.stack.services.store.clone()
    }

    pub fn memberships(&self) -> Arc<dyn MembershipStore> {
        self.stack.services.memberships.clone()
    }

    /// Puts `body` on a producer queue (`notify-user`, `notify-connection`,
    /// `commands`), exactly as `POST /queues/{queue}` does; returns the message id.
    pub async fn enqueue(&self, queue: &str, body: String) -> Result<String, String> {
        let producer = match queue {
            "notify-user" => &self.stack.notify_user,
            "notify-connection" => &self.stack.notify_connection,
            "commands" => &self.stack.commands,
            other => return Err(format!("unknown queue {other}")),
        };
        producer.send(body).await
    }

    /// Management API posts received for `connection_id`, answered or not,
    /// while it is open (or, for an id that never connected, ever).
    pub fn posts_to(&self, connection_id: &str) -> u64 {
        self.stack
            .posts
            .lock()
            .map(|p| p.get(connection_id).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Dead letters of an in-memory queue (`notify-user`, `notify-connection`,
    /// `commands`, `deliveries`); `None` for SQS-backed queues.
    pub fn dead_letters(&self, queue: &str) -> Option<Vec<queues::DeadLetter>> {
        let producer = match queue {
            "notify-user" => &self.stack.notify_user,
            "notify-connection" => &self.stack.notify_connection,
            "commands" => &self.stack.commands,
            "deliveries" => &self.stack.deliveries,
            _ => return None,
        };
        producer.dead_letters()
    }

    /// Queue handlers cut off at the handler timeout so far (in-memory queues).
    pub fn handler_timeouts(&self) -> u64 {
        self.stack
            .handler_timeouts
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Open WebSocket connections.
    pub fn open_connections(&self) -> usize {
        self.stack.connections.len()
    }

    /// Closes every socket with 1001 (running `$disconnect` for each), then stops
    /// the queue sources and the server. Bounded: gives sockets 5 s to finish.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !self.stack.connections.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
        info!("stopped");
    }
}

async fn sdk_config(backend: &Backend) -> aws_config::SdkConfig {
    match backend {
        Backend::Aws {
            endpoint: Some(endpoint),
            ..
        } => {
            let mut loader = switchboard::aws::defaults().endpoint_url(endpoint);
            // moto and LocalStack take any credentials; supply some if the environment has none.
            if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
                && std::env::var_os("AWS_PROFILE").is_none()
            {
                loader = loader.credentials_provider(aws_sdk_sqs::config::Credentials::new(
                    "local",
                    "local",
                    None,
                    None,
                    "switchboard-local",
                ));
            }
            if std::env::var_os("AWS_REGION").is_none()
                && std::env::var_os("AWS_DEFAULT_REGION").is_none()
            {
                loader = loader.region(aws_config::Region::new("us-east-1"));
            }
            loader.load().await
        }
        Backend::Aws { endpoint: None, .. } => switchboard::aws::load().await,
        // Only the Management API client is used, against this process: sign with placeholders.
        Backend::Memory => {
            switchboard::aws::defaults()
                .region(aws_config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                    "local",
                    "local",
                    None,
                    None,
                    "switchboard-local",
                ))
                .load()
                .await
        }
    }
}

/// Where the stack keeps its state, in memory or on AWS.
struct Storage {
    store: Arc<dyn ConnectionStore>,
    memberships: Arc<dyn MembershipStore>,
    /// Idempotency records (message id, connection) with expiry.
    sent_log: Arc<dyn SentLog>,
    notify_user: Producer,
    notify_connection: Producer,
    /// Where notify-user puts its NotifyConnection messages.
    fanout_queue: Arc<dyn MessageQueue>,
    commands: Producer,
    /// The Deliveries queue as its source and as the queue every fan-out writes to.
    deliveries: (Producer, Arc<dyn MessageQueue>),
}

/// Starts the stack: binds, wires the handlers, and serves until shut down.
pub async fn start(config: Config) -> Result<RunningStack, StartError> {
    let secret = match &config.token_secret {
        Some(secret) => TokenSecret::new(secret.clone())?,
        None => TokenSecret::new(events::random_hex::<32>())?,
    };
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.addr,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.addr,
        source,
    })?;
    let sdk = sdk_config(&config.backend).await;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut tasks = Vec::new();

    let management = Arc::new(Management::new(config.fault_rate, config.fault_stall));
    let gateway: Arc<dyn Gateway> = match config.gateway {
        // The unmodified notify-connection path: the Management API SDK client, pointed at this process.
        GatewayMode::Sdk => Arc::new(ManagementApi::new(switchboard::aws::management_api(
            &sdk,
            &format!("http://{addr}/{}", config.stage),
            &config.notify_connection,
        ))),
        GatewayMode::InProcess => Arc::new(InProcessGateway {
            management: management.clone(),
            options: config.notify_connection.clone(),
        }),
    };

    let local_queue = |name: &str| {
        Arc::new(LocalQueue::new(
            name,
            config.visibility_timeout,
            config.max_receive_count,
        ))
    };
    let local_deliveries = || {
        let queue = local_queue("deliveries");
        (
            Producer::Local(queue.clone()),
            queue as Arc<dyn MessageQueue>,
        )
    };
    let Storage {
        store,
        memberships,
        sent_log,
        notify_user,
        notify_connection,
        fanout_queue,
        commands,
        deliveries: (deliveries, deliveries_queue),
    } = match &config.backend {
        Backend::Memory => {
            let user_queue = Arc::new(LocalQueue::new(
                "notify-user",
                config.visibility_timeout,
                config.max_receive_count,
            ));
            let connection_queue = Arc::new(LocalQueue::new(
                "notify-connection",
                config.visibility_timeout,
                config.max_receive_count,
            ));
            Storage {
                store: Arc::new(MemoryStore::new()),
                memberships: Arc::new(MemoryMemberships::new()),
                sent_log: Arc::new(MemorySentLog::new()),
                notify_user: Producer::Local(user_queue),
                notify_connection: Producer::Local(connection_queue.clone()),
                fanout_queue: connection_queue,
                commands: Producer::Local(local_queue("commands")),
                deliveries: local_deliveries(),
            }
        }
        Backend::Aws {
            table,
            memberships_table,
            notify_user_queue_url,
            notify_connection_queue_url,
            commands_queue_url,
            deliveries_queue_url,
            ..
        } => {
            let sqs = switchboard::aws::sqs(&sdk);
            let dynamodb = switchboard::aws::dynamodb(&sdk);
            // Idempotency records live in the connections table, as on AWS.
            let connections = Arc::new(DynamoStore::new(dynamodb.clone(), table));
            Storage {
                store: connections.clone(),
                sent_log: connections,
                memberships: Arc::new(DynamoMemberships::new(dynamodb, memberships_table)),
                notify_user: Producer::Sqs {
                    client: sqs.clone(),
                    url: notify_user_queue_url.clone(),
                },
                notify_connection: Producer::Sqs {
                    client: sqs.clone(),
                    url: notify_connection_queue_url.clone(),
                },
                fanout_queue: Arc::new(SqsQueue::new(sqs.clone(), notify_connection_queue_url)),
                commands: match commands_queue_url {
                    Some(url) => Producer::Sqs {
                        client: sqs.clone(),
                        url: url.clone(),
                    },
                    None => Producer::Local(local_queue("commands")),
                },
                deliveries: match deliveries_queue_url {
                    Some(url) => (
                        Producer::Sqs {
                            client: sqs.clone(),
                            url: url.clone(),
                        },
                        Arc::new(SqsQueue::new(sqs.clone(), url)) as Arc<dyn MessageQueue>,
                    ),
                    None => local_deliveries(),
                },
            }
        }
    };

    let user_handler: BatchHandler = {
        let (store, queue, options) = (store.clone(), fanout_queue, config.notify_user.clone());
        Arc::new(move |event| {
            let (store, queue, options) = (store.clone(), queue.clone(), options.clone());
            Box::pin(async move { notify_user_batch(&*store, &*queue, &options, event).await })
        })
    };
    let posting = Posting::from(config.notify_connection.clone()).with_sent_log(sent_log.clone());
    let services = Services {
        store: store.clone(),
        memberships,
        gateway: gateway.clone(),
        deliveries: deliveries_queue,
        sent_log: Some(sent_log),
        settings: Arc::new(Settings {
            presence: config.presence.clone(),
            publish_limit: config.publish_limit,
            publish_window: config.publish_window,
            enqueue: config.notify_user.clone(),
            posting: config.notify_connection.clone(),
        }),
    };
    let connection_handler: BatchHandler = {
        let (store, options) = (store.clone(), posting);
        let gateway = gateway.clone();
        Arc::new(move |event| {
            let (store, gateway, options) = (store.clone(), gateway.clone(), options.clone());
            Box::pin(
                async move { notify_connection_batch(&*store, &*gateway, &options, event).await },
            )
        })
    };
    let commands_handler: BatchHandler = {
        let services = services.clone();
        Arc::new(move |event| {
            let services = services.clone();
            Box::pin(async move { commands_batch(&services, event).await })
        })
    };
    let deliver_handler: BatchHandler = {
        let services = services.clone();
        Arc::new(move |event| {
            let services = services.clone();
            Box::pin(async move { deliveries_batch(&services, event).await })
        })
    };
    let sources: Vec<(&Producer, BatchHandler, &str)> = vec![
        (&notify_user, user_handler, "notify-user"),
        (&notify_connection, connection_handler, "notify-connection"),
        (&commands, commands_handler, "commands"),
        (&deliveries, deliver_handler, "deliveries"),
    ];
    let handler_timeouts = Arc::new(std::sync::atomic::AtomicU64::new(0));
    for (producer, handler, name) in sources {
        let shutdown = shutdown_rx.clone();
        tasks.push(match producer {
            Producer::Local(queue) => tokio::spawn(queues::run_local_source(
                queue.clone(),
                handler,
                queues::SourceOptions {
                    concurrency: config.source_concurrency,
                    timeout: config.handler_timeout,
                    timeouts: handler_timeouts.clone(),
                },
                shutdown,
            )),
            Producer::Sqs { client, url } => tokio::spawn(queues::run_sqs_source(
                client.clone(),
                url.clone(),
                name.to_owned(),
                handler,
                shutdown,
            )),
        });
    }

    let http = NegotiateSettings {
        websocket_url: format!("ws://{addr}/{}", config.stage),
        secret: Ok(secret.clone()),
        default_ttl: NEGOTIATE_DEFAULT_TTL,
        max_ttl: NEGOTIATE_MAX_TTL,
    };
    let stack = Arc::new(Stack {
        verifier: Ok(TokenVerifier::new(&secret)),
        config,
        services,
        http,
        connections: management.connections.clone(),
        posts: management.posts.clone(),
        management,
        notify_user,
        notify_connection,
        commands,
        deliveries,
        shutdown: shutdown_rx.clone(),
        handler_timeouts,
    });
    tasks.push(tokio::spawn(server::serve(
        listener,
        stack.clone(),
        shutdown_rx,
    )));
    info!(%addr, "listening");
    Ok(RunningStack {
        addr,
        stack,
        secret,
        shutdown: shutdown_tx,
        tasks,
    })
}
