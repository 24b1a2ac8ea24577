/** Duplicate suppression: a bounded set of the message keys seen most recently. */

export class Dedupe {
  private seen = new Set<string>();

  constructor(private readonly capacity = 1000) {}

  /** True the first time `key` is seen (within the last `capacity` keys), false for a repeat. */
  fresh(key: string): boolean {
    if (this.seen.has(key)) return false;
    this.seen.add(key);
    // A Set iterates in insertion order: the first value is the oldest.
    if (this.seen.size > this.capacity) this.seen.delete(this.seen.values().next().value as string);
    return true;
  }
}
