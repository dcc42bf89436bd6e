// Builds the default guest image from Debian trixie riscv64 packages: kernel, OpenSBI firmware and a busybox initramfs.

import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { aptUpdate, createAptSession, downloadPackages, resolveDependency, showPackages } from "./apt_fetch.js";
import { findHostDebianMirror } from "./apt_mirror.js";
import { FALLBACK_APPLETS, findBusyboxApplets } from "./busybox_applets.js";
import { defaultCacheDir, imagesDir, loadImage, MANIFEST_FILE, MANIFEST_FORMAT, writeManifest, type GuestImage } from "./guest_image.js";
import { withBuildLock } from "./build_lock.js";
import { buildInitramfs } from "./initramfs.js";
import { GUEST_MODULES, selectModules } from "./kernel_modules.js";
import { runTool } from "./run_tool.js";

export const DEFAULT_IMAGE_NAME = "default";
export const DEBIAN_SUITE = "trixie";
export const GUEST_ARCH = "riscv64";
const KERNEL_METAPACKAGE = "linux-image-riscv64";
const KERNEL_PACKAGE = /^linux-image-\d[\w.+~-]*-riscv64$/;
const FIRMWARE_PATH = "usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin";
const INITRD_FILE = "initrd.cpio";
/** RISC-V Linux "Image" header: magic2 "RSC\x05" at offset 0x38. */
const RISCV_IMAGE_MAGIC_OFFSET = 0x38;
const RISCV_IMAGE_MAGIC = Buffer.from("RSC\x05", "latin1");

export interface BuildProgress {
  /** "download" (bytes), "unpack" (packages), "modules" (modules), "initramfs" (bytes). */
  phase: string;
  done: number;
  total: number;
}

export interface EnsureImageOptions {
  cacheDir?: string;
  rebuild?: boolean;
  onProgress?: (p: BuildProgress) => void;
  log?: (line: string) => void;
}

/** Returns the cached default image when complete; otherwise builds it into `<cache>/images/default/`. */
export async function ensureDefaultImage(opts: EnsureImageOptions = {}): Promise<GuestImage> {
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const imageDir = join(imagesDir(cacheDir), DEFAULT_IMAGE_NAME);
  if (!opts.rebuild) {
    const cached = loadImage(imageDir);
    if (cached !== null) return cached;
  }
  mkdirSync(imagesDir(cacheDir), { recursive: true });
  return withBuildLock(join(imagesDir(cacheDir), `.${DEFAULT_IMAGE_NAME}.lock`), opts.log, async (waited) => {
    // Another process may have finished the same build while we waited for the lock.
    if (waited) {
      const built = loadImage(imageDir);
      if (built !== null) return built;
    }
    await buildDefaultImage(cacheDir, imageDir, opts);
    const image = loadImage(imageDir);
    if (image === null) throw new Error(`Cannot use the image just built in ${imageDir}: its manifest or files are missing. Build it again.`);
    return image;
  });
}

