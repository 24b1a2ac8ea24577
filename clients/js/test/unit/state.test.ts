/** The connection state machine on a fake clock: connect, reconnect with backoff, resubscribe, close, auth failures, keepalive, proactive reconnect. */

import assert from "node:assert/strict";
import { test } from "node:test";
import { SwitchboardError } from "../../src/errors.js";
import { FakeSocket, FakeWsSocket } from "./fakes.js";
import { connected, setup } from "./setup.js";

test("connect: closed -> connecting -> open, with the token in the URL", async () => {
  const { client, states } = await connected();
  assert.equal(client.state, "open");
  assert.deepEqual(states, ["connecting", "open"]);
  assert.equal(FakeSocket.last.url, "wss://example.test/prod?token=static-token");
  client.close();
  assert.deepEqual(states, ["connecting", "open", "closed"]);
});

test("a dropped socket: reconnecting, a new socket after a jittered backoff, open again; the backoff resets", async () => {
  const { client, clock, states } = await connected({ backoffBase: 1000, random: () => 0.5 });
  FakeSocket.last.drop();
  assert.equal(client.state, "reconnecting");
  assert.deepEqual(clock.pending().slice(0, 1), [500]); // 0.5 * min(cap, 1000 * 2^0)
  await clock.advance(499);
  assert.equal(FakeSocket.all.length, 1);
  await clock.advance(1);
  assert.equal(FakeSocket.all.length, 2);
  FakeSocket.last.drop(); // fails before opening: the next delay doubles
  await clock.advance(999);
  assert.equal(FakeSocket.all.length, 2);
  await clock.advance(1);
  assert.equal(FakeSocket.all.length, 3);
  FakeSocket.last.open();
  await clock.advance(0);
  assert.deepEqual(states, ["connecting", "open", "reconnecting", "open"]);
  FakeSocket.last.drop();
  await clock.advance(500); // back to the first delay
  assert.equal(FakeSocket.all.length, 4);
  client.close();
});

test("failures before the first open stay in connecting", async () => {
  const { client, clock, states } = setup();
  client.connect();
  await clock.advance(0);
  FakeSocket.last.drop();
  await clock.advance(1000);
  FakeSocket.last.open();
  await clock.advance(0);
  assert.deepEqual(states, ["connecting", "open"]);
  client.close();
});

test("after a reconnect the client resubscribes every group it keeps, and is open only once they are acked", async () => {
  const { client, clock, states } = await connected();
  const a = client.subscribe("chat:1");
  const b = client.subscribe("chat:2");
  FakeSocket.last.ackAll();
  await Promise.all([a, b]);
  const un = client.unsubscribe("chat:2");
  FakeSocket.last.ackAll("unsubscribe");
  await un;
  FakeSocket.last.drop();
  await clock.advance(1000);
  FakeSocket.last.open();
  await clock.advance(0);
  assert.deepEqual(FakeSocket.last.sent.map((f) => [f.action, f.group]), [["subscribe", "chat:1"]]);
  assert.equal(client.state, "reconnecting");
  const published = client.publish("chat:1", "queued until resubscribed");
  await clock.advance(0);
  assert.equal(FakeSocket.last.sent.length, 1);
  FakeSocket.last.ackAll();
  await clock.advance(0);
  assert.equal(client.state, "open");
  assert.deepEqual(FakeSocket.last.sent.map((f) => f.action), ["subscribe", "publish"]);
  FakeSocket.last.ackAll("publish");
  await published;
  assert.deepEqual(states, ["connecting", "open", "reconnecting", "open"]);
  client.close();
});

test("a resubscribe the server refuses drops the group and is reported as an error event", async () => {
  const { client, clock } = await connected();
  const s = client.subscribe("chat:1");
  FakeSocket.last.ackAll();
  await s;
  const errors: [string, string | undefined][] = [];
  client.on("error", (e, g) => errors.push([e.code, g]));
  FakeSocket.last.drop();
  await clock.advance(1000);
  FakeSocket.last.open();
  const f = FakeSocket.last.lastSent("subscribe");
  FakeSocket.last.receive({ type: "ack", id: f.id, ok: false, error: { code: "forbidden", message: "no" } });
  await clock.advance(0);
  assert.deepEqual(errors, [["forbidden", "chat:1"]]);
  assert.deepEqual(client.groups, []);
  assert.equal(client.state, "open");
  client.close();
});

