/**
 * One history stream's place (`user`, or `group:<name>`): its epoch, the highest offset up to
 * which nothing is missing, and the messages that arrived ahead of a gap. Pure bookkeeping: the
 * client owns the timers and the requests.
 */

/** The stamp a message of a stream that keeps history carries. */
export interface Stamped {
  stream?: string;
  offset?: number;
  epoch?: string;
}

export class Track<M extends Stamped> {
  /** Unknown until a message or a position answer tells it. */
  epoch?: string;
  /** Everything up to here has been handed over (or was before the client's start). */
  offset = 0;
  /** Messages past a gap, by offset. */
  buffer = new Map<number, M>();
  /** The gap timer. */
  timer?: unknown;
  /** The recover call under way for it, if any. */
  busy?: unknown;
  /** The offset the last recover started from (for `missed`). */
  from = 0;
  /** The last `recovered` frame said `more`: recover again from there. */
  more?: boolean;
  /** A position request is on its way. */
  asking?: boolean;

  /**
   * Takes a stamped message; pushes onto `out` what may be handed over now, in order. Returns
   * true when the message starts a new epoch (the history was reset or lost).
   */
  take(m: M, out: M[]): boolean {
    const changed = !!this.epoch && m.epoch != this.epoch;
    if (!this.epoch || changed) {
      this.epoch = m.epoch;
      this.offset = m.offset! - 1;
      this.buffer.clear();
    }
    if (m.offset! > this.offset) this.buffer.set(m.offset!, m);
    this.flush(out);
    return changed;
  }

  /**
   * Moves to a position the server gave: forward only when `force` is false (a recovery that
   * succeeded), anywhere otherwise (a recovery that failed: continue from the stream's latest).
   */
  move(offset: number, epoch: string, force: boolean, out: M[]): void {
    if (force || epoch != this.epoch || offset > this.offset) {
      this.epoch = epoch;
      this.offset = offset;
    }
    this.buffer.forEach((m, o) => (o <= this.offset || m.epoch != epoch) && this.buffer.delete(o));
    this.flush(out);
  }

  private flush(out: M[]): void {
    for (let m; (m = this.buffer.get(this.offset + 1)); this.offset++) {
      this.buffer.delete(this.offset + 1);
      out.push(m);
    }
  }
}
