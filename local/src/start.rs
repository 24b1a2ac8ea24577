//! [`start`]: builds a stack step by step (the token secret and the listener,
//! the gateway, the storage, the event sources, the server) and runs it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use aws_config::SdkConfig;
use aws_sdk_sqs::config::{Credentials, SharedCredentialsProvider};
use switchboard::adapters::management_api::ManagementApi;
use switchboard::auth::{TokenIssuers, TokenSecret, TokenVerifier};
use switchboard::aws_lambda_events::sqs::SqsEvent;
use switchboard::batch::BatchReport;
use switchboard::config::{NEGOTIATE_DEFAULT_TTL, NEGOTIATE_MAX_TTL, NegotiateSettings};
use switchboard::handlers::commands::commands_batch;
use switchboard::handlers::deliver::deliveries_batch;
use switchboard::handlers::disconnect::handle_disconnect;
use switchboard::handlers::notify_connection::notify_connection_batch;
use switchboard::handlers::notify_user::notify_user_batch;
use switchboard::handlers::upstream::{WebhookSender, upstream_batch};
use switchboard::metrics::measure;
use switchboard::oidc::Oidc;
use switchboard::ports::Gateway;
use switchboard::retry::AdaptiveLimit;
use switchboard::services::Services;
use switchboard::upstream::{DEFAULT_HOOK_TIMEOUT, Hook, Upstream, WebhookSecret};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use crate::access::{self, ApiKey};
use crate::config::{Backend, Config, GatewayMode, StartError};
use crate::emulation::AccountThrottle;
use crate::ids::random_hex;
use crate::management::{AwsBehaviour, InProcessGateway, Management};
use crate::metrics::Prometheus;
use crate::producer::{Producer, Producers};
use crate::queues::{self, BatchHandler, DeadLetterQueue, SourceOptions};
use crate::server;
use crate::stack::{RunningStack, Stack};
use crate::storage::Storage;
use crate::virtual_connections::VirtualConnections;

/// The OIDC issuers of `--oidc-issuer`, their keys fetched on first use.
fn oidc(config: &Config) -> Result<Option<Arc<dyn TokenIssuers>>, StartError> {
    let Some(settings) = config.oidc.settings()? else {
        return Ok(None);
    };
    let fetcher = switchboard::aws::fetcher(settings.fetch_timeout, None);
    info!(issuers = ?settings.issuers.iter().map(|i| &i.issuer).collect::<Vec<_>>(), "OIDC issuers");
    Ok(Some(Arc::new(Oidc::new(&settings, Arc::new(fetcher)))))
}

/// Starts the stack: binds, wires the handlers, and serves until shut down.
pub async fn start(config: Config) -> Result<RunningStack, StartError> {
    let secret = match &config.token_secret {
        Some(secret) => TokenSecret::new(secret.clone())?,
        None => TokenSecret::new(random_hex::<32>())?,
    };
    let api_key = access::api_key(&config)?;
    let oidc = oidc(&config)?;
    let (listener, addr) = bind(config.addr).await?;
    let sdk = config.backend.sdk_config().await;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    let management = Arc::new(
        Management::new(config.fault_rate, config.fault_stall).emulating(
            VirtualConnections::new(config.virtual_connections),
            AwsBehaviour {
                throttle: config
                    .management_quota
                    .map(|(rate, burst)| AccountThrottle::new(rate, burst)),
                latency: config.aws_latency.post,
            },
        ),
    );
    let gateway = gateway(&config, &sdk, addr, api_key.as_ref(), &management);
    let storage = Storage::open(&config, &sdk);
    let upstream = upstream(&config, &storage, &sdk)?;
    let services = services(&config, &storage, gateway, upstream);
    // Before the event sources and the server: a send sees every virtual connection.
    management
        .virtuals
        .connect_all(&services, &secret, &config.stage)
        .await?;
    let handler_timeouts = Arc::new(AtomicU64::new(0));
    let mut metrics = Prometheus::default();
    metrics.register_management(&management);
    let metrics = Arc::new(metrics);
    let mut tasks = event_sources(
        &config,
        &storage,
        &services,
        &metrics,
        &handler_timeouts,
        &shutdown_rx,
    );

    let stack = Arc::new(Stack {
        verifier: Ok(TokenVerifier::new(&secret).with_issuers(oidc)),
        http: NegotiateSettings {
            websocket_url: format!("ws://{addr}/{}", config.stage),
            secret: Ok(secret.clone()).into(),
            policy: Default::default(),
            default_ttl: NEGOTIATE_DEFAULT_TTL,
            max_ttl: NEGOTIATE_MAX_TTL,
        },
        config,
        services,
        connections: management.connections.clone(),
        posts: management.posts.clone(),
        management,
        producers: storage.producers,
        shutdown: shutdown_rx.clone(),
        handler_timeouts,
        api_key,
        metrics,
    });
    if !stack.management.virtuals.is_empty() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let _ = stack.management.virtual_disconnects.set(tx);
        tasks.push(tokio::spawn(virtual_disconnects(stack.clone(), rx)));
    }
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

