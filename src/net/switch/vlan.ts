// How a switch port treats 802.1Q tags: an access port belongs to one VLAN and carries its frames
// untagged; a trunk port carries several VLANs tagged (and optionally one native VLAN untagged).

export const DEFAULT_VLAN = 1;
export const MIN_VLAN = 1;
export const MAX_VLAN = 4094;

export type PortMode = { kind: "access"; vlan: number } | { kind: "trunk"; vlans: readonly number[]; native?: number };

export function isValidVlan(v: number): boolean {
  return Number.isInteger(v) && v >= MIN_VLAN && v <= MAX_VLAN;
}

export function portVlans(mode: PortMode): number[] {
  if (mode.kind === "access") return [mode.vlan];
  return mode.native !== undefined && !mode.vlans.includes(mode.native) ? [...mode.vlans, mode.native] : [...mode.vlans];
}

export function describePortMode(mode: PortMode): string {
  return mode.kind === "access" ? `vlan=${mode.vlan}` : `trunk=${mode.vlans.join(",")}${mode.native !== undefined ? ` native=${mode.native}` : ""}`;
}
