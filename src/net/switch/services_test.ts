import assert from "node:assert/strict";
import { test } from "node:test";
import { ETHERTYPE_ARP, ipv4ToString, parseIpv4Packet } from "../ethernet.js";
import { arpRequest, icmpEcho, ip, udp } from "../testing/frames.js";
import { answerDns } from "./dns.js";
import { DHCPACK, DHCPDISCOVER, DHCPNAK, DHCPOFFER, DHCPREQUEST, DhcpServer, parseDhcp } from "./dhcp.js";
import { defaultNetworkConfig, networkConfigFrom } from "./network.js";
import { NetworkServices } from "./services.js";

const VM1 = "52:54:00:00:00:01";
const VM2 = "52:54:00:00:00:02";

/** A DHCP client message: type, MAC, optional requested address, server id and hostname. */
function dhcpMsg(type: number, mac: string, o: { requested?: string; server?: string; hostname?: string } = {}): Uint8Array {
  const opts: number[] = [53, 1, type];
  const four = (s: string) => { const v = ip(s); return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255]; };
  if (o.requested) opts.push(50, 4, ...four(o.requested));
  if (o.server) opts.push(54, 4, ...four(o.server));
  if (o.hostname) opts.push(12, o.hostname.length, ...new TextEncoder().encode(o.hostname));
  opts.push(255);
  const b = new Uint8Array(240 + opts.length);
  b[0] = 1; b[1] = 1; b[2] = 6;
  new DataView(b.buffer).setUint32(4, 0xabcd);
  b.set(mac.split(":").map((h) => parseInt(h, 16)), 28);
  new DataView(b.buffer).setUint32(236, 0x63825363);
  b.set(opts, 240);
  return b;
}

function server(now = () => 0) {
  const c = defaultNetworkConfig();
  return new DhcpServer({ serverIp: c.gateway, netmask: 0xffffff00, router: c.gateway, dns: c.gateway, domain: "nodevisor", rangeStart: ip("10.0.3.100"), rangeEnd: ip("10.0.3.101"), leaseSeconds: 60, mtu: 65520, staticLeases: new Map([[VM2, ip("10.0.3.50")]]) }, now);
}

test("DHCP: discover, offer, request, ack; options for mask, router, DNS and domain", () => {
  const s = server();
  const offer = s.handle(dhcpMsg(DHCPDISCOVER, VM1))!;
  const o = parseDhcp(offer.payload)!;
  assert.equal(o.op, 2);
  assert.equal(o.xid, 0xabcd);
  assert.equal(o.options.get(53)![0], DHCPOFFER);
  assert.equal(ipv4ToString(offer.yiaddr), "10.0.3.100");
  const ack = s.handle(dhcpMsg(DHCPREQUEST, VM1, { requested: "10.0.3.100", server: "10.0.3.1", hostname: "web1" }))!;
  const a = parseDhcp(ack.payload)!;
  assert.equal(a.options.get(53)![0], DHCPACK);
  assert.deepEqual([...a.options.get(1)!], [255, 255, 255, 0]);
  assert.deepEqual([...a.options.get(3)!], [10, 0, 3, 1]);
  assert.deepEqual([...a.options.get(6)!], [10, 0, 3, 1]);
  assert.equal(new TextDecoder().decode(a.options.get(15)), "nodevisor");
  assert.deepEqual([...a.options.get(26)!], [0xff, 0xf0], "MTU 65520");
  assert.equal(s.leaseOf(VM1)?.hostname, "web1");
  // The same client asking again keeps its address.
  assert.equal(s.handle(dhcpMsg(DHCPDISCOVER, VM1))!.yiaddr, ip("10.0.3.100"));
});

test("DHCP: static leases, NAK for a wrong address, silence when the pool is exhausted, leases expire", () => {
  let t = 0;
  const s = server(() => t);
  assert.equal(s.handle(dhcpMsg(DHCPDISCOVER, VM2))!.yiaddr, ip("10.0.3.50"));
  const nak = s.handle(dhcpMsg(DHCPREQUEST, VM1, { requested: "10.0.3.150" }))!;
  assert.equal(parseDhcp(nak.payload)!.options.get(53)![0], DHCPNAK);
  for (const m of ["52:54:00:00:00:0a", "52:54:00:00:00:0b"]) {
    const off = s.handle(dhcpMsg(DHCPDISCOVER, m))!;
    s.handle(dhcpMsg(DHCPREQUEST, m, { requested: ipv4ToString(off.yiaddr) }));
  }
  assert.equal(s.handle(dhcpMsg(DHCPDISCOVER, "52:54:00:00:00:0c")), null, "pool of two is full");
  t = 61_000; // leases of 60 s
  assert.notEqual(s.handle(dhcpMsg(DHCPDISCOVER, "52:54:00:00:00:0c")), null);
  assert.equal(s.handle(new Uint8Array(300)), null, "garbage gets no answer");
  assert.equal(s.handle(dhcpMsg(DHCPREQUEST, VM1, { requested: "10.0.3.100", server: "10.9.9.9" })), null, "a request for another server");
});

