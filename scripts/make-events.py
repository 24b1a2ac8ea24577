#!/usr/bin/env python3
"""Regenerates events/*.json: realistic API Gateway WebSocket and SQS events.

The connect event's token is signed with the documented development secret
(see docs/testing.md, "Invoke events locally") and expires in 2100, so the fixture keeps working.
Run: python3 scripts/make-events.py (needs only the standard library).
"""
import base64, hashlib, hmac, json, pathlib

DEV_SECRET = b"switchboard-local-dev-secret-0123456789"
API, STAGE, REGION = "abc123defg", "prod", "eu-central-1"
DOMAIN = f"{API}.execute-api.{REGION}.amazonaws.com"
CONN = "f97yeeMZDoECGqg="
CONNECTED_AT = 1795381200000
ACCOUNT = "123456789012"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256(claims: dict) -> str:
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(DEV_SECRET, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


def context(route, event_type, extra=None, t=0):
    ctx = {
        "routeKey": route,
        "eventType": event_type,
        "extendedRequestId": "Qj3xLFtBliAFwTg=",
        "requestTime": "22/Nov/2026:21:00:00 +0000",
        "messageDirection": "IN",
        "stage": STAGE,
        "connectedAt": CONNECTED_AT,
        "requestTimeEpoch": CONNECTED_AT + t,
        "identity": {"userAgent": "websocat/1.14.0", "sourceIp": "203.0.113.7"},
        "requestId": "Qj3xLFtBliAFwTg=",
        "domainName": DOMAIN,
        "connectionId": CONN,
        "apiId": API,
    }
    ctx.update(extra or {})
    return ctx


def connect(query):
    headers = {
        "Host": DOMAIN,
        "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
        "User-Agent": "websocat/1.14.0",
        "X-Amzn-Trace-Id": "Root=1-6740f0b0-1c7a3d0e5b1a7e2f3c4d5e6f",
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    }
    event = {
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "requestContext": context("$connect", "CONNECT"),
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = query
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
    return event


def message(route, body, t):
    return {
        "requestContext": context(route, "MESSAGE", {"messageId": "Qj3yOdMlFiACEnw="}, t),
        "body": body,
        "isBase64Encoded": False,
    }


def sqs(queue, bodies):
    records = []
    for i, body in enumerate(bodies):
        records.append({
            "messageId": f"0a7c9e4e-6b1f-4c8a-9d2e-{i:012d}",
            "receiptHandle": f"AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a{i}==",
            "body": body,
            "attributes": {
                "ApproximateReceiveCount": "1",
                "SentTimestamp": "1795381260000",
                "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                "ApproximateFirstReceiveTimestamp": "1795381260010",
            },
            "messageAttributes": {},
            "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
            "eventSource": "aws:sqs",
            "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}",
            "awsRegion": REGION,
        })
    return {"Records": records}


def http(method, path, body=None, query=None):
    """An API Gateway HTTP API event (payload format 2.0) signed with AWS_IAM."""
    headers = {"content-type": "application/json", "host": f"http123abc.execute-api.{REGION}.amazonaws.com",
               "user-agent": "aws-sdk-rust/1.3", "x-amz-date": "20261122T210000Z"}
    raw_query = "&".join(f"{k}={v}" for k, v in (query or {}).items())
    event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT, "apiId": "http123abc",
            "authorizer": {"iam": {"accessKey": "AKIAIOSFODNN7EXAMPLE", "accountId": ACCOUNT,
                                   "callerId": "AIDAIENQZJOLO23YVJ4VO", "principalOrgId": None,
                                   "userArn": f"arn:aws:iam::{ACCOUNT}:user/producer", "userId": "AIDAIENQZJOLO23YVJ4VO"}},
            "domainName": f"http123abc.execute-api.{REGION}.amazonaws.com", "domainPrefix": "http123abc",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9",
                     "userAgent": "aws-sdk-rust/1.3"},
            "requestId": "Qj3zAbCdFiAEJmw=", "routeKey": "$default", "stage": "$default",
            "time": "22/Nov/2026:21:00:00 +0000", "timeEpoch": CONNECTED_AT + 5000,
        },
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = query
    if body is not None:
        event["body"] = body
    return event


EVENTS = {
    "connect.json": connect({"token": hs256({
        "sub": "1234", "exp": 4102444800, "groups": ["notification:test"], "subscribe": ["chat:*"],
    })}),
    "connect-no-token.json": connect(None),
    "disconnect.json": {
        "headers": {"Host": DOMAIN, "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""},
        "multiValueHeaders": {"Host": [DOMAIN], "x-api-key": [""], "X-Forwarded-For": [""], "x-restapi": [""]},
        "requestContext": context("$disconnect", "DISCONNECT", {
            "disconnectStatusCode": 1000,
            "disconnectReason": "Client-side close frame status code '1000' (NORMAL_CLOSURE) - custom reason: bye",
        }, 60000),
        "isBase64Encoded": False,
    },
    "ping.json": message("ping", json.dumps({"action": "ping", "name": "Stepan"}), 1000),
    "default-garbage.json": message("$default", "hello there", 2000),
    "default-unknown-action.json": message("$default", json.dumps({"action": "dance"}), 3000),
    "subscribe.json": message("subscribe", json.dumps({"action": "subscribe", "group": "chat:42", "id": 7}), 4000),
    "commands.json": sqs("switchboard-CommandsQueue", [
        json.dumps({"version": 1, "type": "sendToGroup", "group": "chat:42", "data": {"text": "hello"},
                    "excludeConnectionIds": ["second-connection"]}),
    ]),
    "deliver.json": sqs("switchboard-DeliveriesQueue", [
        json.dumps({"connectionIds": [CONN, "second-connection"],
                    "frame": {"type": "message", "from": "server", "group": "chat:42", "data": {"text": "hello"}},
                    "attempt": 1}, separators=(",", ":")),
    ]),
    "publish.json": message("publish", json.dumps(
        {"action": "publish", "group": "chat:42", "data": {"typing": True}, "id": 8}), 5000),
    "presence.json": message("presence", json.dumps({"action": "presence", "group": "chat:42", "id": 9}), 6000),
    "http-send.json": http("POST", "/send", json.dumps({"group": "chat:42", "data": {"text": "hello"}})),
    "http-notify.json": http("POST", "/notify", json.dumps(
        {"user_id": 1234, "event_name": "notification:test", "message": {"download": "report.pdf"}})),
    "http-get-group.json": http("GET", "/groups/chat:42"),
    "notify-user.json": sqs("switchboard-NotifyUserQueue", [json.dumps({"userId": "1234", "data": "cokoliv"})]),
    "notify-connection.json": sqs("switchboard-NotifyConnectionQueue", [
        json.dumps({"connectionId": CONN, "data": "cokoliv"}),
        json.dumps({"connectionId": CONN, "data": {"download": "report.pdf", "ready": True}}),
        '{"connectionId": "f97yeeMZDoECGqg=", "data": ',
    ]),
}

if __name__ == "__main__":
    out = pathlib.Path(__file__).resolve().parent.parent / "events"
    out.mkdir(exist_ok=True)
    for name, event in EVENTS.items():
        (out / name).write_text(json.dumps(event, indent=2) + "\n")
        print(f"wrote events/{name}")
