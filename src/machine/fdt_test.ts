import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FdtBuilder, FdtError, FDT_MAGIC, FDT_BEGIN_NODE, FDT_END_NODE, FDT_PROP, FDT_NOP, FDT_END } from "./fdt.js";

interface ParsedNode {
  name: string;
  props: Map<string, Uint8Array>;
  children: ParsedNode[];
}

interface ParsedFdt {
  version: number;
  lastComp: number;
  bootCpu: number;
  reservations: Array<[bigint, bigint]>;
  root: ParsedNode;
  stringsSize: number;
}

// An independent reader that checks every structural rule the writer must follow.
function parseFdt(b: Uint8Array): ParsedFdt {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  assert.equal(v.getUint32(0), FDT_MAGIC, "magic");
  const total = v.getUint32(4);
  const offStruct = v.getUint32(8);
  const offStrings = v.getUint32(12);
  const offRsv = v.getUint32(16);
  const sizeStrings = v.getUint32(32);
  const sizeStruct = v.getUint32(36);
  assert.equal(total, b.length, "totalsize");
  assert.equal(offRsv % 8, 0, "reservation block alignment");
  assert.equal(offStruct % 4, 0, "structure block alignment");
  assert.ok(offStruct + sizeStruct <= offStrings && offStrings + sizeStrings <= total, "blocks inside the blob");
  const reservations: Array<[bigint, bigint]> = [];
  for (let at = offRsv; ; at += 16) {
    const a = v.getBigUint64(at);
    const s = v.getBigUint64(at + 8);
    if (a === 0n && s === 0n) break;
    reservations.push([a, s]);
  }
  const cstr = (at: number, end: number): string => {
    let e = at;
    while (b[e] !== 0) {
      e++;
      assert.ok(e < end, "string is NUL-terminated inside its block");
    }
    return new TextDecoder().decode(b.subarray(at, e));
  };
  let p = offStruct;
  const end = offStruct + sizeStruct;
  const stack: ParsedNode[] = [];
  let root: ParsedNode | null = null;
  for (;;) {
    assert.ok(p < end, "structure block ends with FDT_END");
    const tok = v.getUint32(p);
    p += 4;
    if (tok === FDT_BEGIN_NODE) {
      const name = cstr(p, end);
      p = (p + name.length + 1 + 3) & ~3;
      const node: ParsedNode = { name, props: new Map(), children: [] };
      if (stack.length === 0) {
        assert.equal(root, null, "only one root");
        root = node;
      } else stack[stack.length - 1].children.push(node);
      stack.push(node);
    } else if (tok === FDT_END_NODE) {
      assert.ok(stack.pop(), "END_NODE matches a BEGIN_NODE");
    } else if (tok === FDT_PROP) {
      const len = v.getUint32(p);
      const nameOff = v.getUint32(p + 4);
      assert.ok(nameOff < sizeStrings, "property name offset inside strings block");
      const node = stack[stack.length - 1];
      assert.ok(node, "property inside a node");
      assert.equal(node.children.length, 0, "properties precede children");
      node.props.set(cstr(offStrings + nameOff, offStrings + sizeStrings), b.slice(p + 8, p + 8 + len));
      p = (p + 8 + len + 3) & ~3;
    } else if (tok === FDT_NOP) {
      continue;
    } else {
      assert.equal(tok, FDT_END, `unknown token ${tok}`);
      break;
    }
  }
  assert.equal(p, end, "FDT_END is the last word of the structure block");
  assert.equal(stack.length, 0, "all nodes closed");
  assert.ok(root);
  return { version: v.getUint32(20), lastComp: v.getUint32(24), bootCpu: v.getUint32(28), reservations, root, stringsSize: sizeStrings };
}

const cells = (u: Uint8Array): number[] => Array.from({ length: u.length / 4 }, (_, i) => new DataView(u.buffer, u.byteOffset).getUint32(i * 4));
const strs = (u: Uint8Array): string[] => new TextDecoder().decode(u).split("\0").slice(0, -1);

