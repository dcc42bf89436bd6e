import assert from "node:assert/strict";
import { test } from "node:test";
import { buildUdpFrame, internetChecksum, IPPROTO_ICMP, IPPROTO_UDP, ipv4ToString, parseIpv4Packet, pseudoHeaderSum } from "../ethernet.js";
import { RecordingBackend } from "../testing/recording_backend.js";
import { arpRequest, icmpEcho, ip, mac, tcp, udp } from "../testing/frames.js";
import { DhcpServer } from "./dhcp.js";
import { NatRouter } from "./nat.js";
import { TCP_ESTABLISHED_MS, TCP_RESET_MS, TCP_TRANSITORY_MS, UDP_MS } from "./nat_table.js";
import { defaultNetworkConfig } from "./network.js";
import { NetworkServices } from "./services.js";

const GW_MAC = "52:54:fe:00:03:01";
const PASST_MAC = "9a:55:9a:55:9a:55";
const VM1 = "52:54:00:00:00:01";
const VM2 = "52:54:00:00:00:02";
const UPLINK = "192.0.2.2";
const HOST = "192.0.2.1"; // passt's router: the host's loopback
const DNS = "10.255.255.53";
const REMOTE = "203.0.113.7";

/** A NAT with a fake clock, an uplink that plays passt's DHCP, and the frames it sends to the VMs. */
function setup(o: { portRange?: [number, number]; maxFlows?: number } = {}) {
  let t = 0;
  const clock = { now: () => t, advance: (ms: number) => (t += ms) };
  const uplink = new RecordingBackend();
  const inside: Uint8Array[] = [];
  const cfg = defaultNetworkConfig();
  const nat = new NatRouter({ network: cfg, mac: mac(GW_MAC), sendInside: (f) => inside.push(f), uplink, table: { now: clock.now, ...o } });
  nat.start({ timers: false });
  const passtDhcp = new DhcpServer({ serverIp: ip(HOST), netmask: 0xffffff00, router: ip(HOST), dns: ip(DNS), domain: null, rangeStart: ip(UPLINK), rangeEnd: ip(UPLINK), leaseSeconds: 3600, mtu: 65520, staticLeases: new Map() });
  // Two rounds: DISCOVER → OFFER, REQUEST → ACK.
  for (let i = 0; i < 2; i++) {
    const f = uplink.sent.pop()!;
    const v = parseIpv4Packet(f, 14)!;
    const r = passtDhcp.handle(f.subarray(14 + v.headerBytes + 8))!;
    uplink.deliver(buildUdpFrame({ srcMac: mac(PASST_MAC), dstMac: r.clientMac, src: ip(HOST), dst: 0xffffffff, srcPort: 67, dstPort: 68, payload: r.payload }));
  }
  assert.equal(uplink.sent.length, 0);
  return { nat, uplink, inside, clock, cfg };
}

/** Recomputes the IPv4 header and the TCP/UDP/ICMP checksums of a frame; true when both are right. */
function checksumsValid(f: Uint8Array): boolean {
  const v = parseIpv4Packet(f, 14)!;
  if (internetChecksum(f, 14, 14 + v.headerBytes) !== 0) return false;
  const l4 = 14 + v.headerBytes;
  const end = 14 + v.totalLength;
  if (v.protocol === IPPROTO_ICMP) return internetChecksum(f, l4, end) === 0;
  if (v.protocol === IPPROTO_UDP && f[l4 + 6] === 0 && f[l4 + 7] === 0) return true;
  return internetChecksum(f, l4, end, pseudoHeaderSum(v.src, v.dst, v.protocol, end - l4)) === 0;
}

const view = (f: Uint8Array) => {
  const v = parseIpv4Packet(f, 14)!;
  return { src: ipv4ToString(v.src), dst: ipv4ToString(v.dst), srcPort: v.srcPort, dstPort: v.dstPort, ttl: f[22], dstMac: [...f.subarray(0, 6)].map((b) => b.toString(16).padStart(2, "0")).join(":") };
};

