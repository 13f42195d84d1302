import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import type { Device } from '../types.js';

export interface BlockOwner {
  readonly file: string;
  readonly index: number;
}

/**
 * The block allocator the filesystems share: one block per base page of the device's data area
 * (DAX needs block size == PAGE_SIZE). A freed block is handed out again first (most recently
 * freed first), so a block freed while DMA is in flight is reused by the next allocation, as a
 * real allocator's free-space search readily does. Extents of at least a PMD are carved
 * PMD-aligned from never-used space so PMD faults are possible. Blocks are refcounted for
 * reflink (XFS refcount btree): a shared block is freed when its last owner lets go.
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

  pfnOf(block: number): number {
    return this.device.dataPfn + block;
  }

  blockOfPfn(pfn: number): number | null {
    const b = pfn - this.device.dataPfn;
    return b >= 0 && b < this.nrBlocks ? b : null;
  }

  isFree(block: number): boolean {
    return !this.refs.has(block);
  }

  ownersOf(block: number): readonly BlockOwner[] {
    return this.owners.get(block) ?? [];
  }

  /** Allocate `count` blocks for file pages index..index+count-1. */
  alloc(file: string, index: number, count: number): number[] {
    const pmd = this.k.vm.pmdPages;
    const out: number[] = [];
    while (out.length < count) {
      const remaining = count - out.length;
      const fileIndex = index + out.length;
      if (remaining >= pmd && fileIndex % pmd === 0) {
        const start = Math.ceil(this.nextFresh / pmd) * pmd;
        if (start + pmd <= this.nrBlocks) {
          for (let b = this.nextFresh; b < start; b++) this.freed.unshift(b);
          this.nextFresh = start + pmd;
          for (let i = 0; i < pmd; i++) out.push(start + i);
          continue;
        }
      }
      const b = this.freed.pop() ?? (this.nextFresh < this.nrBlocks ? this.nextFresh++ : null);
      if (b === null) {
        for (const x of out) this.release(x, file);
        throw new KernelError('ENOSPC', `no free blocks on ${this.device.name}`);
      }
      out.push(b);
    }
    out.forEach((b, i) => {
      this.refs.set(b, 1);
      this.owners.set(b, [{ file, index: index + i }]);
      // fresh extents read as zeroes (unwritten/zeroed on allocation)
      this.k.pages.data.set(this.pfnOf(b), '');
      this.k.emit('block.alloc', { device: this.device.name, block: b, file, index: index + i });
    });
    return out;
  }

  /** Share a block with another file page (reflink). */
  share(block: number, file: string, index: number): void {
    const n = this.refs.get(block);
    if (n === undefined) throw new Error(`sharing free block ${block}`);
    this.refs.set(block, n + 1);
    this.owners.get(block)!.push({ file, index });
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
    this.freed.push(block);
    this.k.emit('block.free', { device: this.device.name, block, pfn: this.pfnOf(block), file });
  }
}