// A small virt-like tree that exercises every property kind.
function sampleTree(): Uint8Array {
  const f = new FdtBuilder();
  f.addReservation(0x80000000, 0x40000);
  f.setBootCpu(0);
  const plic = f.allocatePhandle();
  const cpuIntc = f.allocatePhandle();
  f.beginNode("");
  f.propU32("#address-cells", 2);
  f.propU32("#size-cells", 2);
  f.propString("compatible", "riscv-virtio");
  f.propString("model", "nodevisor");
  f.beginNode("chosen");
  f.propString("bootargs", "console=ttyS0");
  f.propString("stdout-path", "/soc/serial@10000000");
  f.propU64("linux,initrd-start", 0x88000000n);
  f.propU64("linux,initrd-end", 0x88100000);
  f.endNode();
  f.beginNode("memory@80000000");
  f.propString("device_type", "memory");
  f.propU64s("reg", [0x80000000, 0x20000000]);
  f.endNode();
  f.beginNode("cpus");
  f.propU32("#address-cells", 1);
  f.propU32("#size-cells", 0);
  f.propU32("timebase-frequency", 10000000);
  f.beginNode("cpu@0");
  f.propString("device_type", "cpu");
  f.propU32("reg", 0);
  f.propString("status", "okay");
  f.propString("compatible", "riscv");
  f.propString("riscv,isa", "rv64imafdc");
  f.propString("mmu-type", "riscv,sv39");
  f.beginNode("interrupt-controller");
  f.propU32("#address-cells", 0);
  f.propU32("#interrupt-cells", 1);
  f.propEmpty("interrupt-controller");
  f.propString("compatible", "riscv,cpu-intc");
  f.propU32("phandle", cpuIntc);
  f.endNode();
  f.endNode();
  f.endNode();
  f.beginNode("soc");
  f.propU32("#address-cells", 2);
  f.propU32("#size-cells", 2);
  f.propString("compatible", "simple-bus");
  f.propEmpty("ranges");
  f.beginNode("serial@10000000");
  f.propString("compatible", "ns16550a");
  f.propCells("reg", [0, 0x10000000, 0, 0x100]);
  f.propU32("clock-frequency", 3686400);
  f.propU32("interrupts", 10);
  f.propU32("interrupt-parent", plic);
  f.endNode();
  f.beginNode("plic@c000000");
  f.propStrings("compatible", ["sifive,plic-1.0.0", "riscv,plic0"]);
  f.propCells("reg", [0, 0xc000000, 0, 0x600000]);
  f.propU32("#address-cells", 0);
  f.propU32("#interrupt-cells", 1);
  f.propEmpty("interrupt-controller");
  f.propCells("interrupts-extended", [cpuIntc, 11, cpuIntc, 9]);
  f.propU32("riscv,ndev", 95);
  f.propU32("phandle", plic);
  f.endNode();
  f.endNode();
  f.beginNode("blob");
  f.propBytes("data", new Uint8Array([1, 2, 3]));
  f.endNode();
  f.endNode();
  return f.finish();
}

test("writes a DTB whose header, blocks and nodes an independent reader accepts", () => {
  const dtb = sampleTree();
  const t = parseFdt(dtb);
  assert.equal(t.version, 17);
  assert.equal(t.lastComp, 16);
  assert.equal(t.bootCpu, 0);
  assert.deepEqual(t.reservations, [[0x80000000n, 0x40000n]]);
  assert.equal(t.root.name, "");
  assert.deepEqual(t.root.children.map((c) => c.name), ["chosen", "memory@80000000", "cpus", "soc", "blob"]);
  const [chosen, memory, cpus, soc, blob] = t.root.children;
  assert.deepEqual(strs(chosen.props.get("bootargs")!), ["console=ttyS0"]);
  assert.deepEqual(cells(chosen.props.get("linux,initrd-start")!), [0, 0x88000000]);
  assert.deepEqual(cells(memory.props.get("reg")!), [0, 0x80000000, 0, 0x20000000]);
  assert.equal(cpus.children[0].children[0].props.get("interrupt-controller")!.length, 0);
  const plic = soc.children[1];
  assert.deepEqual(strs(plic.props.get("compatible")!), ["sifive,plic-1.0.0", "riscv,plic0"]);
  assert.deepEqual(cells(plic.props.get("interrupts-extended")!), [2, 11, 2, 9]);
  assert.deepEqual(cells(soc.children[0].props.get("interrupt-parent")!), [1]);
  assert.deepEqual(Array.from(blob.props.get("data")!), [1, 2, 3]);
});

