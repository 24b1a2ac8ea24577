#!/usr/bin/env python3
"""Creates template.yaml's tables and queues on a local AWS endpoint (moto) and writes the
environment file `cargo lambda watch --env-file` runs every function with.

Usage: scripts/local-aws.py ENDPOINT ENV_FILE   (run it with .venv/bin/python: needs boto3
and PyYAML). Called by scripts/local-aws.sh; idempotent.

With LOCAL_AWS_SINKS=1 (scripts/invoke-events.sh sets it) every upstream sink and hook is on:
the Upstream queue, the EventBridge bus (created here), the webhook, and a connect hook at a
port nothing listens on, with fail-open, so every AWS call a deployed stack can make is made.
Beside ENV_FILE, resources.json maps each logical id to what Ref and GetAtt Arn give locally
(the IAM check, scripts/iam-check.py, resolves the template's policies with it).

Everything comes from the template: each DynamoDB table (keys, indexes, TTL) and SQS queue
(visibility timeout, redrive to its dead-letter queue) is created as declared, named by its
logical id (ConnectionsTable -> connections, NotifyUserDeadLetterQueue -> notify-user-dlq),
and every environment variable any function gets on AWS gets its local value here. A
variable the template gains without a local value here stops the script.
"""
import json
import os
import re
import sys

import boto3
import yaml

REGION = "us-east-1"
# Signed with by the local chain, accepted by moto; never real credentials.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# The development secret events/connect.json's token is signed with (docs/testing.md, "Invoke events locally").
DEV_SECRET = "switchboard-local-dev-secret-0123456789"
# The development webhook signing secret (plain text, as WebhookSecretValue holds it).
DEV_WEBHOOK_SECRET = "switchboard-local-dev-webhook-secret-0123456789"


class TemplateLoader(yaml.SafeLoader):
    """PyYAML with CloudFormation's short-form tags, as their long forms."""


def _tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


TemplateLoader.add_multi_constructor("!", _tag)


def local_name(logical_id):
    """ConnectionsTable -> connections; NotifyUserDeadLetterQueue -> notify-user-dlq."""
    base = re.sub(r"(Table|Queue)$", "", logical_id).replace("DeadLetter", "Dlq")
    return re.sub(r"(?<!^)(?=[A-Z])", "-", base).lower()


