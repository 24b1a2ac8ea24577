//! Commands queue messages: the [`Command`] type and its parser, which reads
//! the envelope (`version`, `type`) and then each field the type needs, each
//! through its rule in [`crate::validate`].

use serde::Deserialize;
use serde_json::value::RawValue;

use super::messages::{MessageError, parse_message, validate_message_id};
use crate::validate;

/// The newest Commands message version this code understands.
pub const COMMAND_VERSION: u32 = 1;

/// A Commands queue message. Every body carries `"version":1` and `"type"`;
/// docs/server-api.md documents each type.
#[derive(Debug)]
pub enum Command {
    // Each send may carry `id`, an idempotency key (see [`validate_message_id`]).
    SendToGroup {
        group: String,
        data: Box<RawValue>,
        exclude_connection_ids: Vec<String>,
        id: Option<String>,
    },
    /// To a user's connections, or only those in `group`.
    SendToUser {
        user_id: String,
        group: Option<String>,
        data: Box<RawValue>,
        id: Option<String>,
    },
    SendToConnection {
        connection_id: String,
        data: Box<RawValue>,
        id: Option<String>,
    },
    Broadcast {
        data: Box<RawValue>,
        exclude_connection_ids: Vec<String>,
        id: Option<String>,
    },
    AddConnectionToGroup {
        connection_id: String,
        group: String,
    },
    RemoveConnectionFromGroup {
        connection_id: String,
        group: String,
    },
    /// A user-level membership: every current connection of the user joins,
    /// and so does every future one until it is removed or expires.
    AddUserToGroup {
        user_id: String,
        group: String,
        ttl_seconds: Option<u64>,
    },
    RemoveUserFromGroup {
        user_id: String,
        group: String,
    },
    CloseConnection {
        connection_id: String,
        reason: Option<String>,
    },
    CloseUserConnections {
        user_id: String,
        reason: Option<String>,
    },
}

/// The command types this code understands, as named in messages.
pub const COMMAND_TYPES: &str = "sendToGroup, sendToUser, sendToConnection, broadcast, \
addConnectionToGroup, removeConnectionFromGroup, addUserToGroup, removeUserFromGroup, \
closeConnection, closeUserConnections";

/// How long a user-level membership lasts when the command names no `ttlSeconds`.
pub const USER_GROUP_DEFAULT_TTL_SECONDS: u64 = 30 * 24 * 3600;
/// The longest `ttlSeconds` a user-level membership may ask for.
pub const USER_GROUP_MAX_TTL_SECONDS: u64 = 365 * 24 * 3600;

impl Command {
    /// Parses a Commands queue body: the envelope first (so a newer version is
    /// named as such, whatever its fields), then the fields its type needs.
    pub fn parse(body: Option<&str>) -> Result<Self, MessageError> {
        let envelope: Envelope = parse_message(body)?;
        envelope.check_version()?;
        Fields {
            kind: &envelope.kind,
            values: parse_message(body)?,
        }
        .into_command()
    }
}

#[derive(Deserialize)]
struct Envelope {
    version: u32,
    #[serde(rename = "type")]
    kind: String,
}

impl Envelope {
    fn check_version(&self) -> Result<(), MessageError> {
        if self.version != COMMAND_VERSION {
            return Err(MessageError::Malformed(format!(
                "unsupported command version {}; this deployment understands version {COMMAND_VERSION}",
                self.version
            )));
        }
        Ok(())
    }
}

/// Every field any command has; each type takes the ones it needs.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Values {
    group: Option<String>,
    user_id: Option<String>,
    connection_id: Option<String>,
    // `"data": null` is data (JSON null), not a missing field.
    #[serde(default, deserialize_with = "present")]
    data: Option<Box<RawValue>>,
    #[serde(default)]
    exclude_connection_ids: Vec<String>,
    reason: Option<String>,
    ttl_seconds: Option<u64>,
    id: Option<String>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

/// The fields of one command of type `kind`. Each reader takes one field,
/// applies its rule, and names the type when a required field is missing.
struct Fields<'a> {
    kind: &'a str,
    values: Values,
}

