// Guest test programs in C (test/guest/*.c), built with Debian's riscv64 cross compiler and
// handed to the guest as a raw disk holding the static ELF: the guest copies it out with dd.

import { execFileSync } from "node:child_process";
import { copyFileSync, statSync, truncateSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../helpers.js";

const CC = "riscv64-linux-gnu-gcc";

/** Builds test/guest/NAME.c statically; returns a raw disk image holding it, zero-padded to 512 bytes. */
export function buildGuestProgramDisk(name: string, dir: string, flags: string[] = []): string {
  const exe = join(dir, name);
  try {
    execFileSync(CC, ["-O2", "-static", ...flags, "-o", exe, join(ROOT, `test/guest/${name}.c`)], { stdio: "pipe" });
  } catch (e) {
    throw new Error(`Cannot build the guest test program ${name}.c with ${CC}: ${(e as Error).message.split("\n")[0]}. Install Debian's gcc-riscv64-linux-gnu (bash .ci/run does).`);
  }
  const disk = join(dir, `${name}.img`);
  copyFileSync(exe, disk);
  truncateSync(disk, Math.ceil(statSync(exe).size / 512) * 512);
  return disk;
}

/** A guest shell line that copies the program off /dev/vdX and runs it with `args`. */
export function runFromDisk(device: string, args = ""): string {
  // dd copies whole sectors: the zero padding after the ELF is harmless.
  return `dd if=${device} of=/tmp/prog bs=512 2>/dev/null && chmod +x /tmp/prog && /tmp/prog ${args}`;
}
