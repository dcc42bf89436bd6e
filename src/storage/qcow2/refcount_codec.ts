// Reading and writing one refcount entry of any width (refcount_order 0..6 = 1..64 bits).

export function getRefcount(block: Buffer, index: number, order: number): number {
  switch (order) {
    case 4:
      return block.readUInt16BE(index * 2);
    case 5:
      return block.readUInt32BE(index * 4);
    case 6:
      return block.readUInt32BE(index * 8) * 2 ** 32 + block.readUInt32BE(index * 8 + 4);
    case 3:
      return block[index];
    default: {
      // Sub-byte widths count from the least significant bit of each byte.
      const bits = 1 << order;
      const bitPos = index * bits;
      return (block[bitPos >> 3] >> (bitPos & 7)) & ((1 << bits) - 1);
    }
  }
}

export function setRefcount(block: Buffer, index: number, order: number, value: number): void {
  switch (order) {
    case 4:
      block.writeUInt16BE(value, index * 2);
      return;
    case 5:
      block.writeUInt32BE(value, index * 4);
      return;
    case 6:
      block.writeUInt32BE(Math.floor(value / 2 ** 32), index * 8);
      block.writeUInt32BE(value % 2 ** 32, index * 8 + 4);
      return;
    case 3:
      block[index] = value;
      return;
    default: {
      const bits = 1 << order;
      const bitPos = index * bits;
      const mask = ((1 << bits) - 1) << (bitPos & 7);
      block[bitPos >> 3] = (block[bitPos >> 3] & ~mask) | ((value << (bitPos & 7)) & mask);
    }
  }
}

export function maxRefcount(order: number): number {
  return order === 6 ? Number.MAX_SAFE_INTEGER : 2 ** (1 << order) - 1;
}

/** Byte range [from, to) of the block that holds entries [first, last]. */
export function entryByteRange(first: number, last: number, order: number): [number, number] {
  const bits = 1 << order;
  return [Math.floor((first * bits) / 8), Math.ceil(((last + 1) * bits) / 8)];
}
