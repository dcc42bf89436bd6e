// `nodevisor switch`: virtual switches that connect the NICs of VMs (--net switch=NAME).
//   create NAME [network options]   a persistent switch, running in the background until deleted
//   delete NAME                     stops it
//   list                            the switches that answer, with their sockets
//   path NAME                       its socket, for `qemu-system-* -netdev stream,addr.path=…`
//   serve NAME [--persistent] [...] runs a switch in the foreground (what create and --net start)

import { parseArgs } from "node:util";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { UsageError } from "./errors.js";
import { networkConfigFrom, type NetworkConfig } from "../net/switch/network.js";
import { answers, SwitchServer } from "../net/switch/server.js";
import { SwitchError, switchDir, switchPaths } from "../net/switch/paths.js";
import { spawnSwitch } from "../net/switch/connect.js";
import { ipv4ToString } from "../net/ethernet.js";
import { checkPasstInstalled } from "../net/passt.js";

export const SWITCH_HELP = `Usage: nodevisor switch <command> [options]

Virtual L2 switches (MAC learning, 802.1Q VLANs) with a built-in DHCP and DNS
server, and optionally a NAT uplink to the outside through passt. VMs join with \`nodevisor run --net switch=NAME[,vlan=N|,trunk=N,M]\`; a
switch that does not exist is started then and stops with its last port.

Commands:
  create NAME [options]   start a persistent switch in the background
  delete NAME             stop a switch
  list                    list running switches
  path NAME               print its socket (QEMU: -netdev stream,addr.type=unix,addr.path=PATH)
  serve NAME [options]    run a switch in the foreground

Network options (create, serve):
  --subnet CIDR           the network (default 10.0.3.0/24; the switch is .1)
  --dhcp-range FIRST-LAST addresses DHCP hands out (default .100-.199 of a /24)
  --static MAC=ADDRESS    a fixed DHCP lease (repeatable)
  --no-dhcp               no DHCP server
  --no-dns                no DNS server for the VMs' names
  --domain NAME           the DNS domain (default "nodevisor")
  --mtu N                 the MTU DHCP announces (default 65520, as passt; 1500 for classic Ethernet)
  --services-vlan N       the VLAN the switch's own services answer on (default 1)
  --nat                   route to the outside through one passt (NAT; needs the passt
                          package); other names go to passt's DNS, and the gateway
                          address reaches the host's loopback
  --bare                  no services at all: a plain L2 switch
  --persistent            (serve) keep running with no ports
`;

