// The kernel command line a VM boots with: the arguments every VM gets, the guest command, and the
// kernel's length limit.
import { ConfigError, type VmConfig } from "./config.js";
import { commandArgument } from "./guest_protocol.js";
import { GUEST_COMMAND_LINE_MAX, terminalArguments } from "../image/init_script.js";

/**
 * Kernel arguments that skip boot-time work an interpreted CPU pays dearly for: the crypto
 * self-tests (half of Debian's boot instructions) and the jitter-entropy self-test (entropy
 * comes from virtio-rng and the device tree's rng-seed instead).
 */
export const FAST_BOOT_ARGS = ["cryptomgr.notests", "initcall_blacklist=jent_mod_init"];
/**
 * Kernel arguments that stop housekeeping timers from waking an idle guest several times a
 * second (each wake-up costs ~15,000 interpreted instructions): proactive compaction's 500 ms
 * poll, the 1 s vmstat refresh (now every 10 s) and the soft-lockup watchdog, which without
 * PARAVIRT cannot tell a vCPU held back by its cap or by the host from a locked-up one anyway.
 * Together they take an idle guest from ~6 wake-ups and ~100,000 instructions a second to ~1.3
 * and ~22,000 (docs/performance.md). --append may override them.
 */
export const QUIET_IDLE_ARGS = ["sysctl.vm.compaction_proactiveness=0", "sysctl.vm.stat_interval=10", "nowatchdog"];

/**
 * The kernel command line for a VM. Refuses lines the kernel would truncate (a truncated
 * command would run as garbage), with the limit and the fix in the error.
 */
export function kernelCommandLine(c: VmConfig): string {
  const parts = ["console=ttyS0", "panic=-1", ...FAST_BOOT_ARGS, ...QUIET_IDLE_ARGS];
  if (c.command) parts.push("quiet", "loglevel=1");
  if (c.terminal) parts.push(...terminalArguments(c.terminal));
  if (c.append) parts.push(c.append);
  if (c.command) parts.push(commandArgument(c.command));
  const line = parts.join(" ");
  if (line.length >= GUEST_COMMAND_LINE_MAX) {
    throw new ConfigError(
      `Cannot pass this ${c.command ? "command" : "--append"} to the guest: the kernel command line would be ${line.length} bytes, over the kernel's ${GUEST_COMMAND_LINE_MAX - 1}. Put a long command in a script on a --disk and run that instead.`,
    );
  }
  return line;
}
