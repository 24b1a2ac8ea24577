/**
 * The client against the real local stack over real sockets on 127.0.0.1: every action, a
 * connection killed with the Management API's DELETE, proactive reconnect under a shortened
 * --max-duration, keepalive under a shortened --idle-timeout, negotiate as getToken, and no
 * reconnect after 401; recovery (a client killed twice, its reconnects held, while 200 messages go to its
 * user or to a history group, gets each once in order; proactive reconnects in a history group hand
 * over no duplicate; recover: false keeps user messages verbatim). Each test starts its own stack and
 * stops it (and its clients) in teardown.
 */

import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import WebSocket from "ws";
import { Client, type Message, type Options, type PresenceEvent, type RecoveryEvent, SwitchboardError } from "../../src/index.js";
import { Stack, until } from "./stack.js";

async function stack(t: TestContext, args: string[] = []): Promise<Stack> {
  const s = await Stack.start(args);
  t.after(() => s.stop());
  return s;
}

/** A client on `ws`, recording its states and messages; closed in teardown. */
function client(t: TestContext, options: Options) {
  const c = new Client({ WebSocket, timeout: 5_000, backoffBase: 100, backoffCap: 1_000, ...options });
  const states: string[] = [];
  const messages: Message[] = [];
  const presence: PresenceEvent[] = [];
  c.on("state", (s) => states.push(s));
  c.on("message", (m) => messages.push(m));
  c.on("presence", (e) => presence.push(e));
  t.after(() => c.close());
  c.connect();
  return { c, states, messages, presence };
}

const opened = (c: Client) => until(() => c.state == "open", "the client to open");
const code = (c: string) => (e: unknown) => e instanceof SwitchboardError && e.code == c;

test("every action against the stack: subscribe, publish, presence, unsubscribe, ping, and what the server sends", async (t) => {
  const s = await stack(t, ["--publish-limit", "3", "--publish-window", "10s"]);
  const claims = { groups: ["presence:lobby"], subscribe: ["chat:*"], publish: ["chat:*"] };
  const alice = client(t, { url: s.url, token: await s.token("alice", claims) });
  await opened(alice.c);
  const bob = client(t, { url: s.url, token: await s.token("bob", claims) });
  await opened(bob.c);

  // presence: bob's join is announced to alice; the query lists both
  await until(() => alice.presence.find((e) => e.userId == "bob"), "bob's join");
  assert.deepEqual(alice.presence, [{ type: "presence", event: "join", userId: "bob", group: "presence:lobby", online: 2 }] as unknown[]);
  const who = await alice.c.presence("presence:lobby");
  assert.deepEqual([who.users, who.connections, [...who.userIds].sort(), who.truncated], [2, 2, ["alice", "bob"], false]);

  // subscribe, and a client event reaches the other member only, with the sender's user id
  const chat: Message[] = [];
  await alice.c.subscribe("chat:1", (m) => chat.push(m));
  await bob.c.subscribe("chat:1");
  await bob.c.publish("chat:1", { typing: true });
  await until(() => chat.length == 1, "alice to get bob's event");
  assert.deepEqual(chat[0], { from: "client", group: "chat:1", userId: "bob", data: { typing: true }, id: undefined });
  assert.equal(bob.messages.length, 0);

  // typed refusals
  await assert.rejects(alice.c.subscribe("billing"), code("forbidden"));
  await assert.rejects(alice.c.publish("chat:2", 1), code("forbidden")); // not joined
  await assert.rejects(alice.c.subscribe("a b"), code("bad_request"));
  await assert.rejects(bob.c.presence("chat:99"), code("forbidden"));
  assert.deepEqual(alice.c.groups, ["chat:1"]);
  await bob.c.publish("chat:1", 2);
  await bob.c.publish("chat:1", 3);
  await assert.rejects(bob.c.publish("chat:1", 4), code("rate_limited"));

  // the server's sends: to the group, to the user, and NotifyUser queue messages: with recovery on
  // (the default) they come stamped in the user's stream, their data parsed as it was given
  assert.equal((await s.request("POST", "/send", { group: "chat:1", data: { text: "hi" } })).status, 202);
  assert.equal((await s.request("POST", "/send", { userId: "alice", data: "for alice" })).status, 202);
  await s.request("POST", "/queues/notify-user", { userId: "alice", data: "your download is ready" });
  await s.request("POST", "/queues/notify-user", { userId: "alice", data: { download: "report.pdf" } });
  await until(() => alice.messages.length >= 7, "alice's messages");
  const server = alice.messages.filter((m) => m.from == "server");
  assert.deepEqual(
    server.map((m) => [m.group, m.data, !!m.raw, m.stream]).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
    [
      ["chat:1", { text: "hi" }, false, undefined], // chat:1 keeps no history on this stack
      [undefined, "for alice", false, "user"],
      [undefined, "your download is ready", false, "user"],
      [undefined, { download: "report.pdf" }, false, "user"],
    ].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
  );
  // in offset order, once each
  assert.deepEqual(server.filter((m) => m.stream == "user").map((m) => m.offset), [1, 2, 3]);

  // unsubscribe: no more group messages
  await alice.c.unsubscribe("chat:1");
  assert.deepEqual(alice.c.groups, []);
  const before = alice.messages.length;
  await s.request("POST", "/send", { group: "chat:1", data: "after unsubscribe" });
  await until(() => bob.messages.some((m) => m.data == "after unsubscribe"), "bob to get the group send");
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(alice.messages.length, before);

  // ping
  const rtt = await alice.c.ping();
  assert.ok(rtt >= 0 && rtt < 5_000);
  assert.deepEqual(alice.states, ["connecting", "open"]);
});

