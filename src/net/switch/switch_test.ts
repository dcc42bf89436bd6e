import assert from "node:assert/strict";
import { test } from "node:test";
import { parseL2 } from "../ethernet.js";
import { frame, Sink, tagged } from "../testing/frames.js";
import { L2Switch } from "./switch.js";

const A = "52:54:00:00:00:0a";
const B = "52:54:00:00:00:0b";
const C = "52:54:00:00:00:0c";
const BCAST = "ff:ff:ff:ff:ff:ff";

function three(now = () => 0) {
  const sw = new L2Switch({ now, ageingMs: 1000 });
  const sinks = [new Sink(), new Sink(), new Sink()];
  const ports = sinks.map((s, i) => sw.addPort(`p${i}`, { kind: "access", vlan: 1 }, s.output));
  return { sw, sinks, ports };
}

test("floods unknown destinations, then forwards only to the learnt port", () => {
  const { sw, sinks, ports } = three();
  sw.input(ports[0]!, frame(B, A));
  assert.equal(sinks[0]!.frames.length, 0, "never back to the sender");
  assert.equal(sinks[1]!.take().length, 1);
  assert.equal(sinks[2]!.take().length, 1);
  sw.input(ports[1]!, frame(A, B)); // A is known: only port 0
  assert.equal(sinks[0]!.take().length, 1);
  assert.equal(sinks[2]!.take().length, 0);
  sw.input(ports[0]!, frame(B, A)); // B is known now
  assert.equal(sinks[1]!.take().length, 1);
  assert.equal(sinks[2]!.take().length, 0);
  sw.input(ports[2]!, frame(BCAST, C)); // broadcast floods
  assert.equal(sinks[0]!.take().length + sinks[1]!.take().length, 2);
});

test("learnt addresses age out and move when a station moves", () => {
  let t = 0;
  const { sw, sinks, ports } = three(() => t);
  sw.input(ports[0]!, frame(BCAST, A));
  assert.equal(sw.lookup(1, A), ports[0]);
  t = 500;
  sw.input(ports[2]!, frame(BCAST, A)); // A moved to port 2
  assert.equal(sw.lookup(1, A), ports[2]);
  t = 1600;
  assert.equal(sw.lookup(1, A), null, "aged out");
  sinks.forEach((s) => s.take());
  sw.input(ports[1]!, frame(A, B));
  assert.equal(sinks[0]!.take().length + sinks[2]!.take().length, 2, "flooded again after ageing");
  sw.age();
  sw.removePort(ports[1]!);
  assert.equal(sw.lookup(1, B), null, "a removed port's addresses are forgotten");
});

test("access ports keep VLANs apart; a trunk carries both, tagged", () => {
  const sw = new L2Switch({ now: () => 0 });
  const a = new Sink();
  const b = new Sink();
  const t = new Sink();
  const pa = sw.addPort("a", { kind: "access", vlan: 10 }, a.output);
  const pb = sw.addPort("b", { kind: "access", vlan: 20 }, b.output);
  const pt = sw.addPort("t", { kind: "trunk", vlans: [10, 20] }, t.output);
  sw.input(pa, frame(BCAST, A));
  assert.equal(b.take().length, 0, "VLAN 10 never reaches VLAN 20");
  const [f10] = t.take();
  assert.equal(parseL2(f10!)?.vlan, 10);
  sw.input(pb, frame(A, B)); // A is on VLAN 10 only: unknown on 20, flooded on 20
  assert.equal(a.take().length, 0);
  assert.equal(parseL2(t.take()[0]!)?.vlan, 20);
  sw.input(pt, tagged(frame(A, C), 10));
  const [toA] = a.take();
  assert.equal(parseL2(toA!)?.vlan, null, "untagged on the access port");
  assert.equal(toA!.length, 19);
  assert.equal(b.take().length, 0);
  sw.input(pt, tagged(frame(BCAST, C), 30)); // not carried by the trunk
  sw.input(pt, frame(BCAST, C)); // untagged on a trunk without native VLAN
  sw.input(pa, tagged(frame(BCAST, A), 20)); // tagged frames on an access port
  assert.equal(a.take().length + b.take().length, 0);
  const info = sw.portInfo();
  assert.equal(info.find((p) => p.name === "t")!.counters.dropsVlan, 2);
  assert.equal(info.find((p) => p.name === "a")!.counters.dropsVlan, 1);
});

test("a trunk's native VLAN travels untagged", () => {
  const sw = new L2Switch({ now: () => 0 });
  const a = new Sink();
  const t = new Sink();
  const pa = sw.addPort("a", { kind: "access", vlan: 1 }, a.output);
  const pt = sw.addPort("t", { kind: "trunk", vlans: [5], native: 1 }, t.output);
  sw.input(pa, frame(BCAST, A));
  assert.equal(parseL2(t.take()[0]!)?.vlan, null);
  sw.input(pt, frame(BCAST, C));
  assert.equal(a.take().length, 1);
});

test("malformed frames, multicast sources and a full peer are dropped and counted, and do not hold up others", () => {
  const { sw, sinks, ports } = three();
  sw.input(ports[0]!, new Uint8Array(10));
  sw.input(ports[0]!, frame(B, "01:00:5e:00:00:01"));
  sinks[1]!.full = true;
  sw.input(ports[0]!, frame(BCAST, A));
  assert.equal(sinks[2]!.take().length, 1, "the other port still gets it");
  const info = sw.portInfo();
  assert.equal(info[0]!.counters.dropsMalformed, 2);
  assert.equal(info[1]!.counters.dropsQueueFull, 1);
  assert.equal(info[0]!.counters.rxPackets, 3);
});

test("the MAC table is bounded: a flood of source addresses cannot grow it past its limit", () => {
  const sw = new L2Switch({ now: () => 0, maxMacEntries: 4 });
  const s = new Sink();
  const p = sw.addPort("p", { kind: "access", vlan: 1 }, s.output);
  sw.addPort("q", { kind: "access", vlan: 1 }, new Sink().output);
  for (let i = 0; i < 10; i++) sw.input(p, frame(BCAST, `52:54:00:00:01:${i.toString(16).padStart(2, "0")}`));
  let known = 0;
  for (let i = 0; i < 10; i++) if (sw.lookup(1, `52:54:00:00:01:${i.toString(16).padStart(2, "0")}`) !== null) known++;
  assert.equal(known, 4);
});
