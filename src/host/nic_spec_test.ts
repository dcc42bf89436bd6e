import { test } from "node:test";
import assert from "node:assert/strict";
import { checkNic, nicArgument, nicFromNetConfig, type NicSpec } from "./nic_spec.js";
import { parseNetSpec } from "../net/spec.js";
import { ApiError } from "./errors.js";

test("a NIC spec becomes the --net argument the VM process parses, and back", () => {
  const nics: Array<[NicSpec, string]> = [
    [{ mode: "user" }, "user"],
    [{ mode: "user", hostForwards: [{ protocol: "tcp", hostPort: 8080, guestPort: 80 }, { protocol: "udp", hostAddress: "127.0.0.1", hostPort: 5353, guestPort: 53 }] }, "user,hostfwd=tcp:8080-:80,hostfwd=udp:127.0.0.1:5353-:53"],
    [{ mode: "switch", switch: "lab", vlan: 10, mac: "52:54:00:12:34:56" }, "switch=lab,vlan=10,mac=52:54:00:12:34:56"],
    [{ mode: "switch", switch: "lab", trunk: [10, 20], linkUp: false }, "switch=lab,trunk=10,20,link=down"],
    [{ mode: "tap", tap: "tap0", offloads: false, antiSpoof: false, rxBps: 1000000, txPps: 500 }, "tap=tap0,offload=off,spoof=on,rx-bps=1000000,tx-pps=500"],
    [
      { mode: "user", firewall: { policyIn: "deny", policyOut: "allow", rules: [{ action: "allow", match: "in:tcp:22" }, { action: "deny", match: "out:udp:10.0.0.0/8:53-54" }] } },
      "user,policy-in=deny,policy-out=allow,allow=in:tcp:22,deny=out:udp:10.0.0.0/8:53-54",
    ],
  ];
  for (const [nic, arg] of nics) {
    assert.equal(nicArgument(nic), arg);
    checkNic(nic, "nics[0]");
    assert.deepEqual(nicFromNetConfig(parseNetSpec(arg)!), nic, `round trip of ${arg}`);
  }
});

test("a NIC the VM process would refuse is a 400 naming the field and why", () => {
  const refuse = (nic: NicSpec, message: RegExp): void => {
    assert.throws(() => checkNic(nic, "nics[1]"), (e: unknown) => e instanceof ApiError && e.statusCode === 400 && message.test(e.message));
  };
  refuse({ mode: "switch" }, /^The field "nics\[1\]\.switch" is required for mode "switch"\.$/);
  refuse({ mode: "tap" }, /^The field "nics\[1\]\.tap" is required for mode "tap"\.$/);
  refuse({ mode: "user", vlan: 5 }, /^The field "nics\[1\]\.vlan" applies only to mode "switch", not "user"\.$/);
  refuse({ mode: "switch", switch: "lab", hostForwards: [] }, /"nics\[1\]\.hostForwards" applies only to mode "user"/);
  refuse({ mode: "switch", switch: "lab", vlan: 2, trunk: [3] }, /"nics\[1\]\.trunk" cannot be given with "vlan"/);
  refuse({ mode: "switch", switch: "../etc" }, /^The field "nics\[1\]" is not a usable NIC: .*switch/);
  refuse({ mode: "user", firewall: { rules: [{ action: "allow", match: "sideways:tcp" }] } }, /^The field "nics\[1\]" is not a usable NIC: the rule allow=sideways:tcp must start with in or out\.$/);
  refuse({ mode: "user", mac: "01:00:5e:00:00:01" }, /not a unicast MAC/);
});
