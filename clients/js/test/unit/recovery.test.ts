/**
 * Recovery on a fake clock and fake sockets: streams tracked by offset and epoch, messages handed
 * over in offset order and once, the gap timer, recover after a reconnect and in the proactive
 * reconnect's overlap, `more` paging, `recovered:false`, streams that keep no history, history().
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import type { Message, Options, RecoveryEvent } from "../../src/client.js";
import type { SwitchboardError } from "../../src/errors.js";
import { FakeSocket } from "./fakes.js";
import { connected } from "./setup.js";

/** A stamped message frame of `stream`. */
function stamped(stream: string, offset: number, epoch = "e1", extra: Record<string, unknown> = {}) {
  const group = stream.startsWith("group:") ? stream.slice(6) : undefined;
  return { type: "message", from: "server", group, data: `${stream}#${offset}`, stream, offset, epoch, ...extra };
}

/** Answers the unanswered `history` request for `stream` with a position (limit 0), then the ack. */
function position(ws: FakeSocket, stream: string, offset: number, epoch = "e1") {
  const f = ws.sent.find((x) => x.action == "history" && x.stream == stream && !x.answered);
  assert.ok(f, `a history request for ${stream} in ${JSON.stringify(ws.sent)}`);
  f.answered = true;
  ws.receive({ type: "history", id: f.id, stream, offset, epoch, count: 0 });
  ws.receive({ type: "ack", id: f.id, ok: true });
}

/** A connected client with recovery on, its user stream at (`offset`, e1), recording messages and recovery events. */
async function tracking(options: Partial<Options> = {}, offset = 0) {
  const s = await connected({ recover: true, ...options });
  const ws = FakeSocket.last;
  assert.equal(new URL(ws.url).searchParams.get("envelope"), "1");
  assert.deepEqual(ws.sent.map((f) => [f.action, f.stream, f.limit]), [["history", "user", 0]]);
  position(ws, "user", offset);
  await s.clock.advance(0);
  const got: Message[] = [];
  const recoveries: RecoveryEvent[] = [];
  const errors: SwitchboardError[] = [];
  s.client.on("message", (m) => got.push(m));
  s.client.on("recovery", (e) => recoveries.push(e));
  s.client.on("error", (e) => errors.push(e));
  const offsets = () => got.map((m) => `${m.stream}#${m.offset}`);
  return { ...s, ws, got, offsets, recoveries, errors };
}

/** Subscribes to `group` and answers the subscribe and the position request. */
async function join(s: Awaited<ReturnType<typeof tracking>>, group: string, offset: number, epoch = "e1") {
  const p = s.client.subscribe(group);
  s.ws.ackAll();
  await p;
  await s.clock.advance(0);
  position(s.ws, "group:" + group, offset, epoch);
  await s.clock.advance(0);
}

test("recover: false connects without envelope and sends no history request", async () => {
  const { client } = await connected();
  assert.equal(new URL(FakeSocket.last.url).searchParams.get("envelope"), null);
  assert.deepEqual(FakeSocket.last.sent, []);
  client.close();
});

test("a reordered stream is handed over in offset order, a duplicate is dropped, and no recover is sent when the gap fills in time", async () => {
  const s = await tracking({}, 4);
  for (const o of [5, 7, 6, 6, 5, 8]) s.ws.receive(stamped("user", o));
  assert.deepEqual(s.offsets(), ["user#5", "user#6", "user#7", "user#8"]);
  assert.deepEqual(s.got[0], { from: "server", group: undefined, userId: undefined, data: "user#5", id: undefined, stream: "user", offset: 5, epoch: "e1" });
  s.ws.receive(stamped("user", 4)); // before the start: not handed over
  await s.clock.advance(5_000);
  assert.equal(s.ws.lastSent("recover"), undefined);
  assert.equal(s.got.length, 4);
  s.client.close();
});

