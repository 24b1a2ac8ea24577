#!/usr/bin/env python3
"""The IAM check's scenarios: events that take every function down each path that calls AWS
(history, presence, user-level groups, closes, gone and throttled connections, the sent log,
dead letters), beyond the documented fixtures in events/. scripts/invoke-events.sh runs them
after those, through the same real binaries, with every sink and hook on and the Management
API answered by scripts/fake-management-api.py (410 for ids starting `gone`, 429 for
`throttled`); scripts/iam-check.py then checks every call they made against the roles.

Usage: scripts/iam-scenarios.py OUT_DIR   writes OUT_DIR/*.json and prints the table
`file|function|what the answer must contain`, in the order to run them.
"""
import copy
import importlib.util
import json
import pathlib
import sys

here = pathlib.Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("make_events", here / "make-events.py")
events = importlib.util.module_from_spec(spec)
spec.loader.exec_module(events)

# Connections by what the Management API answers for them (scripts/fake-management-api.py).
ALICE, DAVE, ERIN = "iam-alice-conn=", "iam-dave-conn=", "iam-erin-conn="
GONE, GONE_G, GONE_H = "gone-bob-conn=", "gone-gina-conn=", "gone-hank-conn="
THROTTLED, FAILING = "throttled-carol=", "failing-ivan-conn="


def on(connection_id, event):
    event = copy.deepcopy(event)
    event["requestContext"]["connectionId"] = connection_id
    return event


def token(user, **claims):
    return events.hs256(dict({"sub": user, "exp": 4102444800}, **claims))


def action(connection_id, body, t):
    name = body["action"]
    return on(connection_id, events.message(name, json.dumps(body), t))


def sqs(queue, bodies, receives=1):
    event = events.sqs(queue, [json.dumps(b) if not isinstance(b, str) else b for b in bodies])
    for record in event["Records"]:
        record["attributes"]["ApproximateReceiveCount"] = str(receives)
    return event


def http(method, path, body=None):
    return events.http(method, path, json.dumps(body) if body is not None else None)


GRANTS = {"groups": ["room:1", "presence:lobby"], "subscribe": ["chat:*"], "publish": ["chat:*"],
          "events": ["chat"]}
frame = {"type": "message", "from": "server", "group": "room:1", "data": {"text": "hi"}}

def connect(connection_id, user, **claims):
    return on(connection_id, events.connect({"token": token(user, **claims)}))


