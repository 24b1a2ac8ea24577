//! The environment each function is deployed with, read from `template.yaml`
//! (so the benches cannot drift from it): the template's `Globals` and the
//! function's own `Environment.Variables`, and Lambda's log variables from
//! its `LoggingConfig`, every intrinsic resolved as CloudFormation would with
//! the parameters' defaults, in a placeholder account, Region and API.

use serde_json::Value;

// The template checks' reader (CloudFormation's JSON form of the YAML).
#[allow(dead_code)]
#[path = "../../shared/tests/common/template.rs"]
mod template;

pub const REGION: &str = "eu-central-1";
const ACCOUNT: &str = "123456789012";
const API_ID: &str = "abc123defg";

/// `function`'s (`notify-user`) variables as the template deploys it with
/// the parameters' defaults, but those of `parameters` (name, value).
pub fn environment(
    function: &str,
    parameters: &[(&str, &str)],
) -> Result<Vec<(String, String)>, String> {
    let mut template = template::load_template();
    for (name, value) in parameters {
        let parameter = &mut template["Parameters"][*name];
        if parameter.is_null() {
            return Err(format!("template.yaml has no parameter {name}"));
        }
        parameter["Default"] = Value::String((*value).to_owned());
    }
    environment_in(&template, function)
}

fn environment_in(template: &Value, function: &str) -> Result<Vec<(String, String)>, String> {
    let id = template::logical_function_id(function);
    let resource = &template["Resources"][&id];
    if resource["Type"] != "AWS::Serverless::Function" {
        return Err(format!("template.yaml has no function {id}"));
    }
    let mut declared = serde_json::Map::new();
    for variables in [
        &template["Globals"]["Function"]["Environment"]["Variables"],
        &resource["Properties"]["Environment"]["Variables"],
    ] {
        if let Some(variables) = variables.as_object() {
            declared.extend(variables.clone());
        }
    }
    let mut env = Vec::new();
    for (name, value) in &declared {
        let value = resolve(template, value).map_err(|e| format!("{id}.{name}: {e}"))?;
        env.push((name.clone(), value));
    }
    // Lambda's own, from LoggingConfig (what the runtime reads for its format and level).
    let logging = &resource["Properties"]["LoggingConfig"];
    for (name, key) in [
        ("AWS_LAMBDA_LOG_FORMAT", "LogFormat"),
        ("AWS_LAMBDA_LOG_LEVEL", "ApplicationLogLevel"),
    ] {
        if !logging[key].is_null() {
            let value = resolve(template, &logging[key]).map_err(|e| format!("{id}.{key}: {e}"))?;
            env.push((name.to_owned(), value));
        }
    }
    Ok(env)
}

/// A value as CloudFormation resolves it with the parameters' defaults.
fn resolve(template: &Value, value: &Value) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Object(object) => {
            if let Some(name) = object.get("Ref").and_then(Value::as_str) {
                return reference(template, name);
            }
            if let Some(Value::Array(branches)) = object.get("Fn::If") {
                let [condition, then, otherwise] = branches.as_slice() else {
                    return Err(format!("Fn::If with {} items", branches.len()));
                };
                let name = condition
                    .as_str()
                    .ok_or("Fn::If without a condition name")?;
                let chosen = if holds(template, &template["Conditions"][name])? {
                    then
                } else {
                    otherwise
                };
                return resolve(template, chosen);
            }
            if let Some(text) = object.get("Fn::Sub").and_then(Value::as_str) {
                return substitute(template, text);
            }
            if let Some(Value::Array(parts)) = object.get("Fn::GetAtt") {
                let resource = parts.first().and_then(Value::as_str).unwrap_or_default();
                return Ok(arn(template, resource));
            }
            Err(format!("cannot resolve {value}"))
        }
        other => Err(format!("cannot resolve {other}")),
    }
}

