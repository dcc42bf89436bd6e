// How much one switch process forwards with the guests taken out: two synthetic peers in a child
// process blast frames through a SwitchServer in this process (the same code `nodevisor switch`
// runs). Tells whether the switch or the guests bound the guest-to-guest rows.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SwitchServer } from "../src/net/switch/server.js";

export interface SwitchCapacity {
  frameBytes: number;
  framesPerSecond: number;
  mbPerSecond: number;
  /** This process's CPU time (the switch's) per frame forwarded. */
  cpuUsPerFrame: number;
  /** Frames sent that did not arrive (a full port queue drops them, as a switch does). */
  dropped: number;
}

// The peers: port "a" sends `count` frames to port "b" with a window of frames in flight; "b" counts.
const PEERS = `
const net = require("node:net");
const [path, frameBytes, count] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
const frame = (dst, src) => {
  const f = Buffer.alloc(4 + frameBytes);
  f.writeUInt32BE(frameBytes, 0);
  f.set([2, 0, 0, 0, 0, dst], 4);
  f.set([2, 0, 0, 0, 0, src], 10);
  f[16] = 8; // IPv4
  return f;
};
const toB = frame(2, 1), toA = frame(1, 2);
// At most WINDOW frames in flight, as TCP keeps a window: the switch's queues never overflow.
const WINDOW = Math.max(8, Math.floor((256 << 10) / frameBytes));
let sent = 0;
const pump = () => { while (sent < count && sent - received < WINDOW) { sent++; a.write(toB); } };
const a = net.connect(path), b = net.connect(path);
let connected = 0, received = 0, pending = 0, started = 0n, last = 0n, idle = null;
const finish = () => { console.log(JSON.stringify({ received, ms: Number(last - started) / 1e6 })); process.exit(0); };
b.on("data", (d) => {
  last = process.hrtime.bigint();
  pending += d.length;
  while (pending >= 4 + frameBytes) { pending -= 4 + frameBytes; received++; }
  if (received >= count) finish();
  pump();
  clearTimeout(idle);
  idle = setTimeout(finish, 300); // frames the switch dropped never come
});
const onConnect = () => {
  if (++connected < 2) return;
  b.write(toA); // the switch learns where "b" is
  setTimeout(() => {
    started = process.hrtime.bigint();
    pump();
  }, 200);
};
a.on("connect", onConnect);
b.on("connect", onConnect);
`;

export async function switchCapacity(frameBytes: number, count: number): Promise<SwitchCapacity> {
  const dir = mkdtempSync(join(tmpdir(), "nv-bench-swcap-"));
  const sw = new SwitchServer({ name: "capacity", socketPath: join(dir, "sw.sock"), network: null, persistent: true });
  try {
    await sw.listen();
    const cpu0 = process.cpuUsage();
    const child = spawn(process.execPath, ["-e", PEERS, join(dir, "sw.sock"), String(frameBytes), String(count)], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    await new Promise((r) => child.on("close", r));
    const cpu = process.cpuUsage(cpu0);
    const r = JSON.parse(out) as { received: number; ms: number };
    const seconds = r.ms / 1000;
    return {
      frameBytes,
      framesPerSecond: r.received / seconds,
      mbPerSecond: (r.received * frameBytes) / seconds / 1e6,
      cpuUsPerFrame: (cpu.user + cpu.system) / r.received,
      dropped: count - r.received,
    };
  } finally {
    await sw.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
