/** Typed errors: the server's ack and error codes, and the client's own (timeout, disconnected...). */

/**
 * Why an action or the connection failed. The first seven are the server's codes
 * (shared/src/protocol.rs `ErrorCode`); the rest are the client's:
 * - `timeout`: no answer within the action's timeout;
 * - `disconnected`: the socket closed before a non-repeatable action (publish, ping) was answered;
 * - `closed`: the application closed the client, or it stopped after an authentication failure;
 * - `unauthorized`: the handshake was refused with 401 or 403, or the token has expired;
 * - `handshake_failed`: too many attempts in a row closed before opening with no status to read
 *   (browsers hide it): most likely a refused token.
 */
export type ErrorCode =
  | "bad_request"
  | "unknown_action"
  | "forbidden"
  | "unavailable"
  | "rate_limited"
  | "limit_exceeded"
  | "hook_failed"
  | "timeout"
  | "disconnected"
  | "closed"
  | "unauthorized"
  | "handshake_failed";

export class SwitchboardError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string = code,
    /** The HTTP status of a refused handshake, when the WebSocket implementation exposes it. */
    readonly status?: number,
  ) {
    super(message);
    this.name = "SwitchboardError";
  }
}
