/**
 * The demo page: connection state, a chat room (a presence group: online count, typing indicator
 * via client events) and a notifications panel for the user's own messages.
 *
 * Configuration (query string):
 * - `negotiate`: an endpoint answering POST {userId, subscribe, publish, ttlSeconds} with {url, token}
 *   (default: this origin's `/negotiate`, which the local stack serves);
 * - `url` and `token`: connect with a fixed token instead;
 * - `room`: the chat group (default `presence:demo`; only `presence:*` groups announce joins);
 * - `user`: the name to prefill (and connect with at once).
 *
 * Recovery is on (the client's default): after a reconnect the page shows what was sent meanwhile,
 * with a line saying how much was recovered, or that history was lost. The room recovers when the
 * stack keeps its history (`--history-groups presence:demo`); the notifications always do.
 */

import { Client, type Message, SwitchboardError } from "../src/index.js";

const params = new URLSearchParams(location.search);
const room = params.get("room") ?? "presence:demo";
const negotiateUrl = params.get("negotiate") ?? new URL("/negotiate", location.href).href;
const TYPING_MS = 3000;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const stateEl = $("state");
const onlineEl = $("online");
const messagesEl = $<HTMLOListElement>("messages");
const typingEl = $("typing");
const notificationsEl = $<HTMLOListElement>("notifications");
const userInput = $<HTMLInputElement>("user");
const textInput = $<HTMLInputElement>("text");
const sendButton = $<HTMLButtonElement>("send");
const joinButton = $<HTMLButtonElement>("join");
const leaveButton = $<HTMLButtonElement>("leave");
$("room").textContent = room;
$("config").textContent = params.get("url") ? `WebSocket ${params.get("url")}` : `negotiate: ${negotiateUrl}`;

let client: Client | undefined;
let me = "";
const typing = new Map<string, number>();
let lastTypingSent = 0;

async function negotiate(userId: string) {
  const res = await fetch(negotiateUrl, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ userId, subscribe: [room], publish: [room], ttlSeconds: 300 }),
  });
  if (res.status == 400 || res.status == 401 || res.status == 403)
    throw new SwitchboardError("unauthorized", `negotiate answered ${res.status}`);
  if (!res.ok) throw new Error(`negotiate answered ${res.status}`);
  return (await res.json()) as { url: string; token: string };
}

function line(list: HTMLOListElement, className: string, parts: [string, string][]) {
  const li = document.createElement("li");
  li.className = className;
  for (const [cls, text] of parts) {
    const span = document.createElement(cls == "time" ? "time" : "span");
    span.className = cls;
    span.textContent = text;
    li.append(span);
  }
  list.append(li);
  list.scrollTop = list.scrollHeight;
}

function say(who: string, text: string, mine = false) {
  line(messagesEl, mine ? "me" : "", [["who", who], ["text", text]]);
}

function system(text: string) {
  line(messagesEl, "system", [["text", text]]);
}

function notify(m: Message) {
  notificationsEl.querySelector(".empty")?.remove();
  const text = typeof m.data == "string" ? m.data : JSON.stringify(m.data);
  line(notificationsEl, "", [["text", text], ["time", new Date().toLocaleTimeString()]]);
}

function setOnline(n: number) {
  onlineEl.textContent = `${n} online`;
}

function renderTyping() {
  const now = Date.now();
  for (const [user, until] of typing) if (until <= now) typing.delete(user);
  const names = [...typing.keys()];
  typingEl.textContent = names.length == 0 ? "" : `${names.join(", ")} ${names.length == 1 ? "is" : "are"} typing…`;
}
setInterval(renderTyping, 500);

function onRoom(m: Message) {
  // The sender's own events are in the room's history: a recovery sends them back. The page shows
  // its own lines when they are sent, so it skips them here (and its own typing).
  if (m.from != "client" || !m.userId || m.userId == me) return;
  const data = m.data as { typing?: boolean; text?: string };
  if (data.text) {
    typing.delete(m.userId);
    say(m.userId, data.text);
  } else if (data.typing) typing.set(m.userId, Date.now() + TYPING_MS);
  else typing.delete(m.userId);
  renderTyping();
}

async function refreshPresence(c: Client) {
  try {
    setOnline((await c.presence(room)).users);
  } catch {
    /* the count follows the next join or leave */
  }
}

function connect(user: string) {
  me = user;
  const fixed = params.get("token");
  client = new Client(
    fixed ? { url: params.get("url") ?? "", token: fixed } : { getToken: () => negotiate(user) },
  );
  const c = client;
  // The streams to report on after a reconnect: their first recovery answer says what was missed.
  let recovering = new Set<string>();
  c.on("recovery", (e) => {
    if (!recovering.delete(e.stream) && e.recovered) return;
    const what = e.stream == "user" ? "notifications" : `events in ${room}`;
    if (!e.recovered) system(`history lost (${e.reason}): ${what} may be missing; reload to see them`);
    else if (e.missed) system(`recovered ${e.missed} missed ${what}`);
  });
  c.on("state", (state, previous, error) => {
    if (state == "open" && previous == "reconnecting") recovering = new Set(["user", "group:" + room]);
    stateEl.textContent = error ? `${state}: ${error.message}` : state;
    stateEl.className = `state ${state}`;
    textInput.disabled = sendButton.disabled = state != "open";
    // After a reconnect the client opens once the room is resubscribed; the first count follows the subscribe.
    if (state == "open" && previous == "reconnecting") refreshPresence(c);
    if (state == "closed") {
      joinButton.hidden = false;
      leaveButton.hidden = true;
      userInput.disabled = false;
    }
  });
  c.on("presence", (e) => {
    if (e.group != room) return;
    setOnline(e.online);
    if (e.userId != me) system(`${e.userId} ${e.event == "join" ? "joined" : "left"}`);
  });
  c.on("message", (m) => {
    if (!m.group) notify(m);
  });
  c.on("error", (e, group) => system(`error${group ? ` in ${group}` : ""}: ${e.message}`));
  c.subscribe(room, onRoom).then(
    () => refreshPresence(c),
    (e: Error) => system(`could not join ${room}: ${e.message}`),
  );
  c.connect();
  joinButton.hidden = true;
  leaveButton.hidden = false;
  userInput.disabled = true;
}

$<HTMLFormElement>("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const user = userInput.value.trim();
  if (user) connect(user);
});

leaveButton.addEventListener("click", () => client?.close());

$<HTMLFormElement>("compose").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = textInput.value.trim();
  if (!text || !client) return;
  textInput.value = "";
  lastTypingSent = 0;
  client.publish(room, { text }).then(
    () => say(me, text, true),
    (e: Error) => system(`not sent (${e.message}): ${text}`),
  );
});

textInput.addEventListener("input", () => {
  // One typing event per second at most: client events are rate-limited per connection.
  const now = Date.now();
  if (!client || now - lastTypingSent < 1000) return;
  lastTypingSent = now;
  client.publish(room, { typing: true }).catch(() => undefined);
});

const preset = params.get("user");
if (preset) {
  userInput.value = preset;
  connect(preset);
}
