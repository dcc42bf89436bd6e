// VM Generation ID (the devicetree binding "microsoft,vmgenid"): 16 bytes the guest reads, and an
// interrupt when they change. A restored snapshot is a new generation, so a clone's kernel mixes
// the new ID into its random number generator and never repeats its siblings' secrets.

import { randomBytes } from "node:crypto";
import type { MmioDevice } from "../seams/mmio.js";
import type { IrqLine } from "../seams/interrupts.js";

export const VMGENID_ID_BYTES = 16;

export interface VmGenIdState {
  /** The current ID, hex. */
  id: string;
  /** A change the guest has not read yet. */
  notifying: boolean;
}

export class VmGenId implements MmioDevice {
  readonly name = "vmgenid";
  private id: Uint8Array = randomBytes(VMGENID_ID_BYTES);
  // Held high from a change until the guest reads the ID (the binding has no acknowledge
  // register: its handler reads the new ID, which is the acknowledgement here).
  private notifying = false;

  constructor(private readonly irq: IrqLine) {}

  /** A new generation: a fresh random ID, and the interrupt until the guest reads it. */
  newGeneration(): void {
    this.id = randomBytes(VMGENID_ID_BYTES);
    this.notifying = true;
    this.irq.set(true);
  }

  read(offset: number, size: 1 | 2 | 4): number {
    if (offset < 0 || offset + size > VMGENID_ID_BYTES) return 0;
    if (this.notifying) {
      this.notifying = false;
      this.irq.set(false);
    }
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = (v << 8) | this.id[offset + i]!;
    return v >>> 0;
  }

  write(): void {
    // Read-only.
  }

  save(): VmGenIdState {
    return { id: Buffer.from(this.id).toString("hex"), notifying: this.notifying };
  }

  restore(s: VmGenIdState): void {
    const id = Buffer.from(s.id, "hex");
    if (id.length === VMGENID_ID_BYTES) this.id = new Uint8Array(id);
    this.notifying = s.notifying;
    this.irq.set(this.notifying);
  }
}
