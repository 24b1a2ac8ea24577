/** The Switchboard client: connection state machine, reconnects, keepalive, acks, resubscribe, messages. */

import { backoff } from "./backoff.js";
import { Dedupe } from "./dedupe.js";
import { Emitter } from "./emitter.js";
import { type ErrorCode, SwitchboardError } from "./errors.js";
import { Track } from "./streams.js";
import { refreshDelay, tokenExpiry } from "./token.js";

export type State = "connecting" | "open" | "reconnecting" | "closed";

/** The part of the WebSocket API the client uses: the browser's, Node 22's, or the `ws` package's. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  /** `ws` only: a dead socket is dropped at once rather than after a closing handshake. */
  terminate?(): void;
  /** `ws` only: used to read the HTTP status of a refused handshake ('unexpected-response'). */
  on?(event: string, listener: (...args: any[]) => void): unknown; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** A WebSocket class: the browser's `WebSocket`, or `ws`'s default export (typed loosely so either fits without a cast). */
export type WebSocketConstructor = new (url: string) => unknown;

/** A token, or what `POST /negotiate` answers (`url` carries the token; it replaces `Options.url`). */
export type TokenResult = string | { token: string; url?: string };

/** Timers and the time: replaceable so tests can run the state machine on a fake clock. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface Options {
  /** The WebSocket URL, e.g. `wss://abc.execute-api.eu-central-1.amazonaws.com/prod`; the token goes in `?token=`. */
  url?: string;
  /** A fixed token. Without `getToken` the client cannot reconnect once it expires. */
  token?: string;
  /**
   * Called before every connection attempt (first connect, every reconnect, the proactive
   * reconnect) and again shortly before the current token expires. Throw a
   * `SwitchboardError("unauthorized")` to stop the client; any other failure is retried.
   */
  getToken?: () => Promise<TokenResult>;
  /** The WebSocket implementation; defaults to `globalThis.WebSocket` (browsers, Node 22+). On Node 20 pass `ws`. */
  WebSocket?: WebSocketConstructor;
  /** How long an action waits for its answer (ms; 10 s). */
  timeout?: number;
  /** Reconnect backoff: the first delay's upper bound and the cap (ms; 500 and 30 s), with full jitter. */
  backoffBase?: number;
  backoffCap?: number;
  /** How often to ping (ms; 5 min, under API Gateway's 10-minute idle timeout). A missed pong drops the socket. */
  pingInterval?: number;
  /**
   * Connection age at which the client opens a new socket, resubscribes on it and only then
   * closes the old one (ms; 1 h 55 min, before API Gateway's 2-hour limit).
   */
  maxConnectionAge?: number;
  /**
   * How long the replaced socket stays open after the new one is resubscribed (ms; 3 s), so a
   * send resolved to the old connection just before the switch still arrives. Messages that
   * come on both meanwhile are delivered twice unless they carry an id.
   */
  overlap?: number;
  /** Fetch a new token this long before the current one expires (ms; 60 s). */
  tokenRefreshMargin?: number;
  /**
   * Attempts in a row that may close before opening with no HTTP status to read before the
   * client gives up (`handshake_failed`; 8). Browsers hide a refused handshake's status, so this
   * is how they stop on a token the server refuses. Attempts made while `navigator.onLine` is
   * false do not count, and with `ws` (which reports the status) only 401/403 stop the client.
   */
  maxHandshakeFailures?: number;
  /**
   * Recovery (true): connect with `envelope=1`, track the user's stream and every subscribed
   * group's that keeps history by offset and epoch, hand their messages over in offset order and
   * exactly once, and after every reconnect recover what was missed. False: messages as they come.
   */
  recover?: boolean;
  /** How long a gap in a stream's offsets may stay open before the client asks to recover it (ms; 1 s). */
  gapTimeout?: number;
  clock?: Clock;
  random?: () => number;
}

