/** Actions: acks by id, typed errors, timeouts, in-flight actions across a drop; incoming frames. */

import assert from "node:assert/strict";
import { test } from "node:test";
import type { Message, PresenceEvent } from "../../src/client.js";
import { SwitchboardError } from "../../src/errors.js";
import { FakeSocket } from "./fakes.js";
import { connected } from "./setup.js";

test("each action carries a fresh id and resolves on its ack", async () => {
  const { client } = await connected();
  const s = client.subscribe("chat:1");
  const p = client.publish("chat:1", { typing: true });
  const [sub, pub] = FakeSocket.last.sent;
  assert.deepEqual(sub, { action: "subscribe", group: "chat:1", id: sub.id });
  assert.deepEqual(pub, { action: "publish", group: "chat:1", data: { typing: true }, id: pub.id });
  assert.notEqual(sub.id, pub.id);
  FakeSocket.last.receive({ type: "ack", id: pub.id, ok: true });
  FakeSocket.last.receive({ type: "ack", id: sub.id, ok: true });
  await Promise.all([s, p]);
  client.close();
});

for (const code of ["forbidden", "rate_limited", "bad_request", "unavailable"] as const) {
  test(`a failed ack with ${code} rejects with a SwitchboardError of that code`, async () => {
    const { client } = await connected();
    const p = client.publish("chat:1", 1);
    const f = FakeSocket.last.lastSent("publish");
    FakeSocket.last.receive({ type: "ack", id: f.id, ok: false, error: { code, message: `why: ${code}` } });
    await assert.rejects(p, (e: unknown) => e instanceof SwitchboardError && e.code == code && e.message == `why: ${code}`);
    client.close();
  });
}

test("a refused subscribe is forgotten (not resubscribed); unavailable keeps it", async () => {
  const { client } = await connected();
  const a = client.subscribe("billing");
  const b = client.subscribe("chat:1");
  const [fa, fb] = FakeSocket.last.sent;
  FakeSocket.last.receive({ type: "ack", id: fa.id, ok: false, error: { code: "forbidden", message: "no" } });
  FakeSocket.last.receive({ type: "ack", id: fb.id, ok: false, error: { code: "unavailable", message: "later" } });
  await assert.rejects(a);
  await assert.rejects(b);
  assert.deepEqual(client.groups, ["chat:1"]);
  client.close();
});

test("an unanswered action rejects with timeout after `timeout` ms, and a late ack is ignored", async () => {
  const { client, clock } = await connected({ timeout: 5_000 });
  const p = client.publish("g", 1);
  let settled = false;
  p.catch(() => (settled = true));
  await clock.advance(4_999);
  assert.equal(settled, false);
  await clock.advance(1);
  await assert.rejects(p, (e: SwitchboardError) => e.code == "timeout");
  FakeSocket.last.receive({ type: "ack", id: FakeSocket.last.lastSent("publish").id, ok: true });
  client.close();
});

test("actions waiting for a socket time out too", async () => {
  const { client, clock } = await connected({ timeout: 2_000, backoffBase: 100_000 });
  FakeSocket.last.drop();
  const p = assert.rejects(client.presence("g"), (e: SwitchboardError) => e.code == "timeout");
  await clock.advance(2_000);
  await p;
  client.close();
});

test("across a drop: a publish in flight fails with disconnected; a subscribe in flight is sent again and resolves", async () => {
  const { client, clock } = await connected();
  const pub = client.publish("g", 1);
  const sub = client.subscribe("g");
  FakeSocket.last.drop();
  await assert.rejects(pub, (e: SwitchboardError) => e.code == "disconnected");
  await clock.advance(1000);
  FakeSocket.last.open();
  await clock.advance(0);
  assert.deepEqual(FakeSocket.last.sent.map((f) => f.action), ["subscribe"]);
  FakeSocket.last.ackAll();
  await sub;
  client.close();
});

test("presence query resolves with the answer; presence events are emitted", async () => {
  const { client } = await connected();
  const events: PresenceEvent[] = [];
  client.on("presence", (e) => events.push(e));
  const p = client.presence("presence:lobby");
  const f = FakeSocket.last.lastSent("presence");
  const answer = { type: "presence", id: f.id, group: "presence:lobby", userIds: ["a", "b"], users: 2, connections: 3, truncated: false };
  FakeSocket.last.receive(answer);
  assert.deepEqual(await p, answer);
  FakeSocket.last.receive({ type: "presence", event: "join", userId: "c", group: "presence:lobby", online: 3 });
  assert.deepEqual(events, [{ type: "presence", event: "join", userId: "c", group: "presence:lobby", online: 3 }]);
  client.close();
});

