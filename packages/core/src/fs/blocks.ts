import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import type { Device } from '../types.js';
import { devicePgoff, rangePfn } from '../dax/region.js';

export interface BlockOwner {
  readonly file: string;
  readonly index: number;
}

/**
 * The block allocator the filesystems share: one block per base page of the device's data area
 * (DAX needs block size == PAGE_SIZE). First fit from the lowest free block, as a free-space
 * search near a low goal does, so a block freed while DMA is in flight is what the next
 * allocation gets. PMD-sized, PMD-aligned pieces of a file get PMD-aligned runs so PMD faults
 * are possible. Blocks are refcounted for reflink (XFS refcount btree): a shared block is freed
 * when its last owner lets go.
 */
export class BlockAllocator {
  private nextFresh = 0;
  private readonly freed: number[] = [];
  private readonly refs = new Map<number, number>();
  private readonly owners = new Map<number, BlockOwner[]>();
  /** blocks the allocator has handed out and not freed */
  get used(): number {
    return this.refs.size;
  }

  constructor(
    private readonly k: Kernel,
    readonly device: Device,
  ) {}

  get nrBlocks(): number {
    return this.device.dataPages;
  }

  /** The pfn behind a block: on a dm device, of the target's namespace (linear_dax_direct_access()). */
  pfnOf(block: number): number {
    return this.device.ranges ? rangePfn(this.device, block, 1) : this.device.dataPfn + block;
  }

  blockOfPfn(pfn: number): number | null {
    const b = this.device.ranges ? devicePgoff(this.device, pfn) : pfn - this.device.dataPfn;
    return b >= 0 && b < this.nrBlocks ? b : null;
  }

  /**
   * How many blocks from `block` on are physically contiguous: to the end of the dm target that
   * holds it (dm_dax_direct_access() clips to max_io_len(), so a PMD fault across two targets
   * falls back), else all of them.
   */
  physicalRun(block: number): number {
    const r = this.device.ranges?.find((x) => block >= x.pgoff && block < x.pgoff + x.pages);
    return r ? r.pgoff + r.pages - block : this.nrBlocks - block;
  }

  isFree(block: number): boolean {
    return !this.refs.has(block);
  }

  ownersOf(block: number): readonly BlockOwner[] {
    return this.owners.get(block) ?? [];
  }

  /**
   * Allocate `count` blocks for file pages index..index+count-1, first fit: the lowest free
   * block, and for PMD-sized, PMD-aligned pieces of a file the lowest PMD-aligned free run.
   */
  alloc(file: string, index: number, count: number): number[] {
    const pmd = this.k.vm.pmdPages;
    const out: number[] = [];
    while (out.length < count) {
      const remaining = count - out.length;
      if (remaining >= pmd && (index + out.length) % pmd === 0) {
        const run = this.takeAlignedRun(pmd);
        if (run !== null) {
          for (let i = 0; i < pmd; i++) out.push(run + i);
          continue;
        }
      }
      const b = this.freed.length ? this.freed.shift()! : this.nextFresh < this.nrBlocks ? this.nextFresh++ : null;
      if (b === null) {
        for (const x of out) this.freed.push(x);
        this.freed.sort((x, y) => x - y);
        throw new KernelError('ENOSPC', `no free blocks on ${this.device.name}`);
      }
      out.push(b);
    }
    out.forEach((b, i) => {
      this.refs.set(b, 1);
      this.owners.set(b, [{ file, index: index + i }]);
      // newly allocated extents read as zeroes (unwritten, or zeroed by the DAX allocation path)
      this.k.pages.data.set(this.pfnOf(b), '');
      this.k.emit('block.alloc', { device: this.device.name, block: b, file, index: index + i });
    });
    return out;
  }

  /** The lowest free PMD-aligned run of `n` blocks, taken from the free set or fresh space. */
  private takeAlignedRun(n: number): number | null {
    const f = this.freed;
    for (let i = 0; i + n <= f.length; i++) {
      if (f[i]! % n === 0 && f[i + n - 1] === f[i]! + n - 1) {
        const start = f[i]!;
        f.splice(i, n);
        return start;
      }
    }
    const start = Math.ceil(this.nextFresh / n) * n;
    if (start + n > this.nrBlocks) return null;
    for (let b = this.nextFresh; b < start; b++) this.freed.push(b);
    this.freed.sort((x, y) => x - y);
    this.nextFresh = start + n;
    return start;
  }

  /** Share a block with another file page (reflink). */
  share(block: number, file: string, index: number): void {
    const n = this.refs.get(block);
    if (n === undefined) throw new Error(`sharing free block ${block}`);
    this.refs.set(block, n + 1);
    this.owners.get(block)!.push({ file, index });
  }

  /** The block now backs page `to` of `file` instead of page `from` (collapse and insert range shift extents). */
  move(block: number, file: string, from: number, to: number): void {
    const owner = this.owners.get(block)?.findIndex((o) => o.file === file && o.index === from) ?? -1;
    if (owner < 0) throw new Error(`moving block ${block}, which is not ${file}[${from}]`);
    this.owners.get(block)![owner] = { file, index: to };
  }

  /**
   * The allocation becomes exactly `owned` (a log replay: the free space btrees / bitmaps are
   * metadata too, fs/journal.ts). A block no longer owned is freed (block.free), one owned anew
   * is taken from the free pool; blocks past the fresh-space boundary stay fresh.
   */
  rebuild(owned: readonly (readonly [number, BlockOwner])[]): void {
    const next = new Map<number, BlockOwner[]>();
    for (const [block, owner] of owned) next.set(block, [...(next.get(block) ?? []), owner]);
    for (const [block, owners] of [...this.owners]) {
      if (next.has(block)) continue;
      for (const o of owners) this.release(block, o.file);
    }
    for (const [block, owners] of next) {
      const at = this.freed.indexOf(block);
      if (at >= 0) this.freed.splice(at, 1);
      for (let b = this.nextFresh; b <= block; b++) if (b !== block) this.freed.push(b);
      if (block >= this.nextFresh) {
        this.nextFresh = block + 1;
        this.freed.sort((x, y) => x - y);
      }
      this.refs.set(block, owners.length);
      this.owners.set(block, owners);
    }
  }

  /** One owner lets go of the block; the last one returns it to the free pool. */
  release(block: number, file: string): void {
    const n = this.refs.get(block);
    if (n === undefined) throw new Error(`freeing free block ${block}`);
    const owners = this.owners.get(block)!;
    const i = owners.findIndex((o) => o.file === file);
    if (i >= 0) owners.splice(i, 1);
    if (n > 1) {
      this.refs.set(block, n - 1);
      return;
    }
    this.refs.delete(block);
    this.owners.delete(block);
    const at = this.freed.findIndex((b) => b > block);
    this.freed.splice(at < 0 ? this.freed.length : at, 0, block);
    this.k.emit('block.free', { device: this.device.name, block, pfn: this.pfnOf(block), file });
  }
}
