//! Checks on `template.yaml` (and the `samconfig.toml` beside it) that neither linter makes:
//! every route change reaches the WebSocket stage, every SQS event source has a maximum
//! concurrency, and `sam build` does not hash the whole repository for each function.
//!
//! [`load_template`] (tests/common/template.rs) reads the template into CloudFormation's
//! JSON form (short-form tags become `{"Ref": …}`, `{"Fn::GetAtt": […]}`, `{"Fn::Sub": …}`),
//! and [`websocket_route_keys`] lists the WebSocket API's route keys: other template checks
//! start from these two. The time budgets are checked in tests/time_budgets.rs.

mod common;

use common::template::{
    actions, load_template, logical_function_id, reference, repository_file, resources_of_type,
    statements,
};
use std::path::PathBuf;

use serde_json::{Value, json};
use switchboard::routes::{ROUTES, function_of};

/// The logical ids of the WebSocket APIs (`ProtocolType: WEBSOCKET`).
fn websocket_apis(template: &Value) -> Vec<&str> {
    resources_of_type(template, "AWS::ApiGatewayV2::Api")
        .filter(|(_, api)| api["Properties"]["ProtocolType"] == "WEBSOCKET")
        .map(|(id, _)| id)
        .collect()
}

/// The route keys of the template's WebSocket API, in template order
/// (`$connect`, `$disconnect`, `ping`, …).
pub fn websocket_route_keys(template: &Value) -> Vec<String> {
    let apis = websocket_apis(template);
    let [api] = apis.as_slice() else {
        panic!("expected one WebSocket API, found {apis:?}");
    };
    resources_of_type(template, "AWS::ApiGatewayV2::Route")
        .filter(|(_, route)| route["Properties"]["ApiId"] == reference(api))
        .map(|(id, route)| {
            route["Properties"]["RouteKey"]
                .as_str()
                .unwrap_or_else(|| panic!("{id}: RouteKey is not a string"))
                .to_owned()
        })
        .collect()
}

