// Rate-limits log lines that a guest can trigger, so a hostile guest cannot fill the host's disk
// through our stderr. Lines beyond the budget are counted, and the count is logged when lines
// are allowed again (or on flush), so nothing disappears without a trace.

export interface LogLimiterOptions {
  /** Lines allowed per window; the rest of the window's lines are counted, not written. */
  linesPerWindow?: number;
  windowMs?: number;
  /** Longest line written; longer ones are cut (a guest controls parts of them). */
  maxLineChars?: number;
  now?: () => number;
}

export interface LimitedLog {
  (msg: string): void;
  /** Writes the count of lines suppressed since the last report, if any. */
  flush(): void;
  readonly suppressed: number;
}

export const DEFAULT_LOG_LINES_PER_WINDOW = 20;
export const DEFAULT_LOG_WINDOW_MS = 1000;
export const DEFAULT_LOG_LINE_CHARS = 500;

export function limitedLog(sink: (msg: string) => void, o: LogLimiterOptions = {}): LimitedLog {
  const budget = o.linesPerWindow ?? DEFAULT_LOG_LINES_PER_WINDOW;
  const windowMs = o.windowMs ?? DEFAULT_LOG_WINDOW_MS;
  const maxChars = o.maxLineChars ?? DEFAULT_LOG_LINE_CHARS;
  const now = o.now ?? (() => performance.now());
  let windowStart = -Infinity;
  let used = 0;
  let pending = 0; // suppressed, not yet reported
  let total = 0;
  const flush = (): void => {
    if (pending === 0) return;
    sink(`${pending} more message${pending === 1 ? "" : "s"} like these suppressed (at most ${budget} per ${windowMs / 1000} s)`);
    pending = 0;
  };
  const log = ((msg: string): void => {
    const t = now();
    if (t - windowStart >= windowMs) {
      windowStart = t;
      used = 0;
      flush();
    }
    if (used >= budget) {
      pending++;
      total++;
      return;
    }
    used++;
    sink(msg.length > maxChars ? `${msg.slice(0, maxChars)}… (${msg.length - maxChars} more characters)` : msg);
  }) as LimitedLog;
  log.flush = flush;
  Object.defineProperty(log, "suppressed", { get: () => total });
  return log;
}