test("actions made before connect wait for the socket and go out once it opens", async () => {
  const { client, clock } = setup();
  const sub = client.subscribe("news");
  client.connect();
  await clock.advance(0);
  FakeSocket.last.open();
  await clock.advance(0);
  assert.deepEqual(FakeSocket.last.sent.map((f) => [f.action, f.group]), [["subscribe", "news"]]);
  FakeSocket.last.ackAll();
  await sub;
  client.close();
});

test("close(): no reconnect, unanswered actions fail with closed, later actions too", async () => {
  const { client, clock, states } = await connected();
  const p = client.publish("g", 1);
  client.close();
  await assert.rejects(p, (e: SwitchboardError) => e.code == "closed");
  await assert.rejects(client.publish("g", 2), (e: SwitchboardError) => e.code == "closed");
  await clock.advance(600_000);
  assert.equal(FakeSocket.all.length, 1);
  assert.deepEqual(states, ["connecting", "open", "closed"]);
  assert.equal(FakeSocket.last.closedWith !== undefined, true);
});

for (const status of [401, 403]) {
  test(`a handshake refused with ${status} (ws reports it): closed with unauthorized, no reconnect`, async () => {
    const { client, clock, states } = setup({}, FakeWsSocket);
    let why: SwitchboardError | undefined;
    client.on("state", (_s, _p, e) => (why = e));
    client.connect();
    await clock.advance(0);
    (FakeSocket.last as FakeWsSocket).refuse(status);
    await clock.advance(600_000);
    assert.equal(FakeSocket.all.length, 1);
    assert.deepEqual(states, ["connecting", "closed"]);
    assert.equal(why?.code, "unauthorized");
    assert.equal(why?.status, status);
  });
}

test("other refused handshakes (500) and network failures with ws are retried indefinitely", async () => {
  const { client, clock } = setup({ maxHandshakeFailures: 3 }, FakeWsSocket);
  client.connect();
  await clock.advance(0);
  (FakeSocket.last as FakeWsSocket).refuse(500);
  for (let i = 0; i < 10; i++) {
    await clock.advance(30_000);
    FakeSocket.last.drop();
  }
  await clock.advance(30_000);
  assert.equal(FakeSocket.all.length, 12);
  assert.equal(client.state, "connecting");
  client.close();
});

test("browser-like sockets: maxHandshakeFailures closes before open in a row end in handshake_failed; getToken is asked each time", async () => {
  let asked = 0;
  const { client, clock, states } = setup({ token: undefined, getToken: async () => `t${++asked}`, maxHandshakeFailures: 4 });
  let why: SwitchboardError | undefined;
  client.on("state", (_s, _p, e) => (why = e));
  client.connect();
  for (let i = 0; i < 4; i++) {
    await clock.advance(30_000);
    FakeSocket.last.drop();
  }
  await clock.advance(600_000);
  assert.equal(FakeSocket.all.length, 4);
  assert.equal(asked, 4);
  assert.deepEqual(states, ["connecting", "closed"]);
  assert.equal(why?.code, "handshake_failed");
});

test("browser-like sockets: an open in between resets the count", async () => {
  const { client, clock } = setup({ maxHandshakeFailures: 2 });
  client.connect();
  await clock.advance(0);
  FakeSocket.last.drop();
  await clock.advance(30_000);
  FakeSocket.last.open();
  await clock.advance(0);
  FakeSocket.last.drop();
  await clock.advance(30_000);
  FakeSocket.last.drop();
  await clock.advance(30_000);
  assert.equal(client.state, "reconnecting");
  assert.equal(FakeSocket.all.length, 4);
  client.close();
});

test("keepalive: a ping every pingInterval; a missing pong drops the socket and reconnects", async () => {
  const { client, clock, states } = await connected({ pingInterval: 300_000, timeout: 10_000 });
  const first = FakeSocket.last;
  await clock.advance(300_000);
  const ping = first.lastSent("ping");
  assert.ok(ping && typeof ping.name == "string");
  first.receive({ type: "pong", name: ping.name });
  await clock.advance(300_000);
  assert.equal(first.sent.filter((f) => f.action == "ping").length, 2);
  await clock.advance(10_000); // no pong
  assert.equal((first as FakeSocket & { readyState: number }).readyState, 3);
  assert.equal(client.state, "reconnecting");
  await clock.advance(1000);
  assert.equal(FakeSocket.all.length, 2);
  assert.deepEqual(states, ["connecting", "open", "reconnecting"]);
  client.close();
});

