//! The `switchboard` binary against moto: a CloudFormation stack with the
//! template's dead-letter queue outputs, `status`, `dlq list` and
//! `dlq redrive`, their JSON and exit codes, and errors that name the problem.
//! `make test` starts moto and sets `MOTO_ENDPOINT`; plain `cargo test` ignores these.

use std::process::{Command, Output};

use serde_json::{Value, json};

const NEEDS_MOTO: &str = "set MOTO_ENDPOINT (make test starts moto server)";

fn endpoint() -> String {
    std::env::var("MOTO_ENDPOINT").expect(NEEDS_MOTO)
}

fn switchboard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
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

/// A stack shaped like template.yaml where the CLI looks: the four dead-letter
/// queues as outputs, and the Deliveries queue redriving into its DLQ.
async fn create_stack(name: &str) {
    let mut resources = serde_json::Map::new();
    let mut outputs = serde_json::Map::new();
    for queue in ["NotifyUser", "NotifyConnection", "Commands", "Deliveries"] {
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
        "no dead-letter queue named \"bogus\": use notify-user, notify-connection, commands or deliveries"
    );
    // A dead-letter queue no queue redrives into: nothing moved, and the reason.
    let orphan = switchboard(&["dlq", "redrive", "--stack", &stack, "--queue", "commands"]);
    assert_eq!(orphan.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&orphan.stderr).contains("no queue sends its failures here"),
        "{orphan:?}"
    );
    let unnamed = switchboard(&["status"]);
    assert_eq!(unnamed.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&unnamed.stderr).trim(),
        "name the stack: --stack NAME (or SWITCHBOARD_STACK)"
    );
}
