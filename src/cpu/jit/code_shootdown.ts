// Write protection of code pages across JIT threads (docs/jit.md, "Several vCPU threads"). A
// thread that compiles a page sets its bit in codePages and drops its own harts' write-TLB entries
// of the page; the harts of other threads may still hold one, and a store through it would change
// the page without dropping the code. So the thread announces the page here, in a ring of its own,
// and every other thread drops its write entries of the announced pages at its next slice boundary
// (catchUp) and acknowledges. The compile thread reads the page only once every other thread has
// acknowledged the announcement or is parked (settled): from then on every store to the page
// misses a write TLB, and the store's fill drops the code (GuestRam.dropCode). A store made through
// an old entry before the acknowledgement is in RAM before the compile reads it.
//
// Parked: a thread that waits (WFI, a stopped hart, a pause, an MMIO reply) runs no guest store,
// so it does not hold compiles back; it catches up as it unparks, before its hart runs again.
// A thread never started counts as parked. One producer per ring (the thread's vCPU thread), so
// an append is a slot write and a release of the head.
import { JIT_THREADS } from "../../seams/guest_ram.js";

/** Announcements a ring holds: a reader that falls further behind drops all its write entries instead. */
export const SHOOTDOWN_RING = 1024;
const T = JIT_THREADS;
/** Int32 offsets: heads[T], parked[T], acks[T * T] (reader * T + producer), rings[T * SHOOTDOWN_RING]. */
const HEADS = 0, PARKED = T, ACKS = 2 * T, RINGS = 2 * T + T * T;
const WORDS = RINGS + T * SHOOTDOWN_RING;

/** What a reader does with another thread's announcements. */
export interface ShootdownTarget {
  /** Drops every write-TLB entry of RAM page `page` on this thread. */
  dropWriteMappings(page: number): void;
  /** Drops every write-TLB entry on this thread (announcements were missed). */
  dropAllWriteMappings(): void;
}

export class CodeShootdown {
  /** The shared words: one buffer per VM, created with create(). */
  static create(): SharedArrayBuffer {
    const sab = new SharedArrayBuffer(4 * WORDS);
    new Int32Array(sab).fill(1, PARKED, PARKED + T); // no thread started yet
    return sab;
  }

  private readonly w: Int32Array;
  /** Per producer, the last head this thread acted on (its acks, kept here too). */
  private readonly seen = new Int32Array(T);

  constructor(shared: SharedArrayBuffer, readonly self: number) {
    if (!Number.isInteger(self) || self < 0 || self >= T) throw new RangeError(`JIT thread ${self} has no shootdown ring: threads are 0..${T - 1}`);
    this.w = new Int32Array(shared);
  }

  /** Announces RAM page `page`: returns the sequence number settled() waits for. */
  announce(page: number): number {
    const w = this.w;
    const head = w[HEADS + this.self]!;
    w[RINGS + this.self * SHOOTDOWN_RING + (head & (SHOOTDOWN_RING - 1))] = page;
    Atomics.store(w, HEADS + this.self, head + 1);
    return head + 1;
  }

  /** True when every other thread acted on this thread's announcements up to `seq`, or waits parked. */
  static settled(shared: Int32Array, producer: number, seq: number): boolean {
    if (seq <= 0) return true;
    for (let r = 0; r < T; r++) {
      if (r === producer || Atomics.load(shared, PARKED + r) !== 0) continue;
      if (Atomics.load(shared, ACKS + r * T + producer) - seq < 0) return false;
    }
    return true;
  }

  settled(seq: number): boolean {
    return CodeShootdown.settled(this.w, this.self, seq);
  }

  /** Acts on the other threads' announcements since the last call and acknowledges them: at a slice boundary. */
  catchUp(target: ShootdownTarget): void {
    const w = this.w;
    for (let p = 0; p < T; p++) {
      if (p === this.self) continue;
      const head = Atomics.load(w, HEADS + p);
      const from = this.seen[p]!;
      if (head === from) continue;
      let missed = head - from > SHOOTDOWN_RING;
      if (!missed) {
        for (let i = from; i !== head; i++) target.dropWriteMappings(w[RINGS + p * SHOOTDOWN_RING + (i & (SHOOTDOWN_RING - 1))]!);
        missed = Atomics.load(w, HEADS + p) - from > SHOOTDOWN_RING; // the producer lapped the slots read meanwhile
      }
      if (missed) target.dropAllWriteMappings();
      this.seen[p] = head;
      Atomics.store(w, ACKS + this.self * T + p, head);
    }
  }

  /** About to wait without running guest code: other threads' compiles need not wait for this one. */
  park(): void {
    Atomics.store(this.w, PARKED + this.self, 1);
  }

  /** Done waiting: catches up before the hart runs a store again. */
  unpark(target: ShootdownTarget): void {
    Atomics.store(this.w, PARKED + this.self, 0);
    this.catchUp(target);
  }
}
