/** Backoff: full jitter within [0, min(cap, base * 2^attempt)). */

import assert from "node:assert/strict";
import { test } from "node:test";
import { backoff } from "../../src/backoff.js";

test("the bound doubles per attempt from the base and stops at the cap", () => {
  const top = () => 0.999999999;
  const bounds = [0, 1, 2, 3, 4, 5, 6, 7].map((a) => backoff(a, 500, 30_000, top));
  assert.deepEqual(bounds, [499, 999, 1999, 3999, 7999, 15999, 29999, 29999]);
});

test("full jitter: a random 0 waits not at all, and every delay is within the bound", () => {
  assert.equal(backoff(5, 500, 30_000, () => 0), 0);
  for (let attempt = 0; attempt < 40; attempt++)
    for (let i = 0; i < 200; i++) {
      const d = backoff(attempt, 500, 30_000);
      assert.ok(d >= 0 && d < Math.min(30_000, 500 * 2 ** attempt), `attempt ${attempt}: ${d}`);
      assert.ok(Number.isInteger(d));
    }
});

test("delays spread over the whole range (not clustered at the bound)", () => {
  const ds = Array.from({ length: 2000 }, () => backoff(10, 500, 30_000));
  assert.ok(Math.min(...ds) < 3_000 && Math.max(...ds) > 27_000);
  const mean = ds.reduce((a, b) => a + b) / ds.length;
  assert.ok(mean > 13_000 && mean < 17_000, `mean ${mean}`);
});

test("a huge attempt number stays at the cap", () => {
  assert.equal(backoff(10_000, 500, 30_000, () => 0.5), 15_000);
});
