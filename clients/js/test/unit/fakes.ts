/** Test doubles: a fake clock that runs timers in order, and fake WebSockets (browser-like and ws-like). */

import type { Clock, WebSocketLike } from "../../src/client.js";

/** Lets pending promise callbacks run. */
export const settle = () => new Promise<void>((r) => setImmediate(r));

export class FakeClock implements Clock {
  private t = 1_700_000_000_000;
  private seq = 0;
  private timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  /** The delays of the timers now pending, soonest first. */
  pending(): number[] {
    return [...this.timers.values()].map((x) => x.at - this.t).sort((a, b) => a - b);
  }
  /** Moves time forward by `ms`, running every timer that falls due, in order, with promises settled after each. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    await settle();
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
      await settle();
    }
    this.t = end;
    await settle();
  }
}

/** A browser-like WebSocket: no way to read a refused handshake's status. */
export class FakeSocket implements WebSocketLike {
  static all: FakeSocket[] = [];
  static get last(): FakeSocket {
    return FakeSocket.all[FakeSocket.all.length - 1];
  }
  readyState = 0;
  sent: Record<string, any>[] = []; // eslint-disable-line @typescript-eslint/no-explicit-any
  closedWith?: number;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;

  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }
  send(data: string): void {
    if (this.readyState != 1) throw new Error("send on a socket that is not open");
    this.sent.push(JSON.parse(data));
  }
  close(code = 1005): void {
    if (this.readyState == 3) return;
    this.closedWith = code;
    this.readyState = 3;
    setImmediate(() => this.onclose?.({ code, reason: "" }));
  }
  // Test controls
  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }
  receive(frame: unknown): void {
    this.onmessage?.({ data: typeof frame == "string" ? frame : JSON.stringify(frame) });
  }
  /** The connection drops (network, server close), or the handshake fails before open (1006). */
  drop(code = 1006): void {
    this.readyState = 3;
    this.onerror?.({});
    this.onclose?.({ code, reason: "" });
  }
  /** The last frame sent with this action. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  lastSent(action: string): any {
    return [...this.sent].reverse().find((f) => f.action == action);
  }
  /** Answers every unanswered subscribe with ok. */
  ackAll(action = "subscribe"): void {
    for (const f of this.sent.filter((f) => f.action == action && !f.answered)) {
      f.answered = true;
      this.receive({ type: "ack", id: f.id, ok: true });
    }
  }
  get token(): string | null {
    return new URL(this.url).searchParams.get("token");
  }
}

/** A `ws`-like socket: reports a refused handshake's HTTP status through 'unexpected-response'. */
export class FakeWsSocket extends FakeSocket {
  private listeners: Record<string, ((...args: any[]) => void)[]> = {}; // eslint-disable-line @typescript-eslint/no-explicit-any
  terminated = false;
  on(event: string, listener: (...args: any[]) => void): this { // eslint-disable-line @typescript-eslint/no-explicit-any
    (this.listeners[event] ??= []).push(listener);
    return this;
  }
  terminate(): void {
    this.terminated = true;
    this.readyState = 3;
  }
  /** The server answers the handshake with `status`. */
  refuse(status: number): void {
    const req = { destroy: () => this.drop(1006) };
    for (const l of this.listeners["unexpected-response"] ?? []) l(req, { statusCode: status });
  }
}

/** A JWT-shaped token (unsigned: the client never verifies) expiring at `exp` seconds. */
export function jwt(claims: Record<string, unknown>): string {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}.sig`;
}