test("NAT: the uplink takes its address from passt's DHCP and answers passt's ARP for it", () => {
  const { nat, uplink } = setup();
  assert.equal(ipv4ToString(nat.lease!.address), UPLINK);
  assert.equal(ipv4ToString(nat.lease!.router!), HOST);
  assert.equal(ipv4ToString(nat.dnsServer!), DNS);
  uplink.deliver(arpRequest(PASST_MAC, HOST, UPLINK));
  const r = uplink.sent.pop()!;
  assert.equal(r[21], 2, "an ARP reply");
  assert.deepEqual([...r.subarray(22, 28)], [...mac(GW_MAC)]);
  assert.deepEqual([...r.subarray(28, 32)], [192, 0, 2, 2]);
  uplink.deliver(arpRequest(PASST_MAC, HOST, "192.0.2.99"));
  assert.equal(uplink.sent.length, 0, "no answer for other addresses");
});

test("NAT: a TCP connection is translated both ways with correct checksums, the VM's port kept when free", () => {
  const { nat, uplink, inside } = setup();
  const payload = new TextEncoder().encode("GET / HTTP/1.0\r\n\r\n");
  nat.fromVm(tcp({ srcMac: VM1, dstMac: GW_MAC, src: "10.0.3.100", dst: REMOTE, srcPort: 40000, dstPort: 80, flags: 2, payload }));
  const out = uplink.sent.pop()!;
  assert.deepEqual(view(out), { src: UPLINK, dst: REMOTE, srcPort: 40000, dstPort: 80, ttl: 63, dstMac: PASST_MAC });
  assert.ok(checksumsValid(out), "checksums after translation out");
  assert.equal(new TextDecoder().decode(out.subarray(54)), "GET / HTTP/1.0\r\n\r\n", "payload untouched");

  nat["fromUplink"](tcp({ srcMac: PASST_MAC, dstMac: GW_MAC, src: REMOTE, dst: UPLINK, srcPort: 80, dstPort: 40000, flags: 18, payload: new Uint8Array([1, 2, 3]) }));
  const back = inside.pop()!;
  assert.deepEqual(view(back), { src: REMOTE, dst: "10.0.3.100", srcPort: 80, dstPort: 40000, ttl: 63, dstMac: VM1 });
  assert.ok(checksumsValid(back), "checksums after translation back");
  assert.equal(nat.counters.outPackets, 1);
  assert.equal(nat.counters.inPackets, 1);
});

test("NAT: two VMs with the same source port get different uplink ports; replies go to the right VM", () => {
  const { nat, uplink, inside } = setup();
  nat.fromVm(tcp({ srcMac: VM1, dstMac: GW_MAC, src: "10.0.3.100", dst: REMOTE, srcPort: 5000, dstPort: 443, flags: 2 }));
  nat.fromVm(tcp({ srcMac: VM2, dstMac: GW_MAC, src: "10.0.3.101", dst: REMOTE, srcPort: 5000, dstPort: 443, flags: 2 }));
  const [a, b] = uplink.sent.map(view);
  assert.equal(a!.srcPort, 5000);
  assert.notEqual(b!.srcPort, 5000);
  nat["fromUplink"](tcp({ srcMac: PASST_MAC, dstMac: GW_MAC, src: REMOTE, dst: UPLINK, srcPort: 443, dstPort: b!.srcPort, flags: 18 }));
  nat["fromUplink"](tcp({ srcMac: PASST_MAC, dstMac: GW_MAC, src: REMOTE, dst: UPLINK, srcPort: 443, dstPort: 5000, flags: 18 }));
  assert.deepEqual(inside.map((f) => [view(f).dst, view(f).dstMac, view(f).dstPort]), [["10.0.3.101", VM2, 5000], ["10.0.3.100", VM1, 5000]]);
  assert.ok(inside.every(checksumsValid));
});

test("NAT: UDP both ways, and a datagram without checksum keeps none", () => {
  const { nat, uplink, inside } = setup();
  nat.fromVm(udp({ srcMac: VM1, dstMac: GW_MAC, src: "10.0.3.100", dst: REMOTE, srcPort: 999, dstPort: 123 }));
  const out = uplink.sent.pop()!;
  assert.ok(checksumsValid(out));
  assert.notEqual(view(out).srcPort, 999, "ports below 1024 are not handed out");
  nat["fromUplink"](udp({ srcMac: PASST_MAC, dstMac: GW_MAC, src: REMOTE, dst: UPLINK, srcPort: 123, dstPort: view(out).srcPort }));
  assert.deepEqual(view(inside.pop()!), { src: REMOTE, dst: "10.0.3.100", srcPort: 123, dstPort: 999, ttl: 63, dstMac: VM1 });
  const bare = udp({ srcMac: VM1, dstMac: GW_MAC, src: "10.0.3.100", dst: REMOTE, srcPort: 2000, dstPort: 53 });
  bare[40] = bare[41] = 0;
  nat.fromVm(bare);
  const o2 = uplink.sent.pop()!;
  assert.deepEqual([o2[40], o2[41]], [0, 0]);
  assert.ok(checksumsValid(o2));
});

