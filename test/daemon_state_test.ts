// Whole-VM state through the daemon with the default Debian image, through `nodevisor vm`: a guest
// counting in a shell loop is snapshotted while it runs, two clones restored from the snapshot
// count on side by side from the snapshot's value, and the original moves by live migration to a
// second daemon, counting on there while the first shows it migrated and does not restart it.

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ensureTestImage, nodevisor } from "./helpers.js";
import { startDaemon, testHost, waitFor } from "../src/host/testing/daemon_fixture.js";
import { vmPaths } from "../src/host/paths.js";
import type { VmView } from "../src/host/vm_manager.js";

const ticks = (out: string): number[] => [...out.matchAll(/tick (\d+)\r?\n/g)].map((m) => Number(m[1]));
const consoleOf = (paths: Parameters<typeof vmPaths>[0], name: string): string => {
  const file = vmPaths(paths, name).consoleLog;
  return existsSync(file) ? readFileSync(file, "latin1") : "";
};

test("a counting guest: live snapshot, two clones counting on from it side by side, live migration to another daemon", { timeout: 900_000 }, async (t) => {
  await ensureTestImage();
  const hostA = testHost(t);
  const hostB = testHost(t);
  const { client: a } = await startDaemon(t, hostA);
  await startDaemon(t, hostB);
  const vmA = (...args: string[]) => nodevisor(["vm", "--socket", hostA.paths.apiSocket, ...args]);
  const vmB = (...args: string[]) => nodevisor(["vm", "--socket", hostB.paths.apiSocket, ...args]);
  const countOn = (paths: typeof hostA.paths, name: string, from: number, what: string): Promise<number[]> =>
    waitFor(what, () => {
      const seen = ticks(consoleOf(paths, name)).filter((n) => n > from);
      return seen.length >= 3 ? seen : undefined;
    }, 180_000);

  let r = await vmA("create", "counter", "--memory", "128M", "--restart", "always");
  assert.equal(r.status, 0, r.stderr);
  r = await vmA("start", "counter");
  assert.equal(r.status, 0, r.stderr);
  await waitFor("the shell prompt", () => /~# /.test(consoleOf(hostA.paths, "counter")), 240_000);
  const keyboard = a.websocket("/v1/vms/counter/console?write=1");
  t.after(() => keyboard.close());
  await new Promise((res) => keyboard.once("open", res));
  keyboard.send(Buffer.from("i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.3; done &\n"));
  await waitFor("tick 5", () => ticks(consoleOf(hostA.paths, "counter")).includes(5), 120_000);

  const snap = join(hostA.dir, "counter.snap");
  const before = Math.max(...ticks(consoleOf(hostA.paths, "counter")));
  r = await vmA("snapshot", "counter", snap);
  const after = Math.max(...ticks(consoleOf(hostA.paths, "counter")));
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^VM counter saved to .*counter\.snap \([\d.]+ [KMG]iB; the guest stopped for \d+ ms after \d+ rounds\)\./);
  const saved = (await a.call<{ events: Array<{ type: string; data: { pausedMs: number; bytes: number; rounds: number } }> }>("GET", "/v1/events?vm=counter")).events.find((e) => e.type === "snapshot-saved");
  assert.ok(saved !== undefined, "the snapshot is an event");
  console.log(`# daemon snapshot: ${(saved.data.bytes / 2 ** 20).toFixed(1)} MiB file, guest stopped ${saved.data.pausedMs} ms after ${saved.data.rounds} rounds`);
  await countOn(hostA.paths, "counter", after, "the original to count on after the snapshot");

  // Two clones from the one snapshot, each on its own overlays, running at the same time.
  for (const name of ["c1", "c2"]) {
    r = await vmA("create", name, "--restore", snap);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`VM ${name} created \\(1 vCPU, 128 MiB\\)`));
  }
  await Promise.all(["c1", "c2"].map(async (name) => assert.equal((await vmA("start", name)).status, 0)));
  const [c1, c2] = await Promise.all(["c1", "c2"].map((name) => countOn(hostA.paths, name, 0, `${name} to count`)));
  for (const seen of [c1!, c2!]) {
    assert.ok(seen[0]! > before && seen[0]! <= after + 2, `a clone went on at tick ${seen[0]} (snapshot taken between ticks ${before} and ${after})`);
    assert.deepEqual(seen.slice(0, 3), [seen[0], seen[0]! + 1, seen[0]! + 2], "it counts on, one by one");
  }
  const views = await Promise.all(["c1", "c2"].map((name) => a.call<VmView>("GET", `/v1/vms/${name}`)));
  assert.ok(views.every((v) => v.state === "running" && v.restoredFrom === snap), "both run at once");
  r = await vmA("show", "c1");
  assert.match(r.stdout, new RegExp(`^restored +from ${snap.replace(/[.]/g, "\\.")}$`, "m"));
  for (const name of ["c1", "c2"]) assert.equal((await vmA("kill", name)).status, 0);

  // Live migration to the second daemon.
  r = await vmB("receive", "counter", "--listen", "tcp:127.0.0.1:0", "--memory", "128M");
  assert.equal(r.status, 0, r.stderr);
  const uri = /waits for a migration on (tcp:127\.0\.0\.1:\d+)/.exec(r.stdout)?.[1];
  assert.ok(uri !== undefined, r.stdout);
  r = await vmA("migrate", "counter", uri);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^VM counter was migrated to tcp:127\.0\.0\.1:\d+ in \d+ ms \(the guest stopped for \d+ ms\); it runs there now\.$/m);
  console.log(`# daemon migration: ${r.stdout.trim()}`);
  const lastOnA = Math.max(...ticks(consoleOf(hostA.paths, "counter")));
  const onB = await countOn(hostB.paths, "counter", 0, "the guest to count on at the destination");
  assert.ok(onB[0]! === lastOnA + 1, `the guest went on at tick ${onB[0]} after tick ${lastOnA} at the source`);
  assert.deepEqual(onB.slice(0, 3), [onB[0], onB[0]! + 1, onB[0]! + 2]);
  assert.equal((await nodevisor(["vm", "--socket", hostB.paths.apiSocket, "show", "counter", "--json"]).then((x) => JSON.parse(x.stdout) as VmView)).state, "running");
  await new Promise((res) => setTimeout(res, 2000)); // the source's restart policy (always) would have acted by now
  const left = await a.call<VmView>("GET", "/v1/vms/counter");
  assert.deepEqual([left.state, left.pid, left.migratedTo], ["stopped", null, uri]);
  const types = (await a.call<{ events: Array<{ type: string }> }>("GET", "/v1/events?vm=counter")).events.map((e) => e.type);
  assert.deepEqual(types.slice(-2), ["migrating", "migrated"]);
  assert.equal((await vmB("kill", "counter")).status, 0);
});
