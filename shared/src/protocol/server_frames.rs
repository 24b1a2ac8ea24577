//! Server frames out: what a client receives as a route response or a post
//! (errors, acks, pongs, close, presence, recovery and history markers). Every
//! frame is a `Serialize` type with its `type` as a serde tag, rendered by
//! one function, [`render`].

use std::borrow::Cow;

use serde::Serialize;
use serde_json::Value;

/// The most bytes of client input an error frame quotes: a longer value is
/// cut at a character boundary at or below this and ends in [`QUOTE_ELLIPSIS`],
/// so an error frame stays small whatever the client sent.
pub const QUOTE_LIMIT_BYTES: usize = 64;

/// Marks a quote that was cut.
pub const QUOTE_ELLIPSIS: &str = "…";

/// Client input as an error message or log may quote it: at most
/// [`QUOTE_LIMIT_BYTES`] bytes, cut on a character boundary, then `…`.
pub fn quote(input: &str) -> Cow<'_, str> {
    if input.len() <= QUOTE_LIMIT_BYTES {
        return Cow::Borrowed(input);
    }
    let mut end = QUOTE_LIMIT_BYTES;
    while !input.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{QUOTE_ELLIPSIS}", &input[..end]))
}

/// Error codes carried by `{"type":"error"}` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not a JSON object with a string `action`, or a field has the wrong type.
    BadRequest,
    /// The frame names an action that has no route.
    UnknownAction,
    /// The token does not grant this.
    Forbidden,
    /// A backing service failed; trying again later may work.
    Unavailable,
    /// Too many client events; slow down.
    RateLimited,
    /// A limit on what the connection may hold is reached (its groups).
    LimitExceeded,
    /// The application's event hook did not answer (timeout, error status).
    HookFailed,
}

/// Why an acknowledged action failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AckError {
    pub code: ErrorCode,
    pub message: String,
    /// When trying again may succeed (a `rate_limited` budget that refills).
    #[serde(rename = "retryAfterMs", skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// Frames the server sends to a client as a route response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    Error {
        code: ErrorCode,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        action: Option<String>,
    },
    /// Sent just before the server closes the connection.
    Close {
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The answer to an action that carries an optional correlation `id`.
    Ack {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
        ok: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<AckError>,
    },
}

impl ServerFrame {
    pub fn ack_ok(id: Option<Value>) -> Self {
        ServerFrame::Ack {
            id,
            ok: true,
            error: None,
        }
    }

    pub fn ack_error(id: Option<Value>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self::refused(id, code, message.into(), None)
    }

    /// [`ServerFrame::ack_error`] saying when to try again (`retryAfterMs`).
    pub fn ack_error_after(
        id: Option<Value>,
        code: ErrorCode,
        message: impl Into<String>,
        retry_after_ms: u64,
    ) -> Self {
        Self::refused(id, code, message.into(), Some(retry_after_ms))
    }

    fn refused(
        id: Option<Value>,
        code: ErrorCode,
        message: String,
        retry_after_ms: Option<u64>,
    ) -> Self {
        ServerFrame::Ack {
            id,
            ok: false,
            error: Some(AckError {
                code,
                message,
                retry_after_ms,
            }),
        }
    }

    /// The answer to a frame whose `action` has no route; quotes the action with [`quote`].
    pub fn unknown_action(action: &str) -> Self {
        let quoted = quote(action);
        ServerFrame::Error {
            code: ErrorCode::UnknownAction,
            message: format!("unknown action \"{quoted}\""),
            action: Some(quoted.into_owned()),
        }
    }

    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerFrame::Error {
            code,
            message: message.into(),
            action: None,
        }
    }

    /// The frame as the JSON text sent to the client.
    pub fn to_json(&self) -> String {
        render(self)
    }
}

