// Picks the kernel modules the guest's devices need out of an unpacked kernel package, decompressed,
// in load order. Dependencies come from each module's .modinfo (the package has no modules.dep).

import { existsSync, readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { gunzipSync } from "node:zlib";
import { readModinfo } from "./elf_modinfo.js";
import { moduleKey, orderModules, type ModuleNode } from "./module_order.js";
import { runTool } from "./run_tool.js";

/**
 * Modules the image ships (loaded on demand by the guest, see README.md); crc32c_generic is listed because ext4 and
 * jbd2 name it only by the alias "crypto-crc32c", which is followed only among modules already selected.
 */
export const GUEST_MODULES = [
  "virtio_mmio",
  "virtio_blk",
  "virtio_console",
  "virtio_rng",
  "virtio_net",
  "8021q",
  "virtio_balloon",
  "crc32c_generic",
  "ext4",
  "vsock",
  "vmw_vsock_virtio_transport",
];

export interface LoadedModule {
  name: string;
  data: Uint8Array;
  /** Modules that must be loaded before this one: its depends= plus soft "pre:" dependencies found among the selection. */
  depends: string[];
  /** Its alias= patterns (e.g. "virtio:d00000002v*", "fs-ext4"), for modprobe and the kernel's request_module. */
  aliases: string[];
}

const MODULE_FILE = /\.ko(\.xz|\.gz|\.zst)?$/;

/** Maps module name (with '_') to its file under `<moduleRoot>/kernel`. */
export function indexModuleFiles(moduleRoot: string): Map<string, string> {
  const index = new Map<string, string>();
  const kernelDir = join(moduleRoot, "kernel");
  if (!existsSync(kernelDir)) throw new Error(`Cannot find kernel modules: ${kernelDir} does not exist in the kernel package.`);
  for (const rel of readdirSync(kernelDir, { recursive: true }) as string[]) {
    if (!MODULE_FILE.test(rel)) continue;
    index.set(moduleKey(basename(rel).replace(MODULE_FILE, "")), join(kernelDir, rel));
  }
  return index;
}

/** Names of modules built into the kernel (`modules.builtin`), which need no loading. */
export function readBuiltinModules(moduleRoot: string): Set<string> {
  const file = join(moduleRoot, "modules.builtin");
  if (!existsSync(file)) return new Set();
  return new Set(
    readFileSync(file, "utf8")
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => moduleKey(basename(l.trim()).replace(MODULE_FILE, ""))),
  );
}

/** Returns a module's plain ELF bytes; .xz goes through the host's xz, which is faster than any JS decoder. */
export async function readModuleFile(path: string): Promise<Uint8Array> {
  if (path.endsWith(".ko")) return readFileSync(path);
  if (path.endsWith(".ko.gz")) return gunzipSync(readFileSync(path));
  if (path.endsWith(".ko.xz")) {
    const r = await runTool("xz", ["-dc", path], {
      purpose: `decompress kernel module ${basename(path)}`,
      missingHint: "Install xz-utils (apt-get install xz-utils) and build the image again.",
    });
    return r.stdout;
  }
  throw new Error(`Cannot decompress kernel module ${basename(path)}: only .ko, .ko.gz and .ko.xz are supported.`);
}

export interface ModuleSelection {
  modules: LoadedModule[];
  /** Wanted modules the kernel already has built in. */
  builtin: string[];
  /** Every module the kernel has built in (modules.builtin). */
  kernelBuiltin: string[];
}

/** Loads `wanted` and everything they depend on, dependencies first. */
export async function selectModules(
  moduleRoot: string,
  wanted: string[],
  opts: { onModule?: (done: number, known: number, name: string) => void; log?: (line: string) => void } = {},
): Promise<ModuleSelection> {
  const files = indexModuleFiles(moduleRoot);
  const builtin = readBuiltinModules(moduleRoot);
  const nodes = new Map<string, ModuleNode & { data: Uint8Array; aliases: string[]; softAliases: string[] }>();
  const queue = wanted.map(moduleKey);
  while (queue.length > 0) {
    const name = queue.shift()!;
    if (nodes.has(name) || builtin.has(name)) continue;
    const file = files.get(name);
    if (file === undefined) continue; // orderModules names it, with the chain that needed it
    const data = await readModuleFile(file);
    const info = readModinfo(data, basename(file));
    const softPre: string[] = [];
    const softAliases: string[] = [];
    for (const soft of info.softdepPre.map(moduleKey)) {
      if (files.has(soft) || builtin.has(soft)) softPre.push(soft);
      else softAliases.push(soft);
    }
    const aliases = info.entries.filter(([k]) => k === "alias").map(([, v]) => v);
    nodes.set(name, { name, depends: info.depends.map(moduleKey), softPre, softAliases, data, aliases });
    queue.push(...info.depends.map(moduleKey), ...softPre);
    const pending = new Set(queue.filter((q) => !nodes.has(q) && !builtin.has(q) && files.has(q))).size;
    opts.onModule?.(nodes.size, nodes.size + pending, name);
  }
  // A soft dependency that names an alias ("crypto-crc32c") is followed when a selected module carries that alias.
  for (const node of nodes.values()) {
    for (const alias of node.softAliases) {
      const provider = [...nodes.values()].find((m) => m.name !== node.name && m.aliases.some((a) => moduleKey(a) === alias));
      if (provider !== undefined) node.softPre!.push(provider.name);
      else opts.log?.(`module ${node.name}: soft dependency "${alias}" is an alias no selected module provides; not followed`);
    }
  }
  const order = orderModules(wanted, (n) => nodes.get(n) ?? null, builtin);
  return {
    modules: order.map((name) => {
      const node = nodes.get(name)!;
      const depends = [...new Set([...(node.softPre ?? []), ...node.depends])].filter((d) => !builtin.has(d));
      return { name, data: node.data, depends, aliases: node.aliases };
    }),
    builtin: wanted.map(moduleKey).filter((n) => builtin.has(n)),
    kernelBuiltin: [...builtin],
  };
}
