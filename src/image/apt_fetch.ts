// Fetches Debian riscv64 packages with the host's apt-get, using a private source list and private
// state, lists and archive directories, so the host's own apt state is never read or changed.

import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runTool } from "./run_tool.js";

export interface AptSession {
  root: string;
  /** `-o` options shared by apt-get and apt-cache. */
  options: string[];
}

export interface PackageRecord {
  name: string;
  version: string;
  size: number;
  sha256: string;
  /** Debian file name, e.g. busybox-static_1%3a1.37.0-6+b9_riscv64.deb. */
  fileName: string;
}

const NO_APT_HINT = "This host has no apt; pass --kernel FILE and --initrd FILE instead.";

/** Prepares `<root>` with a sources.list for `suite` on `mirror` and empty private apt directories. */
export function createAptSession(root: string, mirror: string, suite: string, arch: string): AptSession {
  for (const d of ["lists/partial", "archives/partial", "state", "cache", "debs"]) mkdirSync(join(root, d), { recursive: true });
  const sourcesList = join(root, "sources.list");
  writeFileSync(sourcesList, `deb [arch=${arch} trusted=yes] ${mirror} ${suite} main\n`);
  const status = join(root, "state", "status");
  if (!existsSync(status)) writeFileSync(status, "");
  const options = [
    `Dir::Etc::SourceList=${sourcesList}`,
    "Dir::Etc::SourceParts=/dev/null",
    "Dir::Etc::Preferences=/dev/null",
    "Dir::Etc::PreferencesParts=/dev/null",
    `APT::Architecture=${arch}`,
    `APT::Architectures=${arch}`,
    `Dir::State=${join(root, "state")}`,
    `Dir::State::Lists=${join(root, "lists")}`,
    `Dir::State::status=${status}`,
    `Dir::Cache=${join(root, "cache")}`,
    `Dir::Cache::Archives=${join(root, "archives")}`,
    "Acquire::Languages=none",
    // Host tools such as apt-file add Contents indexes; the guest build never needs them.
    "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false",
    // As root apt would hand downloads to the _apt user, who cannot write into a user's cache.
    ...(process.getuid?.() === 0 ? ["APT::Sandbox::User=root"] : []),
  ].flatMap((o) => ["-o", o]);
  return { root, options };
}

export async function aptUpdate(s: AptSession): Promise<void> {
  await runTool("apt-get", [...s.options, "-q", "update"], { purpose: "download the Debian package index", missingHint: NO_APT_HINT });
}

/** Returns the package a metapackage (e.g. linux-image-riscv64) depends on whose name matches `pattern`. */
export async function resolveDependency(s: AptSession, metapackage: string, pattern: RegExp): Promise<string> {
  const r = await runTool("apt-cache", [...s.options, "depends", metapackage], { purpose: `resolve ${metapackage}`, missingHint: NO_APT_HINT });
  const deps = parseAptCacheDepends(r.stdout.toString("utf8"));
  const match = deps.find((d) => pattern.test(d));
  if (match === undefined) {
    throw new Error(
      `Cannot resolve ${metapackage}: none of its dependencies (${deps.join(", ") || "none"}) matches ${pattern}. ` +
        `The mirror may carry a different kernel series; check the mirror or update nodevisor.`,
    );
  }
  return match;
}

/** Extracts `Depends:` targets from `apt-cache depends` output. */
export function parseAptCacheDepends(text: string): string[] {
  const deps: string[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s+\|?Depends:\s+<?([^\s>]+)>?/.exec(line);
    if (m !== null) deps.push(m[1]!);
  }
  return deps;
}

/** Reads name, version, size and hash of the candidate version of each package. */
export async function showPackages(s: AptSession, names: string[]): Promise<PackageRecord[]> {
  const r = await runTool("apt-cache", [...s.options, "show", "--no-all-versions", ...names], {
    purpose: `look up ${names.join(", ")} in the Debian package index`,
    missingHint: NO_APT_HINT,
  });
  const records = parseAptCacheShow(r.stdout.toString("utf8"));
  return names.map((n) => {
    const rec = records.find((x) => x.name === n);
    if (rec === undefined) throw new Error(`Cannot find package ${n} in the Debian riscv64 index; check that the mirror carries riscv64.`);
    return rec;
  });
}

export function parseAptCacheShow(text: string): PackageRecord[] {
  const out: PackageRecord[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const field = (k: string): string | undefined => new RegExp(`^${k}: (.*)$`, "m").exec(stanza)?.[1]?.trim();
    const name = field("Package");
    const filename = field("Filename");
    if (name === undefined || filename === undefined) continue;
    out.push({
      name,
      version: field("Version") ?? "",
      size: Number(field("Size") ?? "0"),
      sha256: field("SHA256") ?? "",
      fileName: filename.slice(filename.lastIndexOf("/") + 1),
    });
  }
  return out;
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/**
 * Downloads the packages into `<root>/debs` (reusing files whose hash already matches) and returns their paths.
 * `onBytes(done, total)` is called while the download runs.
 */
export async function downloadPackages(
  s: AptSession,
  packages: PackageRecord[],
  onBytes: (done: number, total: number) => void,
): Promise<string[]> {
  const dir = join(s.root, "debs");
  const total = packages.reduce((n, p) => n + p.size, 0);
  const pathOf = (p: PackageRecord): string => join(dir, p.fileName);
  const missing: PackageRecord[] = [];
  for (const p of packages) {
    if (existsSync(pathOf(p)) && statSync(pathOf(p)).size === p.size && (await sha256File(pathOf(p))) === p.sha256) continue;
    missing.push(p);
  }
  const downloadDir = join(s.root, "debs", "partial");
  rmSync(downloadDir, { recursive: true, force: true });
  mkdirSync(downloadDir, { recursive: true });
  const haveBytes = total - missing.reduce((n, p) => n + p.size, 0);
  onBytes(haveBytes, total);
  if (missing.length > 0) {
    // apt-get download writes into its working directory; watch it grow for progress.
    const timer = setInterval(() => onBytes(haveBytes + dirBytes(downloadDir), total), 250);
    try {
      await runTool("apt-get", [...s.options, "-q", "download", ...missing.map((p) => `${p.name}=${p.version}`)], {
        cwd: downloadDir,
        purpose: `download ${missing.map((p) => p.name).join(", ")} from the Debian mirror`,
        missingHint: NO_APT_HINT,
      });
    } finally {
      clearInterval(timer);
    }
    const downloaded = readdirSync(downloadDir);
    for (const p of missing) {
      // apt-get names the file with the epoch (1%3a1.37…), the pool does not; match by package name.
      const got = downloaded.find((f) => f.startsWith(`${p.name}_`) && f.endsWith(".deb"));
      if (got === undefined) throw new Error(`Cannot download ${p.name}: apt-get finished but no ${p.name}_*.deb is in ${downloadDir}.`);
      const gotHash = await sha256File(join(downloadDir, got));
      if (p.sha256 !== "" && gotHash !== p.sha256) {
        throw new Error(`Cannot use the downloaded ${got}: its SHA256 does not match the package index. Run the build again.`);
      }
      renameSync(join(downloadDir, got), pathOf(p));
    }
  }
  onBytes(total, total);
  rmSync(downloadDir, { recursive: true, force: true });
  return packages.map(pathOf);
}

function dirBytes(dir: string): number {
  let n = 0;
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    try {
      const st = statSync(join(dir, name));
      if (st.isFile()) n += st.size;
    } catch {
      // a file apt renamed between the listing and the stat
    }
  }
  return n;
}