/// The frame as the JSON text sent to the client. Serialising these plain
/// types cannot fail (no maps with non-string keys, no custom impls); if it
/// ever did, the client gets an error frame, never nothing.
pub fn render<T: Serialize>(frame: &T) -> String {
    serde_json::to_string(frame).unwrap_or_else(|_| {
        r#"{"type":"error","code":"bad_request","message":"internal encoding error"}"#.to_owned()
    })
}

/// `{"type":"recovered","id":…,"stream":…,"recovered":true|false,"offset":N,
/// "epoch":…,"more":false}`, with `"reason":…` when not recovered: sent after
/// a stream's missed messages.
pub fn recovered_frame(
    id: Option<&Value>,
    stream: &str,
    reason: Option<&'static str>,
    offset: u64,
    epoch: &str,
    more: bool,
) -> String {
    #[derive(Serialize)]
    #[serde(tag = "type", rename = "recovered")]
    struct Frame<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a Value>,
        stream: &'a str,
        recovered: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'static str>,
        offset: u64,
        epoch: &'a str,
        more: bool,
    }
    render(&Frame {
        id,
        stream,
        recovered: reason.is_none(),
        reason,
        offset,
        epoch,
        more,
    })
}

/// `{"type":"history","id":…,"stream":…,"offset":N,"epoch":…,"count":n}`:
/// sent after the `count` messages a `history` asked for; `offset` is the
/// stream's latest.
pub fn history_frame(
    id: Option<&Value>,
    stream: &str,
    offset: u64,
    epoch: &str,
    count: usize,
    more: bool,
) -> String {
    #[derive(Serialize)]
    #[serde(tag = "type", rename = "history")]
    struct Frame<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a Value>,
        stream: &'a str,
        offset: u64,
        epoch: &'a str,
        count: usize,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        more: bool,
    }
    render(&Frame {
        id,
        stream,
        offset,
        epoch,
        count,
        more,
    })
}

/// The most bytes one `batch` frame holds: well below API Gateway's 128 KB
/// per post, so a batch is always one post however its frames escape (they
/// are embedded as the JSON they are, never re-quoted).
pub const BATCH_BYTES: usize = 96 * 1024;

const BATCH_OPEN: &str = r#"{"type":"batch","frames":["#;
const BATCH_CLOSE: &str = "]}";

/// `frames` (each a JSON object) as posts: runs of consecutive frames packed
/// into `{"type":"batch","frames":[…]}` of at most `max_bytes` each, in
/// order; a frame too large to share a batch is posted as it is. A lone
/// frame is never wrapped.
pub fn batched(frames: Vec<String>, max_bytes: usize) -> Vec<String> {
    let mut posts = Vec::new();
    let mut run: Vec<String> = Vec::new();
    let mut run_bytes = BATCH_OPEN.len() + BATCH_CLOSE.len();
    let flush = |run: &mut Vec<String>, posts: &mut Vec<String>| match run.len() {
        0 => {}
        1 => posts.append(run),
        _ => {
            posts.push(format!("{BATCH_OPEN}{}{BATCH_CLOSE}", run.join(",")));
            run.clear();
        }
    };
    for frame in frames {
        let adds = frame.len() + usize::from(!run.is_empty());
        if run_bytes + adds > max_bytes {
            flush(&mut run, &mut posts);
            run_bytes = BATCH_OPEN.len() + BATCH_CLOSE.len();
        }
        if run_bytes + frame.len() > max_bytes {
            // Too large for any batch: alone, as sent without batching.
            posts.push(frame);
            continue;
        }
        run_bytes += frame.len() + usize::from(!run.is_empty());
        run.push(frame);
    }
    flush(&mut run, &mut posts);
    posts
}

/// The last frame a connection closed by `closeConnection` receives.
pub fn close_frame(reason: Option<&str>) -> String {
    ServerFrame::Close {
        reason: reason.map(str::to_owned),
    }
    .to_json()
}

/// A presence change in a presence-enabled group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceEvent {
    /// The user's first connection joined the group.
    Join,
    /// The user's last connection left the group.
    Leave,
}