const OPTIONS = {
  subnet: { type: "string" },
  "dhcp-range": { type: "string" },
  static: { type: "string", multiple: true },
  "no-dhcp": { type: "boolean" },
  "no-dns": { type: "boolean" },
  domain: { type: "string" },
  mtu: { type: "string" },
  "services-vlan": { type: "string" },
  bare: { type: "boolean" },
  nat: { type: "boolean" },
  persistent: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

interface SavedSwitch {
  persistent: boolean;
  network: NetworkConfig | null;
}

export async function runSwitchCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  let parsed: ReturnType<typeof parseArgs<{ args: string[]; options: typeof OPTIONS; allowPositionals: true }>>;
  try {
    parsed = parseArgs({ args: rest, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError(`nodevisor switch: ${(e as Error).message.replace(/\. To specify.*$/s, "")}. See \`nodevisor switch --help\`.`);
  }
  const { values, positionals } = parsed;
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help" || values.help) {
    process.stdout.write(SWITCH_HELP);
    return sub === undefined ? 2 : 0;
  }
  const name = positionals[0];
  const needName = (): string => {
    if (name === undefined || positionals.length > 1) throw new UsageError(`nodevisor switch ${sub}: give exactly one switch NAME.`);
    switchPaths(name); // checks the name
    return name;
  };
  if (values.bare && values.nat) throw new UsageError("nodevisor switch: --nat needs the switch's services (its gateway does the NAT); leave out --bare.");
  const network = (): NetworkConfig | null =>
    values.bare
      ? null
      : networkConfigFrom({
          nat: values.nat,
          subnet: values.subnet,
          dhcpRange: values["dhcp-range"],
          staticLeases: values.static,
          noDhcp: values["no-dhcp"],
          noDns: values["no-dns"],
          domain: values.domain,
          mtu: values.mtu,
          vlan: values["services-vlan"],
        });
  switch (sub) {
    case "create": {
      const n = needName();
      const p = switchPaths(n);
      if (await answers(p.socket)) throw new SwitchError(`The switch "${n}" already exists; delete it first to change it.`);
      const saved: SavedSwitch = { persistent: true, network: network() };
      if (saved.network?.nat) checkPasstInstalled(`the NAT of switch "${n}"`, "leave out --nat for a host-only network");
      writeFileSync(p.config, JSON.stringify(saved, null, 2));
      spawnSwitch(n);
      const deadline = Date.now() + 15_000;
      while (!(await answers(p.socket))) {
        if (Date.now() > deadline) throw new SwitchError(`The switch "${n}" did not start; see ${p.log}.`);
        await new Promise((r) => setTimeout(r, 100));
      }
      process.stdout.write(`Switch "${n}" is running; its socket is ${p.socket}\n`);
      return 0;
    }
    case "delete": {
      const n = needName();
      const p = switchPaths(n);
      rmSync(p.config, { force: true });
      let pid = NaN;
      try {
        pid = Number(readFileSync(p.pid, "utf8").trim());
      } catch {
        // no pid file
      }
      if (!(pid > 0) || !(await answers(p.socket))) throw new SwitchError(`No switch "${n}" is running.`);
      process.kill(pid, "SIGTERM");
      process.stdout.write(`Switch "${n}" stopped\n`);
      return 0;
    }
    case "list": {
      const dir = switchDir();
      for (const f of readdirSync(dir).filter((x) => x.endsWith(".sock")).sort()) {
        const n = f.slice(0, -5);
        const p = switchPaths(n, dir);
        if (!(await answers(p.socket))) continue;
        process.stdout.write(`${n}\t${existsSync(p.config) ? "persistent" : "on-demand"}\t${p.socket}\n`);
      }
      return 0;
    }
    case "path":
      process.stdout.write(`${switchPaths(needName()).socket}\n`);
      return 0;
    case "serve":
      return serve(needName(), values.persistent ?? false, network);
    default:
      throw new UsageError(`nodevisor switch: unknown command "${sub}". See \`nodevisor switch --help\`.`);
  }
}

async function serve(name: string, persistentFlag: boolean, network: () => NetworkConfig | null): Promise<number> {
  const p = switchPaths(name);
  let saved: SavedSwitch | null = null;
  try {
    saved = JSON.parse(readFileSync(p.config, "utf8")) as SavedSwitch;
  } catch {
    // an on-demand switch has no saved config
  }
  const net = saved !== null ? saved.network : network();
  const log = (m: string): void => void process.stderr.write(`${new Date().toISOString()} ${m}\n`);
  let done!: () => void;
  const stopped = new Promise<void>((r) => (done = r));
  const server = new SwitchServer({
    name,
    socketPath: p.socket,
    network: net,
    persistent: persistentFlag || (saved?.persistent ?? false),
    log,
    onIdleStop: () => done(),
  });
  await server.listen();
  writeFileSync(p.pid, `${process.pid}\n`);
  const s = server.services?.config;
  log(`switch ${name} listening on ${p.socket}${s ? `; services at ${ipv4ToString(s.gateway)}/${s.prefix} on VLAN ${s.vlan}${s.dhcp ? `, DHCP ${ipv4ToString(s.dhcp.start)}-${ipv4ToString(s.dhcp.end)}` : ""}${s.dns ? `, DNS *.${s.domain}` : ""}${s.nat ? ", NAT through passt" : ""}` : ""}`);
  const stop = (): void => void server.close().then(() => done());
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  await stopped;
  try {
    if (Number(readFileSync(p.pid, "utf8")) === process.pid) rmSync(p.pid);
  } catch {
    // already gone
  }
  return 0;
}
