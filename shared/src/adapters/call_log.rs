//! Records which AWS call each function makes, for the IAM check
//! (`scripts/iam-check.py`, `make iam`): the operation and the resources it
//! touches (table and index with the partition keys of the items, queue URL,
//! event bus, secret id, the Management API path), read off the signed HTTP
//! request every adapter sends. Nothing else: no item attribute, message body,
//! event detail or secret value is ever written.
//!
//! Off unless `SWITCHBOARD_AWS_CALL_LOG` names a file ([`CallLog::from_env`]);
//! [`crate::wiring::Wiring`] then wraps every connector it builds
//! ([`CallLog::connector`], [`CallLog::http_client`]), so the SDK clients
//! (DynamoDB, SQS) and the adapters that sign their own requests (Management
//! API, Secrets Manager, EventBridge) are all seen at the one place they meet
//! the network. Each line is one JSON object; the function is
//! `AWS_LAMBDA_FUNCTION_NAME` (set by Lambda and by `cargo lambda watch`).

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use serde_json::{Map, Value, json};

/// Where the calls of one function go.
#[derive(Debug, Clone)]
pub struct CallLog {
    function: String,
    sink: Arc<Mutex<Sink>>,
}

#[derive(Debug)]
enum Sink {
    File(PathBuf),
    Memory(Vec<Value>),
}

impl CallLog {
    /// The log `SWITCHBOARD_AWS_CALL_LOG` names, for the function
    /// `AWS_LAMBDA_FUNCTION_NAME` (or this program's name); none when unset.
    pub fn from_env() -> Option<Self> {
        let path = std::env::var_os("SWITCHBOARD_AWS_CALL_LOG").filter(|p| !p.is_empty())?;
        let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME")
            .ok()
            .filter(|f| !f.is_empty())
            .or_else(|| {
                std::env::current_exe()
                    .ok()
                    .and_then(|exe| exe.file_stem().map(|s| s.to_string_lossy().into_owned()))
            })
            .unwrap_or_else(|| "unknown".to_owned());
        Some(CallLog {
            function,
            sink: Arc::new(Mutex::new(Sink::File(PathBuf::from(path)))),
        })
    }

    /// A log kept in memory, for tests ([`CallLog::calls`]).
    pub fn in_memory(function: &str) -> Self {
        CallLog {
            function: function.to_owned(),
            sink: Arc::new(Mutex::new(Sink::Memory(Vec::new()))),
        }
    }

    /// What an in-memory log holds (empty for a file log).
    pub fn calls(&self) -> Vec<Value> {
        match self.sink.lock().as_deref() {
            Ok(Sink::Memory(calls)) => calls.clone(),
            _ => Vec::new(),
        }
    }

    /// Records the AWS calls `request` makes.
    pub fn record(&self, request: &HttpRequest) {
        for mut call in describe(request) {
            call.insert("function".into(), Value::String(self.function.clone()));
            self.write(Value::Object(call));
        }
    }

    fn write(&self, call: Value) {
        let Ok(mut sink) = self.sink.lock() else {
            return;
        };
        match &mut *sink {
            Sink::Memory(calls) => calls.push(call),
            Sink::File(path) => {
                // Appends of one line each: the functions of a test run share the file.
                let written = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&*path)
                    .and_then(|mut file| writeln!(file, "{call}"));
                if let Err(e) = written {
                    tracing::warn!(error = %e, "the AWS call log cannot be written");
                }
            }
        }
    }

    /// `connector`, recording every request it sends.
    pub fn connector(&self, connector: SharedHttpConnector) -> SharedHttpConnector {
        SharedHttpConnector::new(RecordingConnector {
            inner: connector,
            log: self.clone(),
        })
    }

    /// `client`, whose every connector records the requests it sends.
    pub fn http_client(&self, client: SharedHttpClient) -> SharedHttpClient {
        SharedHttpClient::new(RecordingClient {
            inner: client,
            log: self.clone(),
        })
    }
}

#[derive(Debug, Clone)]
struct RecordingConnector {
    inner: SharedHttpConnector,
    log: CallLog,
}

