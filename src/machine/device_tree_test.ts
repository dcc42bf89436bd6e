import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { buildDeviceTree } from "./device_tree.js";

const hasDtc = spawnSync("dtc", ["--version"]).status === 0;

function decompile(dtb: Uint8Array): string {
  return execFileSync("dtc", ["-I", "dtb", "-O", "dts", "-q", "-"], { input: dtb }).toString();
}

test("the device tree describes the configured harts, RAM, initrd and virtio slots", { skip: !hasDtc && "dtc (Debian device-tree-compiler) is not installed" }, () => {
  const dts = decompile(
    buildDeviceTree({ cpus: 2, memoryBytes: 512 << 20, bootargs: "console=ttyS0", initrd: { start: 0x9000_0000, end: 0x9010_0000 }, virtioSlots: [0, 1] }),
  );
  assert.match(dts, /bootargs = "console=ttyS0"/);
  assert.match(dts, /memory@80000000 \{[^}]*reg = <0x00 0x80000000 0x00 0x20000000>/);
  assert.match(dts, /linux,initrd-start = <0x00 0x90000000>/);
  assert.match(dts, /cpu@1 \{/);
  assert.doesNotMatch(dts, /cpu@2 \{/);
  assert.match(dts, /riscv,isa = "rv64imafdc_zicsr_zifencei_zicntr_zbb_sstc"/);
  assert.match(dts, /virtio_mmio@10001000/);
  assert.match(dts, /virtio_mmio@10002000/);
  assert.doesNotMatch(dts, /virtio_mmio@10003000/);
  assert.match(dts, /compatible = "ns16550a"/);
  assert.match(dts, /compatible = "syscon-poweroff"/);
});

test("dtc accepts the tree without warnings", { skip: !hasDtc && "dtc (Debian device-tree-compiler) is not installed" }, () => {
  const dtb = buildDeviceTree({ cpus: 4, memoryBytes: 1 << 30, bootargs: "", initrd: null, virtioSlots: [0, 1, 2] });
  const r = spawnSync("dtc", ["-I", "dtb", "-O", "dts", "-o", "/dev/null", "-"], { input: dtb });
  assert.equal(r.status, 0);
  assert.equal(r.stderr.toString(), "");
});
