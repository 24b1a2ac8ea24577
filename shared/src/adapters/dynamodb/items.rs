//! Item mapping on DynamoDB: attribute names, connection records to and from items, the numeric-attribute reader.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::ports::{ConnectionRecord, StoreError, shard_of};

pub(super) const SHARD: &str = "shard";
pub(super) const CONNECTION_ID: &str = "connectionId";
pub(super) const USER_ID: &str = "userId";
const CONNECTED_AT: &str = "connectedAt";
pub(super) const EXPIRES_AT: &str = "expiresAt";
const SOURCE_IP: &str = "sourceIp";
const USER_AGENT: &str = "userAgent";
const GROUPS: &str = "groups";
const SUBSCRIBE: &str = "subscribe";
const PUBLISH: &str = "publish";
const EVENTS: &str = "events";
pub(super) const GROUP_NAME: &str = "groupName";
/// The user id again, only on records of connections that asked for enveloped
/// user messages: the key of the sparse `byEnvelopeUser` index.
pub(super) const ENVELOPE_USER: &str = "envelopeUser";

pub(super) type Item = HashMap<String, AttributeValue>;

/// The number attribute `name` of `item`, if it is there and an integer.
pub(super) fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
}

/// The string attribute `name` of `item`, if it is there and a string.
pub(super) fn string(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

/// The item of a connection record (with its broadcast shard).
pub(super) fn to_item(record: &ConnectionRecord) -> Item {
    let mut item = Item::new();
    item.insert(
        CONNECTION_ID.into(),
        AttributeValue::S(record.connection_id.clone()),
    );
    item.insert(USER_ID.into(), AttributeValue::S(record.user_id.clone()));
    item.insert(
        SHARD.into(),
        AttributeValue::N(shard_of(&record.connection_id).to_string()),
    );
    item.insert(
        CONNECTED_AT.into(),
        AttributeValue::N(record.connected_at_ms.to_string()),
    );
    item.insert(
        EXPIRES_AT.into(),
        AttributeValue::N(record.expires_at.to_string()),
    );
    if record.envelope {
        item.insert(
            ENVELOPE_USER.into(),
            AttributeValue::S(record.user_id.clone()),
        );
    }
    if let Some(ip) = &record.source_ip {
        item.insert(SOURCE_IP.into(), AttributeValue::S(ip.clone()));
    }
    if let Some(agent) = &record.user_agent {
        item.insert(USER_AGENT.into(), AttributeValue::S(agent.clone()));
    }
    for (name, list) in [
        (GROUPS, &record.groups),
        (SUBSCRIBE, &record.subscribe),
        (PUBLISH, &record.publish),
        (EVENTS, &record.events),
    ] {
        if !list.is_empty() {
            let values = list.iter().cloned().map(AttributeValue::S).collect();
            item.insert(name.into(), AttributeValue::L(values));
        }
    }
    item
}

/// The connection record of an item; [`StoreError::Corrupt`] if it cannot be read.
pub(super) fn from_item(item: &Item) -> Result<ConnectionRecord, StoreError> {
    let id = string(item, CONNECTION_ID).unwrap_or_default();
    let corrupt = |reason: &str| StoreError::Corrupt {
        connection_id: id.clone(),
        reason: reason.to_owned(),
    };
    let number = |key: &str| -> Result<i64, StoreError> {
        item.get(key)
            .and_then(|v| v.as_n().ok())
            .ok_or_else(|| corrupt(&format!("{key} is missing or not a number")))?
            .parse()
            .map_err(|_| corrupt(&format!("{key} is not an integer")))
    };
    let list = |key: &str| -> Result<Vec<String>, StoreError> {
        match item.get(key) {
            None => Ok(Vec::new()),
            Some(AttributeValue::L(list)) => list
                .iter()
                .map(|v| {
                    v.as_s()
                        .cloned()
                        .map_err(|_| corrupt(&format!("{key} holds a non-string")))
                })
                .collect(),
            Some(_) => Err(corrupt(&format!("{key} is not a list"))),
        }
    };
    Ok(ConnectionRecord {
        user_id: string(item, USER_ID).ok_or_else(|| corrupt("userId is missing"))?,
        connected_at_ms: number(CONNECTED_AT)?,
        expires_at: number(EXPIRES_AT)?,
        source_ip: string(item, SOURCE_IP),
        user_agent: string(item, USER_AGENT),
        groups: list(GROUPS)?,
        subscribe: list(SUBSCRIBE)?,
        publish: list(PUBLISH)?,
        envelope: item.contains_key(ENVELOPE_USER),
        events: list(EVENTS)?,
        connection_id: id.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_items() {
        let record = ConnectionRecord {
            connection_id: "c1".into(),
            user_id: "u1".into(),
            connected_at_ms: 1_700_000_000_123,
            expires_at: 1_700_008_100,
            source_ip: Some("203.0.113.7".into()),
            user_agent: None,
            groups: vec!["a".into(), "b".into()],
            subscribe: vec!["chat:*".into()],
            publish: vec![],
            envelope: true,
            events: vec!["chat:*".into()],
        };
        assert_eq!(from_item(&to_item(&record)).unwrap(), record);
    }

    #[test]
    fn corrupt_items_are_reported_not_guessed() {
        let mut item = Item::new();
        item.insert(CONNECTION_ID.into(), AttributeValue::S("c1".into()));
        item.insert(USER_ID.into(), AttributeValue::S("u1".into()));
        item.insert(CONNECTED_AT.into(), AttributeValue::S("yesterday".into()));
        item.insert(EXPIRES_AT.into(), AttributeValue::N("1".into()));
        assert_eq!(
            from_item(&item),
            Err(StoreError::Corrupt {
                connection_id: "c1".into(),
                reason: "connectedAt is missing or not a number".into()
            })
        );
    }
}