test("a connection killed with the Management API's DELETE reconnects by itself and resubscribes", async (t) => {
  const s = await stack(t);
  const alice = client(t, { url: s.url, token: await s.token("alice", { subscribe: ["chat:*"] }) });
  await opened(alice.c);
  await alice.c.subscribe("chat:1");
  const [first] = s.connectionIds("alice");
  assert.equal(await s.kill(first), 204);
  await until(() => alice.states.includes("reconnecting"), "reconnecting");
  await until(() => alice.c.state == "open", "open again");
  const ids = s.connectionIds("alice");
  assert.equal(ids.length, 2);
  assert.notEqual(ids[1], first);
  // resubscribed: the group has the new connection, and a group send arrives
  const group = await s.request("GET", "/groups/chat:1");
  assert.deepEqual([group.status, group.body.connections], [200, 1]);
  await s.request("POST", "/send", { group: "chat:1", data: "after the kill" });
  await until(() => alice.messages.some((m) => m.group == "chat:1" && m.data == "after the kill"), "the group send");
  assert.deepEqual(alice.states, ["connecting", "open", "reconnecting", "open"]);
});

test("proactive reconnect under a shortened --max-duration: no gap, no reconnecting state, no server-side close", async (t) => {
  const s = await stack(t, ["--max-duration", "4s"]);
  const alice = client(t, {
    url: s.url,
    token: await s.token("alice", { subscribe: ["chat:*"] }),
    maxConnectionAge: 1_500,
    overlap: 300,
  });
  await opened(alice.c);
  await alice.c.subscribe("chat:1");
  // a group send every 100 ms for 7 s: four connection lifetimes of 1.5 s
  let sent = 0;
  const deadline = Date.now() + 7_000;
  while (Date.now() < deadline) {
    const r = await s.request("POST", "/send", { group: "chat:1", data: ++sent });
    assert.equal(r.status, 202);
    await new Promise((r) => setTimeout(r, 100));
  }
  const got = () => new Set(alice.messages.filter((m) => m.group == "chat:1").map((m) => m.data as number));
  await until(() => got().size == sent, `all ${sent} messages (got ${got().size})`);
  const duplicates = alice.messages.length - got().size;
  t.diagnostic(`${sent} messages over ${s.connectionIds("alice").length} connections, ${duplicates} delivered twice in overlaps`);
  assert.ok(s.connectionIds("alice").length >= 4, "renewed at least three times");
  assert.deepEqual(alice.states, ["connecting", "open"]);
  // every connection was closed by the client (1000), none by the stack's 4 s limit (1001)
  assert.deepEqual(s.lines(/disconnect connection_id.*user_id=alice.*code=1001/), []);
});

test("keepalive pings keep the socket open past a shortened --idle-timeout", async (t) => {
  const s = await stack(t, ["--idle-timeout", "1500ms"]);
  const alice = client(t, { url: s.url, token: await s.token("alice"), pingInterval: 500 });
  await opened(alice.c);
  await new Promise((r) => setTimeout(r, 4_000));
  assert.equal(s.connectionIds("alice").length, 1);
  assert.deepEqual(alice.states, ["connecting", "open"]);
});

