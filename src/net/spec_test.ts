import assert from "node:assert/strict";
import { test } from "node:test";
import { parseNetSpec } from "./spec.js";
import { encodeFrame, FrameDecoder, FrameWriter, FramingError } from "./stream_framing.js";

test("--net specs: modes, VLANs, forwards, limits, firewall", () => {
  assert.equal(parseNetSpec("none"), null);
  assert.deepEqual(parseNetSpec("user,hostfwd=tcp:8080-:80,hostfwd=udp:127.0.0.1:5353-:53")!.mode, {
    kind: "user",
    hostForwards: [
      { protocol: "tcp", hostAddress: null, hostPort: 8080, guestPort: 80 },
      { protocol: "udp", hostAddress: "127.0.0.1", hostPort: 5353, guestPort: 53 },
    ],
  });
  assert.deepEqual(parseNetSpec("switch=lab,trunk=10,20,30,mac=52:54:00:AA:bb:cc")!, {
    mode: { kind: "switch", switchName: "lab", port: { kind: "trunk", vlans: [10, 20, 30] } },
    mac: "52:54:00:aa:bb:cc",
    linkUp: true,
    limits: {},
    firewall: null,
    antiSpoof: true,
    offloads: true,
  });
  const c = parseNetSpec("switch=lab,vlan=7,tx-bps=1M,rx-pps=100,deny=in:tcp:22,policy-out=deny,link=down")!;
  assert.deepEqual(c.mode, { kind: "switch", switchName: "lab", port: { kind: "access", vlan: 7 } });
  assert.deepEqual(c.limits, { tx: { bandwidth: { size: 1 << 20, refillTimeMs: 1000 } }, rx: { ops: { size: 100, refillTimeMs: 1000 } } });
  assert.equal(c.firewall!.defaultOut, "deny");
  assert.deepEqual(c.firewall!.rules[0], { action: "deny", direction: "in", protocol: "tcp", cidr: null, ports: [22, 22] });
  assert.equal(c.linkUp, false);
  assert.deepEqual(parseNetSpec("tap=tap0")!.mode, { kind: "tap", ifname: "tap0" });
});

test("bad --net specs get one sentence that says what to do", () => {
  for (const [spec, why] of [
    ["bridge", /"bridge" is not a network mode/],
    ["switch=", /"switch=" is not a network mode/],
    ["switch=bad/name", /switch name/],
    ["switch=lab,vlan=5000", /1 to 4094/],
    ["switch=lab,vlan=1,trunk=2", /either one vlan= or one trunk=/],
    ["user,hostfwd=tcp:80", /PROTO:\[ADDR:\]HOSTPORT-:GUESTPORT/],
    ["switch=lab,hostfwd=tcp:1-:2", /only with user mode/],
    ["user,mac=01:00:00:00:00:01", /unicast MAC/],
    ["user,tx-bps=fast", /positive amount/],
    ["user,allow=sideways:tcp", /start with in or out/],
    ["user,deny=in:icmp:22", /port range/],
    ["user,colour=blue", /"colour" is not a known option/],
    ["none,mac=52:54:00:00:00:01", /takes no options/],
  ] as const) {
    assert.throws(() => parseNetSpec(spec), (e: Error) => e.name === "NetSpecError" && why.test(e.message) && e.message.startsWith(`Cannot use --net ${spec}:`), spec);
  }
});

test("stream framing: frames split anywhere come out whole; an impossible length is refused", () => {
  const a = new Uint8Array(100).fill(1);
  const b = new Uint8Array(3000).fill(2);
  const wire = Buffer.concat([encodeFrame(a), encodeFrame(b), encodeFrame(new Uint8Array(0))]);
  for (const step of [1, 3, 7, 1000, wire.length]) {
    const d = new FrameDecoder();
    const got: Uint8Array[] = [];
    for (let i = 0; i < wire.length; i += step) got.push(...d.push(wire.subarray(i, i + step)));
    assert.deepEqual(got.map((f) => f.length), [100, 3000, 0], `chunks of ${step}`);
    assert.deepEqual(got[1], b);
  }
  const d = new FrameDecoder();
  assert.throws(() => d.push(Buffer.from([0x7f, 0, 0, 0])), FramingError);
});

test("stream framing: a bad length is refused as soon as its prefix is complete, even split across reads", () => {
  const d = new FrameDecoder();
  const wire = Buffer.concat([encodeFrame(new Uint8Array(20)), Buffer.from([0x7f])]);
  assert.deepEqual(d.push(wire).map((f) => f.length), [20]);
  assert.deepEqual(d.push(Buffer.from([0, 0])), []);
  assert.throws(() => d.push(Buffer.from([0])), FramingError);
});

test("stream framing: frames sent in one turn of the event loop leave in one write, and a full queue refuses frames", async () => {
  const writes: Uint8Array[] = [];
  const socket = { destroyed: false, writableLength: 0, write: (d: Uint8Array) => writes.push(Buffer.from(d)) > 0 };
  const w = new FrameWriter(socket, 250);
  assert.ok(w.send(new Uint8Array(100).fill(1)));
  assert.ok(w.send(new Uint8Array(100).fill(2)));
  assert.ok(w.send(new Uint8Array(100).fill(3)), "208 bytes wait: still within the 250-byte limit");
  assert.equal(w.send(new Uint8Array(100)), false, "312 bytes wait: past the limit");
  assert.equal(writes.length, 0, "nothing is written before the turn ends");
  await Promise.resolve();
  assert.equal(writes.length, 1);
  const d = new FrameDecoder();
  assert.deepEqual(d.push(writes[0]!).map((f) => [f.length, f[0]]), [[100, 1], [100, 2], [100, 3]]);
  socket.writableLength = 251;
  assert.equal(w.send(new Uint8Array(100)), false, "bytes the socket still holds count against the limit");
});
