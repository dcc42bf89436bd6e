// Boots the built default image under QEMU (the reference VMM), to check /init's protocol against a real kernel.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadImage, type GuestImage } from "./guest_image.js";
import { defaultCacheDir } from "./guest_image.js";
import { commandArgument, INIT_STARTED_LINE, parseExitLine, parseSerialFallback } from "./init_script.js";

function imageOrSkip(t: { skip: (why: string) => void }): GuestImage | null {
  if (spawnSync("qemu-system-riscv64", ["--version"]).error) {
    t.skip("qemu-system-riscv64 is not installed");
    return null;
  }
  const image = loadImage(join(process.env.NODEVISOR_CACHE_DIR ?? defaultCacheDir(), "images", "default"));
  if (image === null || image.firmware === null) t.skip("no default image has been built on this machine (nodevisor image build)");
  return image;
}

function qemu(image: GuestImage, append: string, extra: string[]): Promise<string> {
  const args = ["-M", "virt", "-m", "512", "-smp", "1", "-nographic", "-no-reboot", "-bios", image.firmware!,
    "-kernel", image.kernel, "-initrd", image.initrd, "-append", `console=ttyS0 panic=-1 quiet ${append}`, ...extra];
  return new Promise((resolve, reject) => {
    const child = spawn("qemu-system-riscv64", args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (b: Buffer) => (out += b.toString("latin1")));
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`qemu exited with ${code}; serial output:\n${out.slice(-2000)}`));
    });
  });
}

test("command mode over three virtio consoles: stdout, stderr, exit line, only the modules present devices need", { timeout: 150_000 }, async (t) => {
  const image = imageOrSkip(t);
  if (image === null) return;
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-qemu-"));
  try {
    const consoles = [0, 1, 2].flatMap((i) => [
      "-chardev", `file,id=c${i},path=${join(dir, `hvc${i}`)}`,
      "-device", `virtio-serial-device,max_ports=1,id=s${i}`,
      "-device", `virtconsole,chardev=c${i},bus=s${i}.0`,
    ]);
    const serial = await qemu(image, commandArgument("hostname; cut -d' ' -f1 /proc/modules | sort; echo err >&2; exit 42"), consoles);
    assert.ok(serial.includes(INIT_STARTED_LINE));
    const out = readFileSync(join(dir, "hvc0"), "utf8").split("\n");
    assert.equal(out[0], "nodevisor");
    // The consoles' driver is built in and no other virtio device is attached, so only the transport is loaded.
    assert.deepEqual(out.slice(1, -1), ["virtio_mmio"]);
    assert.equal(readFileSync(join(dir, "hvc1"), "utf8"), "err\n");
    assert.equal(parseExitLine(readFileSync(join(dir, "hvc2"), "utf8")), 42);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("command mode without virtio consoles falls back to markers on the serial console", { timeout: 150_000 }, async (t) => {
  const image = imageOrSkip(t);
  if (image === null) return;
  const serial = await qemu(image, commandArgument("printf 'a\\nb'; exit 3"), []);
  assert.deepEqual(parseSerialFallback(serial), { output: "a\nb", status: 3 });
});
