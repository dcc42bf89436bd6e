import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { connect, createServer, type Socket } from "node:net";
import { linkSync, statSync, writeFileSync, existsSync, rmSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { once } from "node:events";
import { ControlServer } from "./control_server.js";
import { ControlClient, ControlCommandError } from "./control_client.js";
import { MAX_REQUEST_LINE_BYTES } from "./control_protocol.js";
import type { BalloonInfo, VmController, VmEvent, VmRunState, VmStats, VmStatus } from "./controller.js";
import type { MigrationParameters, MigrationStatus } from "./migration/outgoing.js";

/** Records every call; its listener sets show what the server still subscribes to. */
class FakeVm implements VmController {
  calls: string[] = [];
  state: VmRunState = "running";
  reason: string | null = null;
  written: number[] = [];
  failNext: string | null = null;
  readonly consoleListeners = new Set<(data: Uint8Array) => void>();
  readonly eventListeners = new Set<(e: VmEvent) => void>();

  status(): VmStatus {
    return { state: this.state, exitCode: null, reason: this.reason, uptimeMs: 1234, vcpus: 2, memoryBytes: 256 << 20 };
  }
  stats(): VmStats {
    this.maybeFail("stats");
    return {
      instructionsRetired: 1e6,
      mips: 42.5,
      idleMs: 7,
      trapsByCause: { "ecall-from-s": 3 },
      devices: [{ name: "vda", kind: "virtio-blk", requests: 5, bytesRead: 512, bytesWritten: 0, errors: 0 }],
    };
  }
  limits: unknown[] = [];
  setCpuLimits(cap: number | null): void {
    this.limits.push({ cap });
  }
  setDiskLimits(index: number, limits: object): void {
    if (index > 0) throw new RangeError("The VM has no disk vdb; it has 1.");
    this.limits.push({ index, ...limits });
  }
  consoleResize(rows: number, cols: number): void {
    this.limits.push({ rows, cols });
  }
  async saveSnapshot(path: string): Promise<{ path: string; bytes: number; ramPages: number; pausedMs: number }> {
    await new Promise((r) => setTimeout(r, 20)); // a snapshot takes a while: the reply comes later
    if (path.endsWith(".bad")) throw new Error("disk full");
    return { path, bytes: 4096, ramPages: 1, pausedMs: 20 };
  }
  migrations: string[] = [];
  migrate(uri: string): void {
    if (!uri.startsWith("unix:")) {
      const e = new Error(`Cannot migrate to "${uri}": give tcp:HOST:PORT or unix:PATH.`);
      e.name = "ConfigError";
      throw e;
    }
    this.migrations.push(uri);
  }
  queryMigration(): MigrationStatus {
    return this.migrations.length === 0 ? { status: "none" } : { status: "active", uri: this.migrations.at(-1)! };
  }
  cancelMigration(): void {
    this.migrations.push("cancel");
  }
  migrationParameters: MigrationParameters = { downtimeLimitMs: 300, maxBandwidth: 128 << 20 };
  setMigrationParameters(p: Partial<MigrationParameters>): MigrationParameters {
    return (this.migrationParameters = { ...this.migrationParameters, ...p });
  }
  pause(): void {
    this.record("pause");
    this.state = "paused";
    this.emit({ event: "STOP" });
  }
  resume(): void {
    this.record("resume");
    this.state = "running";
    this.emit({ event: "RESUME" });
  }
  powerdown(): void {
    this.record("powerdown");
  }
  quit(): void {
    this.record("quit");
    this.state = "shutdown";
    this.reason = "quit";
    this.emit({ event: "SHUTDOWN", data: { reason: "quit" } });
  }
  netCalls: unknown[] = [];
  setLink(nic: string, up: boolean): void {
    if (nic !== "net0") throw Object.assign(new Error(`The VM has no NIC "${nic}"; its NICs are net0.`), { name: "ConfigError" });
    this.netCalls.push({ nic, up });
  }
  setNetLimits(nic: string, limits: unknown): void {
    this.netCalls.push({ nic, limits });
  }
  balloonCalls: unknown[] = [];
  setBalloonTarget(bytes: number): void {
    if (bytes > 256 << 20) throw Object.assign(new Error("Cannot set the guest's memory to 1 GiB: choose a size from 64 MiB (the floor) to 256 MiB (its RAM)."), { name: "ConfigError" });
    this.balloonCalls.push({ target: bytes });
  }
  setBalloonStatsInterval(seconds: number): void {
    this.balloonCalls.push({ seconds });
  }
  balloonInfo(): BalloonInfo {
    return { actual: 200 << 20, target: 128 << 20 } as BalloonInfo;
  }
  /** Accepts at most `inputRoom` bytes, as the real VM's bounded input queue does. */
  inputRoom = Infinity;
  consoleWrite(data: Uint8Array): number {
    this.record("consoleWrite");
    const n = Math.min(data.length, this.inputRoom);
    this.written.push(...data.subarray(0, n));
    return n;
  }
  onConsoleOutput(listener: (data: Uint8Array) => void): () => void {
    this.consoleListeners.add(listener);
    return () => this.consoleListeners.delete(listener);
  }
  onEvent(listener: (e: VmEvent) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }
  output(text: string | Uint8Array): void {
    const bytes = typeof text === "string" ? new TextEncoder().encode(text) : text;
    for (const l of [...this.consoleListeners]) l(bytes);
  }
  emit(e: VmEvent): void {
    for (const l of [...this.eventListeners]) l(e);
  }
  private record(call: string): void {
    this.maybeFail(call);
    this.calls.push(call);
  }
  private maybeFail(call: string): void {
    if (this.failNext !== call) return;
    this.failNext = null;
    throw new Error(`the fake VM refuses ${call}`);
  }
}

let counter = 0;
function socketPath(t: TestContext): string {
  const path = join(tmpdir(), `nv-ctl-${process.pid}-${counter++}.sock`);
  t.after(() => rmSync(path, { force: true }));
  return path;
}

async function startServer(t: TestContext, extra: { maxPendingOutputBytes?: number } = {}) {
  const vm = new FakeVm();
  const path = socketPath(t);
  const logs: string[] = [];
  const server = new ControlServer({ path, controller: vm, version: "9.9.9", log: (m) => logs.push(m), ...extra });
  await server.listen();
  t.after(() => server.close());
  return { vm, path, server, logs };
}

async function client(t: TestContext, path: string): Promise<ControlClient> {
  const c = await ControlClient.connect(path, { timeoutMs: 2000 });
  t.after(() => c.close());
  return c;
}

/** A socket speaking raw lines, for input the real client would never send. */
class RawConn {
  readonly socket: Socket;
  private buffered = "";
  private lines: any[] = [];
  private waiters: ((v: any) => void)[] = [];
  readonly closed: Promise<void>;

  constructor(path: string) {
    this.socket = connect(path);
    this.socket.on("error", () => {});
    this.socket.on("data", (d: Buffer) => {
      this.buffered += d.toString("utf8");
      let nl: number;
      while ((nl = this.buffered.indexOf("\n")) >= 0) {
        const line = JSON.parse(this.buffered.slice(0, nl));
        this.buffered = this.buffered.slice(nl + 1);
        const w = this.waiters.shift();
        if (w) w(line);
        else this.lines.push(line);
      }
    });
    this.closed = once(this.socket, "close").then(() => {});
  }
  next(): Promise<any> {
    if (this.lines.length > 0) return Promise.resolve(this.lines.shift());
    return new Promise((resolve) => this.waiters.push(resolve));
  }
  send(text: string | Buffer): void {
    this.socket.write(text);
  }
  async request(text: string): Promise<any> {
    this.send(text + "\n");
    return this.next();
  }
}

async function raw(t: TestContext, path: string): Promise<RawConn> {
  const r = new RawConn(path);
  t.after(() => r.socket.destroy());
  await r.next(); // greeting
  return r;
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`Timed out waiting until ${what}.`);
}

