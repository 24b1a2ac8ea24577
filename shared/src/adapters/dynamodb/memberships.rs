//! [`MembershipStore`] on DynamoDB: memberships, user-level memberships and presence counters in one table.

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::items::{CONNECTION_ID, EXPIRES_AT, GROUP_NAME, Item, USER_ID, number, string};
use super::{CONNECTION_INDEX, DynamoMemberships, unavailable};
use crate::ports::{Counter, MemberPage, Membership, MembershipStore, StoreError};

const COUNT: &str = "count";
const GROUP_PREFIX: &str = "group#";

impl DynamoMemberships {
    fn key(group: &str, connection_id: &str) -> Item {
        Item::from([
            (GROUP_NAME.to_owned(), AttributeValue::S(group.to_owned())),
            (
                CONNECTION_ID.to_owned(),
                AttributeValue::S(connection_id.to_owned()),
            ),
        ])
    }

    /// Writes `item`; true if no item had its key before.
    async fn put_new(&self, item: Item) -> Result<bool, StoreError> {
        let output = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(output.attributes().is_none_or(|old| old.is_empty()))
    }

    /// Deletes the item at `key`; the item if there was one.
    async fn delete(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(output.attributes.filter(|old| !old.is_empty()))
    }

    /// A Query of this table.
    fn query(&self) -> QueryFluentBuilder {
        self.client.query().table_name(&self.table)
    }
}

/// Runs `query` page after page, handing every item it matches to `each`.
async fn for_every_item(
    query: QueryFluentBuilder,
    mut each: impl FnMut(&Item) + Send,
) -> Result<(), StoreError> {
    let mut start: Option<Item> = None;
    loop {
        let output = query
            .clone()
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(unavailable)?;
        output.items().iter().for_each(&mut each);
        match output.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => return Ok(()),
        }
    }
}

#[async_trait]
impl MembershipStore for DynamoMemberships {
    async fn join(&self, membership: &Membership) -> Result<bool, StoreError> {
        let mut item = Self::key(&membership.group, &membership.connection_id);
        item.insert(
            USER_ID.into(),
            AttributeValue::S(membership.user_id.clone()),
        );
        item.insert(
            EXPIRES_AT.into(),
            AttributeValue::N(membership.expires_at.to_string()),
        );
        self.put_new(item).await
    }

    async fn leave(&self, group: &str, connection_id: &str) -> Result<Option<String>, StoreError> {
        let old = self.delete(Self::key(group, connection_id)).await?;
        Ok(old.map(|old| string(&old, USER_ID).unwrap_or_default()))
    }

    async fn is_member(&self, group: &str, connection_id: &str) -> Result<bool, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(group, connection_id)))
            .projection_expression("#c")
            .expression_attribute_names("#c", CONNECTION_ID)
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(output.item().is_some())
    }

    async fn group_members(
        &self,
        group: &str,
        after: Option<&str>,
    ) -> Result<MemberPage, StoreError> {
        let output = self
            .query()
            .key_condition_expression("#g = :g")
            .expression_attribute_names("#g", GROUP_NAME)
            .expression_attribute_values(":g", AttributeValue::S(group.to_owned()))
            .projection_expression("#c, #u")
            .expression_attribute_names("#c", CONNECTION_ID)
            .expression_attribute_names("#u", USER_ID)
            .set_exclusive_start_key(after.map(|id| Self::key(group, id)))
            .set_limit(self.page_limit)
            .send()
            .await
            .map_err(unavailable)?;
        let members = output
            .items()
            .iter()
            .filter_map(|item| Some((string(item, CONNECTION_ID)?, string(item, USER_ID)?)))
            .collect();
        let next = output
            .last_evaluated_key()
            .and_then(|key| string(key, CONNECTION_ID));
        Ok(MemberPage { members, next })
    }

    async fn connection_groups(&self, connection_id: &str) -> Result<Vec<String>, StoreError> {
        let mut groups = Vec::new();
        // A connection is in few groups; follow pages anyway, bounded by the data.
        let query = self
            .query()
            .index_name(CONNECTION_INDEX)
            .key_condition_expression("#c = :c")
            .expression_attribute_names("#c", CONNECTION_ID)
            .expression_attribute_values(":c", AttributeValue::S(connection_id.to_owned()));
        for_every_item(query, |item| groups.extend(string(item, GROUP_NAME))).await?;
        Ok(groups)
    }

    async fn add_user_group(
        &self,
        user_id: &str,
        group: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let mut item = Self::key(&user_partition(user_id), &user_group_sort(group));
        item.insert(EXPIRES_AT.into(), AttributeValue::N(expires_at.to_string()));
        self.put_new(item).await
    }

    async fn remove_user_group(&self, user_id: &str, group: &str) -> Result<bool, StoreError> {
        let key = Self::key(&user_partition(user_id), &user_group_sort(group));
        Ok(self.delete(key).await?.is_some())
    }

    async fn user_groups(&self, user_id: &str, now: i64) -> Result<Vec<String>, StoreError> {
        let mut groups = Vec::new();
        let query = self
            .query()
            .key_condition_expression("#g = :g AND begins_with(#c, :prefix)")
            .expression_attribute_names("#g", GROUP_NAME)
            .expression_attribute_names("#c", CONNECTION_ID)
            .expression_attribute_values(":g", AttributeValue::S(user_partition(user_id)))
            .expression_attribute_values(":prefix", AttributeValue::S(GROUP_PREFIX.into()))
            .consistent_read(true);
        for_every_item(query, |item| {
            // TTL deletion lags by up to days: an expired item is already gone for us.
            let live = number(item, EXPIRES_AT).is_some_and(|at| at > now);
            let group = item
                .get(CONNECTION_ID)
                .and_then(|v| v.as_s().ok())
                .and_then(|sk| sk.strip_prefix(GROUP_PREFIX));
            if let (true, Some(group)) = (live, group) {
                groups.push(group.to_owned());
            }
        })
        .await?;
        Ok(groups)
    }

    async fn add_to_counter(
        &self,
        group: &str,
        counter: &Counter,
        delta: i64,
        expires_at: i64,
    ) -> Result<i64, StoreError> {
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(
                &presence_partition(group),
                &counter_sort(counter),
            )))
            .update_expression("ADD #n :d SET #e = :e")
            .expression_attribute_names("#n", COUNT)
            .expression_attribute_names("#e", EXPIRES_AT)
            .expression_attribute_values(":d", AttributeValue::N(delta.to_string()))
            .expression_attribute_values(":e", AttributeValue::N(expires_at.to_string()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(unavailable)?;
        output
            .attributes()
            .and_then(|a| number(a, COUNT))
            .ok_or_else(|| StoreError::Unavailable("UpdateItem returned no count".into()))
    }

    async fn counter(&self, group: &str, counter: &Counter) -> Result<i64, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(
                &presence_partition(group),
                &counter_sort(counter),
            )))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(output
            .item()
            .and_then(|item| number(item, COUNT))
            .unwrap_or(0))
    }
}

fn user_partition(user_id: &str) -> String {
    format!("user#{user_id}")
}

fn user_group_sort(group: &str) -> String {
    format!("{GROUP_PREFIX}{group}")
}

fn presence_partition(group: &str) -> String {
    format!("{group}#presence")
}

fn counter_sort(counter: &Counter) -> String {
    match counter {
        Counter::UserConnections(user_id) => format!("user#{user_id}"),
        Counter::OnlineUsers => "#online".to_owned(),
    }
}
