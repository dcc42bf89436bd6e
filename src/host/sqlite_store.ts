// The inventory in SQLite (better-sqlite3): one file, WAL, schema versioned with user_version and
// upgraded by numbered migrations at open. Records are stored as JSON beside their keys, so the
// schema changes rarely and an older daemon's file still opens.

import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { DiskRecord, EventRecord, InventoryStore, VmRecord } from "./store.js";

/** Each migration moves the schema from version i to i+1; never edit one that has shipped. */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE vms (name TEXT PRIMARY KEY, record TEXT NOT NULL);
   CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, vm TEXT, type TEXT NOT NULL, message TEXT NOT NULL, data TEXT NOT NULL);
   CREATE INDEX events_vm ON events (vm, seq);`,
  `CREATE TABLE disks (path TEXT PRIMARY KEY, record TEXT NOT NULL);`,
];

/** Events kept; older ones are dropped as new ones arrive. */
const MAX_EVENTS = 10_000;

export class SqliteStore implements InventoryStore {
  private readonly db: Database.Database;
  private readonly stmts;

  constructor(path: string) {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    this.db = new Database(path);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL");
    this.db.pragma("busy_timeout = 5000");
    migrate(this.db);
    this.stmts = {
      getVm: this.db.prepare<[string], { record: string }>("SELECT record FROM vms WHERE name = ?"),
      listVms: this.db.prepare<[], { record: string }>("SELECT record FROM vms ORDER BY name"),
      putVm: this.db.prepare("INSERT INTO vms (name, record) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET record = excluded.record"),
      deleteVm: this.db.prepare("DELETE FROM vms WHERE name = ?"),
      addEvent: this.db.prepare("INSERT INTO events (time, vm, type, message, data) VALUES (?, ?, ?, ?, ?)"),
      trimEvents: this.db.prepare("DELETE FROM events WHERE seq <= ?"),
      events: this.db.prepare<[number, number], RawEvent>("SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?"),
      vmEvents: this.db.prepare<[number, string, number], RawEvent>("SELECT * FROM events WHERE seq > ? AND vm = ? ORDER BY seq LIMIT ?"),
      putDisk: this.db.prepare("INSERT INTO disks (path, record) VALUES (?, ?) ON CONFLICT(path) DO UPDATE SET record = excluded.record"),
      listDisks: this.db.prepare<[], { record: string }>("SELECT record FROM disks ORDER BY path"),
    };
  }

  get schemaVersion(): number {
    return this.db.pragma("user_version", { simple: true }) as number;
  }

  getVm(name: string): VmRecord | null {
    const row = this.stmts.getVm.get(name);
    return row === undefined ? null : (JSON.parse(row.record) as VmRecord);
  }

  listVms(): VmRecord[] {
    return this.stmts.listVms.all().map((r) => JSON.parse(r.record) as VmRecord);
  }

  putVm(record: VmRecord): void {
    this.stmts.putVm.run(record.spec.name, JSON.stringify(record));
  }

  deleteVm(name: string): boolean {
    return this.stmts.deleteVm.run(name).changes > 0;
  }

  appendEvent(e: Omit<EventRecord, "seq" | "time">): EventRecord {
    const time = new Date().toISOString();
    const seq = Number(this.stmts.addEvent.run(time, e.vm, e.type, e.message, JSON.stringify(e.data)).lastInsertRowid);
    if (seq % 1000 === 0) this.stmts.trimEvents.run(seq - MAX_EVENTS);
    return { seq, time, ...e };
  }

  listEvents(afterSeq: number, limit: number, vm?: string): EventRecord[] {
    const rows = vm === undefined ? this.stmts.events.all(afterSeq, limit) : this.stmts.vmEvents.all(afterSeq, vm, limit);
    return rows.map((r) => ({ seq: r.seq, time: r.time, vm: r.vm, type: r.type, message: r.message, data: JSON.parse(r.data) }));
  }

  putDisk(record: DiskRecord): void {
    this.stmts.putDisk.run(record.path, JSON.stringify(record));
  }

  listDisks(): DiskRecord[] {
    return this.stmts.listDisks.all().map((r) => JSON.parse(r.record) as DiskRecord);
  }

  close(): void {
    this.db.close();
  }
}

interface RawEvent {
  seq: number;
  time: string;
  vm: string | null;
  type: string;
  message: string;
  data: string;
}

function migrate(db: Database.Database): void {
  const version = db.pragma("user_version", { simple: true }) as number;
  if (version > MIGRATIONS.length) {
    throw new Error(
      `The inventory was written by a newer nodevisor (schema ${version}, this one knows ${MIGRATIONS.length}); upgrade nodevisor or use another --state-dir.`,
    );
  }
  for (let v = version; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
