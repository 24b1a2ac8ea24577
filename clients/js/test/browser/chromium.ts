/**
 * Debian's headless Chromium (`/usr/bin/chromium`, or `$CHROMIUM`), started by us with a fresh
 * profile and driven over the DevTools protocol by playwright-core: no browser download, and the
 * process is ours to kill. `make js` installs the package with apt-get when it is missing.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, chromium } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function bounded<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

export class Chromium {
  private constructor(
    readonly browser: Browser,
    private readonly child: ChildProcess,
    private readonly profile: string,
  ) {}

  /** Starts Chromium on a loopback DevTools port chosen by the OS and connects to it (30 s at most). */
  static async launch(): Promise<Chromium> {
    const profile = await mkdtemp(join(tmpdir(), "switchboard-chromium-"));
    // Its own process group, so teardown kills the renderers and helpers with it.
    const child = spawn(CHROMIUM, [...FLAGS, `--user-data-dir=${profile}`, "--remote-debugging-port=0", "about:blank"], {
      stdio: ["ignore", "ignore", "pipe"],
      detached: true,
    });
    const stderr: string[] = [];
    const endpoint = new Promise<string>((resolve, reject) => {
      child.once("error", reject);
      child.once("exit", (code, signal) => reject(new Error(`${CHROMIUM} exited (${code ?? signal}): ${stderr.join("")}`)));
      child.stderr!.on("data", (chunk: Buffer) => {
        stderr.push(chunk.toString());
        const m = /DevTools listening on (ws:\/\/\S+)/.exec(stderr.join(""));
        if (m) resolve(m[1]);
      });
    });
    try {
      const ws = await bounded("Chromium's DevTools endpoint", 30_000, endpoint);
      const browser = await chromium.connectOverCDP(ws, { timeout: 30_000 });
      return new Chromium(browser, child, profile);
    } catch (e) {
      await Chromium.kill(child);
      await rm(profile, { recursive: true, force: true });
      throw e;
    }
  }

  /** Closes the browser (5 s at most), kills its process group, removes the profile. */
  async stop(): Promise<void> {
    await bounded("closing Chromium", 5_000, this.browser.close()).catch(() => undefined);
    await Chromium.kill(this.child);
    await rm(this.profile, { recursive: true, force: true, maxRetries: 3 });
  }

  private static async kill(child: ChildProcess): Promise<void> {
    if (child.pid === undefined) return;
    const exited = child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once("exit", r));
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      /* already gone */
    }
    await Promise.race([exited, sleep(5_000)]);
  }
}
