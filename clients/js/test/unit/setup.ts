/** A client on fake sockets and a fake clock, recording its state changes. */

import { Client, type Options } from "../../src/client.js";
import { FakeClock, FakeSocket } from "./fakes.js";

export function setup(options: Partial<Options> = {}, WebSocket: typeof FakeSocket = FakeSocket) {
  FakeSocket.all = [];
  const clock = new FakeClock();
  const states: string[] = [];
  const client = new Client({
    url: "wss://example.test/prod",
    token: "static-token",
    WebSocket,
    clock,
    random: () => 0.5,
    // The tests of recovery (recovery.test.ts) turn it on; the rest see the frames without it.
    recover: false,
    ...options,
  });
  client.on("state", (s) => states.push(s));
  return { client, clock, states };
}

/** Connects and opens the first socket. */
export async function connected(options: Partial<Options> = {}, WebSocket: typeof FakeSocket = FakeSocket) {
  const s = setup(options, WebSocket);
  s.client.connect();
  await s.clock.advance(0);
  FakeSocket.last.open();
  await s.clock.advance(0);
  return s;
}
