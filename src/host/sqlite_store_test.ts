import { test } from "node:test";
import assert from "node:assert/strict";
import Database from "better-sqlite3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MIGRATIONS, SqliteStore } from "./sqlite_store.js";
import { withDefaults } from "./spec.js";
import type { VmRecord } from "./store.js";

function record(name: string): VmRecord {
  const now = new Date().toISOString();
  return { spec: withDefaults({ name }), desired: "stopped", observed: "stopped", pid: null, restarts: 0, lastExit: null, createdAt: now, updatedAt: now };
}

test("records and events survive closing and reopening the file", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "nv-store-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "inventory.db");
  const a = new SqliteStore(path);
  a.putVm(record("web1"));
  a.putVm({ ...record("db"), desired: "running", pid: 42 });
  a.appendEvent({ vm: "web1", type: "created", message: "VM web1 was created.", data: {} });
  a.appendEvent({ vm: "db", type: "started", message: "VM db started.", data: { pid: 42 } });
  a.putDisk({ path: "/d/a.qcow2", format: "qcow2", virtualSize: 1 << 30, createdAt: "x", origin: "create" });
  a.close();
  const b = new SqliteStore(path);
  assert.deepEqual(b.listVms().map((r) => r.spec.name), ["db", "web1"]);
  assert.equal(b.getVm("db")?.pid, 42);
  assert.equal(b.getVm("nope"), null);
  const events = b.listEvents(0, 10);
  assert.deepEqual(events.map((e) => e.type), ["created", "started"]);
  assert.deepEqual(b.listEvents(events[0]!.seq, 10, "db").map((e) => e.data), [{ pid: 42 }]);
  assert.equal(b.listDisks()[0]?.virtualSize, 1 << 30);
  assert.equal(b.deleteVm("web1"), true);
  assert.equal(b.deleteVm("web1"), false);
  b.close();
});

test("an old schema is migrated forward and a newer one is refused with a sentence", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "nv-store-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "inventory.db");
  const old = new Database(path);
  old.exec(MIGRATIONS[0]!);
  old.pragma("user_version = 1");
  old.prepare("INSERT INTO vms (name, record) VALUES (?, ?)").run("kept", JSON.stringify(record("kept")));
  old.close();
  const s = new SqliteStore(path);
  assert.equal(s.schemaVersion, MIGRATIONS.length);
  assert.equal(s.getVm("kept")?.spec.name, "kept");
  s.putDisk({ path: "/x", format: "raw", virtualSize: 1, createdAt: "x", origin: "create" });
  s.close();
  const future = new Database(path);
  future.pragma(`user_version = ${MIGRATIONS.length + 1}`);
  future.close();
  assert.throws(() => new SqliteStore(path), /written by a newer nodevisor .* upgrade nodevisor or use another --state-dir/);
});
