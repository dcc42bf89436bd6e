// Side-by-side timing of two builds on the same minutes, for changes to hot paths on a noisy
// shared machine: boots `run -- sh -c LOOP` from each checkout's dist/ in turn, and times the boot
// to the shell and the sh arithmetic loop between two guest markers, in wall time and in CPU time
// of the VM's main (vCPU) thread, which steal from other tenants does not inflate.
//
//   node scripts/loop_time.mjs [--tier jit|interp] [--iters 30000] [--rounds 5] [--segments 1] [--append ARGS] DIR [DIR...]
//
// With --segments N the guest runs the loop N times (each of --iters iterations) after the first,
// and the fastest of those N is reported too ("best"): on a shared machine a burst from another
// tenant slows some segments, and the best of several short ones is the steadiest figure.
// --append passes kernel arguments: `--append norandmaps` keeps the guest's own address-space
// randomization from changing which pages share a TLB entry from one run to the next.
//
// Each DIR is a checkout with `npm run build` done (a git worktree of another commit, say). Its VMM
// process is started as bin/nodevisor.js would start it (with its Node flags), but directly, so
// its pid is the VMM's.
// Prints every run, then the medians per DIR.
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  if (i < 0) return fallback;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
};
const tier = option("--tier", "jit");
const iters = Number(option("--iters", "30000"));
const rounds = Number(option("--rounds", "5"));
const segments = Number(option("--segments", "1"));
const append = option("--append", "");
const dirs = (args.length ? args : ["."]).map((d) => resolve(d));
const loop = `i=0; s=0; while [ $i -lt ${iters} ]; do s=$(( (s * 31 + i) % 1000003 )); i=$((i+1)); done`;

/** The Node flags bin/nodevisor.js starts a checkout's VMM process with (none in checkouts from before it did). */
const flagsOf = new Map();
for (const d of dirs) {
  const file = `${d}/dist/cli/vmm_node_flags.js`;
  flagsOf.set(d, existsSync(file) ? (await import(file)).vmmNodeFlags([]) : []);
}
const vmmFlags = (dir) => flagsOf.get(dir);

/** utime + stime of thread `tid` of process `pid`, in seconds. */
function cpuSeconds(pid, tid) {
  const fields = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function once(dir) {
  return new Promise((done, fail) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [...vmmFlags(dir), `${dir}/dist/cli/main.js`, "run", "--cpu-tier", tier, ...(append ? ["--append", append] : []), "--", "sh", "-c", `echo @@s; ${loop}; echo @@e $s; for k in $(seq ${segments - 1}); do ${loop}; echo @@k; done`], { cwd: dir, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    const m = { shell: 0, loop: 0, cpuShell: 0, cpuLoop: 0, best: Infinity };
    let ts = 0, te = 0, marks = 0;
    child.stdout.on("data", (d) => {
      out += d;
      const t = performance.now();
      if (!ts && out.includes("@@s")) { ts = t; m.shell = (t - t0) / 1000; m.cpuShell = cpuSeconds(child.pid, child.pid); }
      if (ts && !m.loop && out.includes("@@e")) { m.loop = (t - ts) / 1000; m.cpuLoop = cpuSeconds(child.pid, child.pid) - m.cpuShell; m.best = m.loop; te = t; }
      const k = out.split("@@k").length - 1;
      if (te && k > marks) { m.best = Math.min(m.best, (t - te) / 1000 / (k - marks)); te = t; marks = k; }
    });
    child.on("close", (status) => (status === 0 && m.loop ? done(m) : fail(new Error(`${dir}: the VM exited with status ${status} before the loop's end marker`))));
  });
}

const median = (v) => { const s = [...v].sort((a, b) => a - b); return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const results = new Map(dirs.map((d) => [d, []]));
for (let r = 0; r < rounds; r++) {
  for (const d of dirs) {
    const m = await once(d);
    results.get(d).push(m);
    console.log(`${d}: shell ${m.shell.toFixed(2)} s (CPU ${m.cpuShell.toFixed(2)}), loop ${m.loop.toFixed(2)} s (CPU ${m.cpuLoop.toFixed(2)}), best ${m.best.toFixed(3)} s`);
  }
}
for (const [d, ms] of results) {
  const f = (k) => median(ms.map((m) => m[k])).toFixed(2);
  console.log(`median ${d}: shell ${f("shell")} s (CPU ${f("cpuShell")}), loop ${f("loop")} s (CPU ${f("cpuLoop")}), best ${median(ms.map((m) => m.best)).toFixed(3)} s (min ${Math.min(...ms.map((m) => m.best)).toFixed(3)})`);
}
