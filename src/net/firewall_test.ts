import assert from "node:assert/strict";
import { test } from "node:test";
import { NicFilter } from "./firewall.js";
import { parseNetSpec } from "./spec.js";
import { arpRequest, frame, icmpEcho, ip, ipv6, l4Header, mac, tcp, udp } from "./testing/frames.js";

const VM = "52:54:00:00:00:01";
const PEER = "52:54:00:00:00:02";

function filter(spec: string, now = () => 0) {
  const c = parseNetSpec(spec ? `switch=lab,${spec}` : "switch=lab")!;
  return new NicFilter({ mac: mac(VM), firewall: c.firewall, antiSpoof: c.antiSpoof, now });
}

test("ordered rules: first match wins, by direction, protocol, CIDR and port range, then the default policy", () => {
  const f = filter("deny=in:tcp:10.0.3.66:22,allow=in:tcp:20-25,allow=in:icmp,policy-in=deny");
  const syn = (src: string, port: number) => tcp({ srcMac: PEER, dstMac: VM, src, dst: "10.0.3.100", srcPort: 40000, dstPort: port, flags: 2 });
  assert.equal(f.checkRx(syn("10.0.3.5", 22)), null);
  assert.equal(f.checkRx(syn("10.0.3.66", 22)), "firewall", "the deny before the allow wins");
  assert.equal(f.checkRx(syn("10.0.3.5", 80)), "firewall", "default policy");
  assert.equal(f.checkRx(icmpEcho({ srcMac: PEER, dstMac: VM, src: "10.0.3.5", dst: "10.0.3.100" })), null);
  assert.equal(f.checkRx(udp({ srcMac: PEER, dstMac: VM, src: "10.0.3.5", dst: "10.0.3.100", srcPort: 1, dstPort: 22 })), "firewall");
  assert.equal(f.checkTx(udp({ srcMac: VM, dstMac: PEER, src: "10.0.3.100", dst: "10.0.3.5", srcPort: 1, dstPort: 22 })), null, "out is allowed by default");
  assert.equal(f.checkRx(arpRequest(PEER, "10.0.3.5", "10.0.3.100")), null, "ARP is not IP: it passes");
  const v6 = frame(VM, PEER, "ipv6 payload", 0x86dd);
  assert.equal(f.checkRx(v6), "malformed", "an IPv6 frame that does not parse is no way around the rules");
  assert.equal(filter("").checkRx(v6), null, "without a firewall nothing is inspected");
});

test("IPv6: TCP, UDP and ICMPv6 are tracked like IPv4; address rules never match it; neighbour discovery always passes", () => {
  let t = 0;
  const f = filter("allow=in:tcp:22,deny=in:tcp:10.0.0.0/8,allow=in:icmp,policy-in=deny,deny=out:udp:53,allow=out:any:10.0.0.0/8,policy-out=deny", () => t);
  const [me, peer] = ["fd00::100", "fd00::5"];
  const rx = (protocol: number, l4: Uint8Array, extensions?: [number, Uint8Array][]) => f.checkRx(ipv6({ srcMac: PEER, dstMac: VM, src: peer, dst: me, protocol, l4, extensions }));
  const tx = (protocol: number, l4: Uint8Array) => f.checkTx(ipv6({ srcMac: VM, dstMac: PEER, src: me, dst: peer, protocol, l4 }));
  assert.equal(rx(6, l4Header(40000, 22, 2)), null, "in:tcp:22");
  assert.equal(rx(6, l4Header(40000, 80, 2)), "firewall", "the default policy; the IPv4 CIDR rule does not match");
  assert.equal(rx(58, Uint8Array.from([128, 0, 0, 0, 0, 1, 0, 1])), null, "icmp rules cover ICMPv6 echo");
  assert.equal(tx(6, l4Header(5555, 443, 2)), "firewall", "out: the IPv4-only allow does not let IPv6 out");
  assert.equal(tx(17, l4Header(5555, 53)), "firewall");
  assert.equal(rx(58, Uint8Array.from([135, 0, 0, 0, 0, 0, 0, 0])), null, "neighbour solicitation");
  assert.equal(tx(58, Uint8Array.from([136, 0, 0, 0, 0, 0, 0, 0])), null, "neighbour advertisement");
  assert.equal(tx(58, Uint8Array.from([143, 0, 0, 0, 0, 0, 0, 0])), null, "MLDv2 report");

  // Stateful: an allowed connection's replies come back; after 300 s idle they do not.
  const open = filter("policy-in=deny", () => t);
  const out = ipv6({ srcMac: VM, dstMac: PEER, src: me, dst: peer, protocol: 6, l4: l4Header(5555, 80, 2) });
  const reply = ipv6({ srcMac: PEER, dstMac: VM, src: peer, dst: me, protocol: 6, l4: l4Header(80, 5555, 18) });
  const other = ipv6({ srcMac: PEER, dstMac: VM, src: "fd00::6", dst: me, protocol: 6, l4: l4Header(80, 5555, 18) });
  assert.equal(open.checkRx(reply), "firewall");
  assert.equal(open.checkTx(out), null);
  assert.equal(open.checkRx(reply), null);
  assert.equal(open.checkRx(other), "firewall", "another remote address is another flow");
  const udpOut = ipv6({ srcMac: VM, dstMac: PEER, src: me, dst: peer, protocol: 17, l4: l4Header(6000, 53) });
  const udpBack = ipv6({ srcMac: PEER, dstMac: VM, src: peer, dst: me, protocol: 17, l4: l4Header(53, 6000) });
  assert.equal(open.checkTx(udpOut), null);
  assert.equal(open.checkRx(udpBack), null);
  t = 301_000;
  assert.equal(open.checkRx(reply), "firewall", "the idle flow expired");
  assert.equal(open.checkTx(ipv6({ srcMac: VM, dstMac: PEER, src: me, dst: peer, protocol: 58, l4: Uint8Array.from([128, 0, 0, 0, 0, 7, 0, 1]) })), null);
  assert.equal(open.checkRx(ipv6({ srcMac: PEER, dstMac: VM, src: peer, dst: me, protocol: 58, l4: Uint8Array.from([129, 0, 0, 0, 0, 7, 0, 1]) })), null, "ping reply");

  // Extension headers are walked to find the ports; a later fragment has none and matches no port rule.
  const hopByHop = new Uint8Array(8);
  assert.equal(rx(6, l4Header(40000, 22, 2), [[0, hopByHop]]), null, "TCP behind a hop-by-hop header is still port 22");
  const laterFragment = Uint8Array.from([0, 0, 0, 0x10, 0, 0, 0, 1]);
  assert.equal(rx(6, l4Header(40000, 22, 2), [[44, laterFragment]]), "firewall");
  const endless = [...Array(9)].map(() => [60, new Uint8Array(8)] as [number, Uint8Array]);
  assert.equal(rx(6, l4Header(40000, 22, 2), endless), "malformed", "too many extension headers");
  const truncated = ipv6({ srcMac: PEER, dstMac: VM, src: peer, dst: me, protocol: 6, l4: l4Header(1, 22, 2) });
  truncated[19] = 200; // payload length beyond the frame
  assert.equal(f.checkRx(truncated), "malformed");
});

