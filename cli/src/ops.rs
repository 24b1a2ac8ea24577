//! The server operations as HTTP API requests: `send`, `negotiate`, `who`,
//! `close`, and `notify` as the seed's queue bodies. Every field is checked
//! with the library's own rules ([`switchboard::validate`]) before anything
//! is sent, so a bad value is named here and nothing reaches the stack.

use std::io::Read;

use serde_json::{Map, Value, json};
use switchboard::protocol::messages::MAX_MESSAGE_BYTES;
use switchboard::validate::{self, FieldError};

use crate::CliError;
use crate::http::segment;

/// A field's value checked with `rule`; `label` names it in the message
/// ("user id too long (300 bytes, at most 256)").
pub fn check(
    label: &str,
    value: &str,
    rule: fn(&'static str, &str) -> Result<(), FieldError>,
) -> Result<(), CliError> {
    rule("value", value).map_err(|e| {
        let why = match e {
            FieldError::TooLong { max, .. } => {
                format!("too long ({} bytes, at most {max})", value.len())
            }
            FieldError::Empty(_) => "empty".to_owned(),
            FieldError::Group { source, .. } => return CliError::Usage(source.to_string()),
            other => other.to_string().replace("\"value\" ", ""),
        };
        CliError::Usage(format!("{label} {why}"))
    })
}

/// The data of a message: `arg` (or stdin when it is absent or `-`), parsed as
/// JSON when it is JSON, else sent as a string (`as_string` always sends it as
/// a string). At most the 128 KB a message may carry.
pub fn data(arg: Option<&str>, as_string: bool) -> Result<Value, CliError> {
    let text = match arg {
        Some(text) if text != "-" => text.to_owned(),
        _ => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .lock()
                .take(MAX_MESSAGE_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| CliError::Usage(format!("cannot read the data from stdin: {e}")))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| CliError::Usage("the data on stdin is not UTF-8 text".into()))?;
            text.strip_suffix('\n').map(str::to_owned).unwrap_or(text)
        }
    };
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(CliError::Usage(format!(
            "data too long (over {MAX_MESSAGE_BYTES} bytes, at most {MAX_MESSAGE_BYTES})"
        )));
    }
    if as_string {
        return Ok(Value::String(text));
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Whom `send` addresses.
#[derive(Clone, Debug, Default)]
pub struct Target {
    pub connection: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub all: bool,
    pub exclude: Vec<String>,
}

/// The body of `POST /send`.
pub fn send_body(target: &Target, data: Value, id: Option<&str>) -> Result<Value, CliError> {
    let mut body = Map::new();
    match (&target.connection, &target.user, &target.group, target.all) {
        (Some(c), None, None, false) => {
            check("connection id", c, validate::connection_id)?;
            body.insert("connectionId".into(), json!(c));
        }
        (None, Some(u), group, false) => {
            check("user id", u, validate::user_id)?;
            body.insert("userId".into(), json!(u));
            if let Some(g) = group {
                check("group", g, validate::group)?;
                body.insert("group".into(), json!(g));
            }
        }
        (None, None, Some(g), false) => {
            check("group", g, validate::group)?;
            body.insert("group".into(), json!(g));
        }
        (None, None, None, true) => {
            body.insert("all".into(), json!(true));
        }
        _ => {
            return Err(CliError::Usage(
                "name one target: --connection, --user, --group, --user with --group, or --all"
                    .into(),
            ));
        }
    }
    if !target.exclude.is_empty() {
        if target.group.is_none() && !target.all || target.user.is_some() {
            return Err(CliError::Usage(
                "--exclude goes with --group or --all".into(),
            ));
        }
        for c in &target.exclude {
            check("excluded connection id", c, validate::connection_id)?;
        }
        body.insert("excludeConnectionIds".into(), json!(target.exclude));
    }
    if let Some(id) = id {
        check("id", id, validate::message_id)?;
        body.insert("id".into(), json!(id));
    }
    body.insert("data".into(), data);
    Ok(Value::Object(body))
}

/// Where `notify` puts its message: the seed's two queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifyQueue {
    User,
    Connection,
}

impl NotifyQueue {
    /// The local stack's queue name.
    pub fn local_name(self) -> &'static str {
        match self {
            NotifyQueue::User => "notify-user",
            NotifyQueue::Connection => "notify-connection",
        }
    }

    /// The stack output holding the queue's URL.
    pub fn output(self) -> &'static str {
        match self {
            NotifyQueue::User => "NotifyUserQueueUrl",
            NotifyQueue::Connection => "NotifyConnectionQueueUrl",
        }
    }
}

/// A NotifyUser `{userId,data}` or NotifyConnection `{connectionId,data}` body.
pub fn notify_body(
    user: Option<&str>,
    connection: Option<&str>,
    data: Value,
    id: Option<&str>,
) -> Result<(NotifyQueue, Value), CliError> {
    let mut body = Map::new();
    let queue = match (user, connection) {
        (Some(u), None) => {
            check("user id", u, validate::user_id)?;
            body.insert("userId".into(), json!(u));
            NotifyQueue::User
        }
        (None, Some(c)) => {
            check("connection id", c, validate::connection_id)?;
            body.insert("connectionId".into(), json!(c));
            NotifyQueue::Connection
        }
        _ => {
            return Err(CliError::Usage(
                "name one target: --user or --connection".into(),
            ));
        }
    };
    body.insert("data".into(), data);
    if let Some(id) = id {
        check("id", id, validate::message_id)?;
        body.insert("id".into(), json!(id));
    }
    let text = Value::Object(body.clone()).to_string();
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(CliError::Usage(format!(
            "the message is {} bytes, at most {MAX_MESSAGE_BYTES}",
            text.len()
        )));
    }
    Ok((queue, Value::Object(body)))
}