/** A message for this connection: by group, or for the user (or the connection) when `group` is absent. */
export interface Message {
  /** `server` for sends from the application, `client` for another member's `publish`. */
  from: "server" | "client";
  group?: string;
  /** The publishing user (client events only). */
  userId?: string;
  data: unknown;
  id?: string | number;
  /**
   * True for a NotifyUser or NotifyConnection queue message, whose `data` arrives verbatim
   * (parsed when it is JSON, else the text). With recovery on, NotifyUser data comes stamped instead.
   */
  raw?: boolean;
  /** The history stream it belongs to (`user`, or `group:<name>`), when that stream keeps history. */
  stream?: string;
  /** Its place in `stream`: 1 for the stream's first message, one more for each next. */
  offset?: number;
  /** The stream's epoch: a new one means its history was reset or lost. */
  epoch?: string;
}

/** A stream's position: messages up to `offset` in `epoch`. */
export interface Position {
  offset: number;
  epoch: string;
}

/** What `history(stream, limit)` resolves with: the latest messages, in offset order, and the stream's position. */
export interface History extends Position {
  messages: Message[];
}

/**
 * A recovery's outcome for one stream. `recovered: false` means messages were lost (the history
 * was reset, or the gap is older than what the server keeps): reload the application's state.
 */
export interface RecoveryEvent extends Position {
  stream: string;
  recovered: boolean;
  /** Why not: `epoch_changed`, `too_old`, `expired`, `offset_ahead`. */
  reason?: string;
  /** How many offsets the recovery filled (recovered: true). */
  missed?: number;
  /** Not all there yet: the client recovers again from `offset`. */
  more?: boolean;
}

export interface PresenceEvent {
  event: "join" | "leave";
  userId: string;
  group: string;
  online: number;
}

export interface Presence {
  group: string;
  userIds: string[];
  users: number;
  connections: number;
  truncated: boolean;
}

export interface Events {
  /** Every transition; `error` says why the client closed on its own (auth failure). */
  state: (state: State, previous: State, error?: SwitchboardError) => void;
  message: (message: Message) => void;
  presence: (event: PresenceEvent) => void;
  /** Errors without a caller to reject: an error frame, a failed resubscribe (with its group). */
  error: (error: SwitchboardError, group?: string) => void;
  /** The server announced it is closing this connection (`{"type":"close"}`); the client reconnects unless you `close()`. */
  serverClose: (reason?: string) => void;
  /** A tracked stream was recovered after a gap or reconnect, or could not be (reload your state). */
  recovery: (event: RecoveryEvent) => void;
}

type Stream = Record<string, never>;

interface Link {
  ws: WebSocketLike;
  /** The socket opened. */
  open?: boolean;
  /** Application actions may go out on it (it is current and resubscribed). */
  ready?: boolean;
  /** Replaced by a newer socket: closed once its answers are in. */
  retiring?: boolean;
  /** The refused handshake's HTTP status (`ws` only). */
  status?: number;
}

interface Pending {
  frame: Record<string, unknown>;
  resolve(value: unknown): void;
  reject(error: SwitchboardError): void;
  timer: unknown;
  /** Safe to send again on the next socket if this one drops first (subscribe, unsubscribe, presence). */
  repeatable: boolean;
  link?: Link;
}

const OPEN = 1;

const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as number),
};

export class Client extends Emitter<Events> {
  /** The current state; `state` events announce every change. */
  state: State = "closed";
  private o: Required<Omit<Options, "url" | "token" | "getToken" | "WebSocket">> & Options;
  private link?: Link;
  private spare?: Link;
  private stopped = false;
  private attempts = 0;
  private failures = 0;
  private seq = 0;
  private pending = new Map<string | number, Pending>();
  private streams = new Map<string, Stream>();
  private handlers = new Map<string, Set<(m: Message) => void>>();
  private dedupe = new Dedupe();
  /** Placeholders for the client's own `publish` events: they fill its place in the stream, unseen. */
  private mine = new WeakSet<Message>();
  private token?: string;
  private url?: string;
  private old?: Link;
  /** History streams by name (`user`, `group:<g>`); a stream that keeps no history is dropped. */
  private tracks = new Map<string, Track<Message>>();
  /** `history` requests waiting for their answer, by request id. */
  private reads = new Map<unknown, { stream: string; got: Map<number, Message>; answer?: any }>(); // eslint-disable-line @typescript-eslint/no-explicit-any
  private timers: Record<"retry" | "ping" | "age" | "refresh" | "retire", unknown> = {} as never;

