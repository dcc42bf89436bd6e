// Which profiled pages the JIT compiles before the guest runs them (BlockCache.prefetch). A page
// of the profile (jit_profile.ts) compiles early once the interpreter has visited it a few times,
// and its module then takes ~2-50 ms to come back from the compile thread: a boot interpreted
// ~12-23 M instructions in pages whose compile from the profile was waiting (~12 ns each on the
// vCPU thread), the largest share of what it interprets. The profile knows in which RAM page each
// page's code was and when it turned hot, so the cache can look there a little before that time
// and, if the same code is there, compile it while the compile thread has nothing else to do.
import type { JitProfile } from "./jit_profile.js";

/** A profiled page to look for at RAM page `ram` from `at` instructions retired. */
export interface PrefetchCandidate {
  ram: number;
  key: string;
  at: number;
  tries: number;
}

/** Looks at a candidate's RAM page this many times at most: the kernel patches its text as it boots, so a page may hold its final code only later. */
export const PREFETCH_TRIES = 3;
/** Instructions between two looks at a candidate whose RAM page held other code. */
export const PREFETCH_RETRY = 20e6;

/** The candidates of a profile in the order they come due. */
export class PrefetchPlan {
  private readonly list: PrefetchCandidate[] = [];
  private next = 0;
  /** Candidates looked at too early, by `at` (few: a linear insert keeps them sorted). */
  private readonly retry: PrefetchCandidate[] = [];
  /** Instructions retired from which due() has something; Infinity when the plan is done. */
  nextAt = Infinity;

  /**
   * `atPerMillion`: instructions per million of a page's hotAt from which it is due (the cache's
   * early-compile point, PROFILE_EARLY_PER_MILLION); pages outside `ramPages` are left out.
   */
  constructor(profile: JitProfile, ramPages: number, atPerMillion: number) {
    for (const [key, page] of profile) {
      if (page.ram < 0 || page.ram >= ramPages) continue;
      this.list.push({ ram: page.ram, key, at: page.hotAt * atPerMillion, tries: 0 });
    }
    this.list.sort((a, b) => a.at - b.at);
    this.update();
  }

  /** Takes up to `max` candidates due at `instret`, earliest first. */
  due(instret: number, max: number): PrefetchCandidate[] {
    const out: PrefetchCandidate[] = [];
    while (out.length < max) {
      const a = this.next < this.list.length ? this.list[this.next]! : null;
      const r = this.retry.length > 0 ? this.retry[0]! : null;
      const c = a !== null && (r === null || a.at <= r.at) ? a : r;
      if (c === null || c.at > instret) break;
      if (c === a) this.next++;
      else this.retry.shift();
      out.push(c);
    }
    this.update();
    return out;
  }

  /** Candidate `c` found other code in its RAM page at `instret`: looked at again later, up to PREFETCH_TRIES times in all. */
  again(c: PrefetchCandidate, instret: number): void {
    if (++c.tries >= PREFETCH_TRIES) return;
    c.at = instret + PREFETCH_RETRY;
    let i = this.retry.length;
    while (i > 0 && this.retry[i - 1]!.at > c.at) i--;
    this.retry.splice(i, 0, c);
    this.update();
  }

  private update(): void {
    const a = this.next < this.list.length ? this.list[this.next]!.at : Infinity;
    const r = this.retry.length > 0 ? this.retry[0]!.at : Infinity;
    this.nextAt = Math.min(a, r);
  }
}