SCENARIOS = [
    # Connections (MaxGroupsPerConnection is 4 here). dave and bob are in the presence group
    # before alice joins it, so her join and leave are announced through the Deliveries queue.
    ("connect-dave.json", "connect", connect(DAVE, "dave", groups=["presence:lobby", "room:1"], subscribe=["chat:*"]), '"statusCode":200'),
    ("connect-bob-gone.json", "connect", connect(GONE, "bob", groups=["room:1", "presence:lobby"]), '"statusCode":200'),
    ("connect-gina-gone.json", "connect", connect(GONE_G, "gina", groups=["room:1"], subscribe=["chat:*"]), '"statusCode":200'),
    ("connect-hank-gone.json", "connect", connect(GONE_H, "hank", groups=["room:1"]), '"statusCode":200'),
    ("connect-carol-throttled.json", "connect", connect(THROTTLED, "carol", groups=["room:1"]), '"statusCode":200'),
    ("connect-ivan-failing.json", "connect", connect(FAILING, "ivan", groups=["room:1"]), '"statusCode":200'),
    ("connect-erin.json", "connect", connect(ERIN, "erin"), '"statusCode":200'),
    ("connect-alice.json", "connect", connect(ALICE, "alice", **GRANTS), '"statusCode":200'),
    # Four token groups and a user-level group for a connection that may hold four: the
    # fifth group's slot is refused, so the handshake checks its membership.
    ("http-add-frank-group.json", "api", http("PUT", "/groups/a:5/users/frank"), '"statusCode":20'),
    ("connect-over-groups.json", "connect", connect("iam-frank-conn=", "frank", groups=["a:1", "a:2", "a:3", "a:4"]), '"statusCode":'),
    # Client actions: a history group (HistoryGroups chat:* here), presence, events, recovery.
    ("subscribe-dave-chat.json", "actions", action(DAVE, {"action": "subscribe", "group": "chat:1", "id": 1}, 50), '\\"ok\\":true'),
    ("subscribe-chat.json", "actions", action(ALICE, {"action": "subscribe", "group": "chat:1", "id": 1}, 100), '\\"ok\\":true'),
    ("publish-chat.json", "actions", action(ALICE, {"action": "publish", "group": "chat:1", "data": {"t": 1}, "id": 2}, 200), '\\"ok\\":true'),
    ("history-chat.json", "actions", action(ALICE, {"action": "history", "stream": "group:chat:1", "id": 3}, 300), '\\"ok\\":true'),
    ("recover-chat.json", "actions", action(ALICE, {"action": "recover", "id": 4, "streams": [
        {"stream": "group:chat:1", "offset": 0, "epoch": "0000000000000000"}]}, 400), '\\"ok\\":true'),
    # A recover whose replies find the connection gone: the connection is forgotten.
    ("subscribe-gina-chat.json", "actions", action(GONE_G, {"action": "subscribe", "group": "chat:1", "id": 1}, 410), '\\"ok\\":true'),
    ("recover-gone.json", "actions", action(GONE_G, {"action": "recover", "id": 4, "streams": [
        {"stream": "group:chat:1", "offset": 0, "epoch": "0000000000000000"}]}, 420), '"statusCode":'),
    ("presence-lobby.json", "actions", action(ALICE, {"action": "presence", "group": "presence:lobby", "id": 5}, 500), '\\"type\\":\\"presence\\"'),
    ("event-chat.json", "actions", action(ALICE, {"action": "event", "event": "chat", "data": {"t": 1}, "id": 6}, 600), '\\"ok\\":true'),
    ("unsubscribe-chat.json", "actions", action(ALICE, {"action": "unsubscribe", "group": "chat:1", "id": 7}, 700), '\\"ok\\":true'),
    # The HTTP API: negotiate, lookups, user-level and connection groups, sends, closes.
    ("http-negotiate.json", "api", http("POST", "/negotiate", {"userId": "dave"}), '"statusCode":200'),
    ("http-get-connection.json", "api", http("GET", f"/connections/{ALICE}"), '"statusCode":200'),
    ("http-get-user.json", "api", http("GET", "/users/alice"), '"statusCode":200'),
    ("http-add-user-group.json", "api", http("PUT", "/groups/room:2/users/alice", {"ttlSeconds": 60}), '"statusCode":20'),
    ("http-remove-user-group.json", "api", http("DELETE", "/groups/room:2/users/alice"), '"statusCode":20'),
    ("http-add-connection-group.json", "api", http("PUT", f"/groups/room:3/connections/{ALICE}"), '"statusCode":20'),
    ("http-remove-connection-group.json", "api", http("DELETE", f"/groups/room:3/connections/{ALICE}"), '"statusCode":20'),
    ("http-broadcast.json", "api", http("POST", "/send", {"all": True, "data": {"t": 1}}), '"statusCode":202'),
    ("http-send-user.json", "api", http("POST", "/send", {"userId": "alice", "data": {"t": 1}, "id": "m-1"}), '"statusCode":202'),
    ("http-send-user-group.json", "api", http("POST", "/send", {"userId": "alice", "group": "room:1", "data": 1}), '"statusCode":202'),
    ("http-close.json", "api", http("DELETE", f"/connections/{ERIN}"), '"statusCode":20'),
    ("http-close-gone.json", "api", http("DELETE", f"/connections/{GONE_H}"), '"statusCode":'),
    ("http-close-user.json", "api", http("DELETE", "/users/erin/connections"), '"statusCode":'),
    # The Commands queue: every command type.
    ("commands-all.json", "commands", sqs("switchboard-CommandsQueue", [
        {"version": 1, "type": "sendToUser", "userId": "alice", "data": 1, "id": "c-1"},
        {"version": 1, "type": "sendToUser", "userId": "alice", "group": "room:1", "data": 1},
        {"version": 1, "type": "sendToConnection", "connectionId": ALICE, "data": 1},
        {"version": 1, "type": "broadcast", "data": 1},
        {"version": 1, "type": "addConnectionToGroup", "connectionId": ALICE, "group": "room:4"},
        {"version": 1, "type": "removeConnectionFromGroup", "connectionId": ALICE, "group": "room:4"},
        {"version": 1, "type": "addUserToGroup", "userId": "alice", "group": "room:5"},
        {"version": 1, "type": "removeUserFromGroup", "userId": "alice", "group": "room:5"},
        {"version": 1, "type": "closeConnection", "connectionId": "gone-nobody="},
        {"version": 1, "type": "closeUserConnections", "userId": "nobody"},
    ]), '"batchItemFailures":[]'),
    # deliver: an idempotent send to a live, a gone and a throttled connection.
    ("deliver-gone-throttled.json", "deliver", sqs("switchboard-DeliveriesQueue", [
        {"connectionIds": [ALICE, GONE, THROTTLED], "frame": frame, "attempt": 1, "id": "d-1"}]), '"batchItemFailures":[]'),
    # notify-connection: gone, throttled and failing connections, an idempotent post.
    ("notify-connection-gone-throttled.json", "notify-connection", sqs("switchboard-NotifyConnectionQueue", [
        {"connectionId": GONE, "data": "x"},
        {"connectionId": THROTTLED, "data": "x"},
        {"connectionId": FAILING, "data": "x"},
        {"connectionId": ALICE, "data": "x", "id": "n-1"},
    ]), '"batchItemFailures":'),
    # upstream: a body that is no event goes straight to the Upstream DLQ.
    ("upstream-not-an-event.json", "upstream", sqs("switchboard-UpstreamQueue", ["not a CloudEvent"]), '"batchItemFailures":[]'),
    # disconnect: alice leaves her presence group, announced to dave.
    ("disconnect-alice.json", "disconnect", on(ALICE, json.load(open(here.parent / "events" / "disconnect.json"))), '"statusCode":200'),
]


def main(out_dir):
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, function, event, expected in SCENARIOS:
        (out / name).write_text(json.dumps(event, indent=2) + "\n")
        print(f"{name}|{function}|{expected}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