async function rejectsWith(p: Promise<unknown>, errorClass: string, desc: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof ControlCommandError, `expected a ControlCommandError, got ${e}`);
    assert.equal(e.errorClass, errorClass);
    assert.match(e.desc, desc);
    return true;
  });
}

test("greets with version, protocol and capabilities; socket is 0600 and removed on close", async (t) => {
  const { path, server } = await startServer(t);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  const c = await client(t, path);
  assert.deepEqual(c.greeting, { nodevisor: { version: "9.9.9", protocol: 1 }, capabilities: ["console"] });
  c.close();
  await server.close();
  assert.equal(existsSync(path), false);
});

test("untilConnected resolves with the first client, and at once after it (run --control-wait)", async (t) => {
  const { path, server } = await startServer(t);
  let connected = false;
  const waiting = server.untilConnected().then(() => (connected = true));
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(connected, false, "no client yet");
  await client(t, path);
  await waiting;
  assert.equal(connected, true);
  await server.untilConnected(); // already connected: no wait
});

test("the default version in the greeting is 0.1.0", async (t) => {
  const path = socketPath(t);
  const server = new ControlServer({ path, controller: new FakeVm() });
  await server.listen();
  t.after(() => server.close());
  const r = new RawConn(path);
  t.after(() => r.socket.destroy());
  assert.deepEqual(await r.next(), { nodevisor: { version: "0.1.0", protocol: 1 }, capabilities: ["console"] });
});

