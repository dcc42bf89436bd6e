// Live migration end to end between two nodevisor processes on this machine: a guest counting in
// a shell loop moves without restarting or skipping; a guest writing all over 256 MiB converges;
// a destination killed mid-way leaves the source running; a corrupt stream is refused.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ControlClient } from "../src/vm/control_client.js";
import type { MigrationStatus } from "../src/vm/migration/outgoing.js";
import { createQcow2 } from "../src/storage/qcow2/create.js";
import { sectorText } from "./testing/disks.js";
import { CLI, ensureTestImage } from "./helpers.js";
import { typeLine, until, VmProcess } from "./testing/vm_process.js";

before(ensureTestImage, { timeout: 600_000 });

const ticks = (out: string): number[] => [...out.matchAll(/tick (\d+)/g)].map((m) => Number(m[1]));
const destination = (args: string[], env: NodeJS.ProcessEnv = {}): VmProcess => new VmProcess(process.execPath, ["--import", "tsx", CLI, "run", "--console", "none", ...args], env);

/** The RAM pages whose checksums differ between the source's digest at the switch-over and the destination's on arrival (src/vm/ram_digest.ts). */
function pagesThatDiffer(sourceDigest: string, destinationDigest: string): number[] {
  const a = new Uint32Array(readFileSync(sourceDigest).buffer.slice(0));
  const b = new Uint32Array(readFileSync(destinationDigest).buffer.slice(0));
  assert.equal(a.length, b.length, "both digests cover the same RAM");
  const differ: number[] = [];
  a.forEach((sum, p) => { if (b[p] !== sum) differ.push(p); });
  return differ;
}
const listening = (vm: VmProcess): Promise<void> => until(() => /waiting for a migration/.test(vm.stderr), 60_000, `the destination to listen (stderr: ${vm.stderr})`);

/** A stalled VM's status, figures and interrupt path twice, a second apart (does the guest run at all? what does it wait for?), for a failure message. */
async function vmFigures(sock: string): Promise<string> {
  try {
    const c = await ControlClient.connect(sock);
    const figures = async (): Promise<string> => JSON.stringify({ status: await c.execute("query-status"), stats: await c.execute("query-stats"), interrupts: await c.execute("query-interrupts") });
    const first = await figures();
    await new Promise((r) => setTimeout(r, 1000));
    const second = await figures();
    c.close();
    return `${first}\na second later: ${second}`;
  } catch (e) {
    return `no figures (${(e as Error).message})`;
  }
}

async function migrationEnds(c: ControlClient): Promise<MigrationStatus> {
  let last: MigrationStatus = { status: "none" };
  await until(async () => {
    last = await c.execute<MigrationStatus>("query-migrate").catch(() => last);
    return ["completed", "failed", "cancelled"].includes(last.status);
  }, 600_000, "the migration to end");
  return last;
}

