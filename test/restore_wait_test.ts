// `run --restore-wait`: a VM process that starts with no VM and restores the snapshot a
// `snapshot-load` names, replying once the guest runs; a bad file leaves it waiting, and a second
// load is refused.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLI, ensureTestImage } from "./helpers.js";
import { typeLine, VmProcess } from "./testing/vm_process.js";

before(ensureTestImage, { timeout: 600_000 });

const ticks = (out: string): number[] => [...out.matchAll(/tick (\d+)/g)].map((m) => Number(m[1]));
const waiting = (sock: string, extra: string[] = []): VmProcess =>
  new VmProcess(process.execPath, ["--import", "tsx", CLI, "run", "--restore-wait", "--control-socket", sock, "--console", "none", ...extra]);

test("a --restore-wait process restores the snapshot snapshot-load names, and the guest counts on", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-rw-"));
  const snap = join(dir, "vm.snap");
  const first = VmProcess.nodevisor(["--control-socket", join(dir, "a.sock"), "--console", "none"]);
  const pool = waiting(join(dir, "w.sock"), ["--name", "warm"]);
  try {
    const a = await first.connect(join(dir, "a.sock"));
    await first.waitFor(/~# /, 900_000);
    await typeLine(a, "i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.3; done &");
    await first.waitFor(/tick 3\b/);
    await a.execute("snapshot-save", { path: snap });
    const saved = Math.max(...ticks(first.stdout));
    await a.execute("quit");
    await first.exited;

    const w = await pool.connect(join(dir, "w.sock"));
    assert.equal((await w.execute<{ state: string }>("query-status")).state, "inmigrate");
    await assert.rejects(w.execute("pause"), /waits for a snapshot; load one with snapshot-load first/);
    writeFileSync(join(dir, "junk.snap"), "not a snapshot at all");
    await assert.rejects(w.execute("snapshot-load", { path: join(dir, "junk.snap") }), /not a nodevisor snapshot|is not a usable nodevisor snapshot|damaged|truncated/i);
    assert.equal((await w.execute<{ state: string }>("query-status")).state, "inmigrate", "a bad file leaves the process waiting");

    const loaded = await w.execute<{ path: string; loadMs: number }>("snapshot-load", { path: snap });
    console.log(`# snapshot-load: the guest ran again ${loaded.loadMs} ms after the request`);
    assert.equal(loaded.path, snap);
    assert.equal((await w.execute<{ state: string }>("query-status")).state, "running");
    await pool.waitFor(/tick \d+[\s\S]*tick \d+[\s\S]*tick \d+/, 120_000);
    const resumed = ticks(pool.stdout);
    assert.ok(resumed[0]! >= saved && resumed[0]! <= saved + 3, `it went on at tick ${resumed[0]} (saved near ${saved})`);
    assert.deepEqual(resumed.slice(0, 3), [resumed[0], resumed[0]! + 1, resumed[0]! + 2]);
    await assert.rejects(w.execute("snapshot-load", { path: snap }), /Cannot load a snapshot|loaded already/);
    // The connection made before the load now talks to the VM: its stats count instructions.
    assert.ok((await w.execute<{ instructionsRetired: number }>("query-stats")).instructionsRetired > 0);
    await w.execute("quit");
    assert.equal(await pool.exited, 0);
  } finally {
    await first.stop();
    await pool.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a waiting process quits cleanly without a VM, and --restore-wait needs a control socket", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-rw-"));
  const p = waiting(join(dir, "w.sock"));
  try {
    const w = await p.connect(join(dir, "w.sock"));
    await w.execute("quit");
    assert.equal(await p.exited, 0, p.stderr);
    const bare = new VmProcess(process.execPath, ["--import", "tsx", CLI, "run", "--restore-wait"]);
    assert.equal(await bare.exited, 2);
    assert.match(bare.stderr, /--restore-wait needs --control-socket PATH/);
  } finally {
    await p.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
