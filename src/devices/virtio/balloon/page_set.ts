// A set of guest RAM pages as a bitmap with a running count: which pages are in the balloon.

export class PageSet {
  private bits: Uint8Array;
  count = 0;

  constructor(readonly pages: number) {
    this.bits = new Uint8Array(Math.ceil(pages / 8));
  }

  has(page: number): boolean {
    return (this.bits[page >>> 3]! & (1 << (page & 7))) !== 0;
  }

  /** Adds `page`; false if it was there already. */
  add(page: number): boolean {
    if (this.has(page)) return false;
    this.bits[page >>> 3]! |= 1 << (page & 7);
    this.count++;
    return true;
  }

  /** Removes `page`; false if it was not there. */
  delete(page: number): boolean {
    if (!this.has(page)) return false;
    this.bits[page >>> 3]! &= ~(1 << (page & 7));
    this.count--;
    return true;
  }

  clear(): void {
    this.bits.fill(0);
    this.count = 0;
  }

  bytes(): Uint8Array {
    return this.bits.slice();
  }

  /** Loads a bitmap saved by bytes(); bits beyond `pages` are dropped. */
  load(bytes: Uint8Array): void {
    this.clear();
    const n = Math.min(bytes.length, this.bits.length);
    this.bits.set(bytes.subarray(0, n));
    if (this.pages % 8 !== 0 && n === this.bits.length) this.bits[n - 1]! &= (1 << (this.pages % 8)) - 1;
    for (let i = 0; i < n; i++) {
      let b = this.bits[i]!;
      while (b) {
        b &= b - 1;
        this.count++;
      }
    }
  }
}
