import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Socket } from "node:net";
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ControlClient, ControlConnectionError } from "./control_client.js";
import { MAX_REQUEST_LINE_BYTES } from "./control_protocol.js";

let counter = 0;

/** A hand-written server, so each test controls exactly what the client receives. */
async function fakeServer(t: TestContext, onConnect: (s: Socket) => void): Promise<{ path: string; received: string[] }> {
  const path = join(tmpdir(), `nv-cli-${process.pid}-${counter++}.sock`);
  const received: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on("error", () => {});
    s.on("data", (d) => received.push(d.toString()));
    onConnect(s);
  });
  await new Promise<void>((r) => server.listen(path, r));
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(path, { force: true });
  });
  return { path, received };
}

const GREETING = '{"nodevisor":{"version":"0.1.0","protocol":1},"capabilities":["console","future"]}\n';

test("connect fails with a sentence when nothing listens", async () => {
  const path = join(tmpdir(), `nv-cli-${process.pid}-missing.sock`);
  await assert.rejects(ControlClient.connect(path), (e: unknown) => {
    assert.ok(e instanceof ControlConnectionError);
    assert.match(e.message, /The control connection to ".*missing\.sock" failed: .*ENOENT/);
    return true;
  });
});

test("connect times out when the server never greets", async (t) => {
  const { path } = await fakeServer(t, () => {});
  await assert.rejects(ControlClient.connect(path, { timeoutMs: 100 }), /did not greet within 100 ms/);
});

test("connect refuses another protocol number or a non-greeting first line", async (t) => {
  const v2 = await fakeServer(t, (s) => s.write('{"nodevisor":{"version":"9.0.0","protocol":2},"capabilities":[]}\n'));
  await assert.rejects(ControlClient.connect(v2.path), /speaks control protocol 2, this client speaks 1/);
  const other = await fakeServer(t, (s) => s.write('{"QMP":{}}\n'));
  await assert.rejects(ControlClient.connect(other.path), /first line is not a nodevisor greeting/);
});

test("matches replies by id, delivers events, and keeps unknown capabilities", async (t) => {
  const { path, received } = await fakeServer(t, (s) => {
    s.write(GREETING);
    s.on("data", () => {
      // Answer the two requests out of order, with an event in between.
      if (received.join("").split("\n").length - 1 < 2) return;
      s.write('{"id":2,"return":{"second":true}}\n{"event":"STOP","timestamp":1,"data":{"why":"test"}}\n');
      s.write('{"id":1,"error":{"class":"InvalidState","desc":"Nope."}}\n');
    });
  });
  const c = await ControlClient.connect(path);
  t.after(() => c.close());
  assert.deepEqual(c.greeting.capabilities, ["console", "future"]);
  const stops: unknown[] = [];
  c.on("STOP", (d) => stops.push(d));
  const first = c.execute("pause");
  const second = c.execute("query-status", { verbose: true });
  assert.deepEqual(await second, { second: true });
  await assert.rejects(first, { name: "ControlCommandError", errorClass: "InvalidState", desc: "Nope.", command: "pause" });
  assert.deepEqual(stops, [{ why: "test" }]);
  assert.deepEqual(
    received.join("").trim().split("\n").map((l) => JSON.parse(l)),
    [
      { id: 1, execute: "pause" },
      { id: 2, execute: "query-status", arguments: { verbose: true } },
    ],
  );
});

test("pending commands are rejected when the server closes or the client closes", async (t) => {
  const closing = await fakeServer(t, (s) => {
    s.write(GREETING);
    s.on("data", () => s.end());
  });
  const c = await ControlClient.connect(closing.path);
  await assert.rejects(c.execute("query-status"), /closed by the VM before "query-status" was answered/);
  await assert.rejects(c.execute("query-status"), /closed by the VM/);

  const silent = await fakeServer(t, (s) => s.write(GREETING));
  const d = await ControlClient.connect(silent.path);
  const pending = d.execute("quit");
  d.close();
  await assert.rejects(pending, /closed by this client before "quit" was answered/);
});

test("a hostile server that sends garbage or endless lines loses the connection", async (t) => {
  const garbage = await fakeServer(t, (s) => s.write(GREETING + "not json\n"));
  const c = await ControlClient.connect(garbage.path);
  const reasons: string[] = [];
  c.onClose((e) => reasons.push(e.message));
  await new Promise((r) => setTimeout(r, 50));
  assert.match(reasons[0] ?? "", /broke the control protocol: The line is not valid JSON/);

  const endless = await fakeServer(t, (s) => {
    s.write(GREETING);
    const block = "x".repeat(1024 * 1024);
    const pump = (): void => {
      while (!s.destroyed && s.write(block));
      if (!s.destroyed) s.once("drain", pump);
    };
    pump();
  });
  const e = await ControlClient.connect(endless.path);
  await assert.rejects(e.execute("query-status"), /a line is longer than 16777216 bytes/);
});

test("a request over the server's line limit is refused before it is sent", async (t) => {
  const { path, received } = await fakeServer(t, (s) => s.write(GREETING));
  const c = await ControlClient.connect(path);
  t.after(() => c.close());
  const data = "A".repeat(MAX_REQUEST_LINE_BYTES);
  await assert.rejects(c.execute("console-write", { data }), /larger than the 1048576-byte limit/);
  assert.deepEqual(received, []);
});