async function buildDefaultImage(cacheDir: string, imageDir: string, opts: EnsureImageOptions): Promise<void> {
  const log = opts.log ?? (() => {});
  const progress = opts.onProgress ?? (() => {});
  const started = Date.now();
  const elapsed = (): string => `${((Date.now() - started) / 1000).toFixed(1)} s`;

  const mirror = findHostDebianMirror();
  log(`Debian mirror (from the host's apt configuration): ${mirror}`);
  const apt = createAptSession(join(cacheDir, "apt"), mirror, DEBIAN_SUITE, GUEST_ARCH);
  progress({ phase: "download", done: 0, total: 0 });
  try {
    await aptUpdate(apt);
  } catch (e) {
    // Offline rebuilds can still use the index (and packages) fetched last time.
    if (!hasPackageIndex(join(cacheDir, "apt", "lists"))) throw e;
    log(`could not refresh the package index; using the one from the last build (${(e as Error).message.split("\n")[0]})`);
  }
  const kernelPackage = await resolveDependency(apt, KERNEL_METAPACKAGE, KERNEL_PACKAGE);
  log(`${KERNEL_METAPACKAGE} depends on ${kernelPackage}`);
  const packages = await showPackages(apt, [kernelPackage, "busybox-static", "opensbi"]);
  const debs = await downloadPackages(apt, packages, (done, total) => progress({ phase: "download", done, total }));
  log(`downloaded ${packages.map((p) => `${p.name} ${p.version}`).join(", ")} (${mib(packages.reduce((n, p) => n + p.size, 0))}) at ${elapsed()}`);

  // We hold the lock, so any other build-* directory is left over from a build that died.
  for (const f of readdirSync(cacheDir)) if (f.startsWith("build-")) rmSync(join(cacheDir, f), { recursive: true, force: true });
  const root = join(cacheDir, `build-${process.pid}`);
  mkdirSync(root, { recursive: true });
  try {
    for (const [i, deb] of debs.entries()) {
      progress({ phase: "unpack", done: i, total: debs.length });
      await runTool("dpkg-deb", ["-x", deb, root], {
        purpose: `unpack ${packages[i]!.name}`,
        missingHint: "This host has no dpkg; pass --kernel FILE and --initrd FILE instead.",
      });
    }
    progress({ phase: "unpack", done: debs.length, total: debs.length });
    log(`unpacked at ${elapsed()}`);

    const kernel = findKernel(root);
    log(`kernel ${kernel.version}`);
    const moduleRoot = [join(root, "usr/lib/modules", kernel.version), join(root, "lib/modules", kernel.version)].find(existsSync);
    if (moduleRoot === undefined) throw new Error(`Cannot find the modules of kernel ${kernel.version} in ${kernelPackage}; the package looks incomplete.`);
    const selection = await selectModules(moduleRoot, GUEST_MODULES, {
      log,
      onModule: (done, known) => progress({ phase: "modules", done, total: known }),
    });
    if (selection.builtin.length > 0) log(`built into the kernel, not loaded: ${selection.builtin.join(", ")}`);
    log(`modules shipped (loaded on demand): ${selection.modules.map((m) => m.name).join(" ")}`);

    const busyboxPath = ["usr/bin/busybox", "bin/busybox"].map((p) => join(root, p)).find(existsSync);
    if (busyboxPath === undefined) throw new Error("Cannot find /usr/bin/busybox in busybox-static; the package looks incomplete.");
    const busybox = readFileSync(busyboxPath);
    let applets = findBusyboxApplets(busybox);
    if (applets === null) {
      log("busybox applet table not found in the binary; linking a fixed list of common applets");
      applets = FALLBACK_APPLETS;
    }

    progress({ phase: "initramfs", done: 0, total: 1 });
    const initrd = buildInitramfs({ kernelVersion: kernel.version, busybox, applets, modules: selection.modules, builtin: selection.kernelBuiltin });
    progress({ phase: "initramfs", done: 1, total: 1 });

    // Drop the old manifest first: from here until the new one is written, the image counts as absent.
    mkdirSync(imageDir, { recursive: true });
    rmSync(join(imageDir, MANIFEST_FILE), { force: true });
    for (const f of readdirSync(imageDir)) rmSync(join(imageDir, f), { recursive: true, force: true });
    const kernelFile = `vmlinux-${kernel.version}`;
    copyFileSync(kernel.path, join(imageDir, kernelFile));
    writeFileSync(join(imageDir, INITRD_FILE), initrd);
    const copyIfPresent = (from: string, to: string): string | null => {
      if (!existsSync(from)) return null;
      copyFileSync(from, join(imageDir, to));
      return to;
    };
    const firmware = copyIfPresent(join(root, FIRMWARE_PATH), "fw_dynamic.bin");
    if (firmware === null) log(`opensbi has no ${FIRMWARE_PATH}; the image has no firmware and the built-in SBI must be used`);
    writeManifest(imageDir, {
      format: MANIFEST_FORMAT,
      name: DEFAULT_IMAGE_NAME,
      kernel: kernelFile,
      initrd: INITRD_FILE,
      kernelVersion: kernel.version,
      firmware,
      kernelConfig: copyIfPresent(join(root, "boot", `config-${kernel.version}`), `config-${kernel.version}`),
      modules: selection.modules.map((m) => m.name),
      packages: packages.map((p) => ({ name: p.name, version: p.version })),
      mirror,
      builtAt: new Date().toISOString(),
    });
    log(`image written to ${imageDir} (initramfs ${mib(initrd.length)}) in ${elapsed()}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/** Finds /boot/vmlinux-* and checks it is a RISC-V Linux Image. */
export function findKernel(root: string): { path: string; version: string } {
  const boot = join(root, "boot");
  const names = existsSync(boot) ? readdirSync(boot).filter((f) => f.startsWith("vmlinux-")) : [];
  if (names.length !== 1) {
    throw new Error(`Cannot find the kernel: expected one /boot/vmlinux-* in the kernel package, found ${names.length === 0 ? "none" : names.join(", ")}.`);
  }
  const path = join(boot, names[0]!);
  assertRiscvImage(readFileSync(path).subarray(0, 0x40), names[0]!);
  return { path, version: names[0]!.slice("vmlinux-".length) };
}

export function assertRiscvImage(header: Uint8Array, what: string): void {
  const magic = Buffer.from(header.subarray(RISCV_IMAGE_MAGIC_OFFSET, RISCV_IMAGE_MAGIC_OFFSET + 4));
  if (!magic.equals(RISCV_IMAGE_MAGIC)) {
    throw new Error(`Cannot use ${what} as the guest kernel: it has no RISC-V Image magic "RSC\\x05" at offset 0x38.`);
  }
}

function hasPackageIndex(listsDir: string): boolean {
  return existsSync(listsDir) && readdirSync(listsDir).some((f) => f.includes("_Packages"));
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}
