// The rules of whole-VM state in the daemon, without VMs: where disks go after a snapshot, what a
// restored VM's PATCH may change, the paths and URIs accepted, the hand-over read from a log.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ApiError } from "./errors.js";
import { withDefaults } from "./spec.js";
import { checkMigrationUri, checkRestorePatch, checkSnapshotPath, disksAfterSnapshot, handedOverIn, handoverFigures, restoreOverlay } from "./vm_state.js";

const sentence = (fn: () => void): { status: number; message: string } => {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ApiError, String(e));
    return { status: e.statusCode, message: e.message };
  }
  assert.fail("no error");
};

test("after a snapshot each writable disk of the spec moves to its overlay; read-only disks and rate limits stay", () => {
  const disks = [{ path: "/d/a.qcow2", bps: 1000 }, { path: "/d/iso.raw", readOnly: true }, { path: "/d/c.raw", format: "raw" as const }];
  const reply = { disks: [{ device: "vda", frozen: "/d/a.qcow2", active: "/s/x.snap.vda.after.qcow2" }, { device: "vdc", frozen: "/d/c.raw", active: "/s/x.snap.vdc.after.qcow2" }] };
  assert.deepEqual(disksAfterSnapshot(disks, reply), [
    { path: "/s/x.snap.vda.after.qcow2", bps: 1000, format: "qcow2" },
    { path: "/d/iso.raw", readOnly: true },
    { path: "/s/x.snap.vdc.after.qcow2", format: "qcow2" },
  ]);
});

test("a VM waiting for its restore may change how it runs, not the machine the snapshot sets", () => {
  const spec = withDefaults({ name: "c1", restore: "/s/x.snap", disks: [{ path: restoreOverlay("/s/x.snap", "c1", "vda"), format: "qcow2" }] });
  assert.doesNotThrow(() => checkRestorePatch(spec, { cpuCap: 20, restartPolicy: "always" }));
  assert.doesNotThrow(() => checkRestorePatch(spec, { disks: [{ path: "/s/x.snap.c1.vda.qcow2", bps: 5000 }] }));
  assert.deepEqual(sentence(() => checkRestorePatch(spec, { vcpus: 2 })), { status: 400, message: 'VM c1 starts from the snapshot "/s/x.snap", which sets its "vcpus"; start it once, then change it.' });
  assert.equal(sentence(() => checkRestorePatch(spec, { disks: [] })).status, 400);
  assert.doesNotThrow(() => checkRestorePatch({ ...spec, restore: undefined }, { vcpus: 2 }), "after the restore ran it is an ordinary VM");
});

test("snapshot paths: absolute, in a folder that exists, never over an existing file", () => {
  const dir = mkdtempSync(join(tmpdir(), "nv-state-"));
  try {
    assert.doesNotThrow(() => checkSnapshotPath(join(dir, "new.snap")));
    assert.deepEqual(sentence(() => checkSnapshotPath("rel.snap")), { status: 400, message: 'The field "path" must be an absolute path for the snapshot file, not "rel.snap".' });
    writeFileSync(join(dir, "file"), "");
    assert.deepEqual(sentence(() => checkSnapshotPath(join(dir, "file", "x.snap"))), { status: 400, message: `Cannot write the snapshot "${join(dir, "file", "x.snap")}": "${join(dir, "file")}" is not a folder.` });
    assert.equal(sentence(() => checkSnapshotPath(join(dir, "file"))).status, 409);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("migration URIs as the VM process takes them", () => {
  for (const ok of ["tcp:127.0.0.1:4444", "tcp:[::1]:0", "unix:/run/m.sock"]) assert.doesNotThrow(() => checkMigrationUri("uri", ok));
  assert.deepEqual(sentence(() => checkMigrationUri("listen", "tcp:host")), { status: 400, message: 'The field "listen" is not a migration address: Cannot migrate to "tcp:host": give tcp:HOST:PORT or unix:PATH.' });
});

test("the hand-over and its figures are read from the source VM process's log", () => {
  const log = "nodevisor: booting\nnodevisor: migrated to tcp:10.0.0.7:4444 in 1830 ms (3 rounds, 61440 pages); the guest stopped for 27 ms. It runs there now.\n";
  assert.equal(handedOverIn(log), true);
  assert.equal(handedOverIn("nodevisor: migration failed: the destination went away\n"), false);
  assert.deepEqual(handoverFigures(log), { totalTimeMs: 1830, downtimeMs: 27, ram: { rounds: 3, pagesSent: 61440 } });
  assert.deepEqual(handoverFigures("nothing"), {});
});
