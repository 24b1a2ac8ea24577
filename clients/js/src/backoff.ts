/** Reconnect delays: exponential backoff with full jitter, capped. */

/**
 * The delay before reconnect attempt `attempt` (0 for the first): a uniformly random
 * value in [0, min(cap, base * 2^attempt)) ("full jitter", so that clients dropped
 * together do not come back together).
 */
export function backoff(attempt: number, base: number, cap: number, random: () => number = Math.random): number {
  return Math.floor(random() * Math.min(cap, base * 2 ** Math.min(attempt, 30)));
}