test("stores each property name once in the strings block", () => {
  const f = new FdtBuilder();
  f.beginNode("");
  f.propU32("#address-cells", 2);
  f.beginNode("a");
  f.propU32("#address-cells", 1);
  f.endNode();
  f.endNode();
  const t = parseFdt(f.finish());
  assert.equal(t.stringsSize, "#address-cells".length + 1);
});

test("writes 64-bit values above 2^32 as two big-endian cells", () => {
  const f = new FdtBuilder();
  f.beginNode("");
  f.propU64s("reg", [0x1_2345_6789n, 0xffff_ffff_ffff_ffffn]);
  f.endNode();
  const t = parseFdt(f.finish());
  assert.deepEqual(cells(t.root.props.get("reg")!), [1, 0x23456789, 0xffffffff, 0xffffffff]);
});

test("refuses misuse with sentences instead of writing a broken tree", () => {
  const f = new FdtBuilder();
  assert.throws(() => f.propU32("x", 1), /no node is open/);
  assert.throws(() => f.beginNode("soc"), /first node must be the root/);
  f.beginNode("");
  assert.throws(() => f.propU32("x", -1), FdtError);
  assert.throws(() => f.propU32("x", 2 ** 32), /unsigned 32-bit/);
  assert.throws(() => f.propU64("x", 2 ** 60), /pass a bigint/);
  assert.throws(() => f.propString("x", "a\0b"), /NUL/);
  assert.throws(() => f.beginNode("bad name"), /not a valid node name/);
  f.propU32("x", 1);
  assert.throws(() => f.propU32("x", 2), /already set/);
  f.beginNode("child");
  f.endNode();
  assert.throws(() => f.beginNode("child"), /already has a child/);
  assert.throws(() => f.propU32("late", 1), /before child nodes/);
  assert.throws(() => f.finish(), /still open/);
  f.endNode();
  assert.throws(() => f.endNode(), /no node is open/);
  assert.throws(() => f.beginNode(""), /already closed/);
  assert.equal(new Uint8Array(f.finish().subarray(0, 4)).join(), "208,13,254,237");
});

// dtc is Debian's device-tree-compiler; set DTC=/path/to/dtc to use one that is not on PATH.
const dtc = process.env.DTC ?? "dtc";
const haveDtc = spawnSync(dtc, ["--version"]).status === 0;

test("dtc decompiles the DTB without errors or warnings", { skip: haveDtc ? false : "dtc not found: install the device-tree-compiler package (or set DTC) to run this check" }, () => {
  const dir = mkdtempSync(join(tmpdir(), "fdt-test-"));
  try {
    const file = join(dir, "t.dtb");
    writeFileSync(file, sampleTree());
    const r = spawnSync(dtc, ["-I", "dtb", "-O", "dts", file], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, "");
    const dts = r.stdout;
    assert.match(dts, /\/memreserve\/\s+0x0*80000000 0x0*40000;/);
    // dtc 1.6 prints string lists as "a\0b", later versions as "a", "b".
    assert.match(dts, /compatible = "sifive,plic-1\.0\.0(\\0|", ")riscv,plic0";/);
    assert.match(dts, /reg = <0x00 0x10000000 0x00 0x100>;/);
    assert.match(dts, /interrupts-extended = <0x02 0x0b 0x02 0x09>;/);
    assert.match(dts, /linux,initrd-end = <0x00 0x88100000>;/);
    assert.match(dts, /data = \[01 02 03\];/);
    assert.match(dts, /interrupt-controller;/);
    // And back again: dtc must accept its own rendering of our tree.
    const back = spawnSync(dtc, ["-I", "dts", "-O", "dtb", "-o", join(dir, "u.dtb"), "-"], { input: dts, encoding: "utf8" });
    assert.equal(back.status, 0, back.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