/// Runs `$disconnect` for each virtual connection the Management API deletes,
/// as a socket's end does for a real one.
async fn virtual_disconnects(
    stack: Arc<Stack>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let mut shutdown = stack.shutdown.clone();
    loop {
        let id = tokio::select! {
            id = rx.recv() => id,
            _ = shutdown.wait_for(|stop| *stop) => None,
        };
        let Some(id) = id else { return };
        let context = VirtualConnections::context(id, &stack.config.stage);
        let event =
            crate::events::disconnect(&context, 1000, "Connection closed by the Management API");
        measure(
            &*stack.metrics,
            "disconnect",
            handle_disconnect(&stack.services, &event),
        )
        .await;
    }
}

/// Listens on `addr` and returns the address it got (port 0 picks one).
async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let bind_error = |source| StartError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    Ok((listener, local))
}

/// How the handlers post to connections: through the SDK to this stack's
/// own Management API at `addr`, or straight to `management`.
fn gateway(
    config: &Config,
    sdk: &SdkConfig,
    addr: SocketAddr,
    api_key: Option<&ApiKey>,
    management: &Arc<Management>,
) -> Arc<dyn Gateway> {
    match config.gateway {
        // The unmodified notify-connection path: the Management API SDK client, pointed at this process.
        GatewayMode::Sdk => {
            // An exposed stack's Management API requires the key: the client
            // carries it as its session token (x-amz-security-token).
            let sdk = match api_key {
                Some(key) => sdk
                    .to_builder()
                    .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                        "local",
                        "local",
                        Some(key.as_str().to_owned()),
                        None,
                        "switchboard-local-api-key",
                    )))
                    .build(),
                None => sdk.clone(),
            };
            Arc::new(ManagementApi::new(switchboard::aws::management_api(
                &sdk,
                &format!("http://{}/{}", access::self_addr(addr), config.stage),
                &config.settings.posting,
            )))
        }
        GatewayMode::InProcess => Arc::new(InProcessGateway {
            management: management.clone(),
            options: config.settings.posting.clone(),
        }),
    }
}

/// The handlers' ports and settings, through the constructor a Lambda's
/// wiring uses.
fn services(
    config: &Config,
    storage: &Storage,
    gateway: Arc<dyn Gateway>,
    upstream: Arc<Upstream>,
) -> Services {
    let mut settings = config.settings.clone();
    settings.max_groups_per_connection = settings.max_groups_per_connection.max(1);
    settings.max_presence_members = settings.max_presence_members.max(1);
    let history = settings.history.clone();
    Services::new(
        storage.store.clone(),
        storage.memberships.clone(),
        gateway,
        storage.deliveries_queue.clone(),
        settings,
    )
    .with_sent_log(storage.sent_log.clone())
    .with_history(storage.history.clone(), history)
    .with_upstream(upstream)
}

/// Upstream sinks and hooks as `config.upstream` names them: the in-memory
/// Upstream queue (`--webhook`), an EventBridge bus at the AWS endpoint
/// (`--event-bus`), the hooks, all signed with `--webhook-secret`.
fn upstream(
    config: &Config,
    storage: &Storage,
    sdk: &SdkConfig,
) -> Result<Arc<Upstream>, StartError> {
    let c = &config.upstream;
    let mut upstream = Upstream::default();
    if !c.any() {
        return Ok(Arc::new(upstream));
    }
    let url = |name: &'static str, url: &str| {
        switchboard::config::hook_url(name, url).map_err(|e| StartError::Upstream(e.to_string()))
    };
    let signs = c.webhook.is_some() || c.connect_hook.is_some() || c.event_hook.is_some();
    if signs {
        let secret = c.secret.as_ref().ok_or(StartError::NoWebhookSecret)?;
        upstream.secret = WebhookSecret::given(secret.clone());
        upstream.http = Some(Arc::new(switchboard::aws::poster(
            c.hook_timeout
                .unwrap_or(DEFAULT_HOOK_TIMEOUT)
                .max(c.delivery.timeout),
            sdk.sleep_impl(),
        )));
    }
    if let Some(webhook) = &c.webhook {
        url("--webhook", webhook)?;
    }
    if let Some(Producer::Local(queue)) = &storage.producers.upstream {
        upstream.queue = Some(queue.clone());
    }
    let timeout = c.hook_timeout.unwrap_or(DEFAULT_HOOK_TIMEOUT);
    if let Some(hook) = &c.connect_hook {
        upstream.connect_hook = Some(Hook {
            url: url("--connect-hook", hook)?,
            timeout,
            fail_open: c.connect_hook_fail_open,
        });
    }
    if let Some(hook) = &c.event_hook {
        upstream.event_hook = Some(Hook {
            url: url("--event-hook", hook)?,
            timeout,
            fail_open: false,
        });
    }
    if let Some(bus) = &c.event_bus {
        let Backend::Aws {
            endpoint: Some(endpoint),
            ..
        } = &config.backend
        else {
            return Err(StartError::Upstream(
                "--event-bus needs --aws-endpoint (EventBridge at moto or LocalStack)".into(),
            ));
        };
        let bus = switchboard::wiring::Wiring::new(sdk.clone())
            .event_bridge(bus, Some(endpoint))
            .map_err(|e| StartError::Upstream(e.to_string()))?;
        upstream.bus = Some(Arc::new(bus));
    }
    Ok(Arc::new(upstream))
}