impl HttpConnector for RecordingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        self.log.record(&request);
        self.inner.call(request)
    }
}

#[derive(Debug, Clone)]
struct RecordingClient {
    inner: SharedHttpClient,
    log: CallLog,
}

impl HttpClient for RecordingClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.log
            .connector(self.inner.http_connector(settings, components))
    }
}

/// The AWS calls in one request, each a JSON object with `service` and
/// `operation` and what names its resources. A DynamoDB transaction is one
/// call per item (IAM authorizes each item's own action); anything this does
/// not know is `{"service": "unknown", …}`, which the IAM check refuses.
pub fn describe(request: &HttpRequest) -> Vec<Map<String, Value>> {
    let target = request.headers().get("x-amz-target").unwrap_or_default();
    let body: Value = request
        .body()
        .bytes()
        .and_then(|bytes| serde_json::from_slice(bytes).ok())
        .unwrap_or(Value::Null);
    let Some((prefix, operation)) = target.split_once('.') else {
        return vec![management_api_call(request)];
    };
    let call = |service: &str, fields: Value| {
        let mut call = Map::new();
        call.insert("service".into(), service.into());
        call.insert("operation".into(), operation.into());
        if let Value::Object(fields) = fields {
            call.extend(fields);
        }
        call
    };
    match prefix {
        p if p.starts_with("DynamoDB_") => dynamodb_calls(operation, &body),
        "AmazonSQS" => vec![call("sqs", json!({ "queue_url": body["QueueUrl"] }))],
        "AWSEvents" => {
            let mut buses: Vec<Value> = body["Entries"]
                .as_array()
                .map(|entries| {
                    entries
                        .iter()
                        .map(|e| e["EventBusName"].as_str().unwrap_or("default").into())
                        .collect()
                })
                .unwrap_or_default();
            buses.dedup();
            vec![call("events", json!({ "buses": buses }))]
        }
        "secretsmanager" => vec![call(
            "secretsmanager",
            json!({ "secret_id": body["SecretId"] }),
        )],
        _ => vec![call("unknown", json!({ "target": target }))],
    }
}

/// A Management API request: `POST|GET|DELETE {/stage}/@connections/{id}`.
fn management_api_call(request: &HttpRequest) -> Map<String, Value> {
    let uri = request.uri();
    let (host, path) = match uri.split_once("://") {
        Some((_, rest)) => match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, "/"),
        },
        None => ("", uri),
    };
    let service = if path.contains("/@connections/") {
        "execute-api"
    } else {
        "unknown"
    };
    let mut call = Map::new();
    call.insert("service".into(), service.into());
    call.insert("operation".into(), request.method().into());
    call.insert("host".into(), host.into());
    call.insert("path".into(), path.into());
    call
}

/// The key attributes of Switchboard's tables and indexes in `template.yaml`
/// (the IAM check fails when a table's partition key is missing from a call).
/// Only these are recorded: an item's other attributes (a history frame, a
/// user agent) never reach the log.
const KEY_ATTRIBUTES: &[&str] = &[
    "connectionId",
    "userId",
    "shard",
    "envelopeUser",
    "groupName",
    "stream",
    "offset",
];

/// The key attributes of an item (`Key`, or a put's `Item`): name -> value as a string.
fn key_values(item: &Value) -> Value {
    let mut keys = Map::new();
    for name in KEY_ATTRIBUTES {
        let value = &item[*name];
        if let Some(scalar) = value.get("S").or_else(|| value.get("N")) {
            keys.insert((*name).to_owned(), scalar.clone());
        }
    }
    Value::Object(keys)
}

/// The equalities of a key condition (`#u = :u AND begins_with(…)`): name -> value.
fn key_condition(body: &Value) -> Value {
    let mut keys = Map::new();
    let expression = body["KeyConditionExpression"].as_str().unwrap_or_default();
    for part in expression.replace(" and ", " AND ").split(" AND ") {
        let Some((name, value)) = part.split_once('=') else {
            continue;
        };
        let (name, value) = (name.trim().trim_start_matches('('), value.trim());
        let name = body["ExpressionAttributeNames"][name]
            .as_str()
            .unwrap_or(name);
        let value = &body["ExpressionAttributeValues"][value.trim_end_matches(')')];
        if let Some(scalar) = value.get("S").or_else(|| value.get("N")) {
            keys.insert(name.to_owned(), scalar.clone());
        }
    }
    Value::Object(keys)
}