test("every command maps onto the controller", async (t) => {
  const { vm, path } = await startServer(t);
  const c = await client(t, path);
  const events: string[] = [];
  for (const name of ["STOP", "RESUME", "SHUTDOWN"]) c.on(name, (data) => events.push(`${name}${JSON.stringify(data)}`));

  const { commands } = await c.execute<{ commands: { name: string }[] }>("query-commands");
  assert.deepEqual(commands.map((x) => x.name).sort(), [
    "balloon", "balloon-stats-interval", "console-attach", "console-detach", "console-resize", "console-write",
    "migrate", "migrate-cancel", "migrate-set-parameters", "pause", "powerdown",
    "query-balloon", "query-commands", "query-interrupts", "query-migrate", "query-stats", "query-status", "quit", "resume", "set-cpu-limits", "set-disk-limits", "set-link", "set-net-limits",
    "snapshot-load", "snapshot-save",
  ]);
  assert.deepEqual(await c.execute("query-status"), vm.status());
  assert.deepEqual(await c.execute("query-stats"), vm.stats());
  assert.deepEqual(await c.execute("pause"), {});
  assert.equal((await c.execute<{ state: string }>("query-status")).state, "paused");
  assert.deepEqual(await c.execute("resume"), {});
  assert.deepEqual(await c.execute("powerdown"), {});
  assert.deepEqual(await c.execute("console-write", { data: Buffer.from("ls\n").toString("base64") }), { bytes: 3 });
  vm.inputRoom = 0; // a full input queue: the reply says nothing was taken
  assert.deepEqual(await c.execute("console-write", { data: Buffer.from("x").toString("base64") }), { bytes: 0 });
  assert.deepEqual(await c.execute("quit"), {});
  assert.deepEqual(vm.calls, ["pause", "resume", "powerdown", "consoleWrite", "consoleWrite", "quit"]);
  assert.deepEqual(vm.written, [...Buffer.from("ls\n")]);
  assert.deepEqual(events, ["STOP{}", "RESUME{}", 'SHUTDOWN{"reason":"quit"}']);
});

