import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { ControlClient } from "../src/vm/control_client.js";
const CLI = "/work/main/dist/cli/main.js";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dir = "/tmp/rs";
const snap = `${dir}/vm.snap`;
if (!existsSync(snap)) {
  const vm = spawn(process.execPath, [CLI, "run", "--control-socket", `${dir}/a.sock`, "--console", "none"], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  vm.stdout!.on("data", (d) => (out += d));
  while (!/~# /.test(out)) await sleep(200);
  const c = await ControlClient.connect(`${dir}/a.sock`);
  console.log(await c.execute("snapshot-save", { path: snap }));
  await c.execute("quit");
}
for (let i = 0; i < 3; i++) {
  const sock = `${dir}/b${i}.sock`;
  const extra = process.argv.slice(2);
  const t1 = performance.now();
  const p = spawn(process.execPath, [...extra, CLI, "run", "--restore", snap, "--control-socket", sock, "--console", "none"], { stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, NODEVISOR_RESTORE_TRACE: "1" } });
  while (!existsSync(sock)) await sleep(1);
  const c2 = await ControlClient.connect(sock);
  for (;;) {
    const [st, stats] = await Promise.all([c2.execute<{ state: string }>("query-status"), c2.execute<{ instructionsRetired: number }>("query-stats")]);
    if (st.state === "running" && stats.instructionsRetired > 0) break;
    await sleep(2);
  }
  console.log(`restore ${i}: ${(performance.now() - t1).toFixed(0)} ms`);
  await c2.execute("quit");
  await new Promise((r) => p.on("close", r));
}
process.exit(0);