def main(endpoint, env_file):
    with open("template.yaml", encoding="utf-8") as f:
        template = yaml.load(f, Loader=TemplateLoader)
    resources = template["Resources"]
    parameters = template["Parameters"]
    session = boto3.Session(region_name=REGION, **{k.lower(): v for k, v in CREDENTIALS.items()})
    dynamodb = session.client("dynamodb", endpoint_url=endpoint)
    sqs = session.client("sqs", endpoint_url=endpoint)

    sinks = os.environ.get("LOCAL_AWS_SINKS") == "1"
    overrides = {
        "WebhookUrl": "http://127.0.0.1:9/handler",
        "EventBridgeEvents": "true",
        # Nothing listens there: every connect tries the hook (signed with the webhook
        # secret) and, failing open, connects.
        "ConnectHookUrl": "http://127.0.0.1:9/connect-hook",
        "ConnectHookFailOpen": "true",
        # A group stream keeps history, so publishes append and recover reads.
        "HistoryGroups": "chat:*",
        # Low enough that one handshake reaches it (the membership check at the limit).
        "MaxGroupsPerConnection": "4",
    } if sinks else {}

    def parameter_default(name):
        if name in overrides:
            return overrides[name]
        return str(parameters[name]["Default"])

    def condition(name):
        """One of the template's Conditions with the local parameter values."""
        def evaluate(node):
            if isinstance(node, dict) and "Fn::Equals" in node:
                a, b = (evaluate(x) for x in node["Fn::Equals"])
                return str(a) == str(b)
            if isinstance(node, dict) and "Fn::Not" in node:
                return not evaluate(node["Fn::Not"][0])
            if isinstance(node, dict) and "Ref" in node:
                return parameter_default(node["Ref"])
            if isinstance(node, dict) and "Condition" in node:
                return condition(node["Condition"])
            if isinstance(node, (str, int, float)):
                return node
            sys.exit(f"local-aws.py: cannot evaluate condition {name}: {node!r}")

        return evaluate(template["Conditions"][name])

    local = {}  # logical id -> what a Ref to it means locally
    account = "123456789012"  # moto's
    resolved = {}  # logical id -> {"Ref": ..., "Arn": ...}, for the IAM check

    existing_tables = dynamodb.list_tables()["TableNames"]
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::DynamoDB::Table":
            continue
        props = resource["Properties"]
        name = local_name(logical_id)
        local[logical_id] = name
        resolved[logical_id] = {
            "Ref": name,
            "Arn": f"arn:aws:dynamodb:{REGION}:{account}:table/{name}",
        }
        if name not in existing_tables:
            table = dict(
                TableName=name,
                BillingMode=props["BillingMode"],
                AttributeDefinitions=props["AttributeDefinitions"],
                KeySchema=props["KeySchema"],
            )
            # DynamoDB refuses an empty index list (the history table has no index).
            if props.get("GlobalSecondaryIndexes"):
                table["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
            dynamodb.create_table(**table)
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)

    queues = {k: r for k, r in resources.items() if r["Type"] == "AWS::SQS::Queue"}
    arns = {}
    # Dead-letter queues first: the others' redrive policies name them.
    for logical_id in sorted(queues, key=lambda k: "RedrivePolicy" in queues[k]["Properties"]):
        props = queues[logical_id]["Properties"]
        attributes = {
            key: str(props[key]) for key in ("VisibilityTimeout", "MessageRetentionPeriod") if key in props
        }
        redrive = props.get("RedrivePolicy")
        if redrive:
            target = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
            receives = redrive["maxReceiveCount"]
            if isinstance(receives, dict):
                receives = parameter_default(receives["Ref"])
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": arns[target], "maxReceiveCount": str(receives)}
            )
        url = sqs.create_queue(QueueName=local_name(logical_id), Attributes=attributes)["QueueUrl"]
        local[logical_id] = url
        arns[logical_id] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        resolved[logical_id] = {"Ref": url, "Arn": arns[logical_id], "QueueName": local_name(logical_id)}

    # The token keys and the webhook secret: the template generates both on AWS; locally they
    # hold the development secrets (what `aws secretsmanager put-secret-value` would put there).
    secretsmanager = session.client("secretsmanager", endpoint_url=endpoint)
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::SecretsManager::Secret":
            continue
        name = local_name(logical_id)
        keys = json.dumps({"kid": "1", "secret": DEV_SECRET})
        if logical_id == "WebhookSecretValue":
            keys = DEV_WEBHOOK_SECRET
        try:
            arn = secretsmanager.create_secret(Name=name, SecretString=keys)["ARN"]
        except secretsmanager.exceptions.ResourceExistsException:
            arn = secretsmanager.put_secret_value(SecretId=name, SecretString=keys)["ARN"]
        local[logical_id] = arn
        resolved[logical_id] = {"Ref": arn, "Arn": arn, "Name": name}

    # The upstream event bus.
    events = session.client("events", endpoint_url=endpoint)
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Events::EventBus":
            continue
        name = local_name(logical_id)
        try:
            arn = events.create_event_bus(Name=name)["EventBusArn"]
        except events.exceptions.ResourceAlreadyExistsException:
            arn = events.describe_event_bus(Name=name)["Arn"]
        local[logical_id] = name
        resolved[logical_id] = {"Ref": name, "Arn": arn, "Name": name}

    # Values that on AWS come from the WebSocket API itself.
    by_name = {
        # moto's Management API (POST/GET/DELETE /@connections/{id}) accepts every post.
        "WEBSOCKET_ENDPOINT": os.environ.get("LOCAL_AWS_WEBSOCKET_ENDPOINT") or endpoint,
        # Only handed out by negotiate: the local stack's URL (cargo run -p switchboard-local).
        "WEBSOCKET_URL": "ws://127.0.0.1:3001/local",
        # Nothing listens on the discard port: events/upstream.json's event is tried and kept
        # on the queue (a batch item failure), the retry path.
        "WEBHOOK_URL": "http://127.0.0.1:9/handler",
    }

    def value(name, declared):
        if name in by_name:
            return by_name[name]
        if isinstance(declared, dict) and "Fn::If" in declared:
            name_, then, otherwise = declared["Fn::If"]
            return value(name, then if condition(name_) else otherwise)
        if isinstance(declared, dict) and "Ref" in declared:
            ref = declared["Ref"]
            if ref in local:
                return local[ref]
            if ref in parameters:
                return parameter_default(ref)
        if isinstance(declared, (str, int, float)):
            return str(declared)
        sys.exit(f"local-aws.py: no local value for {name} = {declared!r}; add one")

    declared = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    for resource in resources.values():
        if resource["Type"] == "AWS::Serverless::Function":
            declared.update(resource["Properties"].get("Environment", {}).get("Variables", {}))
    env = {name: value(name, declared[name]) for name in sorted(declared)}
    env.update(
        AWS_REGION=REGION,
        AWS_ENDPOINT_URL_DYNAMODB=endpoint,
        AWS_ENDPOINT_URL_SQS=endpoint,
        AWS_ENDPOINT_URL_SECRETS_MANAGER=endpoint,
        AWS_ENDPOINT_URL_EVENTBRIDGE=endpoint,
        # events/connect.json's token lives until 2100 so the fixture keeps working:
        # far longer than the default 24-hour maximum lifetime.
        TOKEN_MAX_LIFETIME_SECONDS="3000000000",
        **CREDENTIALS,
    )
    with open(env_file, "w", encoding="utf-8") as f:
        f.write("# Written by scripts/local-aws.py for `cargo lambda watch --env-file`: every\n")
        f.write(f"# variable template.yaml sets, with the local values for {endpoint}.\n")
        for name, val in env.items():
            f.write(f"{name}={val}\n")
    # The API's id and stage: the Management API endpoint is moto's, whose paths carry neither.
    resolved["Api"] = {"Ref": "local-api"}
    with open(os.path.join(os.path.dirname(env_file) or ".", "resources.json"), "w", encoding="utf-8") as f:
        json.dump(
            {
                "region": REGION,
                "account": account,
                "parameters": {name: parameter_default(name) for name in parameters},
                "resources": resolved,
            },
            f,
            indent=1,
        )


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