  constructor(options: Options) {
    super();
    this.o = {
      timeout: 10_000,
      backoffBase: 500,
      backoffCap: 30_000,
      pingInterval: 300_000,
      maxConnectionAge: 6_900_000,
      overlap: 3_000,
      tokenRefreshMargin: 60_000,
      maxHandshakeFailures: 8,
      recover: true,
      gapTimeout: 1_000,
      clock: systemClock,
      random: Math.random,
      ...options,
    };
    this.token = options.token;
    if (this.o.recover) this.tracks.set("user", new Track());
  }

  /** Starts connecting (again, after `close()`); a no-op while connecting or open. */
  connect(): void {
    if (this.state != "closed") return;
    this.stopped = false;
    this.attempts = this.failures = 0;
    this.set("connecting");
    this.dial();
  }

  /** Closes the socket for good: no reconnect; unanswered actions fail with `closed`. */
  close(): void {
    this.stop();
  }

  /**
   * Joins `group` (the token's `subscribe` claim must allow it) and keeps it joined across
   * reconnects until `unsubscribe`. `handler`, when given, receives the group's messages.
   */
  subscribe(group: string, handler?: (m: Message) => void): Promise<void> {
    if (handler) {
      let set = this.handlers.get(group);
      if (!set) this.handlers.set(group, (set = new Set()));
      set.add(handler);
    }
    if (!this.streams.has(group)) this.streams.set(group, {});
    if (this.o.recover && !this.tracks.has("group:" + group)) this.tracks.set("group:" + group, new Track());
    return this.request({ action: "subscribe", group }, true).then(
      () => {
        const name = "group:" + group;
        if (this.tracks.get(name)?.epoch) this.recover([name]);
        else this.locate(name);
      },
      (e: SwitchboardError) => {
        if (refused(e) || e.code == "closed") this.forget(group);
        throw e;
      },
    );
  }

  /** Leaves `group` and stops resubscribing to it. */
  unsubscribe(group: string): Promise<void> {
    this.forget(group);
    return this.request({ action: "unsubscribe", group }, true).then(() => undefined);
  }

  /** Sends a client event to the group's other members (the token's `publish` claim must allow it). */
  publish(group: string, data: unknown): Promise<void> {
    return this.request({ action: "publish", group, data }, false).then(() => undefined);
  }

  /** Who is in `group` (members only). */
  presence(group: string): Promise<Presence> {
    return this.request({ action: "presence", group }, true) as Promise<Presence>;
  }

  /**
   * Sends a client event to the application (the token's `events` claim must allow `name`).
   * Resolves with the application's answer when an event hook answers, else `undefined`.
   * Fails with `forbidden`, `rate_limited`, `bad_request`, `hook_failed`, `timeout`, `disconnected`.
   */
  event(name: string, data?: unknown): Promise<unknown> {
    return this.request({ action: "event", event: name, data }, false);
  }

  /** A round trip on the `ping` route; resolves with the time it took (ms). */
  ping(): Promise<number> {
    const start = this.o.clock.now();
    return this.request({ action: "ping" }, false, "name").then(() => this.o.clock.now() - start);
  }