fn dynamodb_calls(operation: &str, body: &Value) -> Vec<Map<String, Value>> {
    let call =
        |operation: &str, via: Option<&str>, table: &Value, index: &Value, keys: Vec<Value>| {
            let mut call = Map::new();
            call.insert("service".into(), "dynamodb".into());
            call.insert("operation".into(), operation.into());
            if let Some(via) = via {
                call.insert("via".into(), via.into());
            }
            call.insert("table".into(), table.clone());
            if !index.is_null() {
                call.insert("index".into(), index.clone());
            }
            call.insert("keys".into(), Value::Array(keys));
            call
        };
    let table = &body["TableName"];
    match operation {
        "GetItem" | "UpdateItem" | "DeleteItem" => {
            vec![call(
                operation,
                None,
                table,
                &Value::Null,
                vec![key_values(&body["Key"])],
            )]
        }
        "PutItem" => vec![call(
            operation,
            None,
            table,
            &Value::Null,
            vec![key_values(&body["Item"])],
        )],
        "Query" => vec![call(
            operation,
            None,
            table,
            &body["IndexName"],
            vec![key_condition(body)],
        )],
        "Scan" => vec![call(operation, None, table, &body["IndexName"], Vec::new())],
        "BatchWriteItem" | "BatchGetItem" => body["RequestItems"]
            .as_object()
            .map(|tables| {
                tables
                    .iter()
                    .map(|(table, requests)| {
                        let keys = match requests {
                            // BatchWriteItem: [{PutRequest: {Item}} | {DeleteRequest: {Key}}]
                            Value::Array(requests) => requests
                                .iter()
                                .map(|r| {
                                    key_values(if r["PutRequest"].is_object() {
                                        &r["PutRequest"]["Item"]
                                    } else {
                                        &r["DeleteRequest"]["Key"]
                                    })
                                })
                                .collect(),
                            // BatchGetItem: {Keys: [...]}
                            other => other["Keys"]
                                .as_array()
                                .map(|keys| keys.iter().map(key_values).collect())
                                .unwrap_or_default(),
                        };
                        call(operation, None, &table.as_str().into(), &Value::Null, keys)
                    })
                    .collect()
            })
            .unwrap_or_default(),
        "TransactWriteItems" | "TransactGetItems" => body["TransactItems"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item.as_object()?.iter().next())
                    .map(|(kind, item)| {
                        let action = match kind.as_str() {
                            "Put" => "PutItem",
                            "Update" => "UpdateItem",
                            "Delete" => "DeleteItem",
                            "ConditionCheck" => "ConditionCheckItem",
                            "Get" => "GetItem",
                            other => other,
                        };
                        let key = if item["Item"].is_object() {
                            &item["Item"]
                        } else {
                            &item["Key"]
                        };
                        call(
                            action,
                            Some(operation),
                            &item["TableName"],
                            &Value::Null,
                            vec![key_values(key)],
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        other => vec![call(other, None, table, &body["IndexName"], Vec::new())],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_types::body::SdkBody;

    fn request(method: &str, uri: &str, target: Option<&str>, body: Value) -> HttpRequest {
        let mut request = HttpRequest::new(SdkBody::from(body.to_string()));
        request.set_method(method).expect("a valid method");
        request.set_uri(uri).expect("a valid uri");
        if let Some(target) = target {
            request
                .headers_mut()
                .insert("x-amz-target", target.to_owned());
        }
        request
    }

    fn recorded(request: &HttpRequest) -> Vec<Value> {
        let log = CallLog::in_memory("connect");
        log.record(request);
        log.calls()
    }

    #[test]
    fn a_query_on_an_index_records_the_index_and_its_partition_key() {
        let calls = recorded(&request(
            "POST",
            "https://dynamodb.us-east-1.amazonaws.com/",
            Some("DynamoDB_20120810.Query"),
            json!({
                "TableName": "connections", "IndexName": "byUser",
                "KeyConditionExpression": "#u = :u",
                "ExpressionAttributeNames": {"#u": "userId"},
                "ExpressionAttributeValues": {":u": {"S": "alice"}},
            }),
        ));
        assert_eq!(
            calls,
            vec![json!({
                "function": "connect", "service": "dynamodb", "operation": "Query",
                "table": "connections", "index": "byUser", "keys": [{"userId": "alice"}],
            })]
        );
    }

    #[test]
    fn a_transaction_is_one_call_per_item_and_no_attribute_but_keys_is_kept() {
        let calls = recorded(&request(
            "POST",
            "https://dynamodb.us-east-1.amazonaws.com/",
            Some("DynamoDB_20120810.TransactWriteItems"),
            json!({"TransactItems": [
                {"Put": {"TableName": "memberships", "Item": {
                    "groupName": {"S": "g"}, "connectionId": {"S": "c"}, "groups": {"L": []},
                    "frame": {"S": "a message body"}}}},
                {"Update": {"TableName": "connections", "Key": {"connectionId": {"S": "c"}}}},
            ]}),
        ));
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0]["operation"], "PutItem");
        assert_eq!(calls[0]["via"], "TransactWriteItems");
        assert_eq!(
            calls[0]["keys"],
            json!([{"groupName": "g", "connectionId": "c"}])
        );
        assert_eq!(calls[1]["operation"], "UpdateItem");
        assert_eq!(calls[1]["table"], "connections");
        assert!(!format!("{calls:?}").contains("a message body"));
    }

    #[test]
    fn queue_bus_secret_and_post_calls_name_their_resource_and_never_the_body() {
        let sent = recorded(&request(
            "POST",
            "https://sqs.us-east-1.amazonaws.com/",
            Some("AmazonSQS.SendMessageBatch"),
            json!({"QueueUrl": "https://sqs/123/deliveries", "Entries": [{"MessageBody": "secret data"}]}),
        ));
        assert_eq!(
            sent,
            vec![json!({"function": "connect", "service": "sqs",
                "operation": "SendMessageBatch", "queue_url": "https://sqs/123/deliveries"})]
        );
        let put = recorded(&request(
            "POST",
            "https://events.us-east-1.amazonaws.com/",
            Some("AWSEvents.PutEvents"),
            json!({"Entries": [{"EventBusName": "bus", "Detail": "{}"}, {"EventBusName": "bus"}]}),
        ));
        assert_eq!(put[0]["buses"], json!(["bus"]));
        let secret = recorded(&request(
            "POST",
            "https://secretsmanager.us-east-1.amazonaws.com/",
            Some("secretsmanager.GetSecretValue"),
            json!({"SecretId": "arn:aws:secretsmanager:us-east-1:1:secret:keys"}),
        ));
        assert_eq!(
            secret[0]["secret_id"],
            "arn:aws:secretsmanager:us-east-1:1:secret:keys"
        );
        let post = recorded(&request(
            "POST",
            "https://abc.execute-api.us-east-1.amazonaws.com/prod/@connections/Zx%3D",
            None,
            json!("hello"),
        ));
        assert_eq!(
            post,
            vec![
                json!({"function": "connect", "service": "execute-api", "operation": "POST",
                "host": "abc.execute-api.us-east-1.amazonaws.com", "path": "/prod/@connections/Zx%3D"})
            ]
        );
        for call in [&sent, &put, &secret, &post] {
            assert!(!format!("{call:?}").contains("secret data"));
        }
    }

    #[test]
    fn an_unknown_request_is_recorded_as_unknown_for_the_check_to_refuse() {
        let calls = recorded(&request(
            "POST",
            "https://kms.us-east-1.amazonaws.com/",
            Some("TrentService.Decrypt"),
            json!({}),
        ));
        assert_eq!(calls[0]["service"], "unknown");
        assert_eq!(calls[0]["target"], "TrentService.Decrypt");
    }
}
