//! The `switchboard` binary against moto: a CloudFormation stack with the
//! template's dead-letter queue outputs, `status`, `dlq list` and
//! `dlq redrive`, their JSON and exit codes, and errors that name the problem.
//! `make test` starts moto and sets `MOTO_ENDPOINT`; plain `cargo test` ignores these.

mod fake;

use std::process::{Command, Output};

use serde_json::{Value, json};

const NEEDS_MOTO: &str = "set MOTO_ENDPOINT (make test starts moto server)";

fn endpoint() -> String {
    std::env::var("MOTO_ENDPOINT").expect(NEEDS_MOTO)
}

fn switchboard(args: &[&str]) -> Output {
    switchboard_with(args, &[])
}

fn switchboard_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .envs(env.iter().copied())
        .env("AWS_ENDPOINT_URL", endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env_remove("AWS_PROFILE")
        .env_remove("SWITCHBOARD_STACK")
        .output()
        .unwrap()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

async fn sdk() -> aws_config::SdkConfig {
    switchboard::aws::defaults()
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        ))
        .endpoint_url(endpoint())
        .load()
        .await
}

/// A stack shaped like template.yaml where the CLI looks: the five dead-letter
/// queues as outputs, and the Deliveries queue redriving into its DLQ.
async fn create_stack(name: &str) {
    let mut resources = serde_json::Map::new();
    let mut outputs = serde_json::Map::new();
    for queue in [
        "NotifyUser",
        "NotifyConnection",
        "Commands",
        "Deliveries",
        "Upstream",
    ] {
        resources.insert(
            format!("{queue}DeadLetterQueue"),
            json!({"Type": "AWS::SQS::Queue"}),
        );
        outputs.insert(
            format!("{queue}DeadLetterQueueUrl"),
            json!({"Value": {"Ref": format!("{queue}DeadLetterQueue")}}),
        );
    }
    resources.insert(
        "DeliveriesQueue".into(),
        json!({"Type": "AWS::SQS::Queue", "Properties": {"RedrivePolicy": {
            "deadLetterTargetArn": {"Fn::GetAtt": ["DeliveriesDeadLetterQueue", "Arn"]},
            "maxReceiveCount": 5}}}),
    );
    outputs.insert(
        "DeliveriesQueueUrl".into(),
        json!({"Value": {"Ref": "DeliveriesQueue"}}),
    );
    let template = json!({"Resources": resources, "Outputs": outputs}).to_string();
    aws_sdk_cloudformation::Client::new(&sdk().await)
        .create_stack()
        .stack_name(name)
        .template_body(template)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn status_list_and_redrive_a_dead_letter_queue() {
    let stack = format!("cli-{}", std::process::id());
    create_stack(&stack).await;
    let sqs = switchboard::aws::sqs(&sdk().await);

    let status = switchboard(&["status", "--stack", &stack, "--json"]);
    assert_eq!(status.status.code(), Some(0), "{status:?}");
    let document = json_of(&status);
    assert_eq!(document["stack"], stack);
    assert_eq!(document["status"], "CREATE_COMPLETE");
    let dlq = document["outputs"]["DeliveriesDeadLetterQueueUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    let source = document["outputs"]["DeliveriesQueueUrl"]
        .as_str()
        .unwrap()
        .to_owned();

    for body in ["one", "two", "three"] {
        sqs.send_message()
            .queue_url(&dlq)
            .message_body(format!(r#"{{"n":"{body}"}}"#))
            .send()
            .await
            .unwrap();
    }
    let status = switchboard(&["status", "--stack", &stack, "--json"]);
    assert_eq!(status.status.code(), Some(3), "messages waiting: exit 3");
    let queues = json_of(&status)["deadLetterQueues"].clone();
    let depth = |name: &str| {
        queues
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == name)
            .map(|q| q["messages"].clone())
    };
    assert_eq!(depth("deliveries"), Some(json!(3)));
    assert_eq!(depth("commands"), Some(json!(0)));
    let text = switchboard(&["status", "--stack", &stack]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("deliveries") && text.contains("3 waiting"),
        "{text}"
    );

    let listed = switchboard(&[
        "dlq",
        "list",
        "--stack",
        &stack,
        "--queue",
        "deliveries",
        "--json",
    ]);
    assert_eq!(listed.status.code(), Some(0), "{listed:?}");
    let listed = json_of(&listed);
    let messages = listed["queues"][0]["messages"].as_array().unwrap().clone();
    let mut bodies: Vec<&str> = messages
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    bodies.sort();
    assert_eq!(
        bodies,
        [r#"{"n":"one"}"#, r#"{"n":"three"}"#, r#"{"n":"two"}"#]
    );
    assert!(messages.iter().all(|m| m["messageId"].as_str().is_some()));

    let moved = switchboard(&[
        "dlq",
        "redrive",
        "--stack",
        &stack,
        "--queue",
        "deliveries",
        "--json",
    ]);
    assert_eq!(moved.status.code(), Some(0), "{moved:?}");
    let moved = json_of(&moved);
    assert_eq!(moved["moved"], 3);
    // moto has no SQS message move tasks: the CLI tried one, then copied.
    assert_eq!(moved["method"], "copy");
    assert!(
        moved["moveTaskUnsupported"]
            .as_str()
            .is_some_and(|why| why.starts_with("StartMessageMoveTask is not supported here")),
        "{moved}"
    );
    // The same queue (moto answers its own host in one place, AWS's in the other).
    let name = source.rsplit('/').next().unwrap();
    assert!(
        moved["source"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/123456789012/{name}")),
        "{moved}"
    );
    let status = switchboard(&["status", "--stack", &stack, "--json"]);
    assert_eq!(status.status.code(), Some(0), "the DLQ is empty again");
    let back = sqs
        .receive_message()
        .queue_url(&source)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    assert_eq!(back.messages().len(), 3);
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn errors_name_the_problem_with_their_exit_codes() {
    let missing = switchboard(&["status", "--stack", "no-such-stack"]);
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.starts_with("switchboard: no stack named \"no-such-stack\""),
        "{stderr}"
    );
    assert!(missing.stdout.is_empty());

    let stack = format!("cli-errors-{}", std::process::id());
    create_stack(&stack).await;
    let bogus = switchboard(&[
        "dlq", "redrive", "--stack", &stack, "--queue", "bogus", "--json",
    ]);
    assert_eq!(bogus.status.code(), Some(2));
    assert_eq!(
        json_of(&bogus)["error"],
        "no dead-letter queue named \"bogus\": use notify-user, notify-connection, commands, deliveries or upstream"
    );
    // A dead-letter queue no queue redrives into: nothing moved, and the reason.
    let orphan = switchboard(&["dlq", "redrive", "--stack", &stack, "--queue", "commands"]);
    assert_eq!(orphan.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&orphan.stderr).contains("no queue sends its failures here"),
        "{orphan:?}"
    );
    // --errors on a stack without the function's log group: named.
    let outputs = switchboard_cli::Stack::describe(&sdk().await, &stack)
        .await
        .unwrap();
    switchboard::aws::sqs(&sdk().await)
        .send_message()
        .queue_url(outputs.output("CommandsDeadLetterQueueUrl").unwrap())
        .message_body("{}")
        .send()
        .await
        .unwrap();
    let out = switchboard(&[
        "dlq", "list", "--stack", &stack, "--queue", "commands", "--errors",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "switchboard: stack \"{stack}\" has no resource CommandsLogGroup (DescribeStackResource: "
        )),
        "{stderr}"
    );
    let unnamed = switchboard(&["status"]);
    assert_eq!(unnamed.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&unnamed.stderr).trim(),
        "switchboard: name the stack: --stack NAME (or SWITCHBOARD_STACK)"
    );
}

/// A stack with the commands dead-letter queue, the Commands function's log
/// group, the NotifyUser queue, and no HTTP API.
async fn create_logs_stack(name: &str) -> String {
    let group = format!("/aws/lambda/{name}-commands");
    let template = json!({
        "Resources": {
            "CommandsDeadLetterQueue": {"Type": "AWS::SQS::Queue"},
            "NotifyUserQueue": {"Type": "AWS::SQS::Queue"},
            "CommandsLogGroup": {"Type": "AWS::Logs::LogGroup",
                "Properties": {"LogGroupName": group, "RetentionInDays": 7}},
        },
        "Outputs": {
            "CommandsDeadLetterQueueUrl": {"Value": {"Ref": "CommandsDeadLetterQueue"}},
            "NotifyUserQueueUrl": {"Value": {"Ref": "NotifyUserQueue"}},
        },
    })
    .to_string();
    aws_sdk_cloudformation::Client::new(&sdk().await)
        .create_stack()
        .stack_name(name)
        .template_body(template)
        .send()
        .await
        .unwrap();
    group
}

/// CloudWatch Logs on moto, through the library's AWS JSON client.
fn logs() -> switchboard::adapters::aws_json::AwsJsonClient {
    switchboard::adapters::aws_json::AwsJsonClient {
        connector: switchboard_cli::http::connector(),
        credentials: Some(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_sdk_sqs::config::Credentials::new("AKIDTEST", "secret", None, None, "test"),
            ),
        ),
        region: "us-east-1".into(),
        endpoint: endpoint(),
        service: "logs",
        target_prefix: "Logs_20140328",
    }
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn dlq_list_errors_finds_each_messages_last_error_in_the_functions_logs() {
    let stack = format!("cli-logs-{}", std::process::id());
    let group = create_logs_stack(&stack).await;
    let sqs = switchboard::aws::sqs(&sdk().await);
    let dlq = switchboard_cli::Stack::describe(&sdk().await, &stack)
        .await
        .unwrap()
        .output("CommandsDeadLetterQueueUrl")
        .unwrap()
        .to_owned();
    let mut ids = Vec::new();
    for body in [r#"{"version":1,"type":"nope"}"#, r#"{"version":2}"#] {
        let sent = sqs
            .send_message()
            .queue_url(&dlq)
            .message_body(body)
            .send()
            .await
            .unwrap();
        ids.push(sent.message_id().unwrap().to_owned());
    }
    // What the Commands function logged for the first message (logs.rs's JSON
    // lines): an older error, the last one, and another message's.
    let line = |id: &str, error: &str| {
        json!({"level":"WARN","fields":{"message":"command failed; SQS will redeliver it",
            "message_id":id,"receive_count":1,"error":error},
            "span":{"queue":"commands","message_id":id,"name":"message"},"spans":[]})
        .to_string()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let logs = logs();
    logs.call(
        "CreateLogStream",
        json!({"logGroupName": group, "logStreamName": "2026/11/29/[$LATEST]abc"}).to_string(),
    )
    .await
    .unwrap();
    logs.call(
        "PutLogEvents",
        json!({"logGroupName": group, "logStreamName": "2026/11/29/[$LATEST]abc", "logEvents": [
            {"timestamp": now - 3000, "message": line(&ids[0], "the memberships table could not be read")},
            {"timestamp": now - 2000, "message": line(&ids[0], "unknown command type \"nope\"")},
            {"timestamp": now - 1000, "message": line("another-message", "not this one")},
        ]})
        .to_string(),
    )
    .await
    .unwrap();

    let out = switchboard(&[
        "dlq", "list", "--stack", &stack, "--queue", "commands", "--errors", "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let listed = json_of(&out);
    let messages = listed["queues"][0]["messages"].as_array().unwrap().clone();
    let error_of = |id: &str| {
        messages
            .iter()
            .find(|m| m["messageId"] == id)
            .map(|m| m["lastError"].clone())
    };
    assert_eq!(
        error_of(&ids[0]),
        Some(json!("unknown command type \"nope\""))
    );
    assert_eq!(
        error_of(&ids[1]),
        Some(json!("unknown (logs expired or not found)"))
    );
    let text = switchboard(&[
        "dlq", "list", "--stack", &stack, "--queue", "commands", "--errors",
    ]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(&format!("{} receives=", ids[1])), "{text}");
    assert!(
        text.contains(" error=unknown (logs expired or not found) "),
        "{text}"
    );
    // Without --errors, no log is read and no lastError is shown.
    let plain = json_of(&switchboard(&[
        "dlq", "list", "--stack", &stack, "--queue", "commands", "--json",
    ]));
    assert!(
        plain["queues"][0]["messages"][0].get("lastError").is_none(),
        "{plain}"
    );
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn notify_goes_to_the_stacks_queue_and_a_missing_http_api_is_named() {
    let stack = format!("cli-notify-{}", std::process::id());
    create_logs_stack(&stack).await;
    let out = switchboard(&[
        "notify",
        "--stack",
        &stack,
        "--user",
        "alice",
        r#"{"a":1}"#,
        "--id",
        "n-1",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let document = json_of(&out);
    assert_eq!(document["queue"], "notify-user");
    let queue = switchboard_cli::Stack::describe(&sdk().await, &stack)
        .await
        .unwrap()
        .output("NotifyUserQueueUrl")
        .unwrap()
        .to_owned();
    let received = switchboard::aws::sqs(&sdk().await)
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let bodies: Vec<Value> = received
        .messages()
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect();
    assert_eq!(
        bodies,
        [json!({"userId": "alice", "data": {"a": 1}, "id": "n-1"})]
    );
    assert_eq!(
        received.messages()[0].message_id(),
        document["messageId"].as_str()
    );

    // The HTTP API commands need its URL: this stack has none, and says so.
    let out = switchboard(&["send", "--stack", &stack, "--all", "x"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "switchboard: stack \"{stack}\" has no output HttpApiUrl (is it a Switchboard stack?)\n"
        )
    );
    // A notify without its queue's output: the same, and nothing sent.
    let out = switchboard(&["notify", "--stack", &stack, "--connection", "c1", "x"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "switchboard: stack \"{stack}\" has no output NotifyConnectionQueueUrl (is it a Switchboard stack?)\n"
        )
    );
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn redrive_starts_a_move_task_where_sqs_has_them_and_waits_for_it() {
    // CloudFormation on moto; SQS on a stand-in that speaks move tasks (moto does not).
    let stack = format!("cli-move-{}", std::process::id());
    create_stack(&stack).await;
    let polls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = polls.clone();
    let arn = "arn:aws:sqs:us-east-1:123456789012:deliveries-dlq";
    let (sqs, seen) = fake::serve(move |request| {
        let target = request.header("x-amz-target").unwrap_or_default();
        let body = match target {
            "AmazonSQS.GetQueueAttributes" => json!({"Attributes": {"QueueArn": arn}}),
            "AmazonSQS.StartMessageMoveTask" => json!({"TaskHandle": "task-1"}),
            "AmazonSQS.ListMessageMoveTasks" => {
                let n = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (status, moved) = if n == 0 {
                    ("RUNNING", 1)
                } else {
                    ("COMPLETED", 3)
                };
                json!({"Results": [{"TaskHandle": "task-1", "Status": status, "SourceArn": arn,
                    "ApproximateNumberOfMessagesMoved": moved,
                    "ApproximateNumberOfMessagesToMove": 3, "StartedTimestamp": 1}]})
            }
            other => {
                return (
                    400,
                    json!({"__type": "InvalidAction", "message": other}).to_string(),
                );
            }
        };
        (200, body.to_string())
    });
    let out = switchboard_with(
        &[
            "dlq",
            "redrive",
            "--stack",
            &stack,
            "--queue",
            "deliveries",
            "--wait",
            "--json",
        ],
        &[("AWS_ENDPOINT_URL_SQS", &sqs)],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        json_of(&out),
        json!({"queue": "deliveries", "method": "move-task", "taskHandle": "task-1",
            "status": "COMPLETED", "moved": 3, "toMove": 3, "failureReason": null})
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "moving: 1 of 3 moved\n"
    );
    let targets: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.header("x-amz-target").unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        targets,
        [
            "AmazonSQS.GetQueueAttributes",
            "AmazonSQS.StartMessageMoveTask",
            "AmazonSQS.ListMessageMoveTasks",
            "AmazonSQS.ListMessageMoveTasks"
        ]
    );
    let start = seen.lock().unwrap()[1].body.clone();
    assert_eq!(
        serde_json::from_str::<Value>(&start).unwrap(),
        json!({"SourceArn": arn})
    );

    // A refusal that is not "unsupported" is an error, and nothing is copied.
    let (sqs, seen) =
        fake::serve(
            move |request| match request.header("x-amz-target").unwrap_or_default() {
                "AmazonSQS.GetQueueAttributes" => {
                    (200, json!({"Attributes": {"QueueArn": arn}}).to_string())
                }
                _ => (
                    400,
                    json!({"__type": "com.amazonaws.sqs#AccessDenied", "message": "not allowed"})
                        .to_string(),
                ),
            },
        );
    let out = switchboard_with(
        &["dlq", "redrive", "--stack", &stack, "--queue", "deliveries"],
        &[("AWS_ENDPOINT_URL_SQS", &sqs)],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("switchboard: https://")
            && stderr.ends_with(": StartMessageMoveTask: AccessDenied: not allowed\n"),
        "{stderr}"
    );
    assert_eq!(seen.lock().unwrap().len(), 2, "no receive, no send");
}

/// A stack shaped like template.yaml where `doctor` looks: the parameters it
/// checks (template defaults unless `overrides` says otherwise) and the
/// WebSocketUrl output of a WebSocket API and stage made in moto's API Gateway
/// (moto's CloudFormation does not make AWS::ApiGatewayV2 resources), whose
/// default route throttles are `burst` and a rate of 1000.
async fn create_doctor_stack(name: &str, overrides: &[(&str, &str)], burst: i32) -> String {
    let sdk = sdk().await;
    let apis = aws_sdk_apigatewayv2::Client::new(&sdk);
    let api = apis
        .create_api()
        .name(name)
        .protocol_type(aws_sdk_apigatewayv2::types::ProtocolType::Websocket)
        .route_selection_expression("$request.body.action")
        .send()
        .await
        .unwrap();
    let api_id = api.api_id().unwrap().to_owned();
    apis.create_stage()
        .api_id(&api_id)
        .stage_name("prod")
        .default_route_settings(
            aws_sdk_apigatewayv2::types::RouteSettings::builder()
                .throttling_rate_limit(1000.0)
                .throttling_burst_limit(burst)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut parameters = serde_json::Map::new();
    for (key, default) in [
        ("NotifyUserMaxConcurrency", 5),
        ("NotifyConnectionMaxConcurrency", 20),
        ("CommandsMaxConcurrency", 5),
        ("DeliverMaxConcurrency", 50),
        ("UpstreamMaxConcurrency", 5),
        ("RouteReservedConcurrency", 0),
        ("PostRateLimit", 9500),
        ("ThrottlingRateLimit", 1000),
        ("ThrottlingBurstLimit", 500),
    ] {
        parameters.insert(
            key.into(),
            json!({"Type": "Number", "Default": default.to_string()}),
        );
    }
    let template = json!({
        "Parameters": parameters,
        "Resources": {"NotifyUserQueue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {"WebSocketUrl": {"Value":
            format!("wss://{api_id}.execute-api.us-east-1.amazonaws.com/prod")}},
    })
    .to_string();
    let overrides: Vec<_> = overrides
        .iter()
        .map(|(k, v)| {
            aws_sdk_cloudformation::types::Parameter::builder()
                .parameter_key(*k)
                .parameter_value(*v)
                .build()
        })
        .collect();
    aws_sdk_cloudformation::Client::new(&sdk)
        .create_stack()
        .stack_name(name)
        .template_body(template)
        .set_parameters(Some(overrides))
        .send()
        .await
        .unwrap();
    api_id
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn doctor_reads_what_moto_has_and_names_what_it_could_not_read() {
    let stack = format!("cli-doctor-{}", std::process::id());
    let api_id = create_doctor_stack(&stack, &[], 500).await;

    let out = switchboard(&["doctor", "--stack", &stack, "--json"]);
    // moto has no Lambda GetAccountSettings and no API Gateway quotas: each is a
    // warning that says so, and the checks that can run do (none fails: exit 0).
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let document = json_of(&out);
    assert_eq!(document["stack"], stack);
    assert_eq!(document["region"], "us-east-1");
    let findings = document["findings"].as_array().unwrap().clone();
    let checks: Vec<(&str, &str)> = findings
        .iter()
        .map(|f| {
            (
                f["check"].as_str().unwrap(),
                f["severity"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        checks,
        [
            ("read:lambda-concurrency", "warn"),
            ("read:management-api-quota", "warn"),
            ("post-rate", "ok"),
            ("stage-throttle", "ok"),
        ]
    );
    assert_eq!(
        findings[0]["message"],
        "could not read the account's Lambda concurrency (lambda:GetAccountSettings): HTTP 404 with no AWS error (is the API there?); the concurrency checks were skipped"
    );
    assert_eq!(
        findings[1]["message"],
        "could not read API Gateway's account throttle quota (L-8A5B8E43, servicequotas:GetServiceQuota): GetServiceQuota: NoSuchResourceException: This service is not available in the current Region. Choose a different Region or a different service.; GetAWSDefaultServiceQuota: HTTP 500 with no AWS error (is the API there?); the checks assume the documented default 10000/s for us-east-1"
    );
    assert_eq!(
        findings[2]["message"],
        "PostRateLimit 9500 is within 95% of API Gateway's account throttle (10000/s) (9500)"
    );
    assert_eq!(findings[3]["message"], "stage prod: rate 1000/s, burst 500");
    // The stage was read from moto's API Gateway, through the stack's WebSocketUrl.
    assert_eq!(
        document["readings"]["stage"],
        json!({"apiId": api_id, "stageName": "prod",
            "throttlingRateLimit": 1000.0, "throttlingBurstLimit": 500})
    );
    assert_eq!(
        document["readings"]["parameters"]["DeliverMaxConcurrency"],
        "50"
    );
    assert!(
        document["readings"]["account"]["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("HTTP 404")),
        "{document}"
    );
    assert_eq!(document["summary"], json!({"fail": 0, "warn": 2, "ok": 2}));

    // The text: one line a finding, the count last.
    let text = switchboard(&["doctor", "--stack", &stack]);
    assert_eq!(text.status.code(), Some(0));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.starts_with(&format!(
            "stack {stack} in us-east-1\nWARN read:lambda-concurrency: could not read the account's Lambda concurrency"
        )),
        "{text}"
    );
    assert!(text.ends_with("\n0 fail, 2 warn, 2 ok\n"), "{text}");

    // A stage changed by hand (moto's UpdateStage fails: one made so): drift,
    // with the command that restores the stack's values.
    let drifted = format!("cli-doctor-drift-{}", std::process::id());
    let api_id = create_doctor_stack(&drifted, &[], 20).await;
    let out = switchboard(&["doctor", "--stack", &drifted, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let document = json_of(&out);
    let drift = document["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "stage-drift")
        .cloned()
        .unwrap_or_else(|| panic!("{document}"));
    assert_eq!(drift["severity"], "warn");
    assert_eq!(
        drift["fixes"][0]["command"],
        format!(
            "aws apigatewayv2 update-stage --api-id {api_id} --stage-name prod --default-route-settings ThrottlingRateLimit=1000,ThrottlingBurstLimit=500 --region us-east-1"
        )
    );
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn doctor_exits_5_when_a_setting_fails_and_says_what_to_deploy() {
    let stack = format!("cli-doctor-fail-{}", std::process::id());
    create_doctor_stack(&stack, &[("PostRateLimit", "12000")], 500).await;
    let out = switchboard(&["doctor", "--stack", &stack, "--json"]);
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    let document = json_of(&out);
    let post = document["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "post-rate")
        .cloned()
        .unwrap_or_else(|| panic!("{document}"));
    assert_eq!(post["severity"], "fail");
    assert_eq!(
        post["fixes"],
        json!([
            {"action": "lower", "command": format!(
                "sam deploy --stack-name {stack} --region us-east-1 --parameter-overrides PostRateLimit=9500")},
            {"action": "request", "command":
                "aws service-quotas request-service-quota-increase --service-code apigateway --quota-code L-8A5B8E43 --desired-value 12632 --region us-east-1"},
        ])
    );

    // A stack without the WebSocket API's output: the stage is named as unread,
    // and the stack's parameters are checked instead.
    let bare = format!("cli-doctor-bare-{}", std::process::id());
    create_logs_stack(&bare).await;
    let out = switchboard(&["doctor", "--stack", &bare, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let document = json_of(&out);
    let messages: Vec<&str> = document["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.contains(&format!(
            "could not read the WebSocket stage's throttles (apigateway:GET): stack \"{bare}\" has no output WebSocketUrl (is it a Switchboard stack?); checking the stack's parameters instead"
        ).as_str()),
        "{messages:#?}"
    );
    assert!(
        messages.contains(&"the stack has no parameter PostRateLimit (an older template?): the checks assume the template default 9500"),
        "{messages:#?}"
    );

    // doctor reads a deployed stack only.
    let local = switchboard(&["doctor", "--local"]);
    assert_eq!(local.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&local.stderr).trim(),
        "switchboard: this command reads a deployed stack: leave out --local"
    );
}

/// Lambda's GetAccountSettings and Service Quotas' GetServiceQuota, which moto
/// lacks, on a stand-in: an account of `limit` concurrent executions and API
/// Gateway's throttle quota applied at `quota`.
fn account(limit: i32, quota: f64) -> (String, fake::Requests) {
    fake::serve(move |request| {
        if request.head.starts_with("GET /2016-08-19/account-settings") {
            return (
                200,
                json!({"AccountLimit": {"ConcurrentExecutions": limit,
                    "UnreservedConcurrentExecutions": limit, "CodeSizeUnzipped": 262144000,
                    "CodeSizeZipped": 52428800, "TotalCodeSize": 80530636800_i64},
                    "AccountUsage": {"FunctionCount": 11, "TotalCodeSize": 1}})
                .to_string(),
            );
        }
        match request.header("x-amz-target").unwrap_or_default() {
            "ServiceQuotasV20190624.GetServiceQuota" => (
                200,
                json!({"Quota": {"ServiceCode": "apigateway", "QuotaCode": "L-8A5B8E43",
                    "QuotaName": "Throttle rate", "Value": quota, "Adjustable": true}})
                .to_string(),
            ),
            other => (
                400,
                json!({"__type": "InvalidAction", "message": other}).to_string(),
            ),
        }
    })
}

#[tokio::test]
#[ignore = "needs moto; run make test"]
async fn doctor_fails_a_new_accounts_pool_of_ten_and_passes_a_thousand() {
    let stack = format!("cli-doctor-pool-{}", std::process::id());
    create_doctor_stack(&stack, &[], 500).await;

    let (small, seen) = account(10, 10_000.0);
    let out = switchboard_with(
        &["doctor", "--stack", &stack, "--json"],
        &[
            ("AWS_ENDPOINT_URL_LAMBDA", &small),
            ("AWS_ENDPOINT_URL_SERVICE_QUOTAS", &small),
        ],
    );
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    let document = json_of(&out);
    assert_eq!(
        document["readings"]["account"],
        json!({"concurrentExecutions": 10, "unreservedConcurrentExecutions": 10})
    );
    assert_eq!(
        document["readings"]["managementApiQuota"],
        json!({"quotaCode": "L-8A5B8E43", "value": 10000.0, "source": "applied"})
    );
    let findings = document["findings"].as_array().unwrap().clone();
    let concurrency = &findings[0];
    assert_eq!(concurrency["check"], "concurrency");
    assert_eq!(concurrency["severity"], "fail");
    assert!(
        concurrency["message"].as_str().unwrap().starts_with(
            "the five queue consumers may take 85 concurrent executions; with 0 reserved for connect and ping (RouteReservedConcurrency 0 each) and 5 kept for the other routes that is 90, and the account has 10 (unreserved 10): $connect will be throttled when the queues are busy."
        ),
        "{concurrency}"
    );
    assert_eq!(
        concurrency["fixes"][0]["command"],
        "aws service-quotas request-service-quota-increase --service-code lambda --quota-code L-B99A9384 --desired-value 1000 --region us-east-1"
    );
    let failing: Vec<&str> = findings
        .iter()
        .filter(|f| f["severity"] == "fail")
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        failing,
        [
            "concurrency",
            "consumer:NotifyConnectionMaxConcurrency",
            "consumer:DeliverMaxConcurrency"
        ]
    );
    // Both readings went to the stand-in, signed for their services.
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.iter().all(|r| r.header("authorization").is_some()));

    let (large, _) = account(1000, 10_000.0);
    let out = switchboard_with(
        &["doctor", "--stack", &stack],
        &[
            ("AWS_ENDPOINT_URL_LAMBDA", &large),
            ("AWS_ENDPOINT_URL_SERVICE_QUOTAS", &large),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("\n0 fail, 0 warn, 3 ok\n"), "{text}");
    assert!(
        text.contains(
            "ok   concurrency: the five queue consumers may take 85 concurrent executions;"
        ),
        "{text}"
    );
}
