/** switchboard-client: Switchboard's WebSocket client for browsers and Node. */

export { Client } from "./client.js";
export type {
  Clock,
  Events,
  History,
  Message,
  Options,
  Position,
  Presence,
  PresenceEvent,
  RecoveryEvent,
  State,
  TokenResult,
  WebSocketConstructor,
  WebSocketLike,
} from "./client.js";
export { SwitchboardError } from "./errors.js";
export type { ErrorCode } from "./errors.js";
