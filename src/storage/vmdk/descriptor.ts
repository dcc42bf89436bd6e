// The text descriptor of a VMDK: key="value" lines and extent lines such as `RW 2048 FLAT "a-flat.vmdk" 0`.

export type ExtentAccess = "RW" | "RDONLY" | "NOACCESS";

export interface DescriptorExtent {
  access: ExtentAccess;
  sectors: number;
  /** FLAT, SPARSE, ZERO, VMFS, … as written (upper case). */
  type: string;
  fileName?: string;
  offsetSectors: number;
  line: number;
}

export interface VmdkDescriptor {
  fields: Map<string, string>;
  extents: DescriptorExtent[];
}

const EXTENT_LINE = /^(RW|RDONLY|NOACCESS)\s+(\d+)\s+([A-Za-z]+)(?:\s+"([^"]*)"(?:\s+(\d+))?)?\s*$/;
const FIELD_LINE = /^([A-Za-z0-9_.]+)\s*=\s*"?([^"]*)"?\s*$/;

/** Parses descriptor text; returns a reason string for the first line it cannot understand. */
export function parseDescriptor(text: string): VmdkDescriptor | string {
  const fields = new Map<string, string>();
  const extents: DescriptorExtent[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "" || line.startsWith("#")) continue;
    const extent = EXTENT_LINE.exec(line);
    if (extent !== null) {
      const sectors = Number(extent[2]);
      const offsetSectors = extent[5] === undefined ? 0 : Number(extent[5]);
      if (!Number.isSafeInteger(sectors) || !Number.isSafeInteger(offsetSectors)) return `extent on line ${i + 1} has a size or offset that is too large`;
      extents.push({ access: extent[1] as ExtentAccess, sectors, type: extent[3].toUpperCase(), fileName: extent[4], offsetSectors, line: i + 1 });
      continue;
    }
    const field = FIELD_LINE.exec(line);
    if (field !== null) {
      fields.set(field[1], field[2]);
      continue;
    }
    return `descriptor line ${i + 1} is neither a setting nor an extent: ${JSON.stringify(line.slice(0, 80))}`;
  }
  return { fields, extents };
}

/** The parent a delta disk depends on, or undefined for a standalone disk. */
export function parentOf(descriptor: VmdkDescriptor): string | undefined {
  const parentCid = descriptor.fields.get("parentCID");
  if (parentCid === undefined || parentCid.toLowerCase() === "ffffffff") return undefined;
  return descriptor.fields.get("parentFileNameHint") ?? `CID ${parentCid}`;
}