/// `!Ref name`: a parameter's default, a pseudo parameter, or a resource's
/// placeholder (a table's name, a queue's URL, a secret's ARN, …).
fn reference(template: &Value, name: &str) -> Result<String, String> {
    let parameter = &template["Parameters"][name];
    if !parameter.is_null() {
        return match &parameter["Default"] {
            Value::Null => Err(format!("parameter {name} has no default")),
            default => resolve(template, default),
        };
    }
    match name {
        "AWS::Region" => return Ok(REGION.into()),
        "AWS::AccountId" => return Ok(ACCOUNT.into()),
        "AWS::URLSuffix" => return Ok("amazonaws.com".into()),
        "AWS::Partition" => return Ok("aws".into()),
        _ => {}
    }
    let resource = &template["Resources"][name];
    match resource["Type"].as_str() {
        Some("AWS::SQS::Queue") => Ok(format!(
            "https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
        )),
        Some("AWS::SecretsManager::Secret") => Ok(arn(template, name)),
        Some("AWS::ApiGatewayV2::Api") => Ok(API_ID.into()),
        Some(_) => Ok(name.to_owned()),
        None => Err(format!("no parameter or resource {name}")),
    }
}

/// A placeholder ARN for resource `name`.
fn arn(template: &Value, name: &str) -> String {
    match template["Resources"][name]["Type"].as_str() {
        Some("AWS::SecretsManager::Secret") => {
            format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}-AbCdEf")
        }
        Some("AWS::SQS::Queue") => format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"),
        _ => format!("arn:aws:bench:{REGION}:{ACCOUNT}:{name}"),
    }
}

/// `!Sub` with `${Name}` references.
fn substitute(template: &Value, text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed ${{ in {text}"))?;
        out.push_str(&reference(template, &after[..end])?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A condition with the parameters' defaults.
fn holds(template: &Value, condition: &Value) -> Result<bool, String> {
    if let Some(Value::Array(inner)) = condition.get("Fn::Not") {
        let first = inner.first().ok_or("Fn::Not without a condition")?;
        return Ok(!holds(template, first)?);
    }
    if let Some(Value::Array(pair)) = condition.get("Fn::Equals") {
        let [a, b] = pair.as_slice() else {
            return Err("Fn::Equals without two values".into());
        };
        return Ok(resolve(template, a)? == resolve(template, b)?);
    }
    if let Some(name) = condition.get("Condition").and_then(Value::as_str) {
        return holds(template, &template["Conditions"][name]);
    }
    Err(format!("cannot evaluate condition {condition}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
        env.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn every_function_gets_the_templates_variables_resolved() {
        for function in crate::coldstart::FUNCTIONS {
            let env = environment(function, &[]).unwrap_or_else(|e| panic!("{function}: {e}"));
            assert_eq!(
                get(&env, "TABLE_NAME"),
                Some("ConnectionsTable"),
                "{function}"
            );
            assert_eq!(
                get(&env, "WEBSOCKET_ENDPOINT"),
                Some("https://abc123defg.execute-api.eu-central-1.amazonaws.com/prod"),
                "{function}"
            );
            assert_eq!(
                get(&env, "AWS_LAMBDA_LOG_FORMAT"),
                Some("JSON"),
                "{function}"
            );
        }
        let connect = environment("connect", &[]).unwrap();
        assert_eq!(
            get(&connect, "TOKEN_SECRET_ARN"),
            Some("arn:aws:secretsmanager:eu-central-1:123456789012:secret:TokenKeys-AbCdEf")
        );
        assert_eq!(
            get(&connect, "TOKEN_SECRET"),
            None,
            "the plaintext secret is not deployed"
        );
        assert!(get(&connect, "WEBHOOK_SECRET_ARN").is_some());
        // A sink off by default: the template's `!If [HasWebhook, …, ""]`.
        assert_eq!(get(&connect, "UPSTREAM_QUEUE_URL"), Some(""));
        assert!(environment("nope", &[]).is_err());
        let hooked = environment("connect", &[("WebhookUrl", "https://app.example/in")]).unwrap();
        assert_eq!(
            get(&hooked, "UPSTREAM_QUEUE_URL"),
            Some("https://sqs.eu-central-1.amazonaws.com/123456789012/UpstreamQueue")
        );
        assert_eq!(
            environment("connect", &[("NoSuchParameter", "x")]),
            Err("template.yaml has no parameter NoSuchParameter".to_owned())
        );
    }
}
