// Worker side of clock_test.ts: reads the clock from the shared state it is given.
import { parentPort, workerData } from "node:worker_threads";
import { VirtualClock } from "../clock.js";

parentPort!.postMessage(new VirtualClock(workerData.shared as SharedArrayBuffer).now());
