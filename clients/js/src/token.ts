/** Token expiry: `exp` read from a JWT's payload (not verified: the server does that), and when to refresh. */

/** The token's `exp` in milliseconds since the epoch, or undefined when it has none or is not a JWT. */
export function tokenExpiry(token: string): number | undefined {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const exp = JSON.parse(atob(part)).exp;
    return typeof exp == "number" ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * How long to wait before fetching a new token that expires at `expiry`: `margin`
 * before it expires, or halfway through what is left when that is shorter; 0 when
 * it has already expired.
 */
export function refreshDelay(expiry: number, now: number, margin: number): number {
  const left = expiry - now;
  return Math.max(0, left - Math.min(margin, left / 2));
}