/// What `negotiate` asks for.
#[derive(Clone, Debug, Default)]
pub struct Negotiate {
    pub user: String,
    pub groups: Vec<String>,
    pub subscribe: Vec<String>,
    pub publish: Vec<String>,
    pub ttl_seconds: Option<u64>,
}

/// The body of `POST /negotiate`.
pub fn negotiate_body(n: &Negotiate) -> Result<Value, CliError> {
    check("user id", &n.user, validate::user_id)?;
    let named = |e: FieldError| CliError::Usage(e.to_string());
    validate::group_list("groups", &n.groups).map_err(named)?;
    validate::pattern_list("subscribe", &n.subscribe).map_err(named)?;
    validate::pattern_list("publish", &n.publish).map_err(named)?;
    let mut body = json!({ "userId": n.user });
    for (key, list) in [
        ("groups", &n.groups),
        ("subscribe", &n.subscribe),
        ("publish", &n.publish),
    ] {
        if !list.is_empty() {
            body[key] = json!(list);
        }
    }
    if let Some(ttl) = n.ttl_seconds {
        body["ttlSeconds"] = json!(ttl);
    }
    Ok(body)
}

/// Whom `who` and `close` look at.
#[derive(Clone, Debug, Default)]
pub struct Subject {
    pub connection: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
}

/// The path `who` reads.
pub fn who_path(s: &Subject) -> Result<String, CliError> {
    match (&s.connection, &s.user, &s.group) {
        (Some(c), None, None) => {
            check("connection id", c, validate::connection_id)?;
            Ok(format!("/connections/{}", segment(c)))
        }
        (None, Some(u), None) => {
            check("user id", u, validate::user_id)?;
            Ok(format!("/users/{}", segment(u)))
        }
        (None, None, Some(g)) => {
            check("group", g, validate::group)?;
            Ok(format!("/groups/{}", segment(g)))
        }
        _ => Err(CliError::Usage(
            "name one: --connection, --user or --group".into(),
        )),
    }
}

/// The path `close` deletes (with the reason as `?reason=`).
pub fn close_path(s: &Subject, reason: Option<&str>) -> Result<String, CliError> {
    let path = match (&s.connection, &s.user, &s.group) {
        (Some(c), None, None) => {
            check("connection id", c, validate::connection_id)?;
            format!("/connections/{}", segment(c))
        }
        (None, Some(u), None) => {
            check("user id", u, validate::user_id)?;
            format!("/users/{}/connections", segment(u))
        }
        _ => {
            return Err(CliError::Usage("name one: --connection or --user".into()));
        }
    };
    match reason {
        Some(reason) => {
            check("reason", reason, validate::reason)?;
            Ok(format!("{path}?reason={}", segment(reason)))
        }
        None => Ok(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(e: CliError) -> String {
        assert!(e.is_usage(), "{e}");
        e.to_string()
    }

    #[test]
    fn bad_fields_are_named_before_anything_is_sent() {
        let long = "u".repeat(300);
        let target = Target {
            user: Some(long.clone()),
            ..Target::default()
        };
        assert_eq!(
            usage(send_body(&target, json!(1), None).unwrap_err()),
            "user id too long (300 bytes, at most 256)"
        );
        assert_eq!(
            usage(send_body(&Target::default(), json!(1), None).unwrap_err()),
            "name one target: --connection, --user, --group, --user with --group, or --all"
        );
        let all = Target {
            all: true,
            ..Target::default()
        };
        assert_eq!(
            usage(send_body(&all, json!(1), Some("has space")).unwrap_err()),
            "id may hold only printable ASCII other than '#' and space"
        );
        assert_eq!(
            usage(notify_body(None, Some(""), json!(1), None).unwrap_err()),
            "connection id empty"
        );
        let who = Subject {
            user: Some("a".into()),
            group: Some("b".into()),
            ..Subject::default()
        };
        assert_eq!(
            usage(who_path(&who).unwrap_err()),
            "name one: --connection, --user or --group"
        );
        let close = Subject {
            user: Some("alice".into()),
            ..Subject::default()
        };
        assert_eq!(
            usage(close_path(&close, Some(&"r".repeat(124))).unwrap_err()),
            "reason too long (124 bytes, at most 123)"
        );
    }

    #[test]
    fn bodies_and_paths_are_the_http_apis() {
        let target = Target {
            group: Some("chat:42".into()),
            exclude: vec!["c1".into()],
            ..Target::default()
        };
        assert_eq!(
            send_body(&target, json!({"text":"hi"}), Some("order-1")).unwrap(),
            json!({"group":"chat:42","excludeConnectionIds":["c1"],"id":"order-1","data":{"text":"hi"}})
        );
        assert_eq!(
            notify_body(Some("alice"), None, json!("x"), None).unwrap(),
            (NotifyQueue::User, json!({"userId":"alice","data":"x"}))
        );
        let close = Subject {
            connection: Some("a/b+c=".into()),
            ..Subject::default()
        };
        assert_eq!(
            close_path(&close, Some("bye now")).unwrap(),
            "/connections/a%2Fb%2Bc%3D?reason=bye%20now"
        );
        assert_eq!(data(Some("{\"a\":1}"), false).unwrap(), json!({"a":1}));
        assert_eq!(data(Some("hello"), false).unwrap(), json!("hello"));
        assert_eq!(data(Some("42"), true).unwrap(), json!("42"));
    }
}
