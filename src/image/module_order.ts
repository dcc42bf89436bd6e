// Orders kernel modules so each is loaded after the modules it depends on (what depmod + modprobe would do).

export interface ModuleNode {
  /** Module name with '_' (the kernel treats '-' and '_' alike). */
  name: string;
  depends: string[];
  /** softdep "pre:" names that resolve to known modules; loaded first, like modprobe does. */
  softPre?: string[];
}

/** Kernel module names treat '-' and '_' as the same character. */
export function moduleKey(name: string): string {
  return name.replace(/-/g, "_");
}

/**
 * Returns every module needed by `wanted`, dependencies first, keeping `wanted`'s order otherwise.
 * `lookup` returns null for a module that is not available; `builtin` names modules built into the kernel.
 */
export function orderModules(
  wanted: string[],
  lookup: (name: string) => ModuleNode | null,
  builtin: ReadonlySet<string> = new Set(),
): string[] {
  const order: string[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (raw: string, path: string[]): void => {
    const name = moduleKey(raw);
    if (builtin.has(name)) return;
    const seen = state.get(name);
    if (seen === "done") return;
    if (seen === "visiting") {
      throw new Error(`Cannot order kernel modules: they depend on each other in a cycle (${[...path, name].join(" -> ")}).`);
    }
    const node = lookup(name);
    if (node === null) {
      const via = path.length > 0 ? ` (needed by ${path.join(" -> ")})` : "";
      throw new Error(
        `Cannot find kernel module "${name}"${via}: it is neither in the kernel package nor built in. ` +
          `Check that the kernel package is complete, or rebuild the image with --rebuild.`,
      );
    }
    state.set(name, "visiting");
    for (const dep of [...(node.softPre ?? []), ...node.depends]) visit(dep, [...path, name]);
    state.set(name, "done");
    order.push(name);
  };
  for (const name of wanted) visit(name, []);
  return order;
}