test("NAT: ping (ICMP echo) is translated by its identifier", () => {
  const { nat, uplink, inside } = setup();
  nat.fromVm(icmpEcho({ srcMac: VM1, dstMac: GW_MAC, src: "10.0.3.100", dst: REMOTE }));
  nat.fromVm(icmpEcho({ srcMac: VM2, dstMac: GW_MAC, src: "10.0.3.101", dst: REMOTE }));
  const [a, b] = uplink.sent;
  const id = (f: Uint8Array) => (f[38]! << 8) | f[39]!;
  assert.notEqual(id(a!), id(b!), "the same identifier from two VMs becomes two");
  assert.ok(checksumsValid(a!) && checksumsValid(b!));
  const reply = icmpEcho({ srcMac: PASST_MAC, dstMac: GW_MAC, src: REMOTE, dst: UPLINK, reply: true });
  reply[38] = id(b!) >> 8;
  reply[39] = id(b!) & 255;
  const c = (() => { reply[36] = reply[37] = 0; return internetChecksum(reply, 34, reply.length); })();
  reply[36] = c >> 8;
  reply[37] = c & 255;
  nat["fromUplink"](reply);
  const r = inside.pop()!;
  assert.equal(view(r).dst, "10.0.3.101");
  assert.equal(id(r), 0x1200, "the VM's own identifier again");
  assert.ok(checksumsValid(r));
});

test("NAT: the gateway address reaches the host (passt's router), and replies come from the gateway", () => {
  const { nat, uplink, inside } = setup();
  nat.fromVm(tcp({ srcMac: VM1, dstMac: GW_MAC, src: "10.0.3.100", dst: "10.0.3.1", srcPort: 41000, dstPort: 8080, flags: 2 }));
  const out = uplink.sent.pop()!;
  assert.equal(view(out).dst, HOST);
  assert.ok(checksumsValid(out));
  nat["fromUplink"](tcp({ srcMac: PASST_MAC, dstMac: GW_MAC, src: HOST, dst: UPLINK, srcPort: 8080, dstPort: view(out).srcPort, flags: 18 }));
  const back = inside.pop()!;
  assert.equal(view(back).src, "10.0.3.1");
  assert.ok(checksumsValid(back));
});

test("NAT behind the switch's services: outside names go to passt's DNS, the VMs' names are answered locally", () => {
  const { nat, uplink, inside, cfg } = setup();
  const services = new NetworkServices(cfg, (f) => inside.push(f));
  services.attachNat(nat);
  const query = (name: string) => {
    const labels = name.split(".").flatMap((l) => [l.length, ...new TextEncoder().encode(l)]);
    return Uint8Array.from([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, ...labels, 0, 0, 1, 0, 1]);
  };
  services.input(udp({ srcMac: VM1, dstMac: GW_MAC, src: "10.0.3.100", dst: "10.0.3.1", srcPort: 3333, dstPort: 53, payload: query("example.org") }));
  assert.equal(inside.length, 0);
  const q = uplink.sent.pop()!;
  assert.deepEqual([view(q).dst, view(q).dstPort], [DNS, 53]);
  assert.ok(checksumsValid(q));
  const answer = query("example.org");
  answer[2] = 0x81;
  nat["fromUplink"](udp({ srcMac: PASST_MAC, dstMac: GW_MAC, src: DNS, dst: UPLINK, srcPort: 53, dstPort: view(q).srcPort, payload: answer }));
  const a = inside.pop()!;
  assert.deepEqual([view(a).src, view(a).srcPort, view(a).dst, view(a).dstPort], ["10.0.3.1", 53, "10.0.3.100", 3333], "the answer seems to come from the switch");
  assert.ok(checksumsValid(a));

  services.input(udp({ srcMac: VM1, dstMac: GW_MAC, src: "10.0.3.100", dst: "10.0.3.1", srcPort: 3334, dstPort: 53, payload: query("alpha") }));
  services.input(udp({ srcMac: VM1, dstMac: GW_MAC, src: "10.0.3.100", dst: "10.0.3.1", srcPort: 3335, dstPort: 53, payload: query("x.nodevisor") }));
  assert.equal(uplink.sent.length, 0, "names of the network never leave it");
  assert.equal(inside.length, 2);
  // Traffic for outside addresses reaches the NAT only when sent to the gateway's MAC.
  services.input(tcp({ srcMac: VM1, dstMac: GW_MAC, src: "10.0.3.100", dst: REMOTE, srcPort: 1234, dstPort: 80, flags: 2 }));
  services.input(tcp({ srcMac: VM1, dstMac: VM2, src: "10.0.3.100", dst: REMOTE, srcPort: 1235, dstPort: 80, flags: 2 }));
  assert.equal(uplink.sent.length, 1);
});