test("ping resolves with the round trip", async () => {
  const { client, clock } = await connected();
  const p = client.ping();
  await clock.advance(25);
  FakeSocket.last.receive({ type: "pong", name: FakeSocket.last.lastSent("ping").name });
  assert.equal(await p, 25);
  client.close();
});

test("messages: group and client events to the group handler and the message event; queue data verbatim as raw", async () => {
  const { client } = await connected();
  const all: Message[] = [];
  const chat: Message[] = [];
  client.on("message", (m) => all.push(m));
  client.subscribe("chat:1", (m) => chat.push(m)).catch(() => undefined);
  const ws = FakeSocket.last;
  ws.receive({ type: "message", from: "client", group: "chat:1", userId: "bob", data: { typing: true } });
  ws.receive({ type: "message", from: "server", data: "for you" });
  ws.receive("your download is ready");
  ws.receive('{"download":"report.pdf"}');
  assert.deepEqual(chat, [{ from: "client", group: "chat:1", userId: "bob", data: { typing: true }, id: undefined }]);
  assert.deepEqual(
    all.map((m) => [m.from, m.group, m.data, !!m.raw]),
    [
      ["client", "chat:1", { typing: true }, false],
      ["server", undefined, "for you", false],
      ["server", undefined, "your download is ready", true],
      ["server", undefined, { download: "report.pdf" }, true],
    ],
  );
  client.close();
});

test("error frames and the server's close announcement are events; the client reconnects after that close", async () => {
  const { client, clock } = await connected();
  const errors: string[] = [];
  const closes: (string | undefined)[] = [];
  client.on("error", (e) => errors.push(e.code));
  client.on("serverClose", (r) => closes.push(r));
  FakeSocket.last.receive({ type: "error", code: "unknown_action", message: "unknown action", action: "x" });
  FakeSocket.last.receive({ type: "close", reason: "bye" });
  FakeSocket.last.drop(1000);
  await clock.advance(1000);
  assert.deepEqual(errors, ["unknown_action"]);
  assert.deepEqual(closes, ["bye"]);
  assert.equal(FakeSocket.all.length, 2);
  client.close();
});

test("a listener that throws does not break the client; its error is rethrown outside the client", async () => {
  const { client } = await connected();
  const seen: unknown[] = [];
  client.on("message", () => {
    throw new Error("app bug");
  });
  client.on("message", (m) => seen.push(m.data));
  const deferred: (() => void)[] = [];
  const original = globalThis.setTimeout;
  globalThis.setTimeout = ((fn: () => void) => deferred.push(fn)) as unknown as typeof setTimeout;
  try {
    FakeSocket.last.receive({ type: "message", from: "server", data: 1 });
  } finally {
    globalThis.setTimeout = original;
  }
  assert.deepEqual(seen, [1]);
  assert.equal(deferred.length, 1);
  assert.throws(deferred[0], /app bug/);
  client.close();
});

test("event sends the client event and resolves with the event hook's answer, or undefined without a hook", async () => {
  const { client } = await connected();
  const answered = client.event("support:ask", { q: "hours?" });
  const f = FakeSocket.last.lastSent("event");
  assert.deepEqual(f, { action: "event", event: "support:ask", data: { q: "hours?" }, id: f.id });
  FakeSocket.last.receive({ type: "ack", id: f.id, ok: true, data: { a: "9-5" } });
  assert.deepEqual(await answered, { a: "9-5" });
  const plain = client.event("typing");
  FakeSocket.last.receive({ type: "ack", id: FakeSocket.last.lastSent("event").id, ok: true });
  assert.equal(await plain, undefined);
  const failed = client.event("support:ask", 1);
  const g = FakeSocket.last.lastSent("event");
  FakeSocket.last.receive({ type: "ack", id: g.id, ok: false, error: { code: "hook_failed", message: "the event hook did not answer" } });
  await assert.rejects(failed, (e: unknown) => e instanceof SwitchboardError && e.code == "hook_failed");
  client.close();
});
