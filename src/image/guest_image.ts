// A built guest image on disk: a directory with kernel, initramfs, firmware and manifest.json (written last).

import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";

export interface GuestImage {
  name: string;
  dir: string;
  kernel: string;
  initrd: string;
  kernelVersion: string;
  /** Debian OpenSBI fw_dynamic.bin copied into the image dir. */
  firmware: string | null;
}

export const MANIFEST_FILE = "manifest.json";
/**
 * Bump whenever what goes into the image changes (the /init script, the module set or layout),
 * so images cached by an older nodevisor are rebuilt instead of silently reused.
 * 2: modules load on demand through busybox modprobe; powerdown listener; busybox init.
 * 5: DHCP on every eth* NIC with udhcpc and its hook script (address, route, MTU, /etc/resolv.conf); 8021q.
 * 6: the status console's renew-network request (a restored clone renews its leases, re-probing NICs with new MACs).
 * 7: /init writes the exit line from a subshell (a SIGCHLD during the write lost it) and retries it.
 */
export const MANIFEST_FORMAT = 7;

/** What manifest.json holds; file names are relative to the image directory. */
export interface ImageManifest {
  format: number;
  name: string;
  kernel: string;
  initrd: string;
  kernelVersion: string;
  firmware: string | null;
  /** The kernel's /boot/config-*, kept for checking which drivers are built in. (Debian's System.map is a placeholder, so it is not kept.) */
  kernelConfig: string | null;
  /** Modules the initramfs ships, each after its dependencies; the guest loads them on demand (modprobe). */
  modules: string[];
  packages: Array<{ name: string; version: string }>;
  mirror: string;
  builtAt: string;
}

/** `$XDG_CACHE_HOME/nodevisor`, or `~/.cache/nodevisor`. */
export function defaultCacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  if (xdg !== undefined && isAbsolute(xdg)) return join(xdg, "nodevisor");
  return join(homedir(), ".cache", "nodevisor");
}

export function imagesDir(cacheDir: string): string {
  return join(cacheDir, "images");
}

/** Writes manifest.json through a temporary file and a rename, so readers never see half of it. */
export function writeManifest(dir: string, manifest: ImageManifest): void {
  const tmp = join(dir, `.${MANIFEST_FILE}.${process.pid}.tmp`);
  writeFileSync(tmp, JSON.stringify(manifest, null, 2) + "\n");
  renameSync(tmp, join(dir, MANIFEST_FILE));
}

/** Reads an image directory; returns null when it is absent or incomplete (no manifest, or a listed file is missing). */
export function loadImage(dir: string): GuestImage | null {
  const manifestPath = join(dir, MANIFEST_FILE);
  if (!existsSync(manifestPath)) return null;
  let m: ImageManifest;
  try {
    m = JSON.parse(readFileSync(manifestPath, "utf8")) as ImageManifest;
  } catch {
    return null;
  }
  if (m.format !== MANIFEST_FORMAT || typeof m.kernel !== "string" || typeof m.initrd !== "string") return null;
  const image: GuestImage = {
    name: m.name,
    dir,
    kernel: join(dir, m.kernel),
    initrd: join(dir, m.initrd),
    kernelVersion: m.kernelVersion,
    firmware: m.firmware === null ? null : join(dir, m.firmware),
  };
  for (const file of [image.kernel, image.initrd, image.firmware]) {
    if (file !== null && !existsSync(file)) return null;
  }
  return image;
}

export function readManifest(dir: string): ImageManifest {
  return JSON.parse(readFileSync(join(dir, MANIFEST_FILE), "utf8")) as ImageManifest;
}

/** Resolves `--image NAME|DIR`: a directory holding manifest.json, or a name under `<cache>/images/`. */
export function resolveImage(nameOrDir: string, cacheDir: string = defaultCacheDir()): GuestImage {
  const looksLikePath = nameOrDir.includes("/") || nameOrDir === "." || nameOrDir === "..";
  const dir = looksLikePath ? resolve(nameOrDir) : join(imagesDir(cacheDir), nameOrDir);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    const hint = nameOrDir === "default" || !looksLikePath ? " Run `nodevisor image build` to build the default image, or pass --image DIR." : "";
    throw new Error(`Cannot use guest image "${nameOrDir}": ${dir} does not exist.${hint}`);
  }
  const image = loadImage(dir);
  if (image === null) {
    throw new Error(
      `Cannot use guest image "${nameOrDir}": ${join(dir, MANIFEST_FILE)} is missing, unreadable or names a missing file, ` +
        `so the image is incomplete. Rebuild it with \`nodevisor image build --rebuild\`.`,
    );
  }
  return image;
}