test("NAT: replies for unknown ports or from another remote end are dropped", () => {
  const { nat, uplink, inside } = setup();
  nat.fromVm(udp({ srcMac: VM1, dstMac: GW_MAC, src: "10.0.3.100", dst: REMOTE, srcPort: 4000, dstPort: 53 }));
  const p = view(uplink.sent.pop()!).srcPort;
  nat["fromUplink"](udp({ srcMac: PASST_MAC, dstMac: GW_MAC, src: "198.51.100.1", dst: UPLINK, srcPort: 53, dstPort: p }));
  nat["fromUplink"](udp({ srcMac: PASST_MAC, dstMac: GW_MAC, src: REMOTE, dst: UPLINK, srcPort: 54, dstPort: p }));
  nat["fromUplink"](udp({ srcMac: PASST_MAC, dstMac: GW_MAC, src: REMOTE, dst: UPLINK, srcPort: 53, dstPort: p + 1 }));
  nat["fromUplink"](tcp({ srcMac: PASST_MAC, dstMac: GW_MAC, src: REMOTE, dst: UPLINK, srcPort: 53, dstPort: p }));
  assert.equal(inside.length, 0);
  assert.equal(nat.counters.dropsUnmatched, 4);
});

test("NAT: flows time out by protocol and state, and their ports are handed out again", () => {
  const { nat, uplink, clock } = setup({ portRange: [2000, 2001] });
  const udpFrom = (port: number) => udp({ srcMac: VM1, dstMac: GW_MAC, src: "10.0.3.100", dst: REMOTE, srcPort: port, dstPort: 53 });
  nat.fromVm(udpFrom(10));
  nat.fromVm(udpFrom(11));
  nat.fromVm(udpFrom(12));
  assert.deepEqual(uplink.sent.map((f) => view(f).srcPort), [2000, 2001]);
  assert.equal(nat.counters.dropsTableFull, 1, "the port space is full");
  clock.advance(UDP_MS - 1);
  nat.fromVm(udpFrom(10)); // keeps flow 10 alive
  clock.advance(2);
  uplink.sent = [];
  nat.fromVm(udpFrom(12));
  assert.deepEqual(uplink.sent.map((f) => view(f).srcPort), [2001], "flow 11 expired, its port went to flow 12");

  const t = setup();
  const seg = (flags: number, dir: "out" | "in", natPort = 30000) =>
    dir === "out"
      ? t.nat.fromVm(tcp({ srcMac: VM1, dstMac: GW_MAC, src: "10.0.3.100", dst: REMOTE, srcPort: 30000, dstPort: 80, flags }))
      : t.nat["fromUplink"](tcp({ srcMac: PASST_MAC, dstMac: GW_MAC, src: REMOTE, dst: UPLINK, srcPort: 80, dstPort: natPort, flags }));
  const alive = () => t.nat.table.flows().length === 1;
  seg(2, "out");
  t.clock.advance(TCP_TRANSITORY_MS - 1);
  assert.ok(alive(), "a half-open connection lives for the transitory timeout");
  seg(18, "in");
  t.clock.advance(TCP_ESTABLISHED_MS - 1);
  assert.ok(alive(), "an established connection lives for 2 h 4 min without traffic");
  t.clock.advance(2);
  assert.ok(!alive());
  seg(2, "out");
  seg(18, "in");
  seg(17, "out");
  seg(17, "in");
  t.clock.advance(TCP_TRANSITORY_MS);
  assert.ok(!alive(), "after both FINs only the transitory timeout is left");
  seg(2, "out");
  seg(4, "in");
  t.clock.advance(TCP_RESET_MS);
  assert.ok(!alive(), "a reset connection goes quickly");
  t.uplink.sent = [];
  seg(4, "out");
  assert.equal(t.uplink.sent.length, 0, "a reset for no connection is not passed on");
});