  /**
   * The latest `limit` kept messages of `stream` (`user` or `group:<g>`, a group you are in) and
   * the stream's position; a tracked stream without a position yet starts from there.
   */
  history(stream: string, limit = 50): Promise<History> {
    const read: { stream: string; got: Map<number, Message>; answer?: any } = { stream, got: new Map() }; // eslint-disable-line @typescript-eslint/no-explicit-any
    const frame: Record<string, unknown> = { action: "history", stream, limit, batch: true };
    const done = this.request(frame, true);
    this.reads.set(frame.id, read);
    return done
      .then(() => {
        const a = read.answer;
        if (!a) throw new SwitchboardError("bad_request", "no history frame before the ack");
        const messages = [...read.got.values()]
          .filter((m) => m.epoch == a.epoch && m.offset! <= a.offset && m.offset! > a.offset - limit)
          .sort((x, y) => x.offset! - y.offset!);
        return { messages, offset: a.offset, epoch: a.epoch } as History;
      })
      .finally(() => this.reads.delete(frame.id));
  }

  /** The groups the client keeps joined. */
  get groups(): string[] {
    return [...this.streams.keys()];
  }

  private forget(group: string): void {
    this.o.clock.clearTimeout(this.tracks.get("group:" + group)?.timer);
    this.tracks.delete("group:" + group);
    this.streams.delete(group);
    this.handlers.delete(group);
  }

  private set(state: State, error?: SwitchboardError): void {
    const previous = this.state;
    if (previous == state) return;
    this.state = state;
    this.emit("state", state, previous, error);
  }

  private after(name: keyof Client["timers"], ms: number, fn: () => void): void {
    this.o.clock.clearTimeout(this.timers[name]);
    this.timers[name] = this.o.clock.setTimeout(fn, ms);
  }

  /** Gets a token for a new socket: a fresh one from `getToken`, else the one at hand while it is valid. */
  private async fetchToken(): Promise<string> {
    const { getToken, clock } = this.o;
    if (getToken) {
      try {
        const got = await getToken();
        const previous = this.token;
        this.token = typeof got == "string" ? got : got.token;
        this.url = typeof got == "string" ? undefined : got.url;
        const expiry = tokenExpiry(this.token);
        // The same token again would only be asked for again and again as it nears expiry.
        if (expiry && this.token != previous)
          this.after("refresh", refreshDelay(expiry, clock.now(), this.o.tokenRefreshMargin), () => {
            if (!this.stopped) this.fetchToken().catch(() => undefined);
          });
      } catch (e) {
        if (e instanceof SwitchboardError && refused(e)) throw e;
        // The backend blinked: a token still valid will do.
        if (!this.valid()) throw new SwitchboardError("unavailable", "getToken failed: " + e);
      }
    }
    if (!this.token || !this.valid())
      throw new SwitchboardError("unauthorized", this.token ? "the token has expired" : "no token");
    return this.token;
  }

  private valid(): boolean {
    const expiry = this.token && tokenExpiry(this.token);
    return !!this.token && (!expiry || expiry > this.o.clock.now());
  }

  /** One connection attempt: a token, then a socket. */
  private dial(): void {
    this.fetchToken()
      .then((token) => {
        if (!this.stopped) this.link = this.connectSocket(token, (link) => this.opened(link));
      })
      .catch((e: unknown) => {
        if (this.stopped) return;
        if (e instanceof SwitchboardError && !refused(e) && this.o.getToken) this.retry();
        // A refused or expired token, or a URL the WebSocket implementation rejects.
        else this.stop(e instanceof SwitchboardError ? e : new SwitchboardError("bad_request", String(e)));
      });
  }

