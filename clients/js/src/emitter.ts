/** A small typed event emitter: `on` returns the function that removes the listener. */

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Listener = (...args: any[]) => void;

export class Emitter<E extends { [K in keyof E]: Listener }> {
  private listeners: { [K in keyof E]?: Set<E[K]> } = {};

  /** Calls `listener` on every `event`; the returned function removes it. */
  on<K extends keyof E>(event: K, listener: E[K]): () => void {
    (this.listeners[event] ??= new Set()).add(listener);
    return () => this.off(event, listener);
  }

  off<K extends keyof E>(event: K, listener: E[K]): void {
    this.listeners[event]?.delete(listener);
  }

  protected emit<K extends keyof E>(event: K, ...args: Parameters<E[K]>): void {
    // A throwing listener must not break the connection's bookkeeping.
    this.listeners[event]?.forEach((l) => {
      try {
        l(...args);
      } catch (e) {
        setTimeout(() => {
          throw e;
        });
      }
    });
  }
}
