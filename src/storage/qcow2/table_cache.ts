// A cache of cluster-sized metadata tables (L2 tables, refcount blocks), keyed by host offset.
// Tables are written through, so an evicted table is never newer than the file.

export class TableCache {
  private tables = new Map<number, Buffer>();
  private pending = new Map<number, Promise<Buffer>>();

  constructor(
    private readonly maxTables: number,
    private readonly load: (offset: number) => Promise<Buffer>,
    /** False for a table a metadata update is modifying (see Qcow2Image.writableL2). */
    private readonly canEvict: (offset: number) => boolean = () => true,
  ) {}

  async get(offset: number): Promise<Buffer> {
    const hit = this.tables.get(offset);
    if (hit) {
      // Re-insert to keep Map order as recency order.
      this.tables.delete(offset);
      this.tables.set(offset, hit);
      return hit;
    }
    let p = this.pending.get(offset);
    if (!p) {
      p = this.load(offset).then(
        (t) => {
          this.pending.delete(offset);
          this.put(offset, t);
          return t;
        },
        (e: unknown) => {
          this.pending.delete(offset);
          throw e;
        },
      );
      this.pending.set(offset, p);
    }
    return p;
  }

  peek(offset: number): Buffer | undefined {
    return this.tables.get(offset);
  }

  put(offset: number, t: Buffer): void {
    this.tables.delete(offset);
    this.tables.set(offset, t);
    if (this.tables.size > this.maxTables) {
      for (const key of this.tables.keys()) {
        if (this.tables.size <= this.maxTables) break;
        if (key !== offset && this.canEvict(key)) this.tables.delete(key);
      }
    }
  }

  drop(offset: number): void {
    this.tables.delete(offset);
  }

  clear(): void {
    this.tables.clear();
  }
}