test("a gap still open after gapTimeout: recover from the last contiguous offset fills it, then the waiting messages follow", async () => {
  const s = await tracking({ gapTimeout: 1_000 }, 2);
  s.ws.receive(stamped("user", 3));
  s.ws.receive(stamped("user", 5));
  s.ws.receive(stamped("user", 6));
  assert.deepEqual(s.offsets(), ["user#3"]);
  await s.clock.advance(999);
  assert.equal(s.ws.lastSent("recover"), undefined);
  await s.clock.advance(1);
  const r = s.ws.lastSent("recover");
  assert.deepEqual(r.streams, [{ stream: "user", offset: 3, epoch: "e1" }]);
  s.ws.receive(stamped("user", 4));
  s.ws.receive(stamped("user", 5)); // recovered again: dropped
  s.ws.receive(stamped("user", 6));
  s.ws.receive({ type: "recovered", id: r.id, stream: "user", recovered: true, offset: 6, epoch: "e1", more: false });
  s.ws.receive({ type: "ack", id: r.id, ok: true });
  await s.clock.advance(0);
  assert.deepEqual(s.offsets(), ["user#3", "user#4", "user#5", "user#6"]);
  assert.deepEqual(s.recoveries, [{ stream: "user", recovered: true, offset: 6, epoch: "e1", missed: 3 }]);
  await s.clock.advance(10_000);
  assert.equal(s.ws.sent.filter((f) => f.action == "recover").length, 1);
  s.client.close();
});

test("after a reconnect: resubscribe, then one recover with every tracked stream's position; more:true recovers again from there", async () => {
  const s = await tracking({}, 10);
  await join(s, "chat:1", 3);
  s.ws.receive(stamped("user", 11));
  s.ws.receive(stamped("group:chat:1", 4));
  s.ws.drop();
  await s.clock.advance(1_000);
  const ws = FakeSocket.last;
  assert.notEqual(ws, s.ws);
  ws.open();
  await s.clock.advance(0);
  assert.deepEqual(ws.sent.map((f) => f.action), ["subscribe"]); // no recover before the group is joined again
  ws.ackAll();
  await s.clock.advance(0);
  const r = ws.lastSent("recover");
  assert.deepEqual(ws.sent.map((f) => f.action), ["subscribe", "recover"]);
  assert.deepEqual(r.streams, [
    { stream: "user", offset: 11, epoch: "e1" },
    { stream: "group:chat:1", offset: 4, epoch: "e1" },
  ]);
  // the cap was reached within the user stream: the group gets more:true at its own offset
  ws.receive(stamped("user", 12));
  ws.receive(stamped("user", 13));
  ws.receive({ type: "recovered", id: r.id, stream: "user", recovered: true, offset: 13, epoch: "e1", more: true });
  ws.receive({ type: "recovered", id: r.id, stream: "group:chat:1", recovered: true, offset: 4, epoch: "e1", more: true });
  ws.receive({ type: "ack", id: r.id, ok: true });
  await s.clock.advance(0);
  const again = ws.lastSent("recover");
  assert.notEqual(again.id, r.id);
  assert.deepEqual(again.streams, [
    { stream: "user", offset: 13, epoch: "e1" },
    { stream: "group:chat:1", offset: 4, epoch: "e1" },
  ]);
  ws.receive(stamped("user", 14));
  ws.receive(stamped("group:chat:1", 5));
  ws.receive({ type: "recovered", id: again.id, stream: "user", recovered: true, offset: 14, epoch: "e1", more: false });
  ws.receive({ type: "recovered", id: again.id, stream: "group:chat:1", recovered: true, offset: 5, epoch: "e1", more: false });
  ws.receive({ type: "ack", id: again.id, ok: true });
  await s.clock.advance(0);
  assert.deepEqual(s.offsets(), ["user#11", "group:chat:1#4", "user#12", "user#13", "user#14", "group:chat:1#5"]);
  assert.equal(ws.sent.filter((f) => f.action == "recover").length, 2);
  assert.deepEqual(
    s.recoveries.map((e) => [e.stream, e.recovered, e.missed, !!e.more]),
    [["user", true, 2, true], ["group:chat:1", true, 0, true], ["user", true, 1, false], ["group:chat:1", true, 1, false]],
  );
  s.client.close();
});

