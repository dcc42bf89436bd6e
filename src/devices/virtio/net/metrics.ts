// Counters of one virtual NIC, exported flat for query-stats and Prometheus-style metrics.

export type VirtioNetStats = {
  /** Tx chains taken from the queue (the generic request count of every device). */
  requests: number;
  /** Sum of the drop counters and failures (the generic error count of every device). */
  errors: number;
  /** Frames and bytes the guest sent that left the NIC. */
  txPackets: number;
  bytesWritten: number;
  /** Frames and bytes delivered to the guest. */
  rxPackets: number;
  bytesRead: number;
  /** Frames dropped because a queue was full (the guest posted no buffers in time, or the backend was full). */
  dropsQueueFull: number;
  /** Frames dropped because the receive limit held so many back that the queue was full (frames wait for tokens first). */
  dropsRateLimit: number;
  /** Frames dropped by the firewall. */
  dropsFirewall: number;
  /** Frames the guest sent from a MAC or address it was not given. */
  dropsSpoof: number;
  /** Frames too short, too long or otherwise unreadable, and chains without a header. */
  dropsMalformed: number;
  /** Frames dropped while the link was down. */
  dropsLinkDown: number;
  /** 1 when the link is up. */
  linkUp: number;
};

export function emptyVirtioNetStats(): VirtioNetStats {
  return {
    requests: 0,
    errors: 0,
    txPackets: 0,
    bytesWritten: 0,
    rxPackets: 0,
    bytesRead: 0,
    dropsQueueFull: 0,
    dropsRateLimit: 0,
    dropsFirewall: 0,
    dropsSpoof: 0,
    dropsMalformed: 0,
    dropsLinkDown: 0,
    linkUp: 1,
  };
}
