//! `template.yaml` read as CloudFormation's JSON form, for the template checks
//! (tests/template.rs, tests/time_budgets.rs).

use std::path::PathBuf;

use saphyr::{LoadableYamlNode, Scalar, Yaml};
use serde_json::{Map, Value, json};

pub fn repository_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
}

/// `template.yaml` as CloudFormation's JSON form of it.
pub fn load_template() -> Value {
    let path = repository_file("template.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let documents =
        Yaml::load_from_str(&text).unwrap_or_else(|e| panic!("template.yaml is not YAML: {e}"));
    let [document] = documents.as_slice() else {
        panic!("template.yaml holds {} documents, not one", documents.len());
    };
    to_json(document)
}

/// One YAML node as JSON, each CloudFormation short-form tag as its long form.
fn to_json(node: &Yaml) -> Value {
    match node {
        Yaml::Value(scalar) => scalar_to_json(scalar),
        Yaml::Representation(text, _, _) => Value::String(text.to_string()),
        Yaml::Sequence(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::Mapping(entries) => {
            let mut object = Map::new();
            for (key, value) in entries {
                let key = match to_json(key) {
                    Value::String(key) => key,
                    other => other.to_string(),
                };
                object.insert(key, to_json(value));
            }
            Value::Object(object)
        }
        Yaml::Tagged(tag, inner) if tag.handle == "!" => {
            let inner = to_json(inner);
            match tag.suffix.as_str() {
                "Ref" | "Condition" => json!({ tag.suffix.as_str(): inner }),
                // `!GetAtt Resource.Attribute`: the long form is a two-element list.
                "GetAtt" => match inner.as_str().and_then(|s| s.split_once('.')) {
                    Some((resource, attribute)) => json!({ "Fn::GetAtt": [resource, attribute] }),
                    None => json!({ "Fn::GetAtt": inner }),
                },
                function => json!({ format!("Fn::{function}"): inner }),
            }
        }
        // YAML's own tags (`!!str`, …) change nothing CloudFormation reads.
        Yaml::Tagged(_, inner) => to_json(inner),
        Yaml::Alias(_) | Yaml::BadValue => panic!("template.yaml: unsupported node {node:?}"),
    }
}

fn scalar_to_json(scalar: &Scalar) -> Value {
    match scalar {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(*b),
        Scalar::Integer(i) => json!(i),
        Scalar::FloatingPoint(f) => json!(f.into_inner()),
        Scalar::String(s) => Value::String(s.to_string()),
    }
}

/// Every resource of `resource_type`, as (logical id, resource).
pub fn resources_of_type<'a>(
    template: &'a Value,
    resource_type: &'a str,
) -> impl Iterator<Item = (&'a str, &'a Value)> {
    template["Resources"]
        .as_object()
        .expect("the template has Resources")
        .iter()
        .filter(move |(_, resource)| resource["Type"] == resource_type)
        .map(|(id, resource)| (id.as_str(), resource))
}

/// `{"Ref": logical_id}`.
pub fn reference(logical_id: &str) -> Value {
    json!({ "Ref": logical_id })
}

/// The IAM statements each resource carries (a SAM function's `Policies`); a statement
/// under `!If [condition, statement, AWS::NoValue]` counts as granted (it is, under its
/// condition).
pub fn statements(resource: &Value) -> Vec<&Value> {
    resource["Properties"]["Policies"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|policy| policy["Statement"].as_array().into_iter().flatten())
        .map(|statement| match &statement["Fn::If"] {
            Value::Array(branches) if branches.len() == 3 => &branches[1],
            _ => statement,
        })
        .collect()
}

pub fn actions(statement: &Value) -> Vec<&str> {
    match &statement["Action"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// `{Name}Function` for a function (`notify-user`) or its handler module (`notify_user`):
/// `NotifyUserFunction`.
pub fn logical_function_id(name: &str) -> String {
    let pascal: String = name
        .split(['-', '_'])
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    format!("{pascal}Function")
}
