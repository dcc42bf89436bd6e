// Lays out the guest's initramfs (uncompressed newc cpio, so the guest spends no instructions unpacking it).

import { CpioWriter } from "./cpio.js";
import { INITTAB, INIT_SCRIPT, PROFILE_SCRIPT, UDHCPC_SCRIPT, UDHCPC_SCRIPT_PATH } from "./init_script.js";
import { modulesAlias, modulesBuiltin, modulesDep, type ShippedModule } from "./module_db.js";

export interface InitramfsInput {
  kernelVersion: string;
  busybox: Uint8Array;
  /** Applet names to link to /bin/busybox. */
  applets: string[];
  /** Decompressed modules, each after its dependencies. */
  modules: Array<ShippedModule & { data: Uint8Array }>;
  /** Names of the modules built into the kernel (for modules.builtin). */
  builtin?: string[];
  mtime?: number;
}

export function moduleDir(kernelVersion: string): string {
  return `/lib/modules/${kernelVersion}`;
}

/** Builds the archive and returns it. */
export function buildInitramfs(input: InitramfsInput): Buffer {
  const w = new CpioWriter({ mtime: input.mtime ?? 0 });
  const text = (s: string): Buffer => Buffer.from(s, "utf8");
  const mods = moduleDir(input.kernelVersion);
  for (const dir of ["bin", "dev", "etc", "lib", "lib/modules", mods, "proc", "sys", "run", "root", "mnt", "usr", "var"]) {
    w.add({ kind: "dir", path: dir, mode: dir === "root" ? 0o700 : 0o755 });
  }
  w.add({ kind: "dir", path: "tmp", mode: 0o1777 });
  // One directory of applets, reachable by every conventional path.
  w.add({ kind: "symlink", path: "sbin", target: "bin" });
  w.add({ kind: "symlink", path: "usr/bin", target: "../bin" });
  w.add({ kind: "symlink", path: "usr/sbin", target: "../bin" });
  // The kernel opens /dev/console for /init's stdio before devtmpfs is mounted.
  w.add({ kind: "chardev", path: "dev/console", major: 5, minor: 1, mode: 0o600 });
  w.add({ kind: "chardev", path: "dev/null", major: 1, minor: 3, mode: 0o666 });

  w.add({ kind: "file", path: "bin/busybox", data: input.busybox, mode: 0o755 });
  for (const applet of input.applets) {
    if (applet === "busybox" || applet.includes("/")) continue;
    w.add({ kind: "symlink", path: `bin/${applet}`, target: "busybox" });
  }
  w.add({ kind: "file", path: "init", data: text(INIT_SCRIPT), mode: 0o755 });

  for (const m of input.modules) w.add({ kind: "file", path: `${mods}/${m.name}.ko`, data: m.data, mode: 0o644 });
  // The kernel's own formats under /lib/modules/<ver>, read by busybox modprobe (/init and the kernel's request_module).
  w.add({ kind: "file", path: `${mods}/modules.dep`, data: text(modulesDep(input.modules)) });
  w.add({ kind: "file", path: `${mods}/modules.alias`, data: text(modulesAlias(input.modules)) });
  w.add({ kind: "file", path: `${mods}/modules.builtin`, data: text(modulesBuiltin(input.builtin ?? [])) });

  w.add({ kind: "file", path: "etc/passwd", data: text("root:x:0:0:root:/root:/bin/sh\n") });
  w.add({ kind: "file", path: "etc/group", data: text("root:x:0:\ntty:x:5:\n") });
  w.add({ kind: "file", path: "etc/hostname", data: text("nodevisor\n") });
  w.add({ kind: "file", path: "etc/profile", data: text(PROFILE_SCRIPT) });
  w.add({ kind: "file", path: "etc/inittab", data: text(INITTAB) });
  for (const dir of ["usr/share", "usr/share/udhcpc"]) w.add({ kind: "dir", path: dir, mode: 0o755 });
  w.add({ kind: "file", path: UDHCPC_SCRIPT_PATH.slice(1), data: text(UDHCPC_SCRIPT), mode: 0o755 });
  return w.finish();
}
