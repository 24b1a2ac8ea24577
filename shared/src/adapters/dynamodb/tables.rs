//! Creating the DynamoDB tables as `template.yaml` declares them, for tests and local setups.

use aws_sdk_dynamodb::Client;

use super::items::{CONNECTION_ID, ENVELOPE_USER, GROUP_NAME, SHARD, USER_ID};
use super::{CONNECTION_INDEX, ENVELOPE_INDEX, SHARD_INDEX, USER_INDEX, unavailable};
use crate::ports::StoreError;

/// One keys-only global secondary index: name, partition key, sort key.
struct Index<'a> {
    name: &'a str,
    hash: &'a str,
    range: &'a str,
}

/// The key layout of a table: string keys except those named in `numbers`.
struct TableShape<'a> {
    hash: &'a str,
    range: Option<&'a str>,
    indexes: &'a [Index<'a>],
    numbers: &'a [&'a str],
}

/// Creates an on-demand table of `shape`. For tests and local setups;
/// deployments get their tables from `template.yaml`.
async fn create_shaped_table(
    client: &Client,
    name: &str,
    shape: TableShape<'_>,
) -> Result<(), StoreError> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ScalarAttributeType,
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(unavailable)
    };
    let mut names = vec![shape.hash];
    names.extend(shape.range);
    for index in shape.indexes {
        names.extend([index.hash, index.range]);
    }
    names.sort_unstable();
    names.dedup();
    let attributes = names
        .into_iter()
        .map(|name| {
            let kind = if shape.numbers.contains(&name) {
                ScalarAttributeType::N
            } else {
                ScalarAttributeType::S
            };
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(kind)
                .build()
                .map_err(unavailable)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(attributes))
        .key_schema(key(shape.hash, KeyType::Hash)?);
    if let Some(range) = shape.range {
        request = request.key_schema(key(range, KeyType::Range)?);
    }
    for index in shape.indexes {
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index.name)
                .key_schema(key(index.hash, KeyType::Hash)?)
                .key_schema(key(index.range, KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .map_err(unavailable)?,
        );
    }
    request.send().await.map_err(unavailable)?;
    Ok(())
}

/// Creates the connections table as `template.yaml` declares it (key
/// `connectionId`, indexes `byUser`, `byShard` and `byEnvelopeUser`).
pub async fn create_table(client: &Client, name: &str) -> Result<(), StoreError> {
    let shape = TableShape {
        hash: CONNECTION_ID,
        range: None,
        indexes: &[
            Index {
                name: USER_INDEX,
                hash: USER_ID,
                range: CONNECTION_ID,
            },
            Index {
                name: SHARD_INDEX,
                hash: SHARD,
                range: CONNECTION_ID,
            },
            Index {
                name: ENVELOPE_INDEX,
                hash: ENVELOPE_USER,
                range: CONNECTION_ID,
            },
        ],
        numbers: &[SHARD],
    };
    create_shaped_table(client, name, shape).await
}

/// Creates the memberships table as `template.yaml` declares it (key
/// `groupName` + `connectionId`, index `byConnection`).
pub async fn create_memberships_table(client: &Client, name: &str) -> Result<(), StoreError> {
    let shape = TableShape {
        hash: GROUP_NAME,
        range: Some(CONNECTION_ID),
        indexes: &[Index {
            name: CONNECTION_INDEX,
            hash: CONNECTION_ID,
            range: GROUP_NAME,
        }],
        numbers: &[],
    };
    create_shaped_table(client, name, shape).await
}

/// Creates the history table as `template.yaml` declares it (key `stream` +
/// `offset`, a number).
pub async fn create_history_table(client: &Client, name: &str) -> Result<(), StoreError> {
    let shape = TableShape {
        hash: super::history::STREAM,
        range: Some(super::history::OFFSET),
        indexes: &[],
        numbers: &[super::history::OFFSET],
    };
    create_shaped_table(client, name, shape).await
}
