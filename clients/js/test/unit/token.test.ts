/** Tokens: exp read from the JWT, refresh timing, getToken on every attempt, expired and refused tokens. */

import assert from "node:assert/strict";
import { test } from "node:test";
import { SwitchboardError } from "../../src/errors.js";
import { refreshDelay, tokenExpiry } from "../../src/token.js";
import { FakeSocket, jwt } from "./fakes.js";
import { connected, setup } from "./setup.js";

test("tokenExpiry reads exp (seconds) from the payload as milliseconds", () => {
  assert.equal(tokenExpiry(jwt({ sub: "a", exp: 1_900_000_000 })), 1_900_000_000_000);
  // base64url's - and _ decode (a payload whose base64 has + and /)
  assert.equal(tokenExpiry(jwt({ sub: "~~~>>>???", exp: 5 })), 5000);
  assert.equal(tokenExpiry(jwt({ sub: "a" })), undefined);
  assert.equal(tokenExpiry("not-a-jwt"), undefined);
  assert.equal(tokenExpiry("a.%%%.b"), undefined);
});

test("refreshDelay: the margin before expiry, half the time left when that is shorter, 0 once expired", () => {
  assert.equal(refreshDelay(600_000, 0, 60_000), 540_000);
  assert.equal(refreshDelay(100_000, 0, 60_000), 50_000);
  assert.equal(refreshDelay(1000, 2000, 60_000), 0);
});

test("getToken is called for the first connect and for every reconnect, and its token is used", async () => {
  let n = 0;
  const { clock } = await connected({ token: undefined, getToken: async () => `token-${++n}` });
  assert.equal(FakeSocket.last.token, "token-1");
  FakeSocket.last.drop();
  await clock.advance(1_000);
  assert.equal(FakeSocket.all.length, 2);
  assert.equal(FakeSocket.last.token, "token-2");
});

test("negotiate's {url, token} replaces the configured url", async () => {
  await connected({ token: undefined, getToken: async () => ({ url: "ws://other.test/stage?token=old", token: "fresh" }) });
  assert.equal(FakeSocket.last.url, "ws://other.test/stage?token=fresh");
});

test("getToken is called again shortly before the token expires", async () => {
  const calls: number[] = [];
  const s = setup({
    token: undefined,
    tokenRefreshMargin: 60_000,
    pingInterval: 1e9,
    getToken: async () => {
      calls.push(s.clock.now() - start);
      return jwt({ sub: "a", exp: Math.floor(s.clock.now() / 1000) + 600 });
    },
  });
  const start = s.clock.now();
  const { client, clock } = s;
  client.connect();
  await clock.advance(0);
  FakeSocket.last.open();
  await clock.advance(539_000);
  assert.deepEqual(calls, [0]);
  await clock.advance(1_000);
  assert.deepEqual(calls, [0, 540_000]);
  await clock.advance(540_000);
  assert.deepEqual(calls, [0, 540_000, 1_080_000]);
  assert.equal(FakeSocket.all.length, 1, "a refresh opens no socket");
  client.close();
});

test("when getToken fails, a token still valid is used; an unauthorized error stops the client", async () => {
  let mode = "ok";
  const s = await connected({
    token: undefined,
    getToken: async () => {
      if (mode == "down") throw new Error("backend down");
      if (mode == "refused") throw new SwitchboardError("unauthorized", "logged out");
      return jwt({ sub: "a", exp: 2_000_000_000 });
    },
  });
  mode = "down";
  FakeSocket.last.drop();
  await s.clock.advance(1_000);
  assert.equal(FakeSocket.all.length, 2, "reconnected with the cached token");
  FakeSocket.last.open();
  await s.clock.advance(0);
  mode = "refused";
  FakeSocket.last.drop();
  await s.clock.advance(60_000);
  assert.equal(FakeSocket.all.length, 2);
  assert.deepEqual(s.states, ["connecting", "open", "reconnecting", "open", "reconnecting", "closed"]);
});

test("a fixed token that has expired is not sent: the client closes with unauthorized", async () => {
  const s = setup({ token: jwt({ sub: "a", exp: 1000 }) });
  let why: SwitchboardError | undefined;
  s.client.on("state", (_s, _p, e) => (why = e));
  s.client.connect();
  await s.clock.advance(0);
  assert.equal(FakeSocket.all.length, 0);
  assert.equal(s.client.state, "closed");
  assert.equal(why?.code, "unauthorized");
});