impl Fields<'_> {
    fn into_command(mut self) -> Result<Command, MessageError> {
        // Checked for every type, so a bad key is refused even where it is unused.
        let id = self.message_id()?;
        Ok(match self.kind {
            "sendToGroup" => Command::SendToGroup {
                group: self.group()?,
                data: self.data()?,
                exclude_connection_ids: self.exclude_connection_ids(),
                id,
            },
            "sendToUser" => Command::SendToUser {
                user_id: self.user_id()?,
                group: self.optional_group()?,
                data: self.data()?,
                id,
            },
            "sendToConnection" => Command::SendToConnection {
                connection_id: self.connection_id()?,
                data: self.data()?,
                id,
            },
            "broadcast" => Command::Broadcast {
                data: self.data()?,
                exclude_connection_ids: self.exclude_connection_ids(),
                id,
            },
            "addConnectionToGroup" => Command::AddConnectionToGroup {
                connection_id: self.connection_id()?,
                group: self.group()?,
            },
            "removeConnectionFromGroup" => Command::RemoveConnectionFromGroup {
                connection_id: self.connection_id()?,
                group: self.group()?,
            },
            "addUserToGroup" => {
                let ttl_seconds = self.ttl_seconds()?;
                Command::AddUserToGroup {
                    user_id: self.user_id()?,
                    group: self.group()?,
                    ttl_seconds,
                }
            }
            "removeUserFromGroup" => Command::RemoveUserFromGroup {
                user_id: self.user_id()?,
                group: self.group()?,
            },
            "closeConnection" => Command::CloseConnection {
                connection_id: self.connection_id()?,
                reason: self.reason()?,
            },
            "closeUserConnections" => Command::CloseUserConnections {
                user_id: self.user_id()?,
                reason: self.reason()?,
            },
            other => {
                return Err(MessageError::Malformed(format!(
                    "unknown command type \"{other}\"; known: {COMMAND_TYPES}"
                )));
            }
        })
    }

    fn required<T>(&self, value: Option<T>, field: &'static str) -> Result<T, MessageError> {
        value.ok_or_else(|| MessageError::Malformed(format!("{} needs \"{field}\"", self.kind)))
    }

    fn message_id(&mut self) -> Result<Option<String>, MessageError> {
        if let Some(id) = &self.values.id {
            validate_message_id(id)?;
        }
        Ok(self.values.id.take())
    }

    fn group(&mut self) -> Result<String, MessageError> {
        let group = self.values.group.take();
        let group = self.required(group, "group")?;
        validate::group("group", &group)?;
        Ok(group)
    }

    fn optional_group(&mut self) -> Result<Option<String>, MessageError> {
        match self.values.group {
            None => Ok(None),
            Some(_) => self.group().map(Some),
        }
    }

    fn user_id(&mut self) -> Result<String, MessageError> {
        let user_id = self.values.user_id.take();
        let user_id = self.required(user_id, "userId")?;
        validate::user_id("userId", &user_id)?;
        Ok(user_id)
    }

    fn connection_id(&mut self) -> Result<String, MessageError> {
        let connection_id = self.values.connection_id.take();
        let connection_id = self.required(connection_id, "connectionId")?;
        validate::connection_id("connectionId", &connection_id)?;
        Ok(connection_id)
    }

    fn data(&mut self) -> Result<Box<RawValue>, MessageError> {
        let data = self.values.data.take();
        self.required(data, "data")
    }

    fn exclude_connection_ids(&mut self) -> Vec<String> {
        std::mem::take(&mut self.values.exclude_connection_ids)
    }

    fn reason(&mut self) -> Result<Option<String>, MessageError> {
        if let Some(reason) = &self.values.reason {
            validate::reason("reason", reason)?;
        }
        Ok(self.values.reason.take())
    }

    fn ttl_seconds(&self) -> Result<Option<u64>, MessageError> {
        Ok(self
            .values
            .ttl_seconds
            .map(|ttl| validate::ttl_seconds("ttlSeconds", ttl, USER_GROUP_MAX_TTL_SECONDS))
            .transpose()?)
    }
}