test("recovered:false: a recovery event to reload, what waited past the new position is handed over, and the client continues from there", async () => {
  const s = await tracking({}, 2);
  s.ws.receive(stamped("user", 3));
  s.ws.receive(stamped("user", 9)); // past a gap
  s.ws.receive(stamped("user", 12));
  await s.clock.advance(1_000);
  const r = s.ws.lastSent("recover");
  assert.deepEqual(r.streams, [{ stream: "user", offset: 3, epoch: "e1" }]);
  s.ws.receive({ type: "recovered", id: r.id, stream: "user", recovered: false, reason: "expired", offset: 10, epoch: "e1", more: false });
  s.ws.receive({ type: "ack", id: r.id, ok: true });
  await s.clock.advance(0);
  assert.deepEqual(s.recoveries, [{ stream: "user", recovered: false, reason: "expired", offset: 10, epoch: "e1" }]);
  assert.deepEqual(s.offsets(), ["user#3"]); // 9 is before the new position; 12 still waits for 11
  s.ws.receive(stamped("user", 11));
  assert.deepEqual(s.offsets(), ["user#3", "user#11", "user#12"]);
  s.client.close();
});

test("a live message with another epoch starts over with a recovery event (epoch_changed)", async () => {
  const s = await tracking({}, 5);
  s.ws.receive(stamped("user", 6));
  s.ws.receive(stamped("user", 1, "e2"));
  s.ws.receive(stamped("user", 2, "e2"));
  assert.deepEqual(s.recoveries, [{ stream: "user", recovered: false, reason: "epoch_changed", offset: 0, epoch: "e2" }]);
  assert.deepEqual(s.got.map((m) => [m.offset, m.epoch]), [[6, "e1"], [1, "e2"], [2, "e2"]]);
  s.client.close();
});

test("a position answer does not move a position that live messages already set", async () => {
  const s = await connected({ recover: true });
  const ws = FakeSocket.last;
  const got: number[] = [];
  s.client.on("message", (m) => got.push(m.offset!));
  ws.receive(stamped("user", 7));
  ws.receive(stamped("user", 8));
  position(ws, "user", 6); // read before 7 and 8 were appended
  await s.clock.advance(0);
  ws.receive(stamped("user", 9));
  ws.receive(stamped("user", 8));
  assert.deepEqual(got, [7, 8, 9]);
  s.client.close();
});

test("the position applies as its frame arrives: messages right behind it in the same tick are ordered from it", async () => {
  const s = await connected({ recover: true });
  const ws = FakeSocket.last;
  const got: number[] = [];
  s.client.on("message", (m) => got.push(m.offset!));
  // no await between them: ws delivers the frames of one read synchronously
  position(ws, "user", 0);
  ws.receive(stamped("user", 2));
  ws.receive(stamped("user", 1));
  assert.deepEqual(got, [1, 2]);
  s.client.close();
});

test("a group that keeps no history is untracked: no error, its messages as they come, not in recover", async () => {
  const s = await tracking({}, 1);
  const p = s.client.subscribe("plain");
  s.ws.ackAll();
  await p;
  await s.clock.advance(0);
  const h = s.ws.lastSent("history");
  assert.deepEqual([h.stream, h.limit], ["group:plain", 0]);
  s.ws.receive({ type: "ack", id: h.id, ok: false, error: { code: "bad_request", message: '"group:plain" keeps no history' } });
  await s.clock.advance(0);
  s.ws.receive({ type: "message", from: "server", group: "plain", data: "a" });
  s.ws.receive({ type: "message", from: "server", group: "plain", data: "b" });
  assert.deepEqual(s.got.map((m) => m.data), ["a", "b"]);
  assert.deepEqual(s.errors, []);
  assert.deepEqual(s.client.groups, ["plain"]);
  s.ws.drop();
  await s.clock.advance(1_000);
  FakeSocket.last.open();
  await s.clock.advance(0);
  FakeSocket.last.ackAll();
  await s.clock.advance(0);
  assert.deepEqual(FakeSocket.last.lastSent("recover").streams, [{ stream: "user", offset: 1, epoch: "e1" }]);
  assert.equal(FakeSocket.last.lastSent("history"), undefined);
  s.client.close();
});