test("getToken via negotiate: called for the first connect and again for the reconnect", async (t) => {
  const s = await stack(t);
  let calls = 0;
  const getToken = async () => {
    calls++;
    const r = await s.request("POST", "/negotiate", { userId: "carol", subscribe: ["chat:*"], ttlSeconds: 60 });
    assert.equal(r.status, 200);
    return r.body as { url: string; token: string };
  };
  const carol = client(t, { getToken });
  await opened(carol.c);
  await carol.c.subscribe("chat:7");
  assert.equal(calls, 1);
  await s.kill(s.connectionIds("carol")[0]);
  await until(() => s.connectionIds("carol").length == 2 && carol.c.state == "open", "the reconnect");
  assert.equal(calls, 2);
  assert.deepEqual((await s.request("GET", "/groups/chat:7")).body.connections, 1);
});

test("a token the stack refuses (401): closed with unauthorized, and no second attempt", async (t) => {
  const s = await stack(t);
  const forged = await s.token("mallory", {}, "another-secret-of-at-least-32-bytes-xxxxxx");
  const why: SwitchboardError[] = [];
  const mallory = client(t, { url: s.url, token: forged });
  mallory.c.on("state", (_s, _p, e) => e && why.push(e));
  await until(() => mallory.c.state == "closed", "closed");
  assert.deepEqual([why[0]?.code, why[0]?.status], ["unauthorized", 401]);
  await new Promise((r) => setTimeout(r, 1_500)); // several backoff periods
  assert.equal(s.lines(/handshake rejected/).length, 1);
  assert.deepEqual(mallory.states, ["connecting", "closed"]);
  await assert.rejects(mallory.c.publish("g", 1), code("closed"));
});

test("getToken: a 401 after a reconnect stops the client too", async (t) => {
  const s = await stack(t);
  const good = await s.token("dave");
  let token = good;
  const dave = client(t, { url: s.url, getToken: async () => token });
  await opened(dave.c);
  token = await s.token("dave", {}, "another-secret-of-at-least-32-bytes-xxxxxx");
  await s.kill(s.connectionIds("dave")[0]);
  await until(() => dave.c.state == "closed", "closed");
  assert.deepEqual(dave.states, ["connecting", "open", "reconnecting", "closed"]);
  assert.equal(s.lines(/handshake rejected/).length, 1);
});

/** A getToken whose calls can be held: `hold()` keeps the next reconnect away until `release()`. */
function gated(token: string) {
  let gate: Promise<void> | undefined;
  let open = () => {};
  let held = 0;
  return {
    getToken: async () => {
      if (gate) {
        held++;
        await gate;
      }
      return token;
    },
    hold: () => (gate = new Promise<void>((r) => (open = r))),
    release: () => {
      gate = undefined;
      open();
    },
    held: () => held,
  };
}

/**
 * Sends `count` numbered messages one after another through the HTTP API (each appended before the
 * next is sent, so offsets follow the numbers); twice, at a third and at two thirds, the client's
 * socket is killed and kept away (its getToken held) while a further sixth is sent. The second kill
 * waits for the first reconnect's recovery answer.
 */
async function sendThroughDrops(s: Stack, user: string, body: (n: number) => object, count: number, gate: ReturnType<typeof gated>, c: Client, recoveries: RecoveryEvent[], stream: string) {
  for (let n = 1, kills = 0; n <= count; n++) {
    if (n == Math.floor(count / 3) || n == Math.floor((2 * count) / 3)) {
      await opened(c);
      const want = kills++;
      await until(() => recoveries.filter((e) => e.stream == stream).length >= want, "the recovery after the reconnect");
      const ids = s.connectionIds(user);
      const held = gate.held();
      gate.hold();
      assert.equal(await s.kill(ids[ids.length - 1]), 204);
      await until(() => gate.held() > held, "the client to ask for a token to reconnect");
    }
    if (n == Math.floor(count / 3) + Math.floor(count / 6) || n == Math.floor((2 * count) / 3) + Math.floor(count / 6)) gate.release();
    const r = await s.request("POST", "/send", body(n));
    assert.equal(r.status, 202, JSON.stringify(r.body));
  }
}

