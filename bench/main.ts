// `npm run bench`: every performance figure, measured side by side with QEMU in one run.
import { existsSync } from "node:fs";

const only = process.argv.slice(2);
const want = (name: string): boolean => only.length === 0 || only.includes(name);

if (want("boot")) {
  const { benchBoot } = await import("./boot.js");
  await benchBoot();
}
if (want("jit")) {
  const { benchJit } = await import("./jit.js");
  await benchJit();
}
if (want("smp")) {
  const { benchSmp } = await import("./smp.js");
  await benchSmp();
}
if (want("snapshot")) {
  const { benchSnapshot } = await import("./snapshot.js");
  await benchSnapshot();
}
if (want("balloon")) {
  const { benchBalloon } = await import("./balloon.js");
  await benchBalloon();
}
if (want("idle")) {
  const { benchIdle } = await import("./idle.js");
  await benchIdle();
}
if (want("storage") && existsSync(new URL("./storage.ts", import.meta.url))) {
  const { benchStorage } = await import("./storage.js");
  await benchStorage();
}
if (want("ratelimit")) {
  const { benchRateLimit } = await import("./ratelimit.js");
  await benchRateLimit();
}
if (want("daemon")) {
  const { benchDaemon } = await import("./daemon.js");
  await benchDaemon();
}
if (want("net")) {
  const { benchNet } = await import("./net.js");
  await benchNet();
}