test("stateful: replies to an allowed connection pass; unrelated traffic does not; flows expire", () => {
  let t = 0;
  const f = filter("policy-in=deny", () => t);
  const out = tcp({ srcMac: VM, dstMac: PEER, src: "10.0.3.100", dst: "10.0.3.5", srcPort: 5555, dstPort: 80, flags: 2 });
  const reply = tcp({ srcMac: PEER, dstMac: VM, src: "10.0.3.5", dst: "10.0.3.100", srcPort: 80, dstPort: 5555, flags: 18 });
  const other = tcp({ srcMac: PEER, dstMac: VM, src: "10.0.3.5", dst: "10.0.3.100", srcPort: 80, dstPort: 5556, flags: 18 });
  assert.equal(f.checkRx(reply), "firewall", "no connection yet");
  assert.equal(f.checkTx(out), null);
  assert.equal(f.checkRx(reply), null);
  assert.equal(f.checkRx(other), "firewall");
  t = 301_000;
  assert.equal(f.checkRx(reply), "firewall", "the idle flow expired");
  // Ping out, reply in.
  assert.equal(f.checkTx(icmpEcho({ srcMac: VM, dstMac: PEER, src: "10.0.3.100", dst: "10.0.3.5" })), null);
  assert.equal(f.checkRx(icmpEcho({ srcMac: PEER, dstMac: VM, src: "10.0.3.5", dst: "10.0.3.100", reply: true })), null);
});

test("anti-spoofing: only the NIC's MAC; only its DHCP address once it has one", () => {
  const f = filter("");
  assert.equal(f.checkTx(udp({ srcMac: PEER, dstMac: "ff:ff:ff:ff:ff:ff", src: "0.0.0.0", dst: "255.255.255.255", srcPort: 68, dstPort: 67 })), "spoof");
  assert.equal(f.checkTx(udp({ srcMac: VM, dstMac: "ff:ff:ff:ff:ff:ff", src: "0.0.0.0", dst: "255.255.255.255", srcPort: 68, dstPort: 67 })), null);
  assert.equal(f.checkTx(icmpEcho({ srcMac: VM, dstMac: PEER, src: "10.0.3.77", dst: "10.0.3.5" })), null, "no address given yet: only the MAC is checked");
  // A DHCP ACK for our MAC gives 10.0.3.100.
  const dhcp = new Uint8Array(244 + 4);
  dhcp[0] = 2;
  new DataView(dhcp.buffer).setUint32(16, ip("10.0.3.100"));
  dhcp.set(mac(VM), 28);
  new DataView(dhcp.buffer).setUint32(236, 0x63825363);
  dhcp.set([53, 1, 5, 255], 240);
  assert.equal(f.checkRx(udp({ srcMac: PEER, dstMac: VM, src: "10.0.3.1", dst: "10.0.3.100", srcPort: 67, dstPort: 68, payload: dhcp })), null);
  assert.deepEqual(f.allowedAddresses, [ip("10.0.3.100")]);
  assert.equal(f.checkTx(icmpEcho({ srcMac: VM, dstMac: PEER, src: "10.0.3.77", dst: "10.0.3.5" })), "spoof");
  assert.equal(f.checkTx(icmpEcho({ srcMac: VM, dstMac: PEER, src: "10.0.3.100", dst: "10.0.3.5" })), null);
  assert.equal(f.checkTx(arpRequest(VM, "10.0.3.77", "10.0.3.5")), "spoof", "ARP from a foreign address");
  assert.equal(f.checkTx(new Uint8Array(8)), "malformed");
  assert.equal(filter("spoof=on").checkTx(icmpEcho({ srcMac: PEER, dstMac: VM, src: "1.2.3.4", dst: "10.0.3.5" })), null, "spoof=on turns the check off");
});
