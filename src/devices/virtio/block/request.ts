// virtio-blk request parsing (virtio 1.2 §5.2.6): header, data segments and status byte of one chain.

import { gather, splitSegments, type DescriptorChain } from "../descriptor_chain.js";

export const BLK_T_IN = 0;
export const BLK_T_OUT = 1;
export const BLK_T_FLUSH = 4;
export const BLK_T_GET_ID = 8;
export const BLK_T_GET_LIFETIME = 10;
export const BLK_T_DISCARD = 11;
export const BLK_T_WRITE_ZEROES = 13;
export const BLK_T_SECURE_ERASE = 14;

export const BLK_S_OK = 0;
export const BLK_S_IOERR = 1;
export const BLK_S_UNSUPP = 2;

export const SECTOR_SIZE = 512;
export const BLK_ID_BYTES = 20;
const HEADER_BYTES = 16;
const DISCARD_SEGMENT_BYTES = 16;
/** Flag bit of a discard / write-zeroes segment: the device may deallocate the range. */
export const BLK_WRITE_ZEROES_FLAG_UNMAP = 1;

export interface BlkRequest {
  readonly head: number;
  readonly type: number;
  readonly sector: number;
  /** Device-readable payload after the header (OUT data, discard segments). */
  readonly toDevice: Uint8Array[];
  readonly toDeviceBytes: number;
  /** Device-writable payload before the status byte (IN data, GET_ID answer). */
  readonly fromDevice: Uint8Array[];
  readonly fromDeviceBytes: number;
  /** One byte of guest RAM that receives the request status. */
  readonly status: Uint8Array;
}

export type ParseResult =
  | { ok: true; request: BlkRequest }
  /** The chain cannot carry a request; `status` is the byte to answer IOERR in, when there is one. */
  | { ok: false; reason: string; status: Uint8Array | null };

export function parseRequest(chain: DescriptorChain): ParseResult {
  let status: Uint8Array | null = null;
  if (chain.writableBytes >= 1) {
    const { before, after } = splitSegments(chain.writable, chain.writableBytes - 1);
    status = after[0]!;
    if (chain.readableBytes < HEADER_BYTES) {
      return { ok: false, reason: `request ${chain.head} has a ${chain.readableBytes}-byte header, 16 are needed`, status };
    }
    const header = gather(chain.readable, 0, HEADER_BYTES);
    const v = new DataView(header.buffer);
    const type = v.getUint32(0, true);
    const sector = v.getUint32(8, true) + v.getUint32(12, true) * 0x1_0000_0000;
    const toDevice = splitSegments(chain.readable, HEADER_BYTES).after;
    return {
      ok: true,
      request: {
        head: chain.head,
        type,
        sector,
        toDevice,
        toDeviceBytes: chain.readableBytes - HEADER_BYTES,
        fromDevice: before,
        fromDeviceBytes: chain.writableBytes - 1,
        status,
      },
    };
  }
  return { ok: false, reason: `request ${chain.head} has no writable status byte`, status };
}

export interface DiscardSegment {
  sector: number;
  sectors: number;
  flags: number;
}

/** Decodes the discard / write-zeroes segment array (already checked to be a whole number of segments). */
export function parseDiscardSegments(data: Uint8Array): DiscardSegment[] {
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out: DiscardSegment[] = [];
  for (let o = 0; o + DISCARD_SEGMENT_BYTES <= data.length; o += DISCARD_SEGMENT_BYTES) {
    out.push({
      sector: v.getUint32(o, true) + v.getUint32(o + 4, true) * 0x1_0000_0000,
      sectors: v.getUint32(o + 8, true),
      flags: v.getUint32(o + 12, true),
    });
  }
  return out;
}

export { DISCARD_SEGMENT_BYTES };
