/**
 * The demo page as the local stack serves it (`/demo/`, from the binary), in a real headless
 * Chromium: two users chat, see each other's typing and the presence count, the demo user gets the
 * banner's "your download is ready", and a socket killed with the Management API's DELETE comes
 * back by itself and recovers what was sent while it was away (the stack keeps the room's history:
 * `--history-groups presence:demo`), in order, once, with a line saying so. Screenshots go
 * to target/demo/; docs/demo.png is a copy of target/demo/demo.png. The stack and the browser are
 * stopped in teardown; every wait is bounded.
 */

import assert from "node:assert/strict";
import { mkdir, readFile } from "node:fs/promises";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import type { Page } from "playwright-core";
import { Stack, until } from "../integration/stack.js";
import { Chromium } from "./chromium.js";

const SCREENSHOTS = fileURLToPath(new URL("../../../../../target/demo/", import.meta.url));
const ROOM = "presence:demo";
const GAP = "sent while dev-user was away";

/** The element's text once it is `expected` (10 s at most); the failure names what it showed. */
async function shows(page: Page, selector: string, expected: string): Promise<void> {
  let last: string | null = null;
  try {
    await until(async () => (last = await page.locator(selector).textContent()) == expected, `${selector} = ${expected}`);
  } catch {
    assert.fail(`${selector} showed ${JSON.stringify(last)}, not ${JSON.stringify(expected)}`);
  }
}

/** The chat as the page shows it: "who: text" for messages, "(text)" for system lines. */
function chat(page: Page): Promise<string[]> {
  return page.$$eval("#messages li", (items) =>
    items.map((li) => {
      const who = li.querySelector(".who")?.textContent;
      const text = li.querySelector(".text")?.textContent ?? "";
      return who ? `${who}: ${text}` : `(${text})`;
    }),
  );
}

function notifications(page: Page): Promise<string[]> {
  return page.$$eval("#notifications li .text", (items) => items.map((e) => e.textContent ?? ""));
}

async function chatShows(page: Page, line: string): Promise<void> {
  let last: string[] = [];
  try {
    await until(async () => (last = await chat(page)).includes(line), line);
  } catch {
    assert.fail(`the chat never showed ${JSON.stringify(line)}: ${JSON.stringify(last)}`);
  }
}

async function send(page: Page, text: string): Promise<void> {
  await page.locator("#text").fill(text);
  await page.locator("#send").click();
}

async function screenshot(page: Page, name: string): Promise<void> {
  const path = `${SCREENSHOTS}${name}.png`;
  await page.screenshot({ path, timeout: 10_000 });
  const png = await readFile(path);
  assert.ok(png.length > 1000, `${path} is ${png.length} bytes`);
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], `${path} is not a PNG`);
}