fn depends_on(resource: &Value) -> Vec<&str> {
    match &resource["DependsOn"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The function a WebSocket route's integration invokes, from `Target:
/// integrations/${XIntegration}` and that integration's `IntegrationUri`
/// (`…/functions/${XFunction.Arn}/invocations`): `XFunction`.
fn route_function(template: &Value, route: &Value) -> String {
    let target = route["Properties"]["Target"]["Fn::Sub"]
        .as_str()
        .unwrap_or_else(|| panic!("route target is not a !Sub: {route}"));
    let integration = target
        .strip_prefix("integrations/${")
        .and_then(|rest| rest.strip_suffix('}'))
        .unwrap_or_else(|| panic!("unexpected route target {target}"));
    let uri = template["Resources"][integration]["Properties"]["IntegrationUri"]["Fn::Sub"]
        .as_str()
        .unwrap_or_else(|| panic!("{integration}: IntegrationUri is not a !Sub"));
    let (_, after) = uri
        .split_once("/functions/${")
        .unwrap_or_else(|| panic!("{integration}: no function in {uri}"));
    let (function, _) = after
        .split_once(".Arn}")
        .unwrap_or_else(|| panic!("{integration}: no function ARN in {uri}"));
    function.to_owned()
}

/// `switchboard::routes::ROUTES` is the one list of routes: the template declares
/// exactly those route keys, each integrated with the function the list names.
#[test]
fn the_template_declares_exactly_the_routes_the_code_serves() {
    let template = load_template();
    let mut keys = websocket_route_keys(&template);
    keys.sort();
    let mut expected: Vec<String> = ROUTES.iter().map(|r| r.key.to_owned()).collect();
    expected.sort();
    assert_eq!(
        keys, expected,
        "template routes vs switchboard::routes::ROUTES"
    );
    for (id, route) in resources_of_type(&template, "AWS::ApiGatewayV2::Route") {
        let key = route["Properties"]["RouteKey"].as_str().unwrap_or_default();
        let Some(function) = function_of(key) else {
            panic!("{id}: route {key} is not in switchboard::routes::ROUTES");
        };
        assert_eq!(
            route_function(&template, route),
            logical_function_id(function.name()),
            "{id}: route {key} must invoke functions/{}",
            function.name()
        );
    }
}

/// A stage pinned to a fixed `AWS::ApiGatewayV2::Deployment` never sees a later route:
/// the deployment's properties do not change, so CloudFormation never makes another, and a
/// new route answers Forbidden until someone runs `create-deployment`. `AutoDeploy` makes
/// API Gateway deploy the stage on every change to the API.
#[test]
fn every_route_change_is_deployed_to_the_websocket_stage() {
    let template = load_template();
    for api in websocket_apis(&template) {
        let deployments: Vec<_> = resources_of_type(&template, "AWS::ApiGatewayV2::Deployment")
            .filter(|(_, d)| d["Properties"]["ApiId"] == reference(api))
            .map(|(id, _)| id)
            .collect();
        assert_eq!(
            deployments,
            Vec::<&str>::new(),
            "{api}: a fixed deployment is made once and never again; use AutoDeploy on the stage"
        );
        let stages: Vec<_> = resources_of_type(&template, "AWS::ApiGatewayV2::Stage")
            .filter(|(_, s)| s["Properties"]["ApiId"] == reference(api))
            .collect();
        assert!(!stages.is_empty(), "{api} has no stage");

        let routes: Vec<&str> = resources_of_type(&template, "AWS::ApiGatewayV2::Route")
            .filter(|(_, r)| r["Properties"]["ApiId"] == reference(api))
            .map(|(id, _)| id)
            .collect();
        let route_responses: Vec<&str> =
            resources_of_type(&template, "AWS::ApiGatewayV2::RouteResponse")
                .filter(|(_, r)| r["Properties"]["ApiId"] == reference(api))
                .map(|(id, _)| id)
                .collect();
        assert!(!routes.is_empty(), "{api} has no routes");
        for (stage_id, stage) in stages {
            let properties = &stage["Properties"];
            assert_eq!(
                properties["AutoDeploy"],
                Value::Bool(true),
                "{stage_id}: without AutoDeploy a changed route never reaches the stage"
            );
            assert_eq!(
                properties.get("DeploymentId"),
                None,
                "{stage_id}: a DeploymentId pins the stage to one deployment"
            );
            // The deployment made when the stage is created must hold every route.
            let waits_for = depends_on(stage);
            for needed in routes.iter().chain(&route_responses) {
                assert!(
                    waits_for.contains(needed),
                    "{stage_id} must DependsOn {needed}, or its first deployment may miss it"
                );
            }
        }
    }
}

/// The named parameter's `Default`, after checking it stays within `low..=high`.
fn number_parameter(template: &Value, name: &str, low: i64, high: i64) -> i64 {
    let parameter = &template["Parameters"][name];
    assert_eq!(parameter["Type"], "Number", "{name} must be a Number");
    let bound = |field: &str| {
        parameter[field]
            .as_i64()
            .unwrap_or_else(|| panic!("{name} needs a numeric {field}"))
    };
    assert!(bound("MinValue") >= low, "{name}: MinValue below {low}");
    assert!(bound("MaxValue") <= high, "{name}: MaxValue above {high}");
    let default = bound("Default");
    assert!((low..=high).contains(&default), "{name}: Default {default}");
    default
}

/// Lambda's default account concurrency; queue consumers may take at most a tenth of it
/// with the template's defaults, so a big broadcast cannot starve `$connect` and `ping`.
const ACCOUNT_CONCURRENCY: i64 = 1000;

#[test]
fn every_sqs_event_source_has_a_maximum_concurrency() {
    let template = load_template();
    let mut sources = Vec::new();
    let mut total = 0;
    for (function, resource) in resources_of_type(&template, "AWS::Serverless::Function") {
        let Some(events) = resource["Properties"]["Events"].as_object() else {
            continue;
        };
        for (event, source) in events.iter().filter(|(_, e)| e["Type"] == "SQS") {
            let maximum = &source["Properties"]["ScalingConfig"]["MaximumConcurrency"];
            let parameter = maximum["Ref"].as_str().unwrap_or_else(|| {
                panic!("{function}.{event}: ScalingConfig.MaximumConcurrency must be a parameter, is {maximum}")
            });
            // Lambda accepts 2 to 1000 for an SQS event source.
            total += number_parameter(&template, parameter, 2, 1000);
            sources.push(format!("{function}.{event}"));
        }
    }
    if let Some((id, _)) = resources_of_type(&template, "AWS::Lambda::EventSourceMapping").next() {
        panic!("{id}: declare event sources as function Events, where this test checks them");
    }
    sources.sort();
    assert_eq!(
        sources,
        [
            "CommandsFunction.Commands",
            "DeliverFunction.Deliveries",
            "NotifyConnectionFunction.NotifyConnection",
            "NotifyUserFunction.NotifyUser",
            "UpstreamFunction.Upstream"
        ]
    );
    assert!(
        total <= ACCOUNT_CONCURRENCY / 10,
        "the queue consumers' default maximum concurrency adds up to {total}"
    );
}

#[test]
fn connect_and_ping_can_reserve_concurrency() {
    let template = load_template();
    number_parameter(&template, "RouteReservedConcurrency", 0, 1000);
    for function in ["ConnectFunction", "PingFunction"] {
        assert_eq!(
            template["Resources"][function]["Properties"]["ReservedConcurrentExecutions"],
            json!({ "Fn::If": [
                "ReserveRouteConcurrency",
                { "Ref": "RouteReservedConcurrency" },
                { "Ref": "AWS::NoValue" }
            ] }),
            "{function}"
        );
    }
    assert_eq!(
        template["Conditions"]["ReserveRouteConcurrency"],
        json!({ "Fn::Not": [{ "Fn::Equals": [{ "Ref": "RouteReservedConcurrency" }, 0] }] })
    );
}

/// The `key = value` lines of one `[section]` of samconfig.toml (flat TOML only).
fn samconfig_section(section: &str) -> Vec<(String, String)> {
    let path = repository_file("samconfig.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let header = format!("[{section}]");
    text.lines()
        .map(str::trim)
        .skip_while(|line| *line != header)
        .skip(1)
        .take_while(|line| !line.starts_with('['))
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

/// `sam build --cached` hashes every file under a function's `CodeUri`, for each function,
/// before it decides anything. With `CodeUri: .` that is the whole repository (`.venv`,
/// `.git`, `target/`), ten times over, and any edit (the README) invalidates all ten.
/// cargo-lambda builds in the source directory, so cargo's own fingerprints already skip
/// unchanged work, correctly.
#[test]
fn sam_build_does_not_hash_the_repository() {
    let template = load_template();
    let global = &template["Globals"]["Function"]["CodeUri"];
    let repository_root = resources_of_type(&template, "AWS::Serverless::Function")
        .map(|(_, f)| f["Properties"].get("CodeUri").unwrap_or(global))
        .any(|uri| matches!(uri.as_str(), Some("." | "./")));
    let build = samconfig_section("default.build.parameters");
    let cached = build
        .iter()
        .find(|(key, _)| key == "cached")
        .map(|(_, value)| value.as_str());
    if repository_root {
        assert_ne!(
            cached,
            Some("true"),
            "CodeUri is the repository root: sam build's cache would hash all of it per function"
        );
    }
}

/// The docs read stack outputs by name (`$(output NAME)`, the AWS walk-through in
/// docs/operations.md and the pages that reuse its `output` function): each must be one the
/// template declares, or the copied commands set empty variables.
#[test]
fn the_walk_through_reads_outputs_the_template_has() {
    let template = load_template();
    let mut pages = vec![repository_file("README.md")];
    let docs = repository_file("docs");
    let mut listed: Vec<PathBuf> = std::fs::read_dir(&docs)
        .unwrap_or_else(|e| panic!("reading {}: {e}", docs.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    listed.sort();
    pages.extend(listed);
    let mut read = Vec::new();
    for path in &pages {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        for rest in text.split("$(output ").skip(1) {
            if let Some((name, _)) = rest.split_once(')') {
                read.push((path.clone(), name.to_owned()));
            }
        }
    }
    let walk_through = repository_file("docs/operations.md");
    assert!(
        read.iter()
            .filter(|(path, _)| *path == walk_through)
            .count()
            >= 4,
        "the walk-through reads {read:?}: where did it go?"
    );
    for (path, name) in read {
        assert!(
            template["Outputs"].get(&name).is_some(),
            "{} reads output {name}, which template.yaml does not declare",
            path.display()
        );
    }
}

#[test]
fn every_client_limit_is_a_parameter_passed_to_the_functions() {
    let template = load_template();
    let variables = &template["Globals"]["Function"]["Environment"]["Variables"];
    let defaults = switchboard::services::Settings::default();
    let limits = &defaults.limits;
    for (variable, parameter, default) in [
        ("PUBLISH_LIMIT", "PublishLimit", defaults.publish_limit),
        (
            "ACTION_LIMIT",
            "ActionLimit",
            limits.connection_actions.limit,
        ),
        (
            "USER_ACTION_LIMIT",
            "UserActionLimit",
            limits.user_actions.limit,
        ),
        (
            "PRESENCE_CHANGE_LIMIT",
            "PresenceChangeLimit",
            limits.presence_changes.limit,
        ),
        (
            "MAX_CONNECTIONS_PER_USER",
            "MaxConnectionsPerUser",
            limits.max_connections_per_user,
        ),
        (
            "MAX_PRESENCE_MEMBERS",
            "MaxPresenceMembers",
            defaults.max_presence_members,
        ),
    ] {
        assert_eq!(
            variables[variable]["Ref"], parameter,
            "{variable} must come from the {parameter} parameter"
        );
        assert_eq!(
            number_parameter(&template, parameter, 0, 100_000),
            i64::from(default),
            "{parameter}'s default is the code's"
        );
    }
}

/// Every `{"Ref": name}` and `${name}` (in `Fn::Sub`) under `value`.
fn mentions(value: &Value, name: &str) -> bool {
    match value {
        Value::Object(map) => {
            map.get("Ref").and_then(Value::as_str) == Some(name)
                || map.get("Fn::Sub").is_some_and(|sub| {
                    let text = match sub {
                        Value::Array(parts) => parts.first().and_then(Value::as_str),
                        other => other.as_str(),
                    };
                    text.is_some_and(|t| t.contains(&format!("${{{name}}}")))
                })
                || map.values().any(|v| mentions(v, name))
        }
        Value::Array(items) => items.iter().any(|v| mentions(v, name)),
        _ => false,
    }
}

/// Every `Environment` block: the functions' globals and each resource's.
fn environment_blocks(template: &Value) -> Vec<(String, &Value)> {
    let mut blocks = vec![(
        "Globals.Function".to_owned(),
        &template["Globals"]["Function"]["Environment"],
    )];
    for (id, resource) in template["Resources"].as_object().unwrap() {
        if !resource["Properties"]["Environment"].is_null() {
            blocks.push((id.clone(), &resource["Properties"]["Environment"]));
        }
    }
    blocks
}

#[test]
fn no_secret_is_in_any_environment_block() {
    let template = load_template();
    for (id, block) in environment_blocks(&template) {
        for (variable, value) in block["Variables"].as_object().into_iter().flatten() {
            assert_ne!(variable, "TOKEN_SECRET", "{id} sets TOKEN_SECRET");
            assert_ne!(variable, "WEBHOOK_SECRET", "{id} sets WEBHOOK_SECRET");
            if variable.contains("SECRET") {
                let expected = match variable.as_str() {
                    "WEBHOOK_SECRET_ARN" => ("WEBHOOK_SECRET_ARN", reference("WebhookSecretValue")),
                    _ => ("TOKEN_SECRET_ARN", reference("TokenKeys")),
                };
                assert_eq!(
                    (variable.as_str(), value),
                    (expected.0, &expected.1),
                    "{id}: only the secret's ARN may be in the environment"
                );
            }
        }
    }
}

/// No secret is a template parameter (issue 23): `sam deploy --guided` asks for every NoEcho
/// parameter with no default and asks again on empty input, so a NoEcho parameter cannot be
/// left empty to have a secret generated. The stack generates both secrets in Secrets Manager
/// instead, unconditionally; an operator's own value goes in with `put-secret-value`
/// (scripts/guided-deploy-test.py drives the guided prompts themselves).
#[test]
fn the_secrets_are_generated_and_no_parameter() {
    let template = load_template();
    let no_echo: Vec<&str> = template["Parameters"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, p)| p.get("NoEcho").is_some())
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(no_echo.is_empty(), "NoEcho parameters: {no_echo:?}");
    for gone in ["TokenSecret", "WebhookSecret"] {
        assert!(
            template["Parameters"].get(gone).is_none(),
            "parameter {gone}"
        );
        // Nor does anything still refer to one (`Ref` or `${..}` in a `Fn::Sub`).
        assert!(!mentions(&template, gone), "something refers to {gone}");
    }
    for (id, template_key) in [("TokenKeys", Some("secret")), ("WebhookSecretValue", None)] {
        let properties = &template["Resources"][id]["Properties"];
        assert!(
            properties.get("SecretString").is_none(),
            "{id} has a SecretString"
        );
        let generate = &properties["GenerateSecretString"];
        assert!(generate.is_object(), "{id}: {generate}");
        assert!(
            generate.get("Fn::If").is_none(),
            "{id} is generated only on a condition"
        );
        assert_eq!(
            generate["GenerateStringKey"].as_str(),
            template_key,
            "{id}: {generate}"
        );
        assert!(
            generate["PasswordLength"].as_i64().unwrap_or(0) >= 32,
            "{id}"
        );
    }
    assert_eq!(
        template["Resources"]["TokenKeys"]["Properties"]["GenerateSecretString"]["SecretStringTemplate"],
        json!(r#"{"kid":"1"}"#)
    );
    for output in ["TokenKeysArn", "WebhookSecretArn"] {
        assert!(template["Outputs"][output].is_object(), "output {output}");
    }
}

#[test]
fn exactly_connect_and_api_can_read_the_token_keys() {
    let template = load_template();
    let secrets: Vec<&str> = resources_of_type(&template, "AWS::SecretsManager::Secret")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(secrets, ["TokenKeys", "WebhookSecretValue"]);
    // No resource policy widens access; IAM on the two functions is all.
    assert_eq!(
        resources_of_type(&template, "AWS::SecretsManager::ResourcePolicy").count(),
        0
    );
    let mut readers = Vec::new();
    for (id, resource) in template["Resources"].as_object().unwrap() {
        for statement in statements(resource) {
            let reads = actions(statement).iter().any(|a| {
                let a = a.to_ascii_lowercase();
                a == "*" || a.starts_with("secretsmanager:get") || a == "secretsmanager:*"
            });
            if reads {
                assert_eq!(
                    (statement["Effect"].as_str(), actions(statement)),
                    (Some("Allow"), vec!["secretsmanager:GetSecretValue"]),
                    "{id}"
                );
                // The webhook secret's readers are checked in upstream_events_have_least_privilege.
                if statement["Resource"] == reference("WebhookSecretValue") {
                    continue;
                }
                assert_eq!(
                    statement["Resource"],
                    reference("TokenKeys"),
                    "{id}: GetSecretValue on the token keys' ARN only"
                );
                readers.push(id.as_str());
            }
        }
        if id != "ConnectFunction" && id != "ApiFunction" {
            let variables = &resource["Properties"]["Environment"]["Variables"];
            assert!(
                variables["TOKEN_SECRET_ARN"].is_null(),
                "{id} is told where the keys are"
            );
        }
    }
    assert_eq!(readers, ["ApiFunction", "ConnectFunction"]);
    for function in ["ConnectFunction", "ApiFunction"] {
        assert_eq!(
            template["Resources"][function]["Properties"]["Environment"]["Variables"]["TOKEN_SECRET_ARN"],
            reference("TokenKeys"),
            "{function}"
        );
    }
    assert!(
        template["Globals"]["Function"]["Environment"]["Variables"]["TOKEN_SECRET_ARN"].is_null()
    );
}

/// A metric the template reads from the `Switchboard` namespace: its name and
/// dimension names, and where (for the failure message).
#[derive(Debug)]
struct MetricUse {
    name: String,
    dimensions: Vec<String>,
    function: Option<String>,
    place: String,
}

/// `{Switchboard,Function,Reason} MetricName="ConnectsRejected"` in a SEARCH expression.
fn search_uses(expression: &str, place: &str) -> Vec<MetricUse> {
    let mut uses = Vec::new();
    let mut rest = expression;
    while let Some(start) = rest.find("{Switchboard") {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else { break };
        let dimensions: Vec<String> = after[..end].split(',').skip(1).map(str::to_owned).collect();
        let tail = &after[end..];
        let name = tail
            .split_once("MetricName=\"")
            .and_then(|(_, n)| n.split_once('"'))
            .map(|(n, _)| n.to_owned())
            .unwrap_or_else(|| panic!("{place}: a SEARCH without a MetricName: {expression}"));
        uses.push(MetricUse {
            name,
            dimensions,
            function: None,
            place: place.to_owned(),
        });
        rest = tail;
    }
    uses
}

/// Every Switchboard metric the alarms and the dashboard read.
fn switchboard_metric_uses(template: &Value) -> Vec<MetricUse> {
    let mut uses = Vec::new();
    let metric_use = |metric: &Value, place: &str| {
        let dimensions = metric["Dimensions"].as_array().cloned().unwrap_or_default();
        MetricUse {
            name: metric["MetricName"].as_str().unwrap().to_owned(),
            dimensions: dimensions
                .iter()
                .map(|d| d["Name"].as_str().unwrap().to_owned())
                .collect(),
            function: dimensions
                .iter()
                .find(|d| d["Name"] == "Function")
                .and_then(|d| d["Value"].as_str())
                .map(str::to_owned),
            place: place.to_owned(),
        }
    };
    for (id, alarm) in resources_of_type(template, "AWS::CloudWatch::Alarm") {
        let properties = &alarm["Properties"];
        if properties["Namespace"] == "Switchboard" {
            uses.push(metric_use(properties, id));
        }
        for metric in properties["Metrics"].as_array().into_iter().flatten() {
            let stat = &metric["MetricStat"]["Metric"];
            if stat["Namespace"] == "Switchboard" {
                uses.push(metric_use(stat, id));
            }
        }
    }
    for (id, dashboard) in resources_of_type(template, "AWS::CloudWatch::Dashboard") {
        let body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: DashboardBody is not a !Sub text"));
        let body: Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("{id}: the dashboard body is not JSON: {e}"));
        for widget in body["widgets"].as_array().unwrap() {
            let title = widget["properties"]["title"].as_str().unwrap_or_default();
            let place = format!("{id} \"{title}\"");
            for row in widget["properties"]["metrics"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let row = row.as_array().unwrap();
                if let Some(expression) = row[0]["expression"].as_str() {
                    uses.extend(search_uses(expression, &place));
                } else if row[0] == "Switchboard" {
                    let strings: Vec<&str> = row.iter().filter_map(Value::as_str).collect();
                    let pairs: Vec<(&str, &str)> =
                        strings[2..].chunks(2).map(|p| (p[0], p[1])).collect();
                    uses.push(MetricUse {
                        name: strings[1].to_owned(),
                        dimensions: pairs.iter().map(|(n, _)| (*n).to_owned()).collect(),
                        function: pairs
                            .iter()
                            .find(|(n, _)| *n == "Function")
                            .map(|(_, v)| (*v).to_owned()),
                        place: place.clone(),
                    });
                }
            }
        }
    }
    uses
}

/// The `Function` dimension values the mains measure under (`lambda::run("deliver", …)`).
fn measured_functions() -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(repository_file("functions")).unwrap() {
        let main = entry.unwrap().path().join("src/main.rs");
        let text: String = std::fs::read_to_string(&main)
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        for part in text.split("lambda::run(\"").skip(1) {
            names.push(part.split('"').next().unwrap().to_owned());
        }
    }
    names
}

#[test]
fn every_alarm_and_dashboard_metric_is_one_the_code_emits() {
    use switchboard::metrics::{FUNCTION, Metric};
    let template = load_template();
    let uses = switchboard_metric_uses(&template);
    let functions = measured_functions();
    assert!(functions.contains(&"deliver".to_owned()), "{functions:?}");
    for found in &uses {
        let metric = Metric::ALL
            .into_iter()
            .find(|m| m.name() == found.name)
            .unwrap_or_else(|| panic!("{}: no code emits {:?}", found.place, found.name));
        let mut emitted = vec![FUNCTION.to_owned()];
        emitted.extend(metric.dimensions().iter().map(|d| (*d).to_owned()));
        assert_eq!(
            found.dimensions, emitted,
            "{}: {} is emitted with these dimensions",
            found.place, found.name
        );
        if let Some(function) = &found.function {
            assert!(
                functions.contains(function),
                "{}: no function measures as {function:?} ({functions:?})",
                found.place
            );
        }
    }
    // The dashboard shows connections, every post outcome and the latency; the
    // throttling alarm reads the posts.
    for name in [
        "ConnectsAccepted",
        "ConnectsRejected",
        "Disconnects",
        "PostsDelivered",
        "PostsGone",
        "PostsThrottled",
        "PostsFailed",
        "FanoutLatency",
        "ClientActions",
        "DeadLettered",
        "PostsRetried",
        "RetriesScheduled",
    ] {
        assert!(
            uses.iter().any(|u| u.name == name),
            "{name} is not on the dashboard"
        );
    }
    let throttling = &template["Resources"]["ManagementApiThrottlingAlarm"]["Properties"];
    assert!(
        uses.iter()
            .any(|u| u.place == "ManagementApiThrottlingAlarm" && u.name == "PostsThrottled"),
        "{throttling}"
    );
}

#[test]
fn every_dead_letter_queue_and_function_has_its_alarms() {
    let template = load_template();
    let alarms: Vec<&Value> = resources_of_type(&template, "AWS::CloudWatch::Alarm")
        .map(|(_, alarm)| &alarm["Properties"])
        .collect();
    let topic =
        json!({"Fn::If": ["HasAlarmEmail", [{"Ref": "AlarmTopic"}], {"Ref": "AWS::NoValue"}]});
    for alarm in &alarms {
        assert_eq!(alarm["AlarmActions"], topic, "{alarm}");
    }
    let watching = |namespace: &str, metric: &str, dimension: &Value| {
        alarms.iter().any(|a| {
            a["Namespace"] == namespace
                && a["MetricName"] == metric
                && a["Dimensions"][0]["Value"] == *dimension
                && a["ComparisonOperator"] == "GreaterThanThreshold"
                && a["Threshold"] == 0
        })
    };
    let queues: Vec<&str> = resources_of_type(&template, "AWS::SQS::Queue")
        .map(|(id, _)| id)
        .filter(|id| id.ends_with("DeadLetterQueue"))
        .collect();
    assert_eq!(queues.len(), 5, "{queues:?}");
    for queue in queues {
        let name = json!({"Fn::GetAtt": [queue, "QueueName"]});
        assert!(
            watching("AWS/SQS", "ApproximateNumberOfMessagesVisible", &name),
            "no alarm on {queue}"
        );
    }
    for (id, function) in resources_of_type(&template, "AWS::Serverless::Function") {
        for metric in ["Errors", "Throttles"] {
            assert!(
                watching("AWS/Lambda", metric, &reference(id)),
                "no {metric} alarm on {id}"
            );
        }
        let logging = &function["Properties"]["LoggingConfig"];
        assert_eq!(logging["LogFormat"], "JSON", "{id}");
        // Lambda drops no line; the functions filter at LOG_LEVEL (tests/logs.rs).
        assert_eq!(logging["ApplicationLogLevel"], "TRACE", "{id}");
        assert_eq!(
            logging["SystemLogLevel"],
            reference("SystemLogLevel"),
            "{id}"
        );
    }
    let topic = &template["Resources"]["AlarmTopic"];
    assert_eq!(topic["Condition"], "HasAlarmEmail");
    assert_eq!(
        topic["Properties"]["Subscription"][0]["Endpoint"],
        reference("AlarmEmail")
    );
    assert_eq!(template["Globals"]["Function"]["Tracing"], "Active");
    // The level is LOG_LEVEL's (parameter LogLevel): no RUST_LOG beside it.
    assert!(template["Globals"]["Function"]["Environment"]["Variables"]["RUST_LOG"].is_null());
}

/// Upstream events (issue 13): the bus, the Upstream queue and its DLQ, the
/// upstream function on that queue, the parameters; `events:PutEvents` on the
/// stack's bus only and only by the three producers; the webhook secret read
/// only by the functions that sign.
#[test]
fn upstream_events_have_least_privilege() {
    let template = load_template();
    let resources = &template["Resources"];
    assert_eq!(
        resources["UpstreamEventBus"]["Type"],
        "AWS::Events::EventBus"
    );
    assert_eq!(
        resources["UpstreamQueue"]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"],
        json!({"Fn::GetAtt": ["UpstreamDeadLetterQueue", "Arn"]})
    );
    let function = &resources["UpstreamFunction"]["Properties"];
    assert_eq!(
        function["Events"]["Upstream"]["Properties"]["Queue"],
        json!({"Fn::GetAtt": ["UpstreamQueue", "Arn"]})
    );
    assert_eq!(
        function["Events"]["Upstream"]["Properties"]["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    for parameter in [
        "WebhookUrl",
        "EventBridgeEvents",
        "ConnectHookUrl",
        "ConnectHookFailOpen",
        "EventHookUrl",
        "HookTimeoutMs",
    ] {
        assert!(template["Parameters"][parameter].is_object(), "{parameter}");
    }
    for output in [
        "UpstreamEventBusName",
        "UpstreamEventBusArn",
        "UpstreamDeadLetterQueueUrl",
    ] {
        assert!(template["Outputs"][output].is_object(), "{output}");
    }
    let mut putters = Vec::new();
    let mut webhook_readers = Vec::new();
    let mut upstream_senders = Vec::new();
    for (id, resource) in resources.as_object().unwrap() {
        for statement in statements(resource) {
            let acts = actions(statement);
            if acts.iter().any(|a| a.starts_with("events:") || *a == "*") {
                assert_eq!(acts, ["events:PutEvents"], "{id}");
                assert_eq!(
                    statement["Resource"],
                    json!({"Fn::GetAtt": ["UpstreamEventBus", "Arn"]}),
                    "{id}: PutEvents on the stack's bus only"
                );
                putters.push(id.as_str());
            }
            if statement["Resource"] == reference("WebhookSecretValue") {
                assert_eq!(acts, ["secretsmanager:GetSecretValue"], "{id}");
                webhook_readers.push(id.as_str());
            }
            if statement["Resource"] == json!({"Fn::GetAtt": ["UpstreamQueue", "Arn"]}) {
                assert_eq!(acts, ["sqs:SendMessage"], "{id}");
                upstream_senders.push(id.as_str());
            }
        }
    }
    let producers = ["ActionsFunction", "ConnectFunction", "DisconnectFunction"];
    assert_eq!(putters, producers);
    assert_eq!(upstream_senders, producers);
    assert_eq!(
        webhook_readers,
        ["ActionsFunction", "ConnectFunction", "UpstreamFunction"]
    );
}

/// Failed posts come back in seconds: only notify-connection may cut a
/// message's visibility, and only on its own queue (SAM's SQS event source
/// policy grants no ChangeMessageVisibility); it also learns that queue's URL.
#[test]
fn notify_connection_may_hand_its_own_records_back_and_nothing_more() {
    let template = load_template();
    let resources = &template["Resources"];
    let own_queue = json!({"Fn::GetAtt": ["NotifyConnectionQueue", "Arn"]});
    let mut changers = Vec::new();
    for (id, resource) in resources.as_object().unwrap() {
        for statement in statements(resource) {
            let acts = actions(statement);
            if acts
                .iter()
                .any(|a| a.starts_with("sqs:ChangeMessageVisibility") || *a == "sqs:*")
            {
                assert_eq!(
                    acts,
                    ["sqs:ChangeMessageVisibility", "sqs:SendMessage"],
                    "{id}"
                );
                assert_eq!(statement["Resource"], own_queue, "{id}");
                changers.push(id.as_str());
            }
        }
    }
    assert_eq!(changers, ["NotifyConnectionFunction"]);
    assert_eq!(
        resources["NotifyConnectionFunction"]["Properties"]["Environment"]["Variables"]["NOTIFY_CONNECTION_QUEUE_URL"],
        reference("NotifyConnectionQueue")
    );
}

#[test]
fn the_posting_functions_share_one_post_budget_and_may_write_only_it() {
    let template = load_template();
    let resources = &template["Resources"];
    assert_eq!(
        template["Parameters"]["PostRateLimit"]["Default"],
        json!(switchboard::pacing::TEMPLATE_RATE)
    );
    assert_eq!(
        template["Parameters"]["PostBookerShare"]["Default"],
        json!(switchboard::pacing::DEFAULT_BOOKER_SHARE)
    );
    let mut bookers = Vec::new();
    for (id, resource) in resources.as_object().unwrap() {
        let variables = &resource["Properties"]["Environment"]["Variables"];
        let posts = statements(resource)
            .iter()
            .any(|s| actions(s).contains(&"execute-api:ManageConnections"));
        let budgeted = variables.get("POST_RATE_LIMIT").is_some();
        if !budgeted {
            continue;
        }
        assert_eq!(
            variables["POST_RATE_LIMIT"],
            reference("PostRateLimit"),
            "{id}"
        );
        assert_eq!(
            variables["POST_BOOKER_SHARE"],
            reference("PostBookerShare"),
            "{id}"
        );
        assert!(posts, "{id} is paced but does not post");
        if id == "ActionsFunction" {
            // It takes from every user bucket (limit#…) and updates records, so
            // it may update any connections item, the budget's among them.
            assert!(
                statements(resource).iter().any(|s| {
                    s["Resource"] == json!({"Fn::GetAtt": ["ConnectionsTable", "Arn"]})
                        && actions(s).contains(&"dynamodb:UpdateItem")
                        && s.get("Condition").is_none()
                }),
                "{id}"
            );
            bookers.push(id.as_str());
            continue;
        }
        let bookings: Vec<_> = statements(resource)
            .into_iter()
            .filter(|s| s["Condition"].get("ForAllValues:StringLike").is_some())
            .collect();
        assert_eq!(bookings.len(), 1, "{id}");
        assert_eq!(actions(bookings[0]), ["dynamodb:UpdateItem"], "{id}");
        assert_eq!(
            bookings[0]["Resource"],
            json!({"Fn::GetAtt": ["ConnectionsTable", "Arn"]}),
            "{id}"
        );
        assert_eq!(
            bookings[0]["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"],
            json!(["limit#posts", "limit#posts#*"]),
            "{id}"
        );
        // No other statement lets it update connection records.
        for s in statements(resource) {
            if std::ptr::eq(s, bookings[0]) {
                continue;
            }
            let table = s["Resource"] == json!({"Fn::GetAtt": ["ConnectionsTable", "Arn"]});
            assert!(
                !(table && actions(s).contains(&"dynamodb:UpdateItem")),
                "{id} may update any connection item"
            );
        }
        bookers.push(id.as_str());
    }
    bookers.sort();
    assert_eq!(
        bookers,
        [
            "ActionsFunction",
            "DeliverFunction",
            "NotifyConnectionFunction"
        ]
    );
}

/// The principal a key policy statement names (`Principal: {Service|AWS: one or many}`).
fn principals<'a>(statement: &'a Value, kind: &str) -> Vec<&'a Value> {
    match &statement["Principal"][kind] {
        Value::Array(many) => many.iter().collect(),
        Value::Null => Vec::new(),
        one => vec![one],
    }
}

/// CloudWatch publishes the alarms to the topic, so it must be able to use the topic's key
/// (issue 23, defect 2). The AWS-managed `alias/aws/sns` cannot let it: that key's policy is
/// AWS's and grants `cloudwatch.amazonaws.com` nothing, so every alarm action fails ("CloudWatch
/// Alarms does not have authorization to access the SNS topic encryption key") and no e-mail
/// arrives. Every topic's key is the stack's own, made with the topic, rotated, administered by
/// the account, and usable by CloudWatch alarms of this account (Decrypt, GenerateDataKey*).
#[test]
fn every_topic_is_encrypted_with_a_key_cloudwatch_may_use() {
    let template = load_template();
    let topics: Vec<_> = resources_of_type(&template, "AWS::SNS::Topic").collect();
    assert!(!topics.is_empty(), "the alarms need their topic");
    for (id, topic) in topics {
        let key = &topic["Properties"]["KmsMasterKeyId"];
        if let Some(name) = key.as_str() {
            assert!(
                !name.starts_with("alias/aws/"),
                "{id}: {name} is an AWS-managed key, whose policy cannot let CloudWatch publish"
            );
        }
        let key_id = key["Ref"]
            .as_str()
            .or_else(|| key["Fn::GetAtt"][0].as_str())
            .unwrap_or_else(|| panic!("{id}: KmsMasterKeyId {key} is not a key of the template"));
        let key = &template["Resources"][key_id];
        assert_eq!(key["Type"], "AWS::KMS::Key", "{id}: {key_id}");
        assert_eq!(
            key["Condition"], topic["Condition"],
            "{key_id} is made exactly when {id} is"
        );
        let properties = &key["Properties"];
        assert_eq!(properties["EnableKeyRotation"], json!(true), "{key_id}");
        let policy: Vec<&Value> = properties["KeyPolicy"]["Statement"]
            .as_array()
            .unwrap_or_else(|| panic!("{key_id} has no KeyPolicy statements"))
            .iter()
            .collect();
        // The account administers the key (and may grant it with IAM): never orphaned.
        let root = json!({ "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root" });
        assert!(
            policy.iter().any(|s| s["Effect"] == "Allow"
                && principals(s, "AWS").contains(&&root)
                && actions(s) == ["kms:*"]),
            "{key_id}: the account root must administer the key"
        );
        let cloudwatch: Vec<&&Value> = policy
            .iter()
            .filter(|s| {
                s["Effect"] == "Allow"
                    && principals(s, "Service").contains(&&json!("cloudwatch.amazonaws.com"))
            })
            .collect();
        for needed in ["kms:Decrypt", "kms:GenerateDataKey*"] {
            assert!(
                cloudwatch.iter().any(|s| actions(s).contains(&needed)),
                "{key_id}: cloudwatch.amazonaws.com needs {needed} to publish to {id}"
            );
        }
        for statement in cloudwatch {
            assert_eq!(
                statement["Condition"]["StringEquals"]["aws:SourceAccount"],
                reference("AWS::AccountId"),
                "{key_id}: CloudWatch may use the key for this account's alarms only"
            );
        }
    }
}

/// Every function's errors and duration, and every dead-letter queue's depth, are on the
/// dashboard (issue 23, defect 7: the upstream function and its DLQ were missing).
#[test]
fn the_dashboard_shows_every_function_and_dead_letter_queue() {
    let template = load_template();
    let dashboards: Vec<_> = resources_of_type(&template, "AWS::CloudWatch::Dashboard").collect();
    let [(id, dashboard)] = dashboards.as_slice() else {
        panic!("expected one dashboard, found {}", dashboards.len());
    };
    let body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
        .as_str()
        .unwrap_or_else(|| panic!("{id}: DashboardBody is not a !Sub text"));
    // `${Name}` and `${Name.Attribute}` become `Name` and `Name.Attribute`.
    let mut resolved = String::new();
    let mut rest = body;
    while let Some(start) = rest.find("${") {
        let end = rest[start..]
            .find('}')
            .unwrap_or_else(|| panic!("{id}: an unclosed ${{ in the body"));
        resolved.push_str(&rest[..start]);
        resolved.push_str(&rest[start + 2..start + end]);
        rest = &rest[start + end + 1..];
    }
    resolved.push_str(rest);
    let body: Value = serde_json::from_str(&resolved)
        .unwrap_or_else(|e| panic!("{id}: the dashboard body is not JSON: {e}"));
    let rows: Vec<Vec<&str>> = body["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|w| w["properties"]["metrics"].as_array().into_iter().flatten())
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect()
        })
        .collect();
    let shows = |namespace: &str, metric: &str, dimension: &str, value: &str| {
        rows.iter()
            .any(|row| row.as_slice() == [namespace, metric, dimension, value])
    };
    for (function, _) in resources_of_type(&template, "AWS::Serverless::Function") {
        for metric in ["Errors", "Duration"] {
            assert!(
                shows("AWS/Lambda", metric, "FunctionName", function),
                "{id}: no {metric} of {function}"
            );
        }
    }
    let dead_letter_queues: Vec<&str> = resources_of_type(&template, "AWS::SQS::Queue")
        .filter_map(|(_, q)| {
            q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0].as_str()
        })
        .collect();
    assert_eq!(dead_letter_queues.len(), 5, "{dead_letter_queues:?}");
    for queue in dead_letter_queues {
        assert!(
            shows(
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                "QueueName",
                &format!("{queue}.QueueName")
            ),
            "{id}: no depth of the dead-letter queue {queue}"
        );
    }
}

// ---------------------------------------------------------------- custom domain

/// A parameter's value: the one given, else the template's default.
fn parameter_value(template: &Value, given: &[(&str, &str)], name: &str) -> String {
    if let Some((_, value)) = given.iter().find(|(n, _)| *n == name) {
        return (*value).to_owned();
    }
    let default = &template["Parameters"][name]["Default"];
    match default {
        Value::String(s) => s.clone(),
        Value::Null => panic!("parameter {name} is not given and has no default"),
        other => other.to_string(),
    }
}

/// A condition expression (`Fn::Not`, `Fn::Equals`, `Fn::And`, `Fn::Or`, `Condition`) as
/// CloudFormation evaluates it with these parameter values.
fn condition_holds(template: &Value, given: &[(&str, &str)], expression: &Value) -> bool {
    let operand = |value: &Value| -> String {
        match (value.get("Ref").and_then(Value::as_str), value) {
            (Some(name), _) => parameter_value(template, given, name),
            (None, Value::String(s)) => s.clone(),
            (None, other) => panic!("condition operand {other}"),
        }
    };
    let all = |key: &str| -> Vec<bool> {
        expression[key]
            .as_array()
            .unwrap_or_else(|| panic!("{key}: {expression}"))
            .iter()
            .map(|e| condition_holds(template, given, e))
            .collect()
    };
    if let Some(name) = expression.get("Condition").and_then(Value::as_str) {
        let named = &template["Conditions"][name];
        assert!(!named.is_null(), "no condition {name}");
        condition_holds(template, given, named)
    } else if let Some(inner) = expression.get("Fn::Not") {
        !condition_holds(template, given, &inner[0])
    } else if let Some(pair) = expression.get("Fn::Equals") {
        operand(&pair[0]) == operand(&pair[1])
    } else if expression.get("Fn::And").is_some() {
        all("Fn::And").into_iter().all(|b| b)
    } else if expression.get("Fn::Or").is_some() {
        all("Fn::Or").into_iter().any(|b| b)
    } else {
        panic!("not a condition: {expression}")
    }
}

/// The logical ids of the resources (or outputs) of `section` CloudFormation creates with
/// these parameter values: those without a `Condition`, and those whose condition holds.
fn created(template: &Value, section: &str, given: &[(&str, &str)]) -> Vec<String> {
    template[section]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| match r.get("Condition").and_then(Value::as_str) {
            None => true,
            Some(name) => condition_holds(template, given, &json!({ "Condition": name })),
        })
        .map(|(id, _)| id.clone())
        .collect()
}

