// The kernel and initrd files (~40 MiB) are garbage once copied into guest RAM, but an idle VM
// allocates too little for V8 to ever collect them. Collect once, after boot, so an idle VM
// process gives that memory back.

import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

let collect: (() => void) | null = null;

function garbageCollector(): () => void {
  if (collect === null) {
    setFlagsFromString("--expose-gc");
    collect = runInNewContext("gc") as () => void;
  }
  return collect;
}

/** Runs one full garbage collection. */
export function collectGarbageNow(): void {
  garbageCollector()();
}
