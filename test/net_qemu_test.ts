// Interoperability with the reference VMM: a QEMU VM (same kernel and initramfs) plugged into a
// nodevisor switch with `-netdev stream` exchanges pings and a file with a nodevisor VM.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureTestImage, nodevisor } from "./helpers.js";
import { VmProcess } from "./testing/vm_process.js";
import { defaultCacheDir, loadImage } from "../src/image/guest_image.js";
import { commandArgument, parseSerialFallback } from "../src/image/init_script.js";

const QEMU_MAC = "52:54:00:aa:00:01";

test("a QEMU VM on our switch (-netdev stream) and a nodevisor VM exchange pings and a file", { timeout: 400_000 }, async (t) => {
  if (spawnSync("qemu-system-riscv64", ["--version"]).error) return t.skip("qemu-system-riscv64 is not installed");
  await ensureTestImage();
  const image = loadImage(join(defaultCacheDir(), "images", "default"))!;
  const dir = mkdtempSync(join(tmpdir(), "nv-qemu-net-"));
  const env = { NODEVISOR_SWITCH_DIR: dir };
  const sock = join(dir, "interop.sock");
  const created = await nodevisor(["switch", "create", "interop", "--static", `${QEMU_MAC}=10.0.3.50`], { env });
  assert.equal(created.status, 0, created.stderr);
  const alpha = VmProcess.nodevisor(
    ["--name", "alpha", "--net", "switch=interop", "--", "sh", "-c",
      "dd if=/dev/urandom of=/tmp/f bs=1M count=4 2>/dev/null; md5sum /tmp/f; httpd -p 80 -h /tmp; echo READY; " +
      "until ping -c 1 -W 1 10.0.3.50 >/dev/null; do :; done; echo PINGED-QEMU; sleep 600"],
    env,
  );
  let qemu: VmProcess | null = null;
  try {
    const sum = (await alpha.waitFor(/([0-9a-f]{32})  \/tmp\/f\n(.*\n)*READY/))[1];
    qemu = new VmProcess("qemu-system-riscv64", [
      "-M", "virt", "-m", "256", "-smp", "1", "-nographic", "-no-reboot", "-bios", image.firmware!,
      "-kernel", image.kernel, "-initrd", image.initrd,
      "-append", `console=ttyS0 panic=-1 quiet ${commandArgument("ip -4 -o addr show eth0; ping -c 2 alpha && wget -q -O /tmp/f http://alpha/f && md5sum /tmp/f")}`,
      "-netdev", `stream,id=n0,server=off,addr.type=unix,addr.path=${sock}`,
      "-device", `virtio-net-device,netdev=n0,mac=${QEMU_MAC}`,
    ]);
    await qemu.exited;
    const r = parseSerialFallback(qemu.stdout);
    assert.ok(r, `QEMU's guest did not finish its command:\n${qemu.stdout.slice(-3000)}`);
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, /inet 10\.0\.3\.50\//, "the switch's static lease");
    assert.match(r.output, /2 packets transmitted, 2 packets received/);
    assert.match(r.output, new RegExp(`${sum}  /tmp/f`));
    await alpha.waitFor(/PINGED-QEMU/, 60_000);
  } finally {
    await Promise.all([alpha.stop(), qemu?.stop()]);
    await nodevisor(["switch", "delete", "interop"], { env });
    rmSync(dir, { recursive: true, force: true });
  }
});