/// A parameter given at deploy: (name, value).
type Parameter<'a> = (&'a str, &'a str);

const CUSTOM_DOMAIN_TYPES: [&str; 3] = [
    "AWS::ApiGatewayV2::DomainName",
    "AWS::ApiGatewayV2::ApiMapping",
    "AWS::Route53::RecordSet",
];
const CERTIFICATE: &str =
    "arn:aws:acm:us-east-1:123456789012:certificate/0b2c4d6e-1111-2222-3333-444455556666";

/// The custom domain (issue 26): off by default, so a stack deployed without the parameters
/// is unchanged; with `DomainName` the WebSocket stage is mapped on its own Regional name
/// (with `HttpDomainName`, the HTTP API on another: API Gateway cannot map both kinds on one
/// name), and with `HostedZoneId` each name gets an alias A record to its regional target.
#[test]
fn the_custom_domain_is_created_only_from_its_parameters() {
    let template = load_template();
    let domain_resources: Vec<&str> = CUSTOM_DOMAIN_TYPES
        .iter()
        .flat_map(|t| resources_of_type(&template, t).map(|(id, _)| id))
        .collect();
    assert_eq!(domain_resources.len(), 6, "{domain_resources:?}");
    let custom_outputs = [
        "WebSocketCustomUrl",
        "HttpApiCustomUrl",
        "CustomDomainTargets",
    ];
    for name in [
        "DomainName",
        "HttpDomainName",
        "CertificateArn",
        "HostedZoneId",
        "WebSocketMappingKey",
    ] {
        assert_eq!(
            template["Parameters"][name]["Default"],
            json!(""),
            "{name} must default to empty, so today's deploy is unchanged"
        );
    }

    // Defaults: none of it, neither a resource nor an output.
    let resources = created(&template, "Resources", &[]);
    for id in &domain_resources {
        assert!(
            !resources.iter().any(|r| r == id),
            "{id} is created without a custom domain"
        );
    }
    let outputs = created(&template, "Outputs", &[]);
    for name in custom_outputs {
        assert!(template["Outputs"][name].is_object(), "output {name}");
        assert!(
            !outputs.iter().any(|o| o == name),
            "output {name} by default"
        );
    }

    // Each of the three kinds, per parameter set: (given, expected domain resources).
    let ws = ("DomainName", "ws.example.com");
    let http = ("HttpDomainName", "api.example.com");
    let cert = ("CertificateArn", CERTIFICATE);
    let zone = ("HostedZoneId", "Z0123456789ABCDEFGHIJ");
    let cases: [(Vec<Parameter>, Vec<&str>); 5] = [
        (vec![zone], vec![]),
        (
            vec![ws, cert],
            vec!["WebSocketDomainName", "WebSocketApiMapping"],
        ),
        (
            vec![ws, cert, zone],
            vec![
                "WebSocketDomainName",
                "WebSocketApiMapping",
                "WebSocketDomainRecord",
            ],
        ),
        (
            vec![http, cert],
            vec!["HttpApiDomainName", "HttpApiMapping"],
        ),
        (vec![ws, http, cert, zone], domain_resources.clone()),
    ];
    for (given, expected) in cases {
        let made: Vec<String> = created(&template, "Resources", &given)
            .into_iter()
            .filter(|id| domain_resources.contains(&id.as_str()))
            .collect();
        let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        expected.sort();
        let mut made_sorted = made.clone();
        made_sorted.sort();
        assert_eq!(made_sorted, expected, "with {given:?}");
    }

    // Each domain: Regional, TLS 1.2, the certificate parameter; one API kind mapped on it.
    let websocket = websocket_apis(&template);
    for (id, domain) in resources_of_type(&template, "AWS::ApiGatewayV2::DomainName") {
        let configurations = domain["Properties"]["DomainNameConfigurations"]
            .as_array()
            .unwrap();
        let [configuration] = configurations.as_slice() else {
            panic!("{id}: {configurations:?}");
        };
        assert_eq!(configuration["EndpointType"], "REGIONAL", "{id}");
        assert_eq!(configuration["SecurityPolicy"], "TLS_1_2", "{id}");
        assert!(
            mentions(&configuration["CertificateArn"], "CertificateArn"),
            "{id}: {configuration}"
        );
        let mapped: Vec<&Value> = resources_of_type(&template, "AWS::ApiGatewayV2::ApiMapping")
            .filter(|(_, m)| m["Properties"]["DomainName"] == reference(id))
            .map(|(_, m)| &m["Properties"]["ApiId"])
            .collect();
        let [api] = mapped.as_slice() else {
            panic!("{id}: mapped APIs {mapped:?}");
        };
        let on_websocket = websocket.iter().any(|w| **api == reference(w));
        let parameter = domain["Properties"]["DomainName"]["Ref"].as_str();
        assert_eq!(
            parameter,
            Some(if on_websocket {
                "DomainName"
            } else {
                "HttpDomainName"
            }),
            "{id} maps {api}"
        );
    }

    // The mappings: each API's own stage, so a mapping is made after the stage exists.
    let mapping = |id: &str| &template["Resources"][id]["Properties"];
    let [api] = websocket.as_slice() else {
        panic!("{websocket:?}");
    };
    assert_eq!(mapping("WebSocketApiMapping")["ApiId"], reference(api));
    assert_eq!(mapping("WebSocketApiMapping")["Stage"], reference("Stage"));
    assert_eq!(
        template["Resources"]["Stage"]["Properties"]["ApiId"],
        reference(api)
    );
    assert_eq!(
        mapping("WebSocketApiMapping")["ApiMappingKey"]["Fn::If"],
        json!([
            "HasWebSocketMappingKey",
            reference("WebSocketMappingKey"),
            reference("AWS::NoValue")
        ])
    );
    assert_eq!(mapping("HttpApiMapping")["ApiId"], reference("HttpApi"));
    // SAM's reference to the HttpApi's generated `$default` stage.
    assert_eq!(
        mapping("HttpApiMapping")["Stage"],
        reference("HttpApi.Stage")
    );

    // The records: an alias A record of the domain's name to its regional target.
    for (record, domain) in [
        ("WebSocketDomainRecord", "WebSocketDomainName"),
        ("HttpApiDomainRecord", "HttpApiDomainName"),
    ] {
        let properties = &template["Resources"][record]["Properties"];
        assert_eq!(
            properties["HostedZoneId"],
            reference("HostedZoneId"),
            "{record}"
        );
        assert_eq!(properties["Name"], reference(domain), "{record}");
        assert_eq!(properties["Type"], "A", "{record}");
        assert_eq!(
            properties["AliasTarget"]["DNSName"],
            json!({ "Fn::GetAtt": [domain, "RegionalDomainName"] }),
            "{record}"
        );
        assert_eq!(
            properties["AliasTarget"]["HostedZoneId"],
            json!({ "Fn::GetAtt": [domain, "RegionalHostedZoneId"] }),
            "{record}"
        );
    }

    // The outputs: the wss:// URL, with the mapping key as its path when one is given.
    let with_ws = created(&template, "Outputs", &[ws, cert]);
    assert!(with_ws.iter().any(|o| o == "WebSocketCustomUrl"));
    assert!(!with_ws.iter().any(|o| o == "HttpApiCustomUrl"));
    assert_eq!(
        template["Outputs"]["WebSocketCustomUrl"]["Value"]["Fn::If"],
        json!([
            "HasWebSocketMappingKey",
            { "Fn::Sub": "wss://${WebSocketDomainName}/${WebSocketMappingKey}" },
            { "Fn::Sub": "wss://${WebSocketDomainName}" }
        ])
    );
    let with_http = created(&template, "Outputs", &[http, cert]);
    assert!(with_http.iter().any(|o| o == "HttpApiCustomUrl"));
    assert_eq!(
        template["Outputs"]["HttpApiCustomUrl"]["Value"],
        json!({ "Fn::Sub": "https://${HttpApiDomainName}" })
    );
}

/// A domain without a certificate is refused before the change set (the template's rule),
/// not halfway through the deploy.
#[test]
fn a_custom_domain_without_a_certificate_is_refused() {
    let template = load_template();
    let rule = &template["Rules"]["DomainNeedsCertificate"];
    let passes = |given: &[(&str, &str)]| {
        !condition_holds(&template, given, &rule["RuleCondition"])
            || rule["Assertions"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| condition_holds(&template, given, &a["Assert"]))
    };
    assert!(passes(&[]));
    assert!(!passes(&[("DomainName", "ws.example.com")]));
    assert!(!passes(&[("HttpDomainName", "api.example.com")]));
    assert!(passes(&[
        ("DomainName", "ws.example.com"),
        ("CertificateArn", CERTIFICATE)
    ]));
    assert!(passes(&[("HostedZoneId", "Z0123456789ABCDEFGHIJ")]));
}
