// Finds the Debian mirror the host's apt already uses, so the image builder never hard-codes one.

import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export interface AptSource {
  types: string[];
  uris: string[];
  suites: string[];
  components: string[];
  /** Where it came from, for error messages. */
  origin: string;
}

/** Parses deb822 `.sources` text (stanzas separated by blank lines). */
export function parseDeb822Sources(text: string, origin = "deb822 text"): AptSource[] {
  const sources: AptSource[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let last: string | null = null;
    for (const line of stanza.split("\n")) {
      if (line.startsWith("#") || line.trim() === "") continue;
      if (/^\s/.test(line) && last !== null) {
        fields.set(last, `${fields.get(last)} ${line.trim()}`); // continuation line
        continue;
      }
      const colon = line.indexOf(":");
      if (colon <= 0) continue;
      last = line.slice(0, colon).trim().toLowerCase();
      fields.set(last, line.slice(colon + 1).trim());
    }
    if (!fields.has("uris")) continue;
    if (/^(no|false|0)$/i.test(fields.get("enabled") ?? "yes")) continue;
    const words = (k: string): string[] => (fields.get(k) ?? "").split(/\s+/).filter((w) => w !== "");
    sources.push({ types: words("types"), uris: words("uris"), suites: words("suites"), components: words("components"), origin });
  }
  return sources;
}

/** Parses one-line `sources.list` text: `deb [options] URI suite component...`. */
export function parseOneLineSources(text: string, origin = "sources.list text"): AptSource[] {
  const sources: AptSource[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*$/, "").replace(/\[[^\]]*\]/, " ").trim();
    const [type, uri, suite, ...components] = line.split(/\s+/);
    if (type === undefined || uri === undefined || suite === undefined) continue;
    if (type !== "deb" && type !== "deb-src") continue;
    sources.push({ types: [type], uris: [uri], suites: [suite], components, origin });
  }
  return sources;
}

/** Picks the Debian archive mirror (not security, debug or ports) from parsed sources; null when none is found. */
export function pickDebianMirror(sources: AptSource[]): string | null {
  let best: { uri: string; rank: number } | null = null;
  for (const s of sources) {
    if (!s.types.includes("deb")) continue;
    if (s.suites.some((suite) => /-security$/.test(suite))) continue;
    for (const uri of s.uris) {
      const rank = mirrorRank(uri);
      if (rank > 0 && (best === null || rank > best.rank)) best = { uri: uri.replace(/\/+$/, ""), rank };
    }
  }
  return best?.uri ?? null;
}

// 2: the path ends in /debian (deb.debian.org/debian, ftp.XX.debian.org/debian, a local mirror);
// 1: some other Debian archive address (e.g. an apt mirror+file list named for Debian); 0: not the main archive.
function mirrorRank(uri: string): number {
  const u = uri.toLowerCase().replace(/\/+$/, "");
  if (/security|debug|ports|snapshot|cdrom:/.test(u)) return 0;
  if (/^(https?|ftp|file):/.test(u) && /\/debian$/.test(u)) return 2;
  if (/debian/.test(u)) return 1;
  return 0;
}

export interface MirrorSearch {
  /** Root of the apt configuration; `/etc/apt` on a real host. */
  etcApt?: string;
  /** An explicit mirror (from --mirror or NODEVISOR_DEBIAN_MIRROR) wins over the apt configuration. */
  override?: string;
}

/** Returns the Debian mirror address from the host's apt configuration, or throws a sentence saying what to do. */
export function findHostDebianMirror(opts: MirrorSearch = {}): string {
  const override = opts.override ?? process.env.NODEVISOR_DEBIAN_MIRROR;
  if (override !== undefined && override !== "") return override.replace(/\/+$/, "");
  const etcApt = opts.etcApt ?? "/etc/apt";
  const sources: AptSource[] = [];
  const list = join(etcApt, "sources.list");
  if (existsSync(list)) sources.push(...parseOneLineSources(readFileSync(list, "utf8"), list));
  const dir = join(etcApt, "sources.list.d");
  if (existsSync(dir)) {
    for (const name of readdirSync(dir).sort()) {
      const file = join(dir, name);
      if (name.endsWith(".sources")) sources.push(...parseDeb822Sources(readFileSync(file, "utf8"), file));
      else if (name.endsWith(".list")) sources.push(...parseOneLineSources(readFileSync(file, "utf8"), file));
    }
  }
  const mirror = pickDebianMirror(sources);
  if (mirror !== null) return mirror;
  const seen = [...new Set(sources.flatMap((s) => s.uris))];
  throw new Error(
    `Cannot build the guest image: no Debian mirror was found in ${etcApt}/sources.list or ${etcApt}/sources.list.d/` +
      (seen.length > 0 ? ` (it lists only ${seen.join(", ")})` : " (it lists no sources)") +
      `. Set NODEVISOR_DEBIAN_MIRROR to a Debian mirror URL, or pass --kernel FILE and --initrd FILE instead.`,
  );
}
