// Writes the kernel's own module database files (modules.dep, modules.alias, modules.builtin) for the modules
// the image ships, so busybox modprobe in the guest loads drivers on demand, dependencies first.

import { moduleKey, orderModules } from "./module_order.js";

export interface ShippedModule {
  name: string;
  /** Modules to load first (depends= and resolved soft "pre:" dependencies). */
  depends: string[];
  /** alias= patterns from .modinfo. */
  aliases: string[];
}

/**
 * Aliases the kernel asks for that no module declares. AF_VSOCK sockets make the kernel run `modprobe net-pf-40`,
 * but vsock.ko has no MODULE_ALIAS_NETPROTO, so the image adds the mapping (as a distribution's modprobe.d would).
 */
export const EXTRA_ALIASES: ReadonlyArray<readonly [alias: string, module: string]> = [["net-pf-40", "vsock"]];

/**
 * modules.dep in the format depmod writes: `name.ko: dep.ko ...`, paths relative to /lib/modules/<ver>, every
 * dependency listed (not only direct ones) and the one to load first last, which is the order modprobe loads them in.
 */
export function modulesDep(modules: readonly ShippedModule[]): string {
  const byName = new Map(modules.map((m) => [moduleKey(m.name), m]));
  const lookup = (n: string) => {
    const m = byName.get(n);
    return m === undefined ? null : { name: moduleKey(m.name), depends: m.depends.map(moduleKey) };
  };
  return modules
    .map((m) => {
      const deps = orderModules([m.name], lookup).slice(0, -1).reverse();
      return `${m.name}.ko:${deps.map((d) => ` ${d}.ko`).join("")}\n`;
    })
    .join("");
}

/** modules.alias: `alias <pattern> <module>` lines, the modules' own aliases then EXTRA_ALIASES for shipped modules. */
export function modulesAlias(modules: readonly ShippedModule[]): string {
  const lines: string[] = [];
  const shipped = new Set(modules.map((m) => moduleKey(m.name)));
  const declared = new Set<string>();
  for (const m of modules) {
    for (const a of m.aliases) {
      // Patterns go through the shell-free config parser of modprobe, which splits on blanks.
      if (/\s/.test(a)) continue;
      lines.push(`alias ${a} ${m.name}\n`);
      declared.add(moduleKey(a));
    }
  }
  for (const [alias, module] of EXTRA_ALIASES) {
    if (shipped.has(moduleKey(module)) && !declared.has(moduleKey(alias))) lines.push(`alias ${alias} ${module}\n`);
  }
  return lines.join("");
}

/** modules.builtin: one `name.ko` per line; modprobe then says "builtin" rather than "not found" for these. */
export function modulesBuiltin(builtin: Iterable<string>): string {
  return [...builtin].sort().map((n) => `${n}.ko\n`).join("");
}
