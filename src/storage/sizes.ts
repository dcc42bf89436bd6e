// Disk sizes as people type them ("10G", "512MiB", "4096") and as they read them back.

const UNIT_SHIFT: Record<string, number> = { "": 0, k: 10, m: 20, g: 30, t: 40 };
const SIZE_PATTERN = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/i;

/** Parses a byte count with an optional binary suffix: K, M, G, T (also KiB, KB, …; case-insensitive). */
export function parseSize(s: string): number {
  const text = s.trim();
  const match = SIZE_PATTERN.exec(text);
  // "iB" alone ("5iB") names no unit, so it is rejected like any other typo.
  if (match === null || (match[2] === "" && match[3] !== undefined && match[3].toLowerCase() !== "b")) {
    throw new RangeError(
      `Invalid size "${s}": expected a number of bytes with an optional K, M, G or T suffix (for example 512, 64M or 10GiB)`,
    );
  }
  const unit = match[2].toLowerCase();
  const bytes = Number(match[1]) * 2 ** UNIT_SHIFT[unit];
  if (!Number.isInteger(bytes)) {
    throw new RangeError(`Invalid size "${s}": it is not a whole number of bytes`);
  }
  if (bytes > Number.MAX_SAFE_INTEGER) {
    throw new RangeError(`Invalid size "${s}": it is larger than the largest supported size (8 PiB)`);
  }
  return bytes;
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** Formats a byte count for people: "512 B", "1.5 KiB", "10 GiB" (binary units, at most two decimals). */
export function formatSize(n: number): string {
  if (!Number.isFinite(n) || n < 0) throw new RangeError(`Cannot format size ${n}: it must be a finite number of bytes, not negative`);
  let unit = 0;
  let value = n;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  const text = unit === 0 ? String(Math.round(value)) : value.toFixed(2).replace(/\.?0+$/, "");
  return `${text} ${UNITS[unit]}`;
}
