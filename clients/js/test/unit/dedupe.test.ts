/** Dedupe: message ids seen recently are dropped, per group. */

import assert from "node:assert/strict";
import { test } from "node:test";
import { Dedupe } from "../../src/dedupe.js";
import type { Message } from "../../src/client.js";
import { FakeSocket } from "./fakes.js";
import { connected } from "./setup.js";

test("a key is fresh once, and forgotten after capacity newer keys", () => {
  const d = new Dedupe(3);
  assert.equal(d.fresh("a"), true);
  assert.equal(d.fresh("a"), false);
  d.fresh("b");
  d.fresh("c");
  assert.equal(d.fresh("a"), false);
  d.fresh("d"); // evicts a, the oldest
  assert.equal(d.fresh("a"), true);
  assert.equal(d.fresh("c"), false);
});

test("the client delivers a message id once per group; messages without ids always", async () => {
  const { client } = await connected();
  const got: Message[] = [];
  client.on("message", (m) => got.push(m));
  const ws = FakeSocket.last;
  ws.receive({ type: "message", from: "server", group: "g", data: 1, id: "m1" });
  ws.receive({ type: "message", from: "server", group: "g", data: 1, id: "m1" });
  ws.receive({ type: "message", from: "server", group: "h", data: 2, id: "m1" });
  ws.receive({ type: "message", from: "server", data: 3 });
  ws.receive({ type: "message", from: "server", data: 3 });
  assert.deepEqual(
    got.map((m) => [m.group, m.data]),
    [["g", 1], ["h", 2], [undefined, 3], [undefined, 3]],
  );
  client.close();
});
