import { createKernel, Monitor, type Kernel } from '@daxlab/core';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { describe, expect, it } from 'vitest';
import { xfs } from '../src/index.js';
import { testArch } from '@daxlab/core/testing';

const MiB = 1024 * 1024;

function boot(version: string, features: Record<string, unknown> = {}, fileSize = 2 * MiB): { k: Kernel; m: Monitor } {
  const k = createKernel({ arch: testArch(), fs: xfs(), driver: nvdimm(), kernel: version, features });
  const m = new Monitor(k);
  k.run(k.probe({ size: 1024 * MiB, as: 'pmem0' }));
  k.run(k.mount({ device: 'pmem0' }));
  k.run(k.create({ file: 'a', size: fileSize }));
  k.run(k.mmap({ file: 'a', length: fileSize, shared: true, write: true, as: 'm' }));
  return { k, m };
}
const names = (m: Monitor): string[] => m.violations.map((v) => v.invariant).sort();

describe('pmem unbind (memunmap_pages) while the filesystem is in use', () => {
  it('v5.10: a mapped fs-dax page (devmap PTE, no reference) is freed under the mapping', () => {
    const { k, m } = boot('v5.10');
    k.run(k.write({ map: 'm', page: 0, data: 'A' }));
    k.run(k.unbind({ device: 'pmem0' }));
    expect(names(m)).toEqual(['page-freed-while-mapped', 'pgmap-teardown-while-referenced']);
  });

  it('v5.10: a pin delays teardown until unpin (memunmap_pages waits for page references)', () => {
    const { k, m } = boot('v5.10');
    k.run(k.write({ map: 'm', page: 0, data: 'A' }));
    k.run(k.gup({ map: 'm', page: 0, write: true, as: 'dma' }, true));
    k.run(k.munmap({ map: 'm' }));
    expect(() => k.run(k.unbind({ device: 'pmem0' }))).toThrow(/wait for page references/);
    expect(names(m)).toEqual([]);
  });

  it('v6.6: MF_MEM_PRE_REMOVE unmaps first, but a pin no longer delays teardown', () => {
    const { k, m } = boot('v6.6');
    k.run(k.write({ map: 'm', page: 0, data: 'A' }));
    k.run(k.unbind({ device: 'pmem0' }));
    expect(names(m)).toEqual([]);
    const p = boot('v6.6');
    p.k.run(p.k.write({ map: 'm', page: 0, data: 'A' }));
    p.k.run(p.k.gup({ map: 'm', page: 0, write: true, as: 'dma' }, true));
    p.k.run(p.k.unbind({ device: 'pmem0' }));
    expect(names(p.m)).toEqual(['pgmap-teardown-while-referenced']);
  });
});

describe('FOLL_LONGTERM on fs-dax', () => {
  it('is refused with EOPNOTSUPP by the slow path (check_vma_flags) in every version', () => {
    for (const v of ['v5.4', 'v6.1', 'latest']) {
      const { k, m } = boot(v);
      k.run(k.write({ map: 'm', page: 0, data: 'A' }));
      expect(() => k.run(k.gup({ map: 'm', page: 0, write: true, longterm: true, as: 'lt' }, true))).toThrow(/EOPNOTSUPP/);
      expect(() => k.run(k.gup({ map: 'm', page: 0, write: true, longterm: true, fast: true, as: 'lt2' }, true))).toThrow(/EOPNOTSUPP/);
      expect(names(m)).toEqual([]);
    }
  });

  it('without the devmap bail or folio_is_longterm_pinnable() check, GUP-fast grants it', () => {
    const { k, m } = boot('v6.15', { 'longterm-fsdax-folio-check': false });
    k.run(k.write({ map: 'm', page: 0, data: 'A' }));
    k.run(k.gup({ map: 'm', page: 0, write: true, longterm: true, fast: true, as: 'lt' }, true));
    expect(names(m)).toEqual(['longterm-pin-of-fsdax']);
  });
});

describe('PAGE_MAPPING_DAX_SHARED aliases PAGE_MAPPING_ANON', () => {
  const shared = (k: Kernel): void => {
    k.run(k.write({ map: 'm', page: 0, data: 'A' }));
    k.run(k.reflink({ from: 'a', to: 'b' }));
    k.run(k.mmap({ file: 'b', length: 4096, shared: true, as: 'mb' }));
    k.run(k.read({ map: 'mb', page: 0 }));
    k.run(k.read({ map: 'm', page: 0 }));
  };

  it('v6.1: a page shared by two files has mapping 0x1 and tests anon, but no mm path looks (devmap)', () => {
    const { k, m } = boot('v6.1', {}, 4096);
    shared(k);
    const pfn = k.pfnOf({ file: 'a', page: 0 })!;
    expect(k.pfnOf({ file: 'b', page: 0 })).toBe(pfn);
    expect(k.pages.mapping[k.pages.slot(pfn)]).toBe(1);
    expect(k.pages.share[k.pages.slot(pfn)]).toBe(2);
    k.run(k.munmap({ map: 'mb' }));
    expect(names(m)).toEqual([]);
  });

  it('normal refcounting with the old encoding: zap tests the shared DAX page and sees it as anon', () => {
    const { k, m } = boot('v6.15', { 'dax-shared-anon-alias': true }, 4096);
    shared(k);
    k.run(k.munmap({ map: 'mb' }));
    expect(names(m)).toEqual(['dax-page-seen-as-anon']);
  });

  it('v6.15: shared = mapping NULL and share 2; nothing reads it as anon', () => {
    const { k, m } = boot('v6.15', {}, 4096);
    shared(k);
    const pfn = k.pfnOf({ file: 'a', page: 0 })!;
    expect(k.pages.mapping[k.pages.slot(pfn)]).toBe(0);
    expect(k.pages.share[k.pages.slot(pfn)]).toBe(2);
    k.run(k.munmap({ map: 'mb' }));
    expect(names(m)).toEqual([]);
  });

  it('v5.10 refuses reflink of DAX files with EINVAL', () => {
    const { k } = boot('v5.10', {}, 4096);
    expect(() => k.run(k.reflink({ from: 'a', to: 'b' }))).toThrow(/EINVAL/);
  });
});