test("snapshot-save answers when the snapshot is written, and reports a failure as an error", async (t) => {
  const { path } = await startServer(t);
  const c = await client(t, path);
  const [saved, status] = await Promise.all([c.execute("snapshot-save", { path: "/tmp/x.snap" }), c.execute("query-status")]);
  assert.deepEqual(saved, { path: "/tmp/x.snap", bytes: 4096, ramPages: 1, pausedMs: 20 });
  assert.equal((status as { state: string }).state, "running", "other commands are answered meanwhile");
  await rejectsWith(c.execute("snapshot-save", { path: "/tmp/x.bad" }), "GenericError", /snapshot-save" failed: disk full/);
  await rejectsWith(c.execute("snapshot-save", { path: "" }), "InvalidArgument", /must name a file/);
});

test("migrate, query-migrate, migrate-cancel and migrate-set-parameters reach the controller; bad arguments are InvalidArgument", async (t) => {
  const { vm, path } = await startServer(t);
  const c = await client(t, path);
  assert.deepEqual(await c.execute("query-migrate"), { status: "none" });
  assert.deepEqual(await c.execute("migrate", { uri: "unix:/tmp/m.sock" }), {});
  assert.deepEqual(await c.execute("query-migrate"), { status: "active", uri: "unix:/tmp/m.sock" });
  assert.deepEqual(await c.execute("migrate-cancel"), {});
  assert.deepEqual(vm.migrations, ["unix:/tmp/m.sock", "cancel"]);
  await rejectsWith(c.execute("migrate", { uri: "ftp:x" }), "InvalidArgument", /give tcp:HOST:PORT or unix:PATH/);
  await rejectsWith(c.execute("migrate"), "InvalidArgument", /uri/);
  assert.deepEqual(await c.execute("migrate-set-parameters", { "downtime-limit": 50 }), { "downtime-limit": 50, "max-bandwidth": 128 << 20 });
  assert.deepEqual(await c.execute("migrate-set-parameters", { "max-bandwidth": 1 << 30 }), { "downtime-limit": 50, "max-bandwidth": 1 << 30 });
  await rejectsWith(c.execute("migrate-set-parameters", { "max-bandwidth": 10 }), "InvalidArgument", /from 1048576/);
  await rejectsWith(c.execute("migrate-set-parameters", { "downtime-limit": "fast" }), "InvalidArgument", /downtime-limit/);
  vm.pause();
  await rejectsWith(c.execute("migrate", { uri: "unix:/tmp/m.sock" }), "InvalidState", /Cannot migrate: the VM is paused/);
});

test("set-link and set-net-limits reach the controller; a bad NIC or number is InvalidArgument", async (t) => {
  const { vm, path } = await startServer(t);
  const c = await client(t, path);
  assert.deepEqual(await c.execute("set-link", { nic: "net0", up: false }), {});
  assert.deepEqual(await c.execute("set-net-limits", { nic: "net0", "tx-bps": 1000000, "rx-pps": 500, "rx-bps": 0 }), {});
  assert.deepEqual(vm.netCalls, [
    { nic: "net0", up: false },
    { nic: "net0", limits: { tx: { bandwidth: { size: 1000000, refillTimeMs: 1000 } }, rx: { ops: { size: 500, refillTimeMs: 1000 } } } },
  ]);
  await rejectsWith(c.execute("set-link", { nic: "net7", up: true }), "InvalidArgument", /no NIC "net7"/);
  await rejectsWith(c.execute("set-link", { nic: "net0", up: "yes" }), "InvalidArgument", /must be a boolean/);
  await rejectsWith(c.execute("set-net-limits", { nic: "net0", "tx-bps": -5 }), "InvalidArgument", /whole number per second/);
});

test("balloon, query-balloon and balloon-stats-interval reach the controller; a size out of range is InvalidArgument", async (t) => {
  const { vm, path } = await startServer(t);
  const c = await client(t, path);
  assert.deepEqual(await c.execute("balloon", { value: 128 << 20 }), {});
  assert.deepEqual(await c.execute("balloon-stats-interval", { seconds: 2 }), {});
  assert.deepEqual(await c.execute("query-balloon"), { actual: 200 << 20, target: 128 << 20 });
  assert.deepEqual(vm.balloonCalls, [{ target: 128 << 20 }, { seconds: 2 }]);
  await rejectsWith(c.execute("balloon", { value: 1 << 30 }), "InvalidArgument", /choose a size from 64 MiB/);
  await rejectsWith(c.execute("balloon", { value: "1G" }), "InvalidArgument", /must be a number/);
});

test("commands that make no sense in the VM's state answer InvalidState and call nothing", async (t) => {
  const { vm, path } = await startServer(t);
  const c = await client(t, path);
  await rejectsWith(c.execute("resume"), "InvalidState", /Cannot resume: the VM is running\./);
  vm.state = "paused";
  await rejectsWith(c.execute("pause"), "InvalidState", /the VM is paused/);
  await rejectsWith(c.execute("powerdown"), "InvalidState", /resume it first, or use quit/);
  vm.state = "crashed";
  vm.reason = "guest-panic";
  await rejectsWith(c.execute("console-write", { data: "" }), "InvalidState", /has stopped \(guest-panic\)/);
  assert.deepEqual(vm.calls, []);
  assert.deepEqual(await c.execute("quit"), {}); // quit always works: it ends the VM process
});

test("a controller that throws becomes a GenericError and the connection keeps working", async (t) => {
  const { vm, path, logs } = await startServer(t);
  const c = await client(t, path);
  vm.failNext = "stats";
  await rejectsWith(c.execute("query-stats"), "GenericError", /"query-stats" failed: the fake VM refuses stats/);
  assert.ok(logs.some((l) => l.includes("refuses stats")));
  assert.equal((await c.execute<{ state: string }>("query-status")).state, "running");
});

test("console-attach streams serial output until console-detach", async (t) => {
  const { vm, path } = await startServer(t);
  const c = await client(t, path);
  const received: Buffer[] = [];
  c.on("CONSOLE", (d) => received.push(Buffer.from(d.data, "base64")));

  vm.output("before attach\n");
  await c.execute("console-attach");
  await c.execute("console-attach"); // idempotent: still one subscription
  assert.equal(vm.consoleListeners.size, 1);
  vm.output("login: ");
  const big = new Uint8Array(200 * 1024).map((_, i) => i & 0xff);
  vm.output(big);
  await c.execute("query-status"); // replies follow events on the same stream
  assert.equal(Buffer.concat(received).toString("latin1"), Buffer.concat([Buffer.from("login: "), big]).toString("latin1"));
  assert.ok(received.length > 2, "large output is sliced into several events");

  await c.execute("console-detach");
  assert.equal(vm.consoleListeners.size, 0);
  const count = received.length;
  vm.output("after detach\n");
  await c.execute("query-status");
  assert.equal(received.length, count);
  assert.deepEqual(await c.execute("console-detach"), {}); // detaching twice is harmless
});

test("two clients at once: both get lifecycle events, only the attached one gets console output", async (t) => {
  const { vm, path } = await startServer(t);
  const a = await client(t, path);
  const b = await client(t, path);
  const seen = { a: [] as string[], b: [] as string[] };
  a.on("SHUTDOWN", (d) => seen.a.push(d.reason));
  b.on("SHUTDOWN", (d) => seen.b.push(d.reason));
  let consoleA = 0;
  let consoleB = 0;
  a.on("CONSOLE", () => consoleA++);
  b.on("CONSOLE", () => consoleB++);
  await a.execute("console-attach");
  const [sa, sb] = await Promise.all([a.execute("query-status"), b.execute("query-status")]);
  assert.deepEqual(sa, sb);
  vm.output("x");
  vm.emit({ event: "SHUTDOWN", data: { reason: "poweroff" } });
  await Promise.all([a.execute("query-status"), b.execute("query-status")]);
  assert.deepEqual(seen, { a: ["poweroff"], b: ["poweroff"] });
  assert.equal(consoleA, 1);
  assert.equal(consoleB, 0);
  assert.equal(vm.eventListeners.size, 2);
  b.close();
  await until(() => vm.eventListeners.size === 1, "the closed client's event listener is removed");
});

test("a client that vanishes while attached is unsubscribed and harms no one", async (t) => {
  const { vm, path } = await startServer(t);
  const r = await raw(t, path);
  assert.deepEqual(await r.request('{"id":1,"execute":"console-attach"}'), { id: 1, return: {} });
  vm.output("partial line");
  r.socket.destroy();
  await until(() => vm.consoleListeners.size === 0 && vm.eventListeners.size === 0, "listeners are removed");
  vm.output("nobody listens");
  vm.emit({ event: "STOP" });
  const c = await client(t, path);
  assert.equal((await c.execute<{ state: string }>("query-status")).state, "running");
});

test("malformed requests get a GenericError sentence and the connection stays usable", async (t) => {
  const { path } = await startServer(t);
  const r = await raw(t, path);
  const cases: [string | Buffer, RegExp, unknown][] = [
    ["{not json", /not valid JSON/, undefined],
    [Buffer.from([0x7b, 0xc3, 0x28, 0x7d]), /not valid UTF-8/, undefined],
    ["[1,2]", /must be a JSON object/, undefined],
    ['"query-status"', /must be a JSON object/, undefined],
    ['{"id":"a"}', /needs an "execute" member/, "a"],
    ['{"id":{"n":[1]},"execute":5}', /needs an "execute" member/, { n: [1] }],
    ['{"id":7,"execute":"query-status","extra":1}', /unknown member "extra"/, 7],
  ];
  for (const [line, desc, id] of cases) {
    r.send(line);
    const reply = await r.request("");
    assert.equal(reply.error.class, "GenericError", String(line));
    assert.match(reply.error.desc, desc);
    assert.deepEqual(reply.id, id);
  }
  assert.equal((await r.request('{"execute":"query-status"}\r')).return.state, "running");
});

test("unknown commands answer CommandNotFound, including names found on Object.prototype", async (t) => {
  const { path } = await startServer(t);
  const c = await client(t, path);
  await rejectsWith(c.execute("system_reset"), "CommandNotFound", /"system_reset" does not exist; query-commands lists them\./);
  await rejectsWith(c.execute("constructor"), "CommandNotFound", /does not exist/);
  await rejectsWith(c.execute("__proto__"), "CommandNotFound", /does not exist/);
});

test("wrong arguments answer InvalidArgument and call nothing", async (t) => {
  const { vm, path } = await startServer(t);
  const c = await client(t, path);
  await rejectsWith(c.execute("console-write", {}), "InvalidArgument", /needs the argument "data"/);
  await rejectsWith(c.execute("console-write", { data: 5 }), "InvalidArgument", /"data" of "console-write" must be a string/);
  await rejectsWith(c.execute("console-write", { data: "not base64!" }), "InvalidArgument", /must be base64/);
  await rejectsWith(c.execute("pause", { now: true }), "InvalidArgument", /takes no argument "now"/);
  await rejectsWith(c.execute("pause", [1] as object), "InvalidArgument", /"arguments" member must be a JSON object/);
  const r = await raw(t, path);
  const reply = await r.request('{"id":3,"execute":"pause","arguments":null}');
  assert.deepEqual(reply.error.class, "InvalidArgument");
  assert.deepEqual(vm.calls, []);
});

test("a line of exactly the limit is served; one byte more gets an error and the connection closes", async (t) => {
  const { vm, path } = await startServer(t);
  const head = '{"execute":"query-status","id":"';
  const fill = MAX_REQUEST_LINE_BYTES - head.length - 2;
  const r = await raw(t, path);
  const ok = await r.request(head + "x".repeat(fill) + '"}');
  assert.equal(ok.return.state, "running");

  const r2 = await raw(t, path);
  await r2.request('{"execute":"console-attach"}');
  r2.send("y".repeat(MAX_REQUEST_LINE_BYTES + 1));
  const reply = await r2.next();
  assert.equal(reply.error.class, "GenericError");
  assert.match(reply.error.desc, /longer than 1048576 bytes; the connection will be closed/);
  await r2.closed;
  await until(() => vm.consoleListeners.size === 0, "the oversize client's console listener is removed");
  vm.output("still alive");
});

test("a client that does not read its output is dropped instead of growing memory", async (t) => {
  const { vm, path, logs } = await startServer(t, { maxPendingOutputBytes: 64 * 1024 });
  const r = await raw(t, path);
  await r.request('{"execute":"console-attach"}');
  r.socket.pause();
  const chunk = new Uint8Array(32 * 1024);
  for (let i = 0; i < 256 && vm.consoleListeners.size > 0; i++) vm.output(chunk);
  assert.equal(vm.consoleListeners.size, 0);
  assert.ok(logs.some((l) => l.includes("unread")));
  r.socket.resume();
  await r.closed;
});

test("a stale socket file is replaced; a live server or a regular file makes listen fail", async (t) => {
  const path = socketPath(t);
  // A socket inode with nobody listening: link it away before its server goes.
  const holder = createServer();
  const holderPath = socketPath(t);
  await new Promise<void>((r) => holder.listen(holderPath, r));
  linkSync(holderPath, path);
  await new Promise<void>((r) => holder.close(() => r()));
  assert.ok(statSync(path).isSocket());

  const first = new ControlServer({ path, controller: new FakeVm() });
  await first.listen();
  t.after(() => first.close());
  const c = await client(t, path);
  assert.equal(c.greeting.nodevisor.protocol, 1);

  const second = new ControlServer({ path, controller: new FakeVm() });
  await assert.rejects(second.listen(), /another control server answers there/);
  assert.equal((await c.execute<{ state: string }>("query-status")).state, "running");

  const filePath = socketPath(t);
  writeFileSync(filePath, "keep me");
  await assert.rejects(new ControlServer({ path: filePath, controller: new FakeVm() }).listen(), /is not a socket/);
  assert.equal(readFileSync(filePath, "utf8"), "keep me");

  const longPath = join(tmpdir(), "x".repeat(120) + ".sock");
  await assert.rejects(new ControlServer({ path: longPath, controller: new FakeVm() }).listen(), /choose a shorter path/);
});

test("close disconnects clients and removes their subscriptions", async (t) => {
  const { vm, path, server } = await startServer(t);
  const c = await client(t, path);
  await c.execute("console-attach");
  const reasons: string[] = [];
  c.onClose((e) => reasons.push(e.message));
  await server.close();
  await until(() => reasons.length === 1, "the client sees the close");
  assert.match(reasons[0]!, /closed by the VM/);
  assert.equal(vm.consoleListeners.size + vm.eventListeners.size, 0);
  await assert.rejects(c.execute("query-status"), /closed by the VM/);
});

test("run-time limits and console size reach the controller; bad values are refused with a sentence", async (t) => {
  const { vm, path } = await startServer(t);
  const c = await client(t, path);
  assert.deepEqual(await c.execute("set-cpu-limits", { cap: 25 }), { cap: 25 });
  assert.deepEqual(await c.execute("set-cpu-limits", { cap: null }), { cap: null });
  assert.deepEqual(await c.execute("set-disk-limits", { disk: "vda", bps: 1e6, iops: 100 }), {});
  assert.deepEqual(await c.execute("console-resize", { rows: 40, cols: 132 }), {});
  assert.deepEqual(vm.limits, [{ cap: 25 }, { cap: null }, { index: 0, bps: 1e6, iops: 100 }, { rows: 40, cols: 132 }]);
  await rejectsWith(c.execute("set-cpu-limits", { cap: 150 }), "InvalidArgument", /"cap" of "set-cpu-limits" must be a number from 0 to 100/);
  await rejectsWith(c.execute("set-cpu-limits", { cap: "50" }), "InvalidArgument", /must be a number/);
  await rejectsWith(c.execute("set-disk-limits", { disk: "sda" }), "InvalidArgument", /vda, vdb/);
  await rejectsWith(c.execute("set-disk-limits", { disk: "vdb", bps: 1 }), "InvalidArgument", /no disk vdb/);
  await rejectsWith(c.execute("set-disk-limits", { disk: "vda", burst: 5 }), "InvalidArgument", /needs a "bps" limit/);
  await rejectsWith(c.execute("console-resize", { rows: 0, cols: 80 }), "InvalidArgument", /"rows"/);
  assert.equal(vm.limits.length, 4);
});

test("replaceController moves every client, with its event and console subscriptions, to the new controller", async (t) => {
  const { vm: before, path, server } = await startServer(t);
  const attached = await client(t, path);
  const plain = await client(t, path);
  await attached.execute("console-attach");
  assert.equal(before.eventListeners.size, 2);
  assert.equal(before.consoleListeners.size, 1);

  const after = new FakeVm();
  after.state = "paused";
  server.replaceController(after);
  assert.equal(before.eventListeners.size, 0, "nothing stays subscribed to the old controller");
  assert.equal(before.consoleListeners.size, 0);
  assert.equal(after.eventListeners.size, 2);
  assert.equal(after.consoleListeners.size, 1, "only the attached client follows the console");

  const events: string[] = [];
  let consoleBytes = "";
  attached.on("RESUME", () => events.push("attached"));
  plain.on("RESUME", () => events.push("plain"));
  attached.on("CONSOLE", (d) => (consoleBytes += Buffer.from(d.data, "base64").toString("latin1")));
  before.output("old ");
  after.output("new");
  assert.equal((await plain.execute<{ state: string }>("query-status")).state, "paused", "commands reach the new controller");
  await plain.execute("resume");
  await attached.execute("query-status");
  assert.deepEqual(after.calls, ["resume"]);
  assert.deepEqual(before.calls, []);
  assert.deepEqual(events.sort(), ["attached", "plain"]);
  assert.equal(consoleBytes, "new");

  const late = await client(t, path);
  assert.equal((await late.execute<{ state: string }>("query-status")).state, "running", "a client that comes later talks to it too");
  assert.equal(after.eventListeners.size, 3);
});
