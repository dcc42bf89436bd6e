// Runs every *_test.ts beside the code (and test/ for boot tests) with node's test runner through tsx.
// `--unit` skips the boot tests in test/ that need the guest image.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";

const unitOnly = process.argv.includes("--unit");
const filters = process.argv.slice(2).filter((a) => !a.startsWith("--"));

function find(dir, out = []) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) find(path, out);
    else if (name.endsWith("_test.ts")) out.push(path);
  }
  return out;
}

let files = find("src");
if (!unitOnly) files.push(...find("test"));
if (filters.length) files = files.filter((f) => filters.some((p) => f.includes(p)));
files.sort();
if (files.length === 0) {
  console.error("No test files matched.");
  process.exit(1);
}
// *_alone_test.ts measure CPU shares and caps with real processes: they run afterwards, one at a time,
// so the other tests do not take the host CPU they measure.
const alone = files.filter((f) => f.endsWith("_alone_test.ts"));
const together = files.filter((f) => !f.endsWith("_alone_test.ts"));
let status = 0;
if (together.length > 0) {
  const r = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-concurrency=2", ...together], { stdio: "inherit" });
  status = r.status ?? 1;
}
if (alone.length > 0) {
  const r = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-concurrency=1", ...alone], { stdio: "inherit" });
  status ||= r.status ?? 1;
}
process.exit(status);
