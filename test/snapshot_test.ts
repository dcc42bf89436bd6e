// Snapshots of running VMs end to end: a guest counting in a shell loop is saved while it runs,
// runs on, and its snapshot restored in a new process counts on from the snapshot point, with
// its tmpfs file and uptime agreeing. Bad snapshot files are refused with a sentence.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { createQcow2 } from "../src/storage/qcow2/create.js";
import { sectorText } from "./testing/disks.js";
import { CLI, ensureTestImage, nodevisor } from "./helpers.js";
import { typeLine, until, VmProcess } from "./testing/vm_process.js";
import { writeTinyKernels } from "../src/host/testing/tiny_kernels.js";

before(ensureTestImage, { timeout: 600_000 });

const ticks = (out: string): number[] => [...out.matchAll(/tick (\d+)/g)].map((m) => Number(m[1]));
const type = typeLine;

test("a running 2-vCPU guest is saved, runs on, and its restore counts on from the snapshot point", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-snap-"));
  const snap = join(dir, "vm.snap");
  const first = VmProcess.nodevisor(["--cpus", "2", "--control-socket", join(dir, "a.sock"), "--console", "none"]);
  let second: VmProcess | null = null;
  try {
    const a = await first.connect(join(dir, "a.sock"));
    await first.waitFor(/~# /, 900_000);
    // The counter file is replaced by a rename: `echo $i > /tmp/count` truncates it first, and the `cat` below, on the
    // other vCPU, could read it empty in between (the "lost typed line" of earlier notes was that race).
    await type(a, "i=0; while :; do i=$((i+1)); echo $i > /tmp/count.new; mv /tmp/count.new /tmp/count; echo tick $i; sleep 0.3; done &");
    await first.waitFor(/tick 4\b/);
    await type(a, "cat /proc/uptime > /tmp/uptime-at-save");
    await first.waitFor(/tick 6\b/);
    const before = Math.max(...ticks(first.stdout));
    const saved = await a.execute<{ bytes: number; ramPages: number; pausedMs: number }>("snapshot-save", { path: snap });
    const after = Math.max(...ticks(first.stdout));
    assert.ok(saved.ramPages > 1000 && saved.bytes > saved.ramPages * 4096, JSON.stringify(saved));
    console.log(`# snapshot: ${(saved.bytes / 2 ** 20).toFixed(1)} MiB, guest stopped ${saved.pausedMs} ms`);
    await first.waitFor(new RegExp(`tick ${after + 6}\\b`));
    await a.execute("quit");
    await first.exited;

    second = new VmProcess(process.execPath, ["--import", "tsx", CLI, "run", "--restore", snap, "--control-socket", join(dir, "b.sock"), "--console", "none"]);
    const b = await second.connect(join(dir, "b.sock"));
    await second.waitFor(/tick \d+[\s\S]*tick \d+[\s\S]*tick \d+/, 120_000);
    const resumed = ticks(second.stdout);
    assert.ok(resumed[0]! > before && resumed[0]! <= after + 2, `the restored guest went on at tick ${resumed[0]} (snapshot taken between ticks ${before} and ${after})`);
    assert.deepEqual(resumed.slice(0, 3), [resumed[0], resumed[0]! + 1, resumed[0]! + 2], "it counts on, one by one");
    await type(b, "echo count=$(cat /tmp/count) up=$(cut -d' ' -f1 /proc/uptime) saved=$(cut -d' ' -f1 /tmp/uptime-at-save)");
    // waitFor's output tail would be all ticks: a failure shows what the restored guest printed besides them.
    const restored = second;
    const m = await restored.waitFor(/count=(\d+) up=([\d.]+) saved=([\d.]+)\s/, 120_000).catch((e: Error) => {
      throw new Error(`${e.message.split("\n")[0]}\nthe restored guest's output without its ticks:\n${restored.stdout.replace(/tick \d+\r?\n/g, "").slice(-2000)}`);
    });
    assert.ok(Number(m[1]) >= resumed[0]!, "the tmpfs file agrees with the counter");
    assert.ok(Number(m[2]) > Number(m[3]), `uptime went on from the snapshot (${m[3]} s then, ${m[2]} s now)`);
    await b.execute("quit");
    await second.exited;
  } finally {
    await first.stop();
    await second?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("run --restore refuses a damaged snapshot and machine options with one sentence", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-snap-"));
  try {
    const bad = join(dir, "bad.snap");
    // A format-2 prologue for 1 MiB of RAM, followed by a trailer of garbage.
    const prologue = Buffer.alloc(4096);
    prologue.write("NVSNAPSH", 0, "latin1");
    prologue.writeUInt32LE(2, 8);
    prologue.writeBigUInt64LE(4096n + (1n << 20n), 16);
    prologue.writeBigUInt64LE(1n << 20n, 24);
    writeFileSync(bad, Buffer.concat([prologue, Buffer.alloc(1 << 20), Buffer.alloc(100, 1)]));
    const r = await nodevisor(["run", "--restore", bad]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /is not a usable nodevisor snapshot: its checksum does not match/);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    const clash = await nodevisor(["run", "--restore", bad, "--memory", "1G"]);
    assert.equal(clash.status, 2);
    assert.match(clash.stderr, /--restore takes the VM's --memory from the snapshot/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a snapshot of a VM writing to a qcow2 disk: the restore sees exactly what was written before it", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-snapdisk-"));
  const snap = join(dir, "vm.snap");
  const disk = join(dir, "data.qcow2");
  await createQcow2(disk, { size: 16 << 20 });
  const first = VmProcess.nodevisor(["--disk", disk, "--control-socket", join(dir, "a.sock"), "--console", "none"]);
  let second: VmProcess | null = null;
  try {
    const a = await first.connect(join(dir, "a.sock"));
    await first.waitFor(/~# /, 900_000);
    // Block i holds "block i"; fsync per write (conv=fsync), so the disk has what the guest believes it wrote.
    await type(a, "i=0; while :; do i=$((i+1)); echo block $i | dd of=/dev/vda bs=512 seek=$i count=1 conv=sync,fsync 2>/dev/null; echo tick $i; sleep 0.3; done &");
    await first.waitFor(/tick 4\b/);
    const saved = await a.execute<{ disks: Array<{ device: string; frozen: string; active: string }> }>("snapshot-save", { path: snap });
    const after = Math.max(...ticks(first.stdout));
    assert.deepEqual(saved.disks, [{ device: "vda", frozen: disk, active: `${snap}.vda.after.qcow2` }]);
    await first.waitFor(new RegExp(`tick ${after + 6}\\b`));
    await a.execute("quit");
    await first.exited;

    second = new VmProcess(process.execPath, ["--import", "tsx", CLI, "run", "--restore", snap, "--name", "r1", "--control-socket", join(dir, "b.sock"), "--console", "none"]);
    const b = await second.connect(join(dir, "b.sock"));
    await second.waitFor(/tick \d+/, 120_000);
    await type(b, "kill %1");
    const resumed = ticks(second.stdout)[0]!;
    const probe = after + 5; // written by the first VM after the snapshot, not yet by the restored one
    await type(b, `echo seen=$(dd if=/dev/vda bs=512 skip=2 count=1 2>/dev/null | head -c 7) later=[$(dd if=/dev/vda bs=512 skip=${probe} count=1 2>/dev/null | tr -d '\\000' | head -c 9)]`);
    const m = await second.waitFor(/seen=([^$\r\n]*) later=\[([^$\r\n]*)\]/); // not the echoed command line
    assert.equal(m[1], "block 2", "what was written before the snapshot is there");
    assert.equal(m[2], "", `block ${probe}, written by the first VM after the snapshot, is not (restore went on at tick ${resumed})`);
    await b.execute("quit");
    await second.exited;
    for (const f of [disk, `${snap}.vda.after.qcow2`, `${snap}.r1.vda.qcow2`]) {
      const check = spawnSync("qemu-img", ["check", f], { encoding: "utf8" });
      assert.equal(check.status, 0, `qemu-img check ${f}: ${check.stdout}${check.stderr}`);
    }
  } finally {
    await first.stop();
    await second?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("three clones of one snapshot each get a new VM generation, reseed their RNG, draw different bytes and write disks of their own", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-clones-"));
  const snap = join(dir, "vm.snap");
  const disk = join(dir, "data.qcow2");
  await createQcow2(disk, { size: 8 << 20 });
  const origin = VmProcess.nodevisor(["--disk", disk, "--control-socket", join(dir, "o.sock"), "--console", "none"]);
  const clones: VmProcess[] = [];
  try {
    const o = await origin.connect(join(dir, "o.sock"));
    await origin.waitFor(/~# /, 900_000);
    await type(o, "echo origin | dd of=/dev/vda bs=512 seek=1 conv=sync,fsync 2>/dev/null; echo wrote-origin");
    await origin.waitFor(/^wrote-origin/m);
    await o.execute("snapshot-save", { path: snap });
    await o.execute("quit");
    await origin.exited;
    const names = ["c1", "c2", "c3"];
    for (const name of names) {
      clones.push(new VmProcess(process.execPath, ["--import", "tsx", CLI, "run", "--restore", snap, "--name", name, "--control-socket", join(dir, `${name}.sock`), "--console", "none"]));
    }
    const draws = await Promise.all(clones.map(async (vm, i) => {
      const c = await vm.connect(join(dir, `${names[i]}.sock`));
      // Give the generation-change interrupt a moment, then draw from the kernel's RNG.
      await type(c, "sleep 1; echo forks=$(dmesg | grep -c 'reseeded due to virtual machine fork') rnd=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n')");
      const m = await vm.waitFor(/forks=(\d+) rnd=([0-9a-f]{32})/, 120_000);
      // Each clone writes its name on the disk it restored, and sees the origin's write under it.
      await type(c, `echo ${names[i]} | dd of=/dev/vda bs=512 seek=2 conv=sync,fsync 2>/dev/null; echo disk=$(dd if=/dev/vda bs=512 skip=1 count=2 2>/dev/null | tr -d '\\000' | tr '\\n' ,)`);
      const d = await vm.waitFor(/disk=(origin\S*)\s/, 120_000);
      assert.equal(d[1], `origin,${names[i]},`, `clone ${names[i]} reads the snapshot's disk and its own write`);
      await c.execute("quit");
      assert.equal(m[1], "1", `clone ${names[i]}'s kernel saw the new VM generation and reseeded its RNG`);
      return m[2]!;
    }));
    assert.equal(new Set(draws).size, 3, `the clones drew ${draws.join(", ")}`);
    await Promise.all(clones.map((vm) => vm.exited));
    // The disks diverged: each clone's overlay holds its own write; the frozen disk holds none of them.
    for (const name of names) assert.equal(await sectorText(`${snap}.${name}.vda.qcow2`, 2), name);
    assert.equal(await sectorText(disk, 2), "");
    assert.equal(await sectorText(disk, 1), "origin");
  } finally {
    await origin.stop();
    for (const vm of clones) await vm.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a snapshot asked for the moment a 2-vCPU VM runs is answered (its vCPU threads may still be starting)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-snap-"));
  const { idle } = writeTinyKernels(dir);
  try {
    for (let i = 0; i < 3; i++) {
      const sock = join(dir, `s${i}.sock`);
      const vm = new VmProcess(process.execPath, ["--import", "tsx", CLI, "run", "--kernel", idle, "--cpus", "2", "--memory", "48M", "--control-socket", sock, "--console", "none"]);
      try {
        const c = await vm.connect(sock);
        await until(async () => (await c.execute<{ state: string }>("query-status")).state === "running", 60_000, "the VM to run");
        // A fence asked before a worker thread started used to count as answered by the new thread, and the save waited forever.
        const saved = await Promise.race([
          c.execute<{ pausedMs: number }>("snapshot-save", { path: join(dir, `x${i}.snap`) }),
          new Promise<null>((r) => setTimeout(() => r(null), 60_000).unref()),
        ]);
        assert.ok(saved !== null, `snapshot ${i} never answered`);
      } finally {
        await vm.stop();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