test("NAT: local, broadcast, spoofed-source and TTL-expired packets are not routed", () => {
  const { nat, uplink } = setup();
  const base = { srcMac: VM1, dstMac: GW_MAC, srcPort: 1, dstPort: 2 };
  nat.fromVm(udp({ ...base, src: "10.0.3.100", dst: "10.0.3.101" }));
  nat.fromVm(udp({ ...base, src: "10.0.3.100", dst: "255.255.255.255" }));
  nat.fromVm(udp({ ...base, src: "10.0.3.100", dst: "224.0.0.251" }));
  nat.fromVm(udp({ ...base, src: "172.16.0.1", dst: REMOTE }));
  const lowTtl = udp({ ...base, src: "10.0.3.100", dst: REMOTE });
  lowTtl[22] = 1;
  nat.fromVm(lowTtl);
  assert.equal(uplink.sent.length, 0);
  assert.equal(nat.counters.dropsInvalid, 5);
});

test("NAT: garbage from VMs and from the uplink is counted, never thrown, never forwarded", () => {
  const { nat, uplink, inside } = setup();
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 255;
  const good = tcp({ srcMac: VM1, dstMac: GW_MAC, src: "10.0.3.100", dst: REMOTE, srcPort: 1, dstPort: 2, flags: 2 });
  for (let i = 0; i < 3000; i++) {
    // Truncations and random bytes over a real header, so the parser sees near-valid packets.
    const f = good.slice(0, rand() % (good.length + 1));
    for (let k = rand() % 6; k > 0; k--) f[rand() % Math.max(1, f.length)] = rand();
    if (i % 3 === 0) for (let k = 0; k < f.length; k++) f[k] = rand();
    assert.doesNotThrow(() => nat.fromVm(f));
    assert.doesNotThrow(() => nat["fromUplink"](f));
  }
  for (const f of uplink.sent) assert.equal(view(f).src, UPLINK, "whatever passed was translated");
  for (const f of inside) assert.equal(view(f).dst.startsWith("10.0.3."), true);
  assert.ok(nat.counters.dropsInvalid + nat.counters.dropsUnmatched > 1000);
  // A first fragment opens the flow; later fragments only get the uplink address; inbound fragments are dropped.
  const frag = udp({ srcMac: VM1, dstMac: GW_MAC, src: "10.0.3.100", dst: REMOTE, srcPort: 7000, dstPort: 7001, payload: new Uint8Array(16) });
  frag[20] = 0x00;
  frag[21] = 0x10; // fragment offset 16 bytes, no L4 header
  frag[24] = frag[25] = 0;
  const c = internetChecksum(frag, 14, 34);
  frag[24] = c >> 8;
  frag[25] = c & 255;
  uplink.sent = [];
  nat.fromVm(frag);
  const out = uplink.sent.pop()!;
  assert.equal(view(out).src, UPLINK);
  assert.equal(internetChecksum(out, 14, 34), 0);
  assert.deepEqual([...out.subarray(34)], [...frag.subarray(34)], "the fragment's data is untouched");
  const before = nat.counters.dropsFragment;
  const back = out.slice();
  back.set(frag.subarray(26, 30), 30); // to 10.0.3.100 ... from the uplink address
  back.set([192, 0, 2, 2], 30);
  back.set([203, 0, 113, 7], 26);
  back[24] = back[25] = 0;
  const c2 = internetChecksum(back, 14, 34);
  back[24] = c2 >> 8;
  back[25] = c2 & 255;
  nat["fromUplink"](back);
  assert.equal(nat.counters.dropsFragment, before + 1);
});

test("NAT: before passt has given an address, VM packets are dropped and counted", () => {
  const uplink = new RecordingBackend();
  const nat = new NatRouter({ network: defaultNetworkConfig(), mac: mac(GW_MAC), sendInside: () => {}, uplink });
  nat.start({ timers: false });
  assert.equal(uplink.sent.length, 1, "a DHCP DISCOVER went out");
  nat.fromVm(udp({ srcMac: VM1, dstMac: GW_MAC, src: "10.0.3.100", dst: REMOTE, srcPort: 1, dstPort: 2 }));
  assert.equal(nat.counters.dropsNoUplink, 1);
  assert.equal(uplink.sent.length, 1);
  nat.tick();
  assert.equal(uplink.sent.length, 2, "DHCP is retried");
});