test("proactive reconnect at maxConnectionAge: new socket, resubscribed, then the old one closes; state stays open", async () => {
  let n = 0;
  const { client, clock, states } = await connected({ maxConnectionAge: 60_000, overlap: 1_000, pingInterval: 1e9, token: undefined, getToken: async () => `t${++n}` });
  const sub = client.subscribe("chat:1");
  FakeSocket.last.ackAll();
  await sub;
  const old = FakeSocket.last;
  await clock.advance(60_000);
  assert.equal(FakeSocket.all.length, 2);
  const fresh = FakeSocket.last;
  assert.equal(fresh.token, "t2");
  fresh.open();
  await clock.advance(0);
  assert.deepEqual(fresh.sent.map((f) => [f.action, f.group]), [["subscribe", "chat:1"]]);
  assert.equal(old.closedWith, undefined, "the old socket stays until the new one is resubscribed");
  // messages keep arriving on the old socket meanwhile
  const got: unknown[] = [];
  client.on("message", (m) => got.push(m.data));
  old.receive({ type: "message", from: "server", group: "chat:1", data: "during" });
  fresh.ackAll();
  await clock.advance(0);
  // it overlaps for `overlap` ms, still delivering
  old.receive({ type: "message", from: "server", group: "chat:1", data: "overlap" });
  await clock.advance(999);
  assert.equal(old.closedWith, undefined);
  await clock.advance(1);
  assert.equal(old.closedWith, 1000);
  assert.deepEqual(got, ["during", "overlap"]);
  const p = client.publish("chat:1", "after");
  assert.equal(fresh.lastSent("publish")?.data, "after");
  assert.equal(old.lastSent("publish"), undefined);
  fresh.ackAll("publish");
  await p;
  assert.deepEqual(states, ["connecting", "open"]);
  // and the next renewal is scheduled for the new socket
  await clock.advance(59_000);
  assert.equal(FakeSocket.all.length, 3);
  client.close();
});

test("proactive reconnect: the old socket waits for the answers still owed on it", async () => {
  const { client, clock } = await connected({ maxConnectionAge: 60_000, overlap: 0, pingInterval: 1e9 });
  const old = FakeSocket.last;
  await clock.advance(59_000);
  const p = client.presence("g");
  await clock.advance(1_000);
  FakeSocket.last.open();
  await clock.advance(0);
  assert.equal(old.closedWith, undefined);
  const q = old.lastSent("presence");
  old.receive({ type: "presence", id: q.id, group: "g", userIds: ["a"], users: 1, connections: 1, truncated: false });
  assert.equal((await p).users, 1);
  await clock.advance(0);
  assert.equal(old.closedWith, 1000);
  client.close();
});

test("proactive reconnect whose new socket fails keeps the old one and tries again later", async () => {
  const { client, clock, states } = await connected({ maxConnectionAge: 60_000, overlap: 0, pingInterval: 1e9 });
  const old = FakeSocket.last;
  await clock.advance(60_000);
  FakeSocket.last.drop();
  await clock.advance(0);
  assert.equal(old.closedWith, undefined);
  assert.equal(client.state, "open");
  await clock.advance(500);
  assert.equal(FakeSocket.all.length, 3);
  FakeSocket.last.open();
  await clock.advance(0);
  assert.equal(old.closedWith, 1000);
  assert.deepEqual(states, ["connecting", "open"]);
  client.close();
});

test("close() during a proactive reconnect's overlap drops both sockets", async () => {
  const { client, clock } = await connected({ maxConnectionAge: 60_000, overlap: 5_000, pingInterval: 1e9 });
  const old = FakeSocket.last;
  await clock.advance(60_000);
  const fresh = FakeSocket.last;
  fresh.open();
  await clock.advance(0);
  assert.equal(old.closedWith, undefined);
  client.close();
  assert.equal(old.readyState, 3);
  assert.equal(fresh.readyState, 3);
  await clock.advance(60_000);
  assert.equal(FakeSocket.all.length, 2);
});