/// Each queue's handler, driven by an event source as Lambda's: in-memory
/// queues by [`queues::run_local_source`], SQS queues by [`queues::run_sqs_source`].
fn event_sources(
    config: &Config,
    storage: &Storage,
    services: &Services,
    metrics: &Arc<Prometheus>,
    handler_timeouts: &Arc<AtomicU64>,
    shutdown: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    // notify-user fans out to the NotifyConnection queue, and notify-connection
    // hands a failed record back to it for a try in seconds.
    let fanout = Services {
        deliveries: storage.fanout_queue.clone(),
        ..services.clone()
    };
    let notify_user = batch_handler(
        (fanout.clone(), metrics.clone()),
        |(services, metrics), event| async move {
            measure(
                &*metrics,
                "notify-user",
                notify_user_batch(&services, event),
            )
            .await
        },
    );
    let notify_connection = batch_handler(
        (fanout, metrics.clone()),
        |(services, metrics), event| async move {
            // Each batch is one Lambda instance's invocation: its own limit on posts in flight.
            let limit = AdaptiveLimit::new(services.settings.posting.concurrency);
            let batch = notify_connection_batch(&services, &limit, event);
            measure(&*metrics, "notify-connection", batch).await
        },
    );
    let commands = batch_handler(
        (services.clone(), metrics.clone()),
        |(services, metrics), event| async move {
            measure(&*metrics, "commands", commands_batch(&services, event)).await
        },
    );
    let deliveries = batch_handler(
        (services.clone(), metrics.clone()),
        |(services, metrics), event| async move {
            measure(&*metrics, "deliver", deliveries_batch(&services, event)).await
        },
    );
    let Producers {
        notify_user: notify_user_queue,
        notify_connection: notify_connection_queue,
        commands: commands_queue,
        deliveries: deliveries_queue,
        ..
    } = &storage.producers;
    let sources = [
        (notify_user_queue, notify_user, "notify-user"),
        (
            notify_connection_queue,
            notify_connection,
            "notify-connection",
        ),
        (commands_queue, commands, "commands"),
        (deliveries_queue, deliveries, "deliveries"),
    ];
    let upstream = webhook_sender(config, storage, services).map(|(producer, sender)| {
        let handler = batch_handler(sender, |sender, event| async move {
            upstream_batch(&sender, event).await
        });
        (producer, handler, "upstream")
    });
    sources
        .into_iter()
        .chain(upstream)
        .map(|(producer, handler, name)| match producer {
            Producer::Local(queue) => tokio::spawn(queues::run_local_source(
                queue.clone(),
                handler,
                SourceOptions {
                    // As the template's ScalingConfig.MaximumConcurrency, within the flag's cap.
                    concurrency: queues::source_concurrency(name, config.source_concurrency),
                    timeout: config.handler_timeout,
                    timeouts: handler_timeouts.clone(),
                },
                shutdown.clone(),
            )),
            Producer::Sqs { client, url } => tokio::spawn(queues::run_sqs_source(
                client.clone(),
                url.clone(),
                name.to_owned(),
                handler,
                config.aws_latency.queue,
                shutdown.clone(),
            )),
        })
        .collect()
}

/// The webhook sender on the Upstream queue (with `--webhook`), the same
/// handler the `upstream` function runs; refused events go to the queue's
/// dead letters with their status.
fn webhook_sender<'a>(
    config: &Config,
    storage: &'a Storage,
    services: &Services,
) -> Option<(&'a Producer, WebhookSender)> {
    let producer = storage.producers.upstream.as_ref()?;
    let Producer::Local(queue) = producer else {
        return None;
    };
    let upstream = &services.upstream;
    Some((
        producer,
        WebhookSender {
            http: upstream.http.clone()?,
            url: config.upstream.webhook.clone()?,
            secret: upstream.secret.clone(),
            policy: config.upstream.delivery.clone(),
            dead_letters: Arc::new(DeadLetterQueue(queue.clone())),
            concurrency: config.settings.enqueue.concurrency,
        },
    ))
}

/// A [`BatchHandler`] that runs `handle` with its own copy of `state` per batch.
fn batch_handler<S, F, Fut>(state: S, handle: F) -> BatchHandler
where
    S: Clone + Send + Sync + 'static,
    F: Fn(S, SqsEvent) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = BatchReport> + Send + 'static,
{
    Arc::new(move |event| Box::pin(handle(state.clone(), event)))
}
