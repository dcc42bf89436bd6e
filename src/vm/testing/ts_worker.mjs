// Starts a TypeScript module in a worker thread under tsx (a worker's --import does not apply
// to its entry in Node 20): new Worker(tsWorkerUrl, { workerData: { entry: URL, ... } }).
import { workerData } from "node:worker_threads";
import { register } from "tsx/esm/api";

register();
await import(workerData.entry);
