// Child process for crash_test: writes the op sequence forever, flushing every few ops and
// printing "flushed N" once ops [0, N) are durable. The parent kills it with SIGKILL.

import { openDisk } from "../../src/storage/open.js";
import { OPS_PER_FLUSH, crashOp, opData } from "./crash_ops.js";

const [path, seedText] = process.argv.slice(2);
const seed = Number(seedText);
const disk = await openDisk(path);
process.stdout.write("ready\n");
for (let i = 0; ; i += OPS_PER_FLUSH) {
  // A batch in flight at once: the ops of one batch never overlap (the judge replays them in order).
  const batch = Array.from({ length: OPS_PER_FLUSH }, (_, j) => crashOp(seed, i + j, disk.size));
  const sequential = batch.some((a, x) => batch.some((b, y) => x < y && a.offset < b.offset + b.length && b.offset < a.offset + a.length));
  const run = async (op: (typeof batch)[number]): Promise<void> => {
    if (op.kind === "write") await disk.write(op.offset, opData(op));
    else if (op.kind === "discard") await disk.discard(op.offset, op.length);
    else await disk.writeZeroes(op.offset, op.length, true);
  };
  if (sequential) for (const op of batch) await run(op);
  else await Promise.all(batch.map(run));
  await disk.flush();
  process.stdout.write(`flushed ${i + OPS_PER_FLUSH}\n`);
}