/// `{"type":"presence","event":"join"|"leave","userId":…,"group":…,"online":N}`:
/// `online` is the number of distinct users in the group after the change.
pub fn presence_frame(event: PresenceEvent, user_id: &str, group: &str, online: i64) -> String {
    #[derive(Serialize)]
    #[serde(tag = "type", rename = "presence", rename_all = "camelCase")]
    struct Frame<'a> {
        event: PresenceEvent,
        user_id: &'a str,
        group: &'a str,
        online: i64,
    }
    render(&Frame {
        event,
        user_id,
        group,
        online,
    })
}

/// The answer to a `presence` query: the group's distinct users (at most
/// [`PRESENCE_LIST_LIMIT`] listed) and its connection count.
pub fn presence_answer(
    id: Option<Value>,
    group: &str,
    users: &[String],
    user_count: usize,
    connections: usize,
) -> String {
    #[derive(Serialize)]
    #[serde(tag = "type", rename = "presence", rename_all = "camelCase")]
    struct Answer<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
        group: &'a str,
        user_ids: &'a [String],
        users: usize,
        connections: usize,
        truncated: bool,
    }
    render(&Answer {
        id,
        group,
        user_ids: users,
        users: user_count,
        connections,
        truncated: user_count > users.len(),
    })
}

/// The answer to an `event` the application's event hook answered:
/// `{"type":"ack","id":…,"ok":true,"data":<the hook's answer>}`.
pub fn event_answer(id: Option<Value>, data: &Value) -> String {
    #[derive(Serialize)]
    #[serde(tag = "type", rename = "ack")]
    struct Answer<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
        ok: bool,
        data: &'a Value,
    }
    render(&Answer { id, ok: true, data })
}

/// `{"type":"ack","id":…,"ok":true,"stream":…,"offset":N,"epoch":…}`: the
/// ack of a `publish` to a group that keeps history. The live fan-out skips
/// the sender, so this is how the sender learns the offset its own event took
/// and sees no gap in the group's stream.
pub fn published_ack(id: Option<Value>, stream: &str, offset: u64, epoch: &str) -> String {
    #[derive(Serialize)]
    #[serde(tag = "type", rename = "ack")]
    struct Ack<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
        ok: bool,
        stream: &'a str,
        offset: u64,
        epoch: &'a str,
    }
    render(&Ack {
        id,
        ok: true,
        stream,
        offset,
        epoch,
    })
}

