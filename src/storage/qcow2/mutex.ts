// Two small async locks: a mutex that orders metadata updates, and a gate that lets
// freeing wait for data I/O that may still use a cluster about to be freed.

/** FIFO async mutex. */
export class Mutex {
  private waiters: Array<() => void> = [];
  private held = false;

  get locked(): boolean {
    return this.held;
  }

  async lock(): Promise<() => void> {
    if (this.held) await new Promise<void>((resolve) => this.waiters.push(resolve));
    this.held = true;
    return () => {
      const next = this.waiters.shift();
      if (next) next();
      else this.held = false;
    };
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    const unlock = await this.lock();
    try {
      return await fn();
    } finally {
      unlock();
    }
  }
}

/** Counts data I/O in flight; drain() closes the gate and waits until none is left. */
export class IoGate {
  private inFlight = 0;
  private closed = false;
  private openWaiters: Array<() => void> = [];
  private drainWaiter: (() => void) | null = null;

  async enter(): Promise<void> {
    while (this.closed) await new Promise<void>((resolve) => this.openWaiters.push(resolve));
    this.inFlight++;
  }

  /** enter() without waiting: false (and nothing entered) while the gate is closed. */
  tryEnter(): boolean {
    if (this.closed) return false;
    this.inFlight++;
    return true;
  }

  leave(): void {
    this.inFlight--;
    if (this.inFlight === 0 && this.drainWaiter) {
      const w = this.drainWaiter;
      this.drainWaiter = null;
      w();
    }
  }

  /** Only one drainer at a time (callers hold the metadata mutex). Returns the function that reopens the gate. */
  async drain(): Promise<() => void> {
    this.closed = true;
    if (this.inFlight > 0) await new Promise<void>((resolve) => (this.drainWaiter = resolve));
    return () => {
      this.closed = false;
      const ws = this.openWaiters;
      this.openWaiters = [];
      for (const w of ws) w();
    };
  }
}