test("the proactive reconnect: recover on the new socket before the old one closes, and the overlap hands nothing over twice", async () => {
  const s = await tracking({ maxConnectionAge: 60_000, overlap: 3_000 }, 0);
  await join(s, "chat:1", 0);
  const old = s.ws;
  old.receive(stamped("group:chat:1", 1));
  await s.clock.advance(60_000);
  const fresh = FakeSocket.last;
  assert.notEqual(fresh, old);
  fresh.open();
  await s.clock.advance(0);
  fresh.ackAll();
  await s.clock.advance(0);
  const r = fresh.lastSent("recover");
  assert.deepEqual(r.streams, [
    { stream: "user", offset: 0, epoch: "e1" },
    { stream: "group:chat:1", offset: 1, epoch: "e1" },
  ]);
  assert.equal(old.closedWith, undefined, "the old socket is still open");
  // both sockets are members meanwhile: every message comes twice, and the recovery sends 2 again
  for (const o of [2, 3]) {
    old.receive(stamped("group:chat:1", o));
    fresh.receive(stamped("group:chat:1", o));
  }
  fresh.receive(stamped("group:chat:1", 2));
  fresh.receive({ type: "recovered", id: r.id, stream: "group:chat:1", recovered: true, offset: 2, epoch: "e1", more: false });
  fresh.receive({ type: "ack", id: r.id, ok: true });
  old.receive(stamped("group:chat:1", 4));
  fresh.receive(stamped("group:chat:1", 4));
  await s.clock.advance(3_000);
  assert.equal(old.closedWith, 1000);
  assert.deepEqual(s.offsets(), ["group:chat:1#1", "group:chat:1#2", "group:chat:1#3", "group:chat:1#4"]);
  assert.equal(s.states.filter((x) => x == "reconnecting").length, 0);
  s.client.close();
});

test("history(stream, limit): the latest messages in offset order and the position; also delivered once as messages when new to the client", async () => {
  const s = await tracking({}, 20);
  const h = s.client.history("user", 3);
  const f = s.ws.lastSent("history");
  assert.deepEqual([f.stream, f.limit], ["user", 3]);
  for (const o of [18, 19, 20]) s.ws.receive(stamped("user", o));
  s.ws.receive(stamped("user", 21)); // live, past the answer's position
  s.ws.receive({ type: "history", id: f.id, stream: "user", offset: 20, epoch: "e1", count: 3 });
  s.ws.receive({ type: "ack", id: f.id, ok: true });
  const got = await h;
  assert.deepEqual([got.offset, got.epoch, got.messages.map((m) => m.offset)], [20, "e1", [18, 19, 20]]);
  assert.deepEqual(s.offsets(), ["user#21"]);
  s.client.close();
});

test("recover and history ask for batched answers; a batch frame's frames are taken in order, as if each came alone", async () => {
  const s = await tracking({ gapTimeout: 1_000 }, 2);
  s.ws.receive(stamped("user", 5));
  await s.clock.advance(1_000);
  const r = s.ws.lastSent("recover");
  assert.equal(r.batch, true);
  s.ws.receive({
    type: "batch",
    frames: [stamped("user", 3), stamped("user", 4), { type: "recovered", id: r.id, stream: "user", recovered: true, offset: 5, epoch: "e1", more: false }],
  });
  s.ws.receive({ type: "ack", id: r.id, ok: true });
  await s.clock.advance(0);
  assert.deepEqual(s.offsets(), ["user#3", "user#4", "user#5"]);
  assert.deepEqual(s.recoveries, [{ stream: "user", recovered: true, offset: 5, epoch: "e1", missed: 3 }]);
  const h = s.client.history("user", 2);
  const f = s.ws.lastSent("history");
  assert.equal(f.batch, true);
  s.ws.receive({ type: "batch", frames: [stamped("user", 4), stamped("user", 5), { type: "history", id: f.id, stream: "user", offset: 5, epoch: "e1", count: 2 }] });
  s.ws.receive({ type: "ack", id: f.id, ok: true });
  const got = await h;
  assert.deepEqual([got.offset, got.messages.map((m) => m.offset)], [5, [4, 5]]);
  assert.equal(s.got.length, 3);
  s.client.close();
});