test("recovery: a client killed twice while 200 messages go to its user gets every one exactly once, in order", { timeout: 60_000 }, async (t) => {
  const s = await stack(t);
  const gate = gated(await s.token("alice"));
  const alice = client(t, { getToken: gate.getToken, url: s.url });
  const recoveries: RecoveryEvent[] = [];
  alice.c.on("recovery", (e) => recoveries.push(e));
  await opened(alice.c);
  await until(() => s.lines(/history.*stream="?user/).length > 0, "the user stream's position request");
  await sendThroughDrops(s, "alice", (n) => ({ userId: "alice", data: n }), 200, gate, alice.c, recoveries, "user");
  const mine = () => alice.messages.filter((m) => m.stream == "user");
  await until(() => mine().length >= 200, `200 messages (got ${mine().length})`, 20_000);
  await new Promise((r) => setTimeout(r, 300)); // nothing more may come
  assert.deepEqual(
    mine().map((m) => m.data),
    Array.from({ length: 200 }, (_, i) => i + 1),
  );
  assert.deepEqual(mine().map((m) => m.offset), Array.from({ length: 200 }, (_, i) => i + 1));
  assert.equal(alice.messages.length, 200);
  assert.equal(s.connectionIds("alice").length, 3);
  // one recovery per reconnect, each filling at least the sixth sent while the socket was away
  assert.deepEqual(recoveries.map((e) => [e.stream, e.recovered, e.missed! >= 33]), [["user", true, true], ["user", true, true]], JSON.stringify(recoveries));
});

test("recovery: the same for a group that keeps history (--history-groups)", { timeout: 60_000 }, async (t) => {
  const s = await stack(t, ["--history-groups", "chat:*"]);
  const gate = gated(await s.token("alice", { subscribe: ["chat:*"] }));
  const alice = client(t, { getToken: gate.getToken, url: s.url });
  const recoveries: RecoveryEvent[] = [];
  alice.c.on("recovery", (e) => recoveries.push(e));
  const chat: Message[] = [];
  await alice.c.subscribe("chat:1", (m) => chat.push(m));
  await until(() => s.lines(/history.*stream="?group:chat:1/).length > 0, "the group stream's position request");
  await sendThroughDrops(s, "alice", (n) => ({ group: "chat:1", data: n }), 200, gate, alice.c, recoveries, "group:chat:1");
  await until(() => chat.length >= 200, `200 messages (got ${chat.length})`, 20_000);
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(chat.map((m) => m.data), Array.from({ length: 200 }, (_, i) => i + 1));
  assert.deepEqual(chat.map((m) => [m.stream, m.epoch]), chat.map(() => ["group:chat:1", chat[0].epoch]));
  assert.equal(alice.messages.length, 200);
  // the user stream (nothing missed) and the group's, per reconnect
  const group = recoveries.filter((e) => e.stream == "group:chat:1");
  assert.deepEqual(group.map((e) => [e.recovered, e.missed! >= 33]), [[true, true], [true, true]], JSON.stringify(recoveries));
  assert.ok(recoveries.every((e) => e.recovered && (e.stream == "group:chat:1" || e.missed == 0)), JSON.stringify(recoveries));
  assert.deepEqual((await s.request("GET", "/groups/chat:1")).body.connections, 1);
});

test("recovery: proactive reconnects in a history group hand every message over once, in order", { timeout: 60_000 }, async (t) => {
  const s = await stack(t, ["--max-duration", "4s", "--history-groups", "chat:*"]);
  const alice = client(t, { url: s.url, token: await s.token("alice", { subscribe: ["chat:*"] }), maxConnectionAge: 1_500, overlap: 300 });
  await opened(alice.c);
  await alice.c.subscribe("chat:1");
  await until(() => s.lines(/history.*stream="?group:chat:1/).length > 0, "the group stream's position request");
  let sent = 0;
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline) {
    assert.equal((await s.request("POST", "/send", { group: "chat:1", data: ++sent })).status, 202);
    await new Promise((r) => setTimeout(r, 50));
  }
  const got = () => alice.messages.filter((m) => m.group == "chat:1").map((m) => m.data);
  await until(() => got().length >= sent, `all ${sent} messages (got ${got().length})`);
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(got(), Array.from({ length: sent }, (_, i) => i + 1));
  assert.ok(s.connectionIds("alice").length >= 3, "renewed at least twice");
  assert.deepEqual(alice.states, ["connecting", "open"]);
});

test("recover: false: no envelope, user messages verbatim as before", async (t) => {
  const s = await stack(t);
  const alice = client(t, { url: s.url, token: await s.token("alice"), recover: false });
  await opened(alice.c);
  await s.request("POST", "/queues/notify-user", { userId: "alice", data: "your download is ready" });
  await until(() => alice.messages.length == 1, "the notification");
  assert.deepEqual(alice.messages, [{ from: "server", data: "your download is ready", raw: true }]);
  assert.deepEqual(s.lines(/history/), []);
});
