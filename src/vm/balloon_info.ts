// What query-balloon (and query-stats' `balloon`) report: the device's counts in bytes, the
// settings, how pages go back to the host, and the guest's own statistics.

import { BALLOON_PAGE, type VirtioBalloon } from "../devices/virtio/balloon/device.js";
import type { BalloonConfig } from "./balloon_config.js";
import type { BalloonInfo } from "./controller.js";
import type { HostMemory } from "./host_memory.js";

export function describeBalloon(b: VirtioBalloon, ram: number, config: BalloonConfig, hostMemory: HostMemory | null): BalloonInfo {
  const s = b.stats();
  return {
    actual: ram - b.balloonPages * BALLOON_PAGE,
    target: ram - b.target * BALLOON_PAGE,
    balloonBytes: b.balloonPages * BALLOON_PAGE,
    balloonTargetBytes: b.target * BALLOON_PAGE,
    guestReportedBalloonBytes: b.reportedActual * BALLOON_PAGE,
    driverReady: b.driverReady,
    reporting: b.reportingActive,
    deflateOnOom: config.deflateOnOom,
    statsIntervalSec: config.statsIntervalSec,
    floorBytes: config.floorBytes,
    reclaim: hostMemory?.mode ?? "accounting",
    reclaimProblem: hostMemory?.reason ?? null,
    pagesInflated: s.inflatedPages,
    pagesDeflated: s.deflatedPages,
    pagesDeflatedOnOom: s.oomDeflatedPages,
    pagesReported: s.reportedPages,
    pagesReturned: s.releasedForRealPages,
    ignored: {
      badPfns: s.badPfns,
      duplicateInflates: s.duplicateInflates,
      unknownDeflates: s.unknownDeflates,
      duplicateReports: s.duplicateReports,
      reportsInBalloon: s.reportsInBalloon,
      statsFlood: s.statsFlood,
      statsBadEntries: s.statsBadEntries,
      configWritesIgnored: s.configWritesIgnored,
    },
    guestStats: b.guest,
  };
}