test("the demo page in headless Chromium against the local stack", { timeout: 120_000 }, async (t) => {
  await mkdir(SCREENSHOTS, { recursive: true });
  const stack = await Stack.start(["--history-groups", ROOM]);
  t.after(() => stack.stop());
  const browser = await Chromium.launch();
  t.after(() => browser.stop());

  const open = async (user: string) => {
    const context = await browser.browser.newContext({ viewport: { width: 960, height: 600 } });
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${stack.http}/demo/?user=${user}`);
    return { page, errors };
  };
  // dev-user is the banner's demo user; its negotiate calls can be held to keep its socket away.
  const me = await open("dev-user");
  let gate: Promise<void> | undefined;
  let held = 0;
  await me.page.route("**/negotiate", async (route) => {
    if (gate) {
      held++;
      await gate;
    }
    await route.continue();
  });
  /** Holds dev-user's negotiate calls until the returned function is called. */
  const hold = () => {
    let open = () => {};
    gate = new Promise<void>((r) => (open = r));
    return () => {
      gate = undefined;
      open();
    };
  };
  await shows(me.page, "#state", "open");
  const alice = await open("alice");
  await shows(alice.page, "#state", "open");

  await t.test("both pages connect through negotiate and count each other in the room", async () => {
    await shows(me.page, "#online", "2 online");
    await shows(alice.page, "#online", "2 online");
    await shows(me.page, "#room", ROOM);
    assert.deepEqual(await chat(me.page), ["(alice joined)"]);
    assert.deepEqual(await chat(alice.page), []);
  });

  await t.test("typing shows on the other page, then the message replaces it", async () => {
    await alice.page.locator("#text").pressSequentially("hel", { delay: 20 });
    await shows(me.page, "#typing", "alice is typing…");
    await shows(alice.page, "#typing", "");
    await alice.page.locator("#text").fill("hello dev-user");
    await alice.page.locator("#send").click();
    await chatShows(me.page, "alice: hello dev-user");
    await shows(me.page, "#typing", "");
    await chatShows(alice.page, "alice: hello dev-user");
    await send(me.page, "hi alice");
    await chatShows(alice.page, "dev-user: hi alice");
    assert.deepEqual(await chat(me.page), ["(alice joined)", "alice: hello dev-user", "dev-user: hi alice"]);
  });

  await t.test("the banner's curl line (NotifyUser queue) shows in the demo user's notifications only", async () => {
    const queued = await stack.request("POST", "/queues/notify-user", { userId: "dev-user", data: "your download is ready" });
    assert.equal(queued.status, 202, JSON.stringify(queued.body));
    let last: string[] = [];
    await until(async () => (last = await notifications(me.page)).length > 0, "the notification").catch(() =>
      assert.fail(`no notification: ${JSON.stringify(last)}`),
    );
    assert.deepEqual(await notifications(me.page), ["your download is ready"]);
    assert.deepEqual(await notifications(alice.page), []);
    await screenshot(me.page, "dev-user");
    await screenshot(alice.page, "alice");
  });

  await t.test("a socket killed with the Management API's DELETE comes back by itself", async () => {
    const [first] = stack.connectionIds("dev-user");
    assert.ok(first, "dev-user's connection id in the stack's log");
    const release = hold(); // dev-user cannot reconnect until release(): the gap stays open
    assert.equal(await stack.kill(first), 204);
    await shows(me.page, "#state", "reconnecting");
    await shows(alice.page, "#online", "1 online");
    await chatShows(alice.page, "(dev-user left)");
    await until(() => held == 1, "dev-user's page to ask negotiate for a new token");
    // Sent while dev-user has no socket: recovered after the reconnect.
    await send(alice.page, GAP);
    await chatShows(alice.page, `alice: ${GAP}`);
    release();
    await shows(me.page, "#state", "open");
    const ids = stack.connectionIds("dev-user");
    assert.equal(ids.length, 2, JSON.stringify(ids));
    assert.notEqual(ids[1], first);
    await shows(alice.page, "#online", "2 online");
    await shows(me.page, "#online", "2 online");
    await chatShows(alice.page, "(dev-user joined)");
    await chatShows(me.page, `alice: ${GAP}`);

    // Messages sent after it came back arrive, both ways; the page resubscribed the room itself.
    await send(alice.page, "are you back?");
    await chatShows(me.page, "alice: are you back?");
    await send(me.page, "back");
    await chatShows(alice.page, "dev-user: back");
    // Recovered, once, in order: before what was sent after the reconnect, with the page's line
    // counting the room's missed events (the message and alice's typing events).
    const lines = await chat(me.page);
    const recovered = lines.findIndex((l) => /^\(recovered \d+ missed events in presence:demo\)$/.test(l));
    assert.ok(recovered > 0, JSON.stringify(lines));
    assert.deepEqual([...lines.slice(0, recovered), ...lines.slice(recovered + 1)], [
      "(alice joined)",
      "alice: hello dev-user",
      "dev-user: hi alice",
      `alice: ${GAP}`,
      "alice: are you back?",
      "dev-user: back",
    ]);
    await screenshot(me.page, "dev-user-after-reconnect");
    await screenshot(alice.page, "alice-after-reconnect");
  });

  await t.test("typing after the reconnect shows again (the README's screenshot, target/demo/demo.png)", async () => {
    await alice.page.locator("#text").pressSequentially("see you", { delay: 20 });
    await shows(me.page, "#typing", "alice is typing…");
    await screenshot(me.page, "demo");
  });

  await t.test("configured by query string as against AWS: ?url= and ?token=, no negotiate", async () => {
    const token = await stack.token("carol", { subscribe: [ROOM], publish: [ROOM] });
    const context = await browser.browser.newContext({ viewport: { width: 960, height: 600 } });
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    const asked: string[] = [];
    const errors: string[] = [];
    page.on("request", (r) => asked.push(new URL(r.url()).pathname));
    page.on("pageerror", (e) => errors.push(e.message));
    const query = new URLSearchParams({ url: stack.url, token, user: "carol" });
    await page.goto(`${stack.http}/demo/?${query}`);
    await shows(page, "#state", "open");
    await shows(page, "#config", `WebSocket ${stack.url}`);
    await shows(page, "#online", "3 online");
    await chatShows(me.page, "(carol joined)");
    await send(page, "hi from carol");
    await chatShows(alice.page, "carol: hi from carol");
    assert.ok(!asked.includes("/negotiate"), JSON.stringify(asked));
    assert.deepEqual(errors, []);
    await context.close();
  });

  await t.test("no script errors on any page", () => {
    assert.deepEqual([...me.errors, ...alice.errors], []);
  });
});
