// Where does the guest spend its instructions? Runs a command in the default image while
// sampling hart 0's pc between execution slices, and maps the samples to kernel symbols read
// from the guest's own /proc/kallsyms. Usage: npm run profile -- CMD [ARGS...]
// (This is how the crypto self-tests and module signature hashing were found; docs/performance.md.)

import { Vm } from "../src/vm/vm.js";
import { ensureDefaultImage } from "../src/image/index.js";
import type { VmConfig } from "../src/vm/config.js";

const SAMPLE_EVERY_MS = 1;

async function runCommand(argv: string[], onTick?: (vm: Vm) => void): Promise<{ stdout: string; vm: Vm }> {
  const image = await ensureDefaultImage();
  const config: VmConfig = {
    name: "profile", memoryBytes: 512 << 20, cpus: 1, kernel: image.kernel, initrd: image.initrd, firmware: null,
    append: "", disks: [], consoleLog: null, controlSocket: null, command: argv,
  };
  let stdout = "";
  const vm = await Vm.create({ config, onStdout: (d) => (stdout += Buffer.from(d).toString()) });
  vm.start();
  const timer = onTick ? setInterval(() => onTick(vm), SAMPLE_EVERY_MS) : null;
  await vm.exited;
  if (timer) clearInterval(timer);
  return { stdout, vm };
}

/** Kernel text symbols, sorted by address (addresses as signed numbers, as the hart reports pc). */
async function kernelSymbols(): Promise<Array<[number, string]>> {
  const { stdout } = await runCommand(["grep", " [tT] ", "/proc/kallsyms"]);
  return stdout
    .split("\n")
    .map((l) => l.split(" "))
    .filter((p) => p.length >= 3)
    .map((p) => [Number(BigInt.asIntN(64, BigInt(`0x${p[0]}`))), p[2]!] as [number, string])
    .sort((a, b) => a[0] - b[0]);
}

function symbolAt(syms: Array<[number, string]>, pc: number): string {
  if (pc >= 0) return "(user space or physical)";
  let lo = 0;
  let hi = syms.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (syms[mid]![0] <= pc) lo = mid;
    else hi = mid - 1;
  }
  return syms[lo]?.[1] ?? "(unknown)";
}

const argv = process.argv.slice(2).filter((a, i) => !(i === 0 && a === "--"));
if (argv.length === 0) {
  console.error("usage: npm run profile -- CMD [ARGS...]   e.g. npm run profile -- modprobe ext4");
  process.exit(2);
}
const syms = await kernelSymbols();
const counts = new Map<string, number>();
let total = 0;
let idle = 0;
const { vm } = await runCommand(argv, (v) => {
  const hart = v.board.harts[0]!;
  if (hart.waiting) {
    idle++;
    return;
  }
  const name = symbolAt(syms, hart.getPc());
  counts.set(name, (counts.get(name) ?? 0) + 1);
  total++;
});
const stats = vm.stats();
console.log(`${(stats.instructionsRetired / 1e6).toFixed(0)} M guest instructions; ${total} busy samples, ${idle} idle samples; ${syms.length} kernel symbols`);
for (const [name, n] of [...counts].sort((a, b) => b[1] - a[1]).slice(0, 30)) {
  console.log(`${((100 * n) / total).toFixed(1).padStart(5)}%  ${name}`);
}