describe('XFS orderings', () => {
  it('truncate: IOLOCK, MMAPLOCK, break layouts (unmap, scan), then entries deleted, then blocks freed', () => {
    const { k } = boot('v6.15');
    k.run(k.write({ map: 'm', page: 0, data: 'A' }));
    const seen: string[] = [];
    k.bus.all().subscribe((e) => {
      const d = e.data as Record<string, unknown>;
      if (e.type === 'pte.clear') seen.push('unmap');
      if (e.type === 'dax.busy') seen.push('scan');
      if (e.type === 'dax.entry' && d['op'] === 'delete') seen.push('delete-entry');
      if (e.type === 'block.free') seen.push('free-block');
    });
    k.run(k.truncate({ file: 'a', size: 0 }));
    const dedup = seen.filter((x, i) => x !== seen[i - 1]);
    expect(dedup).toEqual(['unmap', 'scan', 'delete-entry', 'free-block']);
  });

  it('punch-hole frees only whole blocks inside the hole', () => {
    const { k } = boot('v6.15', {}, 4 * 4096);
    k.run(k.punchHole({ file: 'a', offset: 2048, length: 3 * 4096 }));
    expect(k.blockFree({ file: 'a', page: 0 })).toBe(false);
    expect(k.blockFree({ file: 'a', page: 1 })).toBe(true);
    expect(k.blockFree({ file: 'a', page: 2 })).toBe(true);
    expect(k.blockFree({ file: 'a', page: 3 })).toBe(false);
  });
});

describe('holes and the zero pages (fs/dax.c dax_load_hole, dax_pmd_load_hole)', () => {
  it('a read of a PMD-sized hole maps the huge zero page; a write inside it maps a PMD of new blocks over it', () => {
    const { k, m } = boot('v6.15');
    k.run(k.punchHole({ file: 'a', offset: 0, length: 2 * MiB }));
    expect(k.run(k.read({ map: 'm', page: 3 }))).toBe('');
    const mm = k.process('init');
    const leaf = k.vm.lookup(mm, k.map('m').start + 3)!;
    expect(leaf.pte.level).toBe('pmd');
    expect(leaf.pte.pfn).toBe(k.hugeZeroPfn);
    expect(k.file('a').inode.mapping.entries.get(0)).toMatchObject({ pmd: true, zero: true });
    // the write faults on the read-only zero PMD: wp_huge_pmd() -> ->huge_fault(PMD_ORDER) ->
    // dax_iomap_pmd_fault(write): iomap_begin allocates the 2 MiB hole (one aligned extent here),
    // dax_insert_entry() unmaps the zero PMD and vmf_insert_folio_pmd() maps the new folio
    k.run(k.write({ map: 'm', page: 3, data: 'W' }));
    const after = k.vm.lookup(mm, k.map('m').start + 3)!;
    expect(after.pte.level).toBe('pmd');
    expect(after.pte.pfn).not.toBe(k.hugeZeroPfn);
    expect(k.file('a').inode.mapping.entries.get(0)).toMatchObject({ pmd: true, zero: false });
    expect(k.file('a').inode.blocks.size).toBe(512);
    // one order-9 folio, one PMD mapping: rc 1, mapcount 1 (zero-based)
    expect(k.refcount(after.pte.pfn)).toBe(1);
    expect(k.mapcount(after.pte.pfn)).toBe(1);
    expect(k.run(k.read({ map: 'm', page: 3 }))).toBe('W');
    expect(names(m)).toEqual([]);
  });

  it('a read of a 4 KiB hole maps the zero page with no reference; pfn_mkwrite upgrades a read-faulted page in place', () => {
    const { k } = boot('v6.15', {}, 4096);
    k.run(k.punchHole({ file: 'a', offset: 0, length: 4096 }));
    k.run(k.read({ map: 'm', page: 0 }));
    expect(k.pfnOf({ map: 'm', page: 0 })).toBe(k.zeroPfn);
    k.run(k.write({ map: 'm', page: 0, data: 'W' }));
    const pfn = k.pfnOf({ map: 'm', page: 0 })!;
    expect(pfn).not.toBe(k.zeroPfn);
    // a fresh read-faulted page, then a write: same pfn, PTE made writable by ->pfn_mkwrite
    const b = boot('v6.15', {}, 4096);
    b.k.run(b.k.read({ map: 'm', page: 0 }));
    const before = b.k.pfnOf({ map: 'm', page: 0 });
    expect(b.k.vm.lookup(b.k.process('init'), b.k.map('m').start)!.pte.write).toBe(false);
    b.k.run(b.k.write({ map: 'm', page: 0, data: 'W' }));
    expect(b.k.pfnOf({ map: 'm', page: 0 })).toBe(before);
    expect(b.k.refcount(before!)).toBe(1);
  });
});