test("a recover refused with rate_limited is tried again after a pause; a dropped socket leaves it to the reconnect", async () => {
  const s = await tracking({ gapTimeout: 1_000 }, 0);
  s.ws.receive(stamped("user", 2));
  await s.clock.advance(1_000);
  const r = s.ws.lastSent("recover");
  s.ws.receive({ type: "ack", id: r.id, ok: false, error: { code: "rate_limited", message: "slow down" } });
  await s.clock.advance(999);
  assert.equal(s.ws.sent.filter((f) => f.action == "recover").length, 1);
  await s.clock.advance(1);
  const again = s.ws.lastSent("recover");
  assert.notEqual(again.id, r.id);
  assert.deepEqual(again.streams, [{ stream: "user", offset: 0, epoch: "e1" }]);
  assert.deepEqual(s.errors, []);
  // refused again, then the client is closed during the pause: nothing more is sent, no timer lives on
  s.ws.receive({ type: "ack", id: again.id, ok: false, error: { code: "unavailable", message: "later" } });
  await s.clock.advance(0);
  s.client.close();
  await s.clock.advance(60_000);
  assert.equal(s.ws.sent.filter((f) => f.action == "recover").length, 2);
  assert.deepEqual(s.clock.pending(), []);
});

test("a recover refused because a stream keeps no history (any more) drops that stream and recovers the others", async () => {
  const s = await tracking({}, 5);
  await join(s, "chat:1", 2);
  s.ws.drop();
  await s.clock.advance(1_000);
  const ws = FakeSocket.last;
  ws.open();
  await s.clock.advance(0);
  ws.ackAll();
  await s.clock.advance(0);
  const r = ws.lastSent("recover");
  assert.equal(r.streams.length, 2);
  ws.receive({ type: "ack", id: r.id, ok: false, error: { code: "bad_request", message: '"group:chat:1" keeps no history' } });
  await s.clock.advance(0);
  const again = ws.lastSent("recover");
  assert.deepEqual(again.streams, [{ stream: "user", offset: 5, epoch: "e1" }]);
  ws.receive({ type: "ack", id: again.id, ok: false, error: { code: "bad_request", message: "no stream keeps history" } });
  await s.clock.advance(60_000);
  assert.equal(ws.sent.filter((f) => f.action == "recover").length, 2);
  ws.receive(stamped("user", 9)); // untracked now: handed over as it comes, no gap timer
  assert.deepEqual(s.offsets(), ["user#9"]);
  assert.deepEqual(s.errors, []);
  s.client.close();
});

test("close() with a gap open: the gap timer goes with the client", async () => {
  const s = await tracking({}, 0);
  s.ws.receive(stamped("user", 3));
  s.client.close();
  await s.clock.advance(0);
  assert.deepEqual(s.clock.pending(), []);
});

test("the publish ack's offset fills the sender's own place: the next member's event is handed over at once, no recover, and a recovered copy of its own event is dropped", async () => {
  const s = await tracking({ gapTimeout: 1_000 });
  await join(s, "chat", 4);
  const sent = s.client.publish("chat", "mine");
  const f = s.ws.lastSent("publish");
  assert.ok(f);
  s.ws.receive({ type: "ack", id: f.id, ok: true, stream: "group:chat", offset: 5, epoch: "e1" });
  await sent;
  s.ws.receive(stamped("group:chat", 6, "e1", { from: "client", userId: "bob" }));
  assert.deepEqual(s.offsets(), ["group:chat#6"]);
  // A recovery that sends the own event back (offset 5) hands nothing over again.
  s.ws.receive(stamped("group:chat", 5, "e1", { from: "client", userId: "me" }));
  await s.clock.advance(5_000);
  assert.equal(s.ws.lastSent("recover"), undefined);
  assert.deepEqual(s.offsets(), ["group:chat#6"]);
  s.client.close();
});