test("DNS: A records for known names, NXDOMAIN otherwise, FORMERR for a malformed question", () => {
  const q = (name: string, type = 1): Uint8Array => {
    const labels = name.split(".").flatMap((l) => [l.length, ...new TextEncoder().encode(l)]);
    return Uint8Array.from([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, ...labels, 0, 0, type, 0, 1]);
  };
  const lookup = (n: string) => (n === "web1.nodevisor" ? ip("10.0.3.100") : null);
  const a = answerDns(q("WEB1.nodevisor"), lookup)!;
  assert.equal(a[3]! & 15, 0);
  assert.equal(a[7], 1);
  assert.deepEqual([...a.subarray(a.length - 4)], [10, 0, 3, 100]);
  assert.equal(answerDns(q("other.nodevisor"), lookup)![3]! & 15, 3);
  const aaaa = answerDns(q("web1.nodevisor", 28), lookup)!;
  assert.equal(aaaa[3]! & 15, 0);
  assert.equal(aaaa[7], 0);
  const bad = q("web1.nodevisor");
  bad[12] = 60; // label runs past the end
  assert.equal(answerDns(bad, lookup)![3]! & 15, 1);
  assert.equal(answerDns(new Uint8Array(5), lookup), null);
});

test("the switch's own host answers ARP, ping, DHCP and DNS for the VMs' names", () => {
  const out: Uint8Array[] = [];
  const svc = new NetworkServices(defaultNetworkConfig(), (f) => out.push(f), () => 0);
  svc.input(arpRequest(VM1, "10.0.3.100", "10.0.3.1"));
  const arp = out.pop()!;
  assert.equal((arp[12]! << 8) | arp[13]!, ETHERTYPE_ARP);
  assert.equal(arp[21], 2);
  assert.deepEqual([...arp.subarray(28, 32)], [10, 0, 3, 1]);
  assert.deepEqual([...arp.subarray(0, 6)], [0x52, 0x54, 0, 0, 0, 1]);
  svc.input(arpRequest(VM1, "10.0.3.100", "10.0.3.7"));
  assert.equal(out.length, 0, "no answer for another address");
  svc.input(icmpEcho({ srcMac: VM1, dstMac: "52:54:fe:00:03:01", src: "10.0.3.100", dst: "10.0.3.1" }));
  const pong = parseIpv4Packet(out.pop()!, 14)!;
  assert.equal(pong.srcPort, 0, "echo reply");
  assert.equal(ipv4ToString(pong.dst), "10.0.3.100");
  svc.input(udp({ srcMac: VM1, dstMac: "ff:ff:ff:ff:ff:ff", src: "0.0.0.0", dst: "255.255.255.255", srcPort: 68, dstPort: 67, payload: dhcpMsg(DHCPDISCOVER, VM1) }));
  svc.input(udp({ srcMac: VM1, dstMac: "ff:ff:ff:ff:ff:ff", src: "0.0.0.0", dst: "255.255.255.255", srcPort: 68, dstPort: 67, payload: dhcpMsg(DHCPREQUEST, VM1, { requested: "10.0.3.100" }) }));
  assert.equal(out.length, 2);
  svc.registerName(VM1, "alpha");
  assert.equal(svc.lookup("alpha.nodevisor"), ip("10.0.3.100"));
  assert.equal(svc.lookup("alpha"), ip("10.0.3.100"));
  assert.equal(svc.lookup("gateway"), ip("10.0.3.1"));
  assert.equal(svc.lookup("beta"), null);
  assert.deepEqual(svc.counters, { arpReplies: 1, dhcpReplies: 2, dnsReplies: 0, pingReplies: 1 });
});

test("network options become a config, and mistakes a sentence", () => {
  const c = networkConfigFrom({ subnet: "192.168.50.0/24", staticLeases: ["52:54:00:00:00:10=192.168.50.10"] });
  assert.equal(ipv4ToString(c.gateway), "192.168.50.1");
  assert.equal(ipv4ToString(c.dhcp!.start), "192.168.50.100");
  assert.equal(ipv4ToString(c.dhcp!.end), "192.168.50.254");
  assert.throws(() => networkConfigFrom({ subnet: "10.0.0.0/31" }), /prefix from \/8 to \/30/);
  assert.throws(() => networkConfigFrom({ dhcpRange: "10.0.3.50-10.0.4.9" }), /inside 10\.0\.3\.0\/24/);
  assert.throws(() => networkConfigFrom({ staticLeases: ["nonsense"] }), /MAC=ADDRESS/);
  assert.throws(() => networkConfigFrom({ vlan: "5000" }), /1 to 4094/);
  assert.throws(() => networkConfigFrom({ mtu: "70000" }), /from 576 to 65520/);
  assert.equal(networkConfigFrom({ mtu: "1500" }).mtu, 1500);
});