/// The most user ids a presence answer lists (a frame must stay under 128 KB).
pub const PRESENCE_LIST_LIMIT: usize = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_keep_the_order_and_stay_within_their_bound() {
        let frame = |n: usize, len: usize| {
            let pad = "x".repeat(len - 19);
            let text = format!(r#"{{"n":"{n:04}","p":"{pad}"}}"#);
            assert_eq!(text.len(), len);
            text
        };
        // 10 frames of 100 bytes within 350: 3 per batch (26 + 3 × 100 + 2 commas + 2 = 330).
        let frames: Vec<String> = (0..10).map(|n| frame(n, 100)).collect();
        let posts = batched(frames.clone(), 350);
        assert_eq!(posts.len(), 4);
        assert!(posts.iter().all(|p| p.len() <= 350), "{posts:?}");
        assert_eq!(posts[0].len(), 330);
        // The last post holds one frame: not wrapped.
        assert_eq!(posts[3], frames[9]);
        let mut unpacked = Vec::new();
        for post in &posts {
            let value: Value = serde_json::from_str(post).unwrap();
            match value["type"].as_str() {
                Some("batch") => unpacked.extend(value["frames"].as_array().unwrap().clone()),
                _ => unpacked.push(value),
            }
        }
        let sent: Vec<Value> = frames
            .iter()
            .map(|f| serde_json::from_str(f).unwrap())
            .collect();
        assert_eq!(unpacked, sent);
        // A frame too large for any batch goes alone, unwrapped, in its place.
        let big = frame(99, 400);
        let posts = batched(vec![frame(1, 100), big.clone(), frame(2, 100)], 350);
        assert_eq!(posts, vec![frame(1, 100), big, frame(2, 100)]);
        assert_eq!(batched(Vec::new(), 350), Vec::<String>::new());
        // Frames that escape (quotes, control characters) are embedded as
        // they are: the batch is exactly the frames' bytes plus its own.
        let escaped = r#"{"type":"message","data":""
é"}"#
            .to_owned();
        let posts = batched(vec![escaped.clone(), escaped.clone()], BATCH_BYTES);
        assert_eq!(
            posts,
            vec![format!(
                r#"{{"type":"batch","frames":[{escaped},{escaped}]}}"#
            )]
        );
        const { assert!(BATCH_BYTES < 128 * 1024 - 1024) };
    }

    #[test]
    fn a_refusal_may_say_when_to_retry() {
        assert_eq!(
            ServerFrame::ack_error_after(Some(Value::from(1)), ErrorCode::RateLimited, "slow", 812)
                .to_json(),
            r#"{"type":"ack","id":1,"ok":false,"error":{"code":"rate_limited","message":"slow","retryAfterMs":812}}"#
        );
        assert_eq!(
            history_frame(None, "user", 5, "e", 2, true),
            r#"{"type":"history","stream":"user","offset":5,"epoch":"e","count":2,"more":true}"#
        );
        assert_eq!(
            history_frame(None, "user", 5, "e", 2, false),
            r#"{"type":"history","stream":"user","offset":5,"epoch":"e","count":2}"#
        );
    }

    #[test]
    fn quotes_are_cut_on_a_character_boundary() {
        assert_eq!(quote("dance"), "dance");
        let exact = "a".repeat(QUOTE_LIMIT_BYTES);
        assert_eq!(quote(&exact), exact);
        assert_eq!(
            quote(&"b".repeat(QUOTE_LIMIT_BYTES + 1)),
            format!("{}…", "b".repeat(QUOTE_LIMIT_BYTES))
        );
        // 63 ASCII bytes, then a 3-byte character straddling the limit: cut before it.
        let straddling = format!("{}€€", "c".repeat(QUOTE_LIMIT_BYTES - 1));
        assert_eq!(
            quote(&straddling),
            format!("{}…", "c".repeat(QUOTE_LIMIT_BYTES - 1))
        );
    }

    #[test]
    fn publish_acks_in_a_history_group_carry_the_offset() {
        assert_eq!(
            published_ack(Some(Value::from(3)), "group:chat:1", 17, "ab12"),
            r#"{"type":"ack","id":3,"ok":true,"stream":"group:chat:1","offset":17,"epoch":"ab12"}"#
        );
        assert_eq!(
            published_ack(None, "group:g", 1, "e"),
            r#"{"type":"ack","ok":true,"stream":"group:g","offset":1,"epoch":"e"}"#
        );
    }

    #[test]
    fn event_answers_carry_the_hooks_data() {
        assert_eq!(
            event_answer(Some(Value::from("7")), &serde_json::json!({"echo":[1,2]})),
            r#"{"type":"ack","id":"7","ok":true,"data":{"echo":[1,2]}}"#
        );
        assert_eq!(
            event_answer(None, &Value::Null),
            r#"{"type":"ack","ok":true,"data":null}"#
        );
    }

    #[test]
    fn server_frames_have_the_documented_shape() {
        assert_eq!(
            ServerFrame::Pong {
                name: Some("Stepan".into())
            }
            .to_json(),
            r#"{"type":"pong","name":"Stepan"}"#
        );
        assert_eq!(
            ServerFrame::Pong { name: None }.to_json(),
            r#"{"type":"pong"}"#
        );
        assert_eq!(
            ServerFrame::Error {
                code: ErrorCode::UnknownAction,
                message: "m".into(),
                action: Some("x".into())
            }
            .to_json(),
            r#"{"type":"error","code":"unknown_action","message":"m","action":"x"}"#
        );
    }
}