  private connectSocket(token: string, onOpen: (link: Link) => void): Link {
    const Ws = this.o.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!Ws) throw new Error("no WebSocket implementation: pass options.WebSocket (the ws package on Node 20)");
    const url = new URL(this.url ?? this.o.url ?? "");
    url.searchParams.set("token", token);
    if (this.o.recover) url.searchParams.set("envelope", "1");
    const ws = new Ws(url.href) as WebSocketLike;
    const link: Link = { ws };
    ws.onopen = () => {
      link.open = true;
      onOpen(link);
    };
    ws.onmessage = (ev) => this.received(String(ev.data));
    ws.onclose = () => this.closed(link);
    ws.onerror = () => undefined;
    // `ws` reports a refused handshake's status; destroying the request with an error makes
    // it emit 'error' and 'close' as it does without this listener.
    ws.on?.("unexpected-response", (req: { destroy(e: Error): void }, res: { statusCode: number }) => {
      link.status = res.statusCode;
      req.destroy(new Error("HTTP " + res.statusCode));
    });
    return link;
  }

  /** A socket opened on a connection attempt: resubscribe, then it carries the application's actions. */
  private opened(link: Link): void {
    if (this.stopped || this.link != link) return this.drop(link);
    this.attempts = this.failures = 0;
    this.resubscribe(link).then(() => {
      if (this.link != link) return;
      this.ready(link);
      this.set("open");
      this.resume();
    });
  }

  /** `link` becomes the current socket: timers start, queued actions go out. */
  private ready(link: Link): void {
    link.ready = true;
    const { pingInterval, maxConnectionAge } = this.o;
    const keepalive = () =>
      this.after("ping", pingInterval, () => {
        this.ping().then(keepalive, () => {
          // No pong in time: the socket is dead even if it does not know yet.
          if (this.link == link) this.drop(link, true);
        });
      });
    keepalive();
    this.after("age", maxConnectionAge, () => this.renew());
    this.pending.forEach((p) => p.link || this.transmit(p, link));
  }

  /** Sends subscribe for every tracked group not already on its way; resolves when all are answered. */
  private resubscribe(link: Link): Promise<unknown> {
    const waiting = new Set<unknown>();
    this.pending.forEach((p) => p.frame.action == "subscribe" && !p.link && waiting.add(p.frame.group));
    return Promise.all(
      this.groups
        .filter((g) => !waiting.has(g))
        .map((group) =>
          this.request({ action: "subscribe", group }, false, "id", link).catch((e: SwitchboardError) => {
            if (refused(e)) this.forget(group);
            // A socket lost meanwhile resubscribes on the next one: nothing to report.
            if (e.code != "disconnected" && e.code != "closed") this.emit("error", e, group);
          }),
        ),
    );
  }

  /** Proactive reconnect before the 2-hour limit: a new socket, resubscribed, then the old one closes. */
  private renew(): void {
    const old = this.link;
    if (!old || this.spare) return;
    this.fetchToken().then(
      (token) => {
        if (this.stopped || this.link != old) return;
        this.spare = this.connectSocket(token, (link) => {
          this.resubscribe(link).then(() => {
            if (this.spare != link) return;
            // Usually `cur` is `old`; if `old` died meanwhile it is a reconnect attempt, superseded.
            const cur = this.link;
            this.spare = undefined;
            this.link = link;
            this.attempts = 0;
            this.o.clock.clearTimeout(this.timers.retry);
            if (cur?.open) {
              this.old = cur;
              this.after("retire", this.o.overlap, () => this.retire(cur));
            } else if (cur) this.drop(cur);
            this.ready(link);
            this.set("open");
            this.resume();
          });
        });
      },
      // Without a token the old socket lives on until the server closes it; then reconnects take over.
      (e: SwitchboardError) => refused(e) || this.after("age", this.delay(), () => this.renew()),
    );
  }

  /** Closes a replaced socket once nothing sent on it awaits an answer. */
  private retire(link: Link): void {
    link.retiring = true;
    for (const p of this.pending.values()) if (p.link == link) return;
    link.ws.close(1000);
  }

  private closed(link: Link): void {
    link.ws.onclose = link.ws.onmessage = null;
    // Actions sent on it: repeat the repeatable ones on the next socket, fail the rest.
    this.pending.forEach((p, key) => {
      if (p.link != link) return;
      p.link = undefined;
      if (p.repeatable) {
        if (this.link != link && this.link?.ready) this.transmit(p, this.link);
      } else this.settle(key, new SwitchboardError("disconnected", "the connection closed before the answer"));
    });
    if (link == this.spare) {
      this.spare = undefined;
      if (this.link?.ready) this.after("age", this.delay(), () => this.renew());
      return;
    }
    if (link != this.link || this.stopped) return; // a retired or superseded socket
    this.link = undefined;
    for (const t of ["ping", "age"] as const) this.o.clock.clearTimeout(this.timers[t]);
    if (!link.open) {
      const s = link.status;
      if (s == 401 || s == 403) return this.stop(new SwitchboardError("unauthorized", "the handshake was refused with " + s, s));
      const offline = (globalThis as { navigator?: { onLine?: boolean } }).navigator?.onLine === false;
      if (!link.ws.on && !offline && ++this.failures >= this.o.maxHandshakeFailures)
        return this.stop(new SwitchboardError("handshake_failed", this.failures + " attempts in a row closed before opening"));
    }
    this.retry();
  }

  /** The next attempt after a backoff delay: `connecting` until the first open, `reconnecting` after. */
  private retry(): void {
    if (this.state == "open") this.set("reconnecting");
    this.after("retry", this.delay(), () => this.dial());
  }

  private delay(): number {
    return backoff(this.attempts++, this.o.backoffBase, this.o.backoffCap, this.o.random);
  }

  /** Drops a socket now (no closing handshake) and handles it as closed. */
  private drop(link: Link, reconnect = false): void {
    const ws = link.ws;
    ws.onopen = ws.onmessage = ws.onclose = null;
    if (ws.terminate) ws.terminate();
    else ws.close();
    if (reconnect) this.closed(link);
  }

  /** Stops the client: by the application (no error) or after an authentication failure. */
  private stop(error?: SwitchboardError): void {
    this.stopped = true;
    for (const t in this.timers) this.o.clock.clearTimeout(this.timers[t as keyof Client["timers"]]);
    this.tracks.forEach((t) => this.o.clock.clearTimeout(t.timer));
    for (const link of [this.link, this.spare, this.old]) if (link) this.drop(link);
    this.link = this.spare = this.old = undefined;
    this.pending.forEach((_, key) => this.settle(key, new SwitchboardError("closed", error ? error.message : "the client was closed")));
    this.set("closed", error);
  }

  /**
   * Sends an action and waits for its answer: `{"type":"ack","id":…}`, a presence answer, or a
   * pong (correlated by `name`). Actions made while no socket is ready wait for one.
   */
  private request(frame: Record<string, unknown>, repeatable: boolean, key: "id" | "name" = "id", link?: Link): Promise<unknown> {
    if (this.stopped) return Promise.reject(new SwitchboardError("closed", "the client is closed"));
    const id = key == "id" ? ++this.seq : "p" + ++this.seq;
    frame[key] = id;
    return new Promise((resolve, reject) => {
      const p: Pending = {
        frame,
        resolve,
        reject,
        repeatable,
        timer: this.o.clock.setTimeout(() => this.settle(id, new SwitchboardError("timeout", `no answer to ${frame.action} within ${this.o.timeout} ms`)), this.o.timeout),
      };
      this.pending.set(id, p);
      const to = link ?? this.link;
      if (to && (link || to.ready)) this.transmit(p, to);
    });
  }

  private transmit(p: Pending, link: Link): void {
    if (link.ws.readyState != OPEN) return;
    p.link = link;
    link.ws.send(JSON.stringify(p.frame));
  }

  private settle(key: unknown, error?: SwitchboardError, value?: unknown): void {
    const p = this.pending.get(key as string);
    if (!p) return;
    this.pending.delete(key as string);
    this.o.clock.clearTimeout(p.timer);
    if (error) p.reject(error);
    else p.resolve(value);
    if (p.link?.retiring) this.retire(p.link);
  }

  private received(text: string): void {
    let f: any; // eslint-disable-line @typescript-eslint/no-explicit-any
    try {
      f = JSON.parse(text);
    } catch {
      f = text;
    }
    this.frame(f);
  }

  private frame(f: any): void { // eslint-disable-line @typescript-eslint/no-explicit-any
    switch (f?.type) {
      // A recover or history answer packed into one frame: its frames, in order.
      case "batch":
        if (Array.isArray(f.frames)) return f.frames.forEach((x: unknown) => this.frame(x));
        break;
      case "ack":
        // A publish to a group that keeps history: the offset the event took. The live fan-out
        // skips the sender, so the client fills that place itself (now, before later frames).
        if (f.ok && typeof f.offset == "number" && f.stream && f.epoch && this.tracks.has(f.stream)) {
          const own: Message = { from: "client", data: undefined, stream: f.stream, offset: f.offset, epoch: f.epoch };
          this.mine.add(own);
          this.stamped(own);
        }
        // An event hook's answer rides on the ack (`data`).
        return this.settle(f.id, f.ok ? undefined : toError(f.error), f.data);
      case "pong":
        return this.settle(f.name);
      case "presence":
        if (f.event) return this.emit("presence", f as PresenceEvent);
        return this.settle(f.id, undefined, f);
      case "error":
        return this.emit("error", toError(f));
      case "close":
        return this.emit("serverClose", f.reason);
      case "recovered":
        return this.recovered(f);
      case "history": {
        const r = this.reads.get(f.id);
        const t = this.tracks.get(f.stream);
        if (!r || typeof f.offset != "number") return;
        r.answer = f;
        // Now, not when the ack settles: messages after it may come in the same tick (ws).
        // A position answer never moves a position that messages already set.
        if (t && !t.epoch) t.move(f.offset, f.epoch, true, []);
        return;
      }
      case "message":
        if (f.from == "server" || f.from == "client") {
          const m: Message = { from: f.from, group: f.group, userId: f.userId, data: f.data, id: f.id };
          if (typeof f.offset == "number" && f.stream && f.epoch) return this.stamped(Object.assign(m, { stream: f.stream, offset: f.offset, epoch: f.epoch }));
          if (f.id != null && !this.dedupe.fresh((f.group ?? "") + " " + f.id)) return;
          return this.deliver(m);
        }
    }
    this.deliver({ from: "server", data: f, raw: true });
  }

  /** A message with a stream's stamp: in offset order, once, for a tracked stream; once for any other. */
  private stamped(m: Message): void {
    const name = m.stream!;
    if (!this.mine.has(m)) this.reads.forEach((r) => r.stream == name && !r.answer && r.got.set(m.offset!, m));
    const t = this.tracks.get(name);
    if (!t) return void (this.dedupe.fresh(name + " " + m.epoch + " " + m.offset) && this.deliver(m));
    const out: Message[] = [];
    if (t.take(m, out)) this.emit("recovery", { stream: name, recovered: false, reason: "epoch_changed", offset: m.offset! - 1, epoch: m.epoch! });
    out.forEach((x) => this.deliver(x));
    this.gap(name, t);
  }

  /** Arms the gap timer while messages wait past a gap; disarms it once the gap is filled. */
  private gap(name: string, t: Track<Message>): void {
    const { clock, gapTimeout } = this.o;
    if (!t.buffer.size || this.stopped) {
      clock.clearTimeout(t.timer);
      t.timer = undefined;
    } else if (!t.timer)
      t.timer = clock.setTimeout(() => {
        t.timer = undefined;
        // A recovery under way fills it, or arms the timer again when it is done.
        if (t.busy == null && this.link?.ready) this.recover([name]);
        else this.gap(name, t);
      }, gapTimeout);
  }

  /** A stream's recovery outcome: move to its position, hand over what waited, tell the application. */
  private recovered(f: any): void { // eslint-disable-line @typescript-eslint/no-explicit-any
    const t = this.tracks.get(f.stream);
    if (!t || typeof f.offset != "number") return;
    const out: Message[] = [];
    const ok = !!f.recovered;
    t.move(f.offset, f.epoch, !ok, out);
    t.more = !!f.more;
    const e: RecoveryEvent = { stream: f.stream, recovered: ok, offset: f.offset, epoch: f.epoch };
    if (ok) e.missed = Math.max(0, f.offset - t.from);
    else e.reason = f.reason;
    if (f.more) e.more = true;
    t.from = f.offset;
    this.emit("recovery", e);
    out.forEach((x) => this.deliver(x));
    this.gap(f.stream, t);
  }

  /** After a (re)connect: recover every stream with a position; ask the others for one. */
  private resume(): void {
    // A group whose subscribe is still on its way is located or recovered once it is acked.
    const joining = new Set<unknown>();
    this.pending.forEach((p) => p.frame.action == "subscribe" && joining.add("group:" + p.frame.group));
    const known: string[] = [];
    this.tracks.forEach((t, name) => joining.has(name) || (t.epoch ? known.push(name) : this.locate(name)));
    if (known.length) this.recover(known);
  }

  /** Asks for a tracked stream's position (`history` with limit 0); a stream that keeps no history is dropped. */
  private locate(name: string): void {
    const t = this.tracks.get(name);
    if (!t || t.epoch || t.asking) return;
    t.asking = true;
    this.history(name, 0).then(
      () => (t.asking = undefined),
      (e: SwitchboardError) => {
        t.asking = undefined;
        if (e.code == "bad_request" && this.tracks.get(name) == t) this.tracks.delete(name);
      },
    );
  }

  /**
   * Recovers `names` from their positions: again from where a `more` answer stopped, and after
   * a refusal it may outlive (rate_limited, unavailable, timeout) a few times with growing pauses.
   */
  private async recover(names: string[]): Promise<void> {
    // Marks the streams as being recovered by this call until it ends (a newer call takes them over).
    const me = {};
    const all = names;
    try {
      for (let round = 0, tries = 0; round < 100 && tries < 5; round++) {
        const list = names.map((n) => [n, this.tracks.get(n)] as const).filter(([, t]) => t?.epoch) as [string, Track<Message>][];
        if (!list.length || !this.link?.ready) return;
        const frame: Record<string, unknown> = {
          action: "recover",
          batch: true,
          streams: list.map(([stream, t]) => ({ stream, offset: t.offset, epoch: t.epoch })),
        };
        const done = this.request(frame, false);
        list.forEach(([, t]) => ((t.busy = me), (t.from = t.offset), (t.more = undefined)));
        let error: SwitchboardError | undefined;
        await done.catch((e: SwitchboardError) => (error = e));
        if (!error) {
          names = list.filter(([, t]) => t.more).map(([n]) => n);
          continue;
        }
        const c = error.code;
        const kept = /^"(.+)" keeps no history$/.exec(error.message);
        if (kept) this.tracks.delete(kept[1]);
        // The server keeps no history at all any more: nothing to track.
        else if (error.message == "no stream keeps history") return list.forEach(([n]) => this.tracks.delete(n));
        else if (c == "rate_limited" || c == "unavailable" || c == "timeout") {
          const ms = this.o.gapTimeout * 2 ** tries++;
          await new Promise((r) => this.o.clock.setTimeout(() => r(0), ms));
        } else return; // the socket dropped (the reconnect recovers), or the client closed
      }
    } finally {
      for (const n of all) {
        const t = this.tracks.get(n);
        if (t?.busy == me) {
          t.busy = undefined;
          this.gap(n, t);
        }
      }
    }
  }

  private deliver(m: Message): void {
    if (this.mine.delete(m)) return;
    this.emit("message", m);
    if (m.group) this.handlers.get(m.group)?.forEach((h) => h(m));
  }
}

function toError(e?: { code?: string; message?: string }): SwitchboardError {
  return new SwitchboardError((e?.code ?? "bad_request") as ErrorCode, e?.message);
}

/** The server said no for good: retrying the same thing cannot help. */
function refused(e: SwitchboardError): boolean {
  return e.code == "forbidden" || e.code == "bad_request" || e.code == "unauthorized";
}