test("a 2-vCPU guest counting in a shell loop, with a shared qcow2 disk, moves to another process without restarting or skipping", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-mig-"));
  const disk = join(dir, "shared.qcow2");
  await createQcow2(disk, { size: 8 << 20 });
  // Shared storage: both processes open the same qcow2 file.
  // Each side writes a checksum of every RAM page: the source's as it stops, the destination's as the state arrives.
  const digests = { source: join(dir, "source.digest"), destination: join(dir, "destination.digest") };
  const source = VmProcess.nodevisor(["--cpus", "2", "--disk", disk, "--control-socket", join(dir, "a.sock"), "--console", "none"], { NODEVISOR_RAM_DIGEST_FILE: digests.source });
  const dest = destination(["--incoming", `unix:${join(dir, "mig.sock")}`, "--control-socket", join(dir, "b.sock")], { NODEVISOR_RAM_DIGEST_FILE: digests.destination });
  try {
    const a = await source.connect(join(dir, "a.sock"));
    await source.waitFor(/~# /, 900_000);
    await typeLine(a, "echo written-before | dd of=/dev/vda bs=512 seek=1 conv=sync,fsync 2>/dev/null");
    // The counter file is replaced by a rename, so the `cat` below never reads it between truncation and write.
    await typeLine(a, "cat /proc/uptime > /tmp/uptime-before; i=0; while :; do i=$((i+1)); echo $i > /tmp/count.new; mv /tmp/count.new /tmp/count; echo tick $i; sleep 0.2; done &");
    await source.waitFor(/tick 5\b/);
    await listening(dest);
    await a.execute("migrate", { uri: `unix:${join(dir, "mig.sock")}` });
    const during = await a.execute<MigrationStatus>("query-migrate");
    assert.ok(["setup", "active", "device", "completed"].includes(during.status), JSON.stringify(during));
    const reported = await source.exited.then(() => /the guest stopped for (\d+) ms/.exec(source.stderr));
    assert.ok(reported !== null, `the source reports the migration and exits: ${source.stderr}`);
    const downtimeMs = Number(reported[1]);
    console.log(`# ${/migrated to .*/.exec(source.stderr)?.[0]}`);
    await until(() => existsSync(digests.destination), 60_000, "the destination's RAM digest");
    assert.deepEqual(pagesThatDiffer(digests.source, digests.destination), [], "the destination's RAM is the source's as it stopped, page for page");
    const last = Math.max(...ticks(source.stdout));
    await dest.waitFor(new RegExp(`tick ${last + 5}\\b`), 120_000).catch(async (e: Error) => {
      throw new Error(`${e.message}\ndestination: ${await vmFigures(join(dir, "b.sock"))}`);
    });
    // Across both processes the counter goes on one by one: it never restarted and skipped nothing.
    const all = ticks(source.stdout + dest.stdout);
    const seam = (): string => `the source's last output ${JSON.stringify(source.stdout.slice(-40))}, the destination's first ${JSON.stringify(dest.stdout.slice(0, 40))}`;
    all.forEach((n, i) => assert.equal(n, i + 1, `tick ${i + 1} came out as ${n} (downtime ${downtimeMs} ms; ${seam()})`));
    const b = await dest.connect(join(dir, "b.sock"));
    await typeLine(b, "echo count=$(cat /tmp/count) up=$(cut -d' ' -f1 /proc/uptime) before=$(cut -d' ' -f1 /tmp/uptime-before)");
    const m = await dest.waitFor(/count=(\d+) up=([\d.]+) before=([\d.]+)\s/);
    assert.ok(Number(m[1]) >= last, "the tmpfs file moved with the guest");
    assert.ok(Number(m[2]) > Number(m[3]), "uptime went on");
    assert.equal((await b.execute<{ state: string }>("query-status")).state, "running");
    await typeLine(b, "echo written-after | dd of=/dev/vda bs=512 seek=2 conv=sync,fsync 2>/dev/null; echo disk=$(dd if=/dev/vda bs=512 skip=1 count=2 2>/dev/null | tr -d '\\000' | tr '\\n' ,)");
    const d = await dest.waitFor(/disk=(written\S*)\s/); // the whole line: output arrives in chunks
    assert.equal(d[1], "written-before,written-after,", "the destination sees what the source wrote, and writes on");
    await b.execute("quit");
    assert.equal(await dest.exited, 0);
    const check = spawnSync("qemu-img", ["check", disk], { encoding: "utf8" });
    assert.equal(check.status, 0, `qemu-img check: ${check.stdout}${check.stderr}`);
  } finally {
    await source.stop();
    await dest.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the destination killed mid-migration leaves the source running as before", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-mig-"));
  const source = VmProcess.nodevisor(["--control-socket", join(dir, "a.sock"), "--console", "none"]);
  const dest = destination(["--incoming", `unix:${join(dir, "mig.sock")}`]);
  try {
    const a = await source.connect(join(dir, "a.sock"));
    await source.waitFor(/~# /, 900_000);
    await typeLine(a, "i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.2; done &");
    await source.waitFor(/tick 3\b/);
    await listening(dest);
    // Slow enough that the copy is still under way when the destination dies.
    await a.execute("migrate-set-parameters", { "max-bandwidth": 2 << 20 });
    await a.execute("migrate", { uri: `unix:${join(dir, "mig.sock")}` });
    await until(async () => ((await a.execute<MigrationStatus>("query-migrate")).ram?.pagesSent ?? 0) > 256, 60_000, "pages to flow");
    process.kill(dest.pid, "SIGKILL");
    const end = await migrationEnds(a);
    assert.equal(end.status, "failed", JSON.stringify(end));
    assert.match(end.error ?? "", /closed|failed|connection/i);
    assert.equal((await a.execute<{ state: string }>("query-status")).state, "running");
    const now = Math.max(...ticks(source.stdout));
    await source.waitFor(new RegExp(`tick ${now + 3}\\b`));
    await a.execute("quit");
  } finally {
    await source.stop();
    await dest.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a guest writing all over 256 MiB while it migrates converges (paced if it must) and writes on at the destination", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-mig-"));
  const source = VmProcess.nodevisor(["--memory", "768M", "--control-socket", join(dir, "a.sock"), "--console", "none"]);
  const dest = destination(["--incoming", `unix:${join(dir, "mig.sock")}`]);
  try {
    const a = await source.connect(join(dir, "a.sock"));
    await source.waitFor(/~# /, 900_000);
    // dd rewrites 256 MiB of tmpfs pages over and over; "wrote N" counts the passes.
    await typeLine(a, "n=0; while :; do dd if=/dev/zero of=/tmp/x bs=1M count=256 2>/dev/null; n=$((n+1)); echo wrote $n; done &");
    await until(async () => (await a.execute<{ memoryTouchedBytes: number }>("query-stats")).memoryTouchedBytes > 200 << 20, 300_000, "the guest to touch 200 MiB");
    await listening(dest);
    await a.execute("migrate-set-parameters", { "max-bandwidth": 16 << 20, "downtime-limit": 300 });
    await a.execute("migrate", { uri: `unix:${join(dir, "mig.sock")}` });
    let last: MigrationStatus = { status: "none" };
    let paced = false;
    await until(async () => {
      last = await a.execute<MigrationStatus>("query-migrate").catch(() => ({ ...last, status: "completed" as const }));
      paced ||= (last.throttlePercent ?? null) !== null;
      return ["completed", "failed", "cancelled"].includes(last.status);
    }, 600_000, "the migration to end");
    assert.equal(last.status, "completed", JSON.stringify(last));
    assert.ok((last.ram?.rounds ?? 0) >= 2, `the dirtied pages were sent again in rounds: ${JSON.stringify(last)}`);
    await source.exited;
    const reported = /migrated to .*/.exec(source.stderr);
    assert.ok(reported !== null, source.stderr);
    console.log(`# busy guest: ${reported[0]} ${paced ? "(paced)" : "(not paced)"}`);
    const passes = [...source.stdout.matchAll(/wrote (\d+)/g)].map((m) => Number(m[1]));
    const next = (passes.at(-1) ?? 0) + 1;
    await dest.waitFor(new RegExp(`wrote ${next}\\b`), 600_000);
  } finally {
    await source.stop();
    await dest.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a corrupt, oversized or truncated migration stream is refused with a sentence, and nothing runs", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-mig-"));
  const preamble = Buffer.concat([Buffer.from("NVMIGRAT"), Buffer.from([1, 0, 0, 0])]);
  const header = (kind: number, length: number): Buffer => {
    const b = Buffer.alloc(5);
    b.writeUInt8(kind, 0);
    b.writeUInt32LE(length, 1);
    return b;
  };
  const cases: Array<[string, Buffer, RegExp]> = [
    ["bad magic", Buffer.from("GET / HTTP/1.1\r\n\r\n"), /did not send a nodevisor migration stream \(bad magic\)/],
    ["bad length", Buffer.concat([preamble, header(2, 0xffff_fff0)]), /PAGES frame of 4294967280 bytes, more than its/],
    ["truncated", Buffer.concat([preamble, header(1, 100), Buffer.from('{"config":')]), /ended inside a HELLO frame \(truncated\)/],
    ["impossible RAM", Buffer.concat([preamble, header(1, 30), Buffer.from('{"config":{"memoryBytes":-1}}'.padEnd(30))]), /bytes of RAM, which no VM has/],
  ];
  try {
    for (const [i, [what, bytes, why]] of cases.entries()) {
      const sock = join(dir, "m.sock");
      // Over TCP (port 0: the destination says which port it got) and over a UNIX socket.
      const dest = destination(["--incoming", i === 0 ? "tcp:127.0.0.1:0" : `unix:${sock}`]);
      try {
        await listening(dest);
        const port = /waiting for a migration on tcp:127\.0\.0\.1:(\d+)/.exec(dest.stderr)?.[1];
        const s = i === 0 ? connect(Number(port), "127.0.0.1") : connect(sock);
        await new Promise((r) => s.once("connect", r));
        s.end(bytes);
        assert.equal(await dest.exited, 2, `${what}: ${dest.stderr}`);
        assert.match(dest.stderr, why, what);
        assert.equal(dest.stderr.trim().split("\n").length, 2, `${what}: the listening line and one sentence: ${dest.stderr}`);
      } finally {
        await dest.stop();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("block migration: a guest writing to its qcow2 disk moves with a copy of the disk, and the source's file stays as it was", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-mig-"));
  const src = join(dir, "src.qcow2");
  const copy = join(dir, "copy.qcow2");
  await createQcow2(src, { size: 16 << 20 });
  const source = VmProcess.nodevisor(["--disk", src, "--control-socket", join(dir, "a.sock"), "--console", "none"]);
  // Not shared storage: the destination makes its own copy of the disk.
  const dest = destination(["--incoming", `unix:${join(dir, "mig.sock")}`, "--disk", copy, "--control-socket", join(dir, "b.sock")]);
  try {
    const a = await source.connect(join(dir, "a.sock"));
    await source.waitFor(/~# /, 900_000);
    // Sector i gets "wI", synchronously, while the disk is being copied.
    await typeLine(a, "i=0; while :; do i=$((i+1)); echo w$i | dd of=/dev/vda bs=512 seek=$i conv=sync,fsync 2>/dev/null; echo tick $i; sleep 0.1; done &");
    await source.waitFor(/tick 5\b/);
    await listening(dest);
    await a.execute("migrate", { uri: `unix:${join(dir, "mig.sock")}`, blk: true });
    assert.equal(await source.exited, 0, source.stderr);
    const last = Math.max(...ticks(source.stdout));
    await dest.waitFor(new RegExp(`tick ${last + 10}\\b`), 120_000);
    const b = await dest.connect(join(dir, "b.sock"));
    await typeLine(b, "kill %1; echo stopped-loop");
    await dest.waitFor(/stopped-loop\s/);
    const n = Math.max(...ticks(dest.stdout));
    await typeLine(b, `bad=0; j=1; while [ $j -le ${n} ]; do [ "$(dd if=/dev/vda bs=512 skip=$j count=1 2>/dev/null | tr -d '\\000')" = w$j ] || bad=$((bad+1)); j=$((j+1)); done; echo checked=$((j-1)) bad=$bad`);
    const m = await dest.waitFor(/checked=(\d+) bad=(\d+)\s/, 120_000);
    assert.ok(Number(m[1]) >= last + 10, `the destination wrote on (${m[0]})`);
    assert.equal(m[2], "0", "every sector written before, during and after the migration holds its value");
    await b.execute("quit");
    await dest.exited;
    // The source's file stopped at the hand-over: what the guest wrote afterwards is only in the copy.
    assert.equal(await sectorText(src, last), `w${last}`);
    assert.equal(await sectorText(src, last + 5), "", "the source's file never saw the destination's writes");
    assert.equal(await sectorText(copy, last + 5), `w${last + 5}`);
    for (const f of [src, copy]) {
      const check = spawnSync("qemu-img", ["check", f], { encoding: "utf8" });
      assert.equal(check.status, 0, `qemu-img check ${f}: ${check.stdout}${check.stderr}`);
    }
    console.log(`# block migration: ${/migrated to .*/.exec(source.stderr)?.[0]}`);
  } finally {
    await source.stop();
    await dest.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
