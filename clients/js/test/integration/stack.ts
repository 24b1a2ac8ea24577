/**
 * The local stack for integration tests: starts `switchboard-local` on a free loopback port
 * with a known TOKEN_SECRET, mints tokens with its `token` subcommand, reads connection ids
 * from its log, and stops it. The binary is `target/debug/switchboard-local` (built by
 * `cargo build -p switchboard-local`), or `$SWITCHBOARD_LOCAL`.
 */

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);

export const BIN =
  process.env.SWITCHBOARD_LOCAL ?? fileURLToPath(new URL("../../../../../target/debug/switchboard-local", import.meta.url));
export const SECRET = "clients-js-integration-secret-0123456789abcdef";

/** Polls `check` every 20 ms until it returns a truthy value; fails after `ms` naming `what`. */
export async function until<T>(check: () => T | Promise<T>, what: string, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface TokenClaims {
  ttl?: string;
  groups?: string[];
  subscribe?: string[];
  publish?: string[];
}

export class Stack {
  /** The WebSocket URL, e.g. ws://127.0.0.1:PORT/local. */
  url = "";
  /** The HTTP base, e.g. http://127.0.0.1:PORT. */
  http = "";
  /** Every log line so far, without colours. */
  log: string[] = [];
  private child?: ChildProcess;

  static async start(args: string[] = []): Promise<Stack> {
    const stack = new Stack();
    await stack.launch(args);
    return stack;
  }

  private async launch(args: string[]): Promise<void> {
    const child = spawn(BIN, ["--addr", "127.0.0.1:0", ...args], {
      env: { ...process.env, TOKEN_SECRET: SECRET, NO_COLOR: "1", RUST_LOG: "info" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    const lines = (chunk: Buffer) =>
      chunk
        .toString()
        .split("\n")
        .forEach((l) => l && this.log.push(l.replace(/\x1b\[[0-9;]*m/g, "")));
    child.stdout?.on("data", lines);
    child.stderr?.on("data", lines);
    const exited = new Promise((r) => child.once("exit", r));
    const found = until(() => this.log.map((l) => /WebSocket\s+(ws:\/\/\S+)/.exec(l)).find(Boolean), "the stack's banner", 20_000);
    const m = await Promise.race([found, exited.then(() => Promise.reject(new Error("switchboard-local exited: " + this.log.join("\n"))))]);
    this.url = m![1];
    this.http = "http://" + new URL(this.url).host;
  }

  /** A token for `user`, signed with the stack's secret. */
  async token(user: string, claims: TokenClaims = {}, secret = SECRET): Promise<string> {
    const args = ["token", user, "--ttl", claims.ttl ?? "1h"];
    for (const k of ["groups", "subscribe", "publish"] as const) if (claims[k]) args.push("--" + k, claims[k]!.join(","));
    const { stdout } = await run(BIN, args, { env: { ...process.env, TOKEN_SECRET: secret }, timeout: 10_000 });
    return stdout.trim();
  }

  /** The ids of `user`'s connections so far, in order of connecting (from the log). */
  connectionIds(user: string): string[] {
    // `route{route="$connect" connection_id="…"}: switchboard::handlers::connect: connected user_id=…`
    // (the connection id is the route span's field), or the id on the event itself.
    const connected = /handlers::connect: connected\b/;
    const id = /connection_id="?([^"\s}]+)"?/;
    const who = /user_id="?([^"\s]+?)"?(\s|$)/;
    return this.log
      .filter((l) => connected.test(l) && who.exec(l)?.[1] == user)
      .map((l) => id.exec(l)?.[1])
      .filter((c): c is string => !!c);
  }

  /** Log lines matching `re`. */
  lines(re: RegExp): string[] {
    return this.log.filter((l) => re.test(l));
  }

  async request(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
    const res = await fetch(this.http + path, {
      method,
      headers: body === undefined ? undefined : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, body: parsed };
  }

  /** The Management API's DELETE /@connections/{id}: API Gateway drops the socket. */
  async kill(connectionId: string): Promise<number> {
    return (await this.request("DELETE", "/local/@connections/" + encodeURIComponent(connectionId))).status;
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(timer);
  }
}
