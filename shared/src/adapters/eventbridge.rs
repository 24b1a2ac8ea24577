//! [`EventBus`] on Amazon EventBridge: one `PutEvents` per call (up to 10
//! entries), source `switchboard`, detail-type the event's short type
//! (`connected`, `disconnected`, `message`), detail the whole CloudEvent in
//! structured JSON (so rules can match on `detail.data.userId`, and receivers
//! drop duplicates by `detail.id`). Signed with the SDK's signer through its
//! connector ([`AwsJsonClient`]): no EventBridge SDK crate in the bootstraps.

use async_trait::async_trait;

use super::aws_json::AwsJsonClient;
use crate::upstream::events::SOURCE;
use crate::upstream::{BusError, CloudEvent, EventBus};

/// PutEvents takes at most this many entries.
pub const MAX_ENTRIES: usize = 10;

#[derive(Clone, Debug)]
pub struct EventBridge {
    client: AwsJsonClient,
    bus_name: String,
}

impl EventBridge {
    /// `client` must sign for `events` with target prefix `AWSEvents`
    /// ([`EventBridge::client`] builds one).
    pub fn new(client: AwsJsonClient, bus_name: impl Into<String>) -> Self {
        EventBridge {
            client,
            bus_name: bus_name.into(),
        }
    }

    /// The client for EventBridge in `region`, or at `endpoint`.
    pub fn client(
        connector: aws_smithy_runtime_api::client::http::SharedHttpConnector,
        credentials: Option<aws_credential_types::provider::SharedCredentialsProvider>,
        region: &str,
        endpoint: Option<&str>,
    ) -> AwsJsonClient {
        AwsJsonClient {
            connector,
            credentials,
            region: region.to_owned(),
            endpoint: endpoint.map_or_else(
                || super::aws_json::default_endpoint("events", region),
                |e| e.trim_end_matches('/').to_owned(),
            ),
            service: "events",
            target_prefix: "AWSEvents",
        }
    }

    pub fn bus_name(&self) -> &str {
        &self.bus_name
    }
}

/// The PutEvents request for `events` on `bus`.
pub fn put_events_body(bus: &str, events: &[CloudEvent]) -> String {
    let entries: Vec<serde_json::Value> = events
        .iter()
        .map(|event| {
            serde_json::json!({
                "Source": SOURCE,
                "DetailType": event.event_kind().map_or(event.kind.as_str(), |k| k.name()),
                "Detail": event.to_json(),
                "EventBusName": bus,
            })
        })
        .collect();
    serde_json::json!({ "Entries": entries }).to_string()
}

#[async_trait]
impl EventBus for EventBridge {
    async fn put_events(&self, events: &[CloudEvent]) -> Result<(), BusError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut failed = 0;
        let mut reason = String::new();
        for chunk in events.chunks(MAX_ENTRIES) {
            let answer = self
                .client
                .call("PutEvents", put_events_body(&self.bus_name, chunk))
                .await
                .map_err(BusError::Unavailable)?;
            let answer: serde_json::Value = serde_json::from_slice(&answer)
                .map_err(|_| BusError::Unavailable("PutEvents' answer is not JSON".into()))?;
            let count = answer["FailedEntryCount"].as_u64().unwrap_or(0) as usize;
            if count > 0 {
                failed += count;
                if let Some(entry) = answer["Entries"]
                    .as_array()
                    .and_then(|e| e.iter().find(|e| e.get("ErrorCode").is_some()))
                {
                    reason = format!(
                        "{}: {}",
                        entry["ErrorCode"].as_str().unwrap_or_default(),
                        entry["ErrorMessage"].as_str().unwrap_or_default()
                    );
                }
            }
        }
        if failed > 0 {
            return Err(BusError::Partial { failed, reason });
        }
        Ok(())
    }
}
