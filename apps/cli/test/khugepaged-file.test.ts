import { createKernel, PRESETS, type Kernel } from '@daxlab/core';
import { x86 } from '@daxlab/arch-x86';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { xfs } from '@daxlab/fs-xfs';
import { describe, expect, it } from 'vitest';
import { khugepagedPass, pfnMappedAt } from '@daxlab/core/testing';
import { errnoOf, fails } from './selftest-api.js';

// khugepaged and MADV_COLLAPSE on a read-only regular file of a non-DAX filesystem
// (CONFIG_READ_ONLY_THP_FOR_FS: core mm/collapse.ts fileVmaAllowsCollapse, collapseFile;
// mm/khugepaged.c hpage_collapse_scan_file(), collapse_file(), retract_page_tables(),
// collapse_pte_mapped_thp(); mm/huge_memory.c file_thp_enabled()), on x86: 4 KiB pages,
// 2 MiB PMDs, HPAGE_PMD_NR = 512. The shmem side is in packages/core/test/khugepaged-file.test.ts.
const NR = 512;
const MiB = 2 ** 20;

function kernel(version = 'latest', readOnlyThp = false): Kernel {
  return createKernel({ arch: x86(), driver: nvdimm(), fs: xfs(), kernel: version, ...(readOnlyThp ? { features: { 'read-only-thp-for-fs': true } } : {}) });
}

const upTo = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** The errno of a refused call, null when it succeeded. */
function code(f: () => unknown): string | null {
  const errno = errnoOf(f);
  return errno === 'ok' ? null : errno;
}

/**
 * khugepaged.c's file_setup_area() on a non-DAX filesystem: the file written through a shared
 * mapping (the selftest uses write(2): the same page-cache contents), unmapped, the page cache
 * dropped (drop_caches: eviction writes it back to the blocks), then mapped MAP_PRIVATE
 * PROT_READ|PROT_EXEC from a read-only open, and `cached` pages read back in.
 */
function roFile(k: Kernel, cached: Iterable<number>, exec = true): void {
  k.run(k.probe({ size: 2 ** 30, as: 'pmem0' }));
  k.run(k.mount({ device: 'pmem0', dax: 'never' }));
  k.run(k.create({ file: 'f', size: 2 * MiB }));
  k.run(k.mmap({ file: 'f', length: 2 * MiB, shared: true, write: true, as: 'w' }));
  for (const page of upTo(NR)) k.run(k.write({ map: 'w', page, data: `f${page}` }));
  k.run(k.munmap({ map: 'w' }));
  k.run(k.dropCaches({}));
  k.run(k.mmap({ file: 'f', length: 2 * MiB, exec, as: 'mem' }));
  for (const page of cached) k.run(k.read({ map: 'mem', page }));
}

const at = (page: number) => ({ map: 'mem', page });
const fileThps = (k: Kernel): number => k.pmdMappedCacheThpsIn(at(0), 'file');

describe('a read-only regular file (CONFIG_READ_ONLY_THP_FOR_FS)', () => {
  it('MADV_COLLAPSE needs the config; it reads the uncached pages in and maps the folio by a PMD', () => {
    const off = kernel('latest');
    roFile(off, upTo(NR));
    expect(code(() => off.run(off.madvise({ map: 'mem', advice: 'collapse' })))).toBe('EINVAL');

    const k = kernel('latest', true);
    // only pages 0..9 cached: MADV_COLLAPSE has no max_ptes_none, collapse_file() reads the rest in (readahead)
    roFile(k, upTo(10));
    k.run(k.madvise({ map: 'mem', advice: 'collapse' }));
    expect(fileThps(k)).toBe(1);
    expect(k.run(k.read({ map: 'mem', page: 0 }))).toBe('f0');
    expect(k.run(k.read({ map: 'mem', page: 400 }))).toBe('f400');
    // a private read-only file mapping: the PMD is read-only (vm_page_prot)
    expect(k.isWritableIn(at(0))).toBe(false);
  });

  it('khugepaged: fewer than HPAGE_PMD_NR - max_ptes_none cached pages is SCAN_EXCEED_NONE_PTE; a VMA without VM_HUGEPAGE is passed over', () => {
    const k = kernel('v6.6', true);
    roFile(k, upTo(255));
    expect(khugepagedPass(k, 'mem')).toEqual([]);
    k.run(k.madvise({ map: 'mem', advice: 'hugepage' }));
    // khugepaged.c collapse_max_ptes_none: max_ptes_none = 256, 255 pages cached < 512 - 256
    k.run(k.khugepagedLimits({ maxPtesNone: 256 }));
    expect(khugepagedPass(k, 'mem')).toEqual(['exceed-none-pte']);
    k.run(k.read({ map: 'mem', page: 255 }));
    // a read fault reads only its own page (read_ahead_kb = 0; fault-around maps cached pages only): 256 cached
    expect(khugepagedPass(k, 'mem')).toEqual(['succeed']);
    expect(fileThps(k)).toBe(0);
    k.run(k.read({ map: 'mem', page: 0 }));
    expect(fileThps(k)).toBe(1);
  });

  it('is refused while the file is open for write, with a dirty page (SCAN_FAIL), without VM_EXEC before v6.8, and before v5.14 (VM_DENYWRITE)', () => {
    const writer = kernel('latest', true);
    roFile(writer, upTo(NR));
    writer.run(writer.mmap({ file: 'f', length: 2 * MiB, shared: true, write: true, as: 'w2' }));
    expect(code(() => writer.run(writer.madvise({ map: 'mem', advice: 'collapse' })))).toBe('EINVAL');

    // written through a shared mapping and unmapped, not written back: the folio stays PG_dirty
    const dirty = kernel('latest', true);
    roFile(dirty, []);
    dirty.run(dirty.mmap({ file: 'f', length: 2 * MiB, shared: true, write: true, as: 'w2' }));
    dirty.run(dirty.write({ map: 'w2', page: 3, data: 'new' }));
    dirty.run(dirty.munmap({ map: 'w2' }));
    expect(code(() => dirty.run(dirty.madvise({ map: 'mem', advice: 'collapse' })))).toBe('EINVAL');
    expect(fileThps(dirty)).toBe(0);

    const noExec = kernel('v6.6', true);
    roFile(noExec, upTo(NR), false);
    expect(code(() => noExec.run(noExec.madvise({ map: 'mem', advice: 'collapse' })))).toBe('EINVAL');
    const noExecLatest = kernel('latest', true);
    roFile(noExecLatest, upTo(NR), false);
    noExecLatest.run(noExecLatest.madvise({ map: 'mem', advice: 'collapse' }));
    expect(fileThps(noExecLatest)).toBe(1);

    const old = kernel('v5.10', true);
    roFile(old, upTo(NR));
    old.run(old.madvise({ map: 'mem', advice: 'hugepage' }));
    expect(khugepagedPass(old, 'mem')).toEqual([]);
  });

  it('retract_page_tables() keeps the table of a private mapping with an anon_vma: its COW page stays, the rest refault by PTEs', () => {
    const k = kernel('v6.6', true);
    roFile(k, upTo(NR));
    // PROT_READ|PROT_WRITE|PROT_EXEC: without PROT_EXEC mprotect would clear the VM_EXEC v6.6's collapse needs
    k.run(k.mprotect({ map: 'mem', write: true, exec: true }));
    k.run(k.write({ map: 'mem', page: 9, data: 'cow' }));
    k.run(k.madvise({ map: 'mem', advice: 'hugepage' }));
    expect(khugepagedPass(k, 'mem')).toEqual(['succeed']);
    expect(k.run(k.read({ map: 'mem', page: 9 }))).toBe('cow');
    expect(k.run(k.read({ map: 'mem', page: 10 }))).toBe('f10');
    expect(fileThps(k)).toBe(0);
    expect(k.folios.nr(k.folios.folio(pfnMappedAt(k, 'mem', 10)))).toBe(NR);
  });
});

// khugepaged.c's file and shmem cases through the API, per preset and context: the selftest's own
// verdict ('exit' where file_fault()'s MADV_POPULATE_READ, v5.14, does not exist), against the
// table docs/selftests.md ("The file and shmem memory types") wrote before the model ran them.
type Mem = 'file' | 'shmem';
type Ctx = 'khugepaged' | 'madvise';
class Exit extends Error {}

class SelftestRun {
  readonly k: Kernel;
  ok = true;
  constructor(readonly version: string, readonly ctx: Ctx, readonly mem: Mem) {
    this.k = kernel(version, mem === 'file');
    // main(): shmem_enabled = advise; a non-DAX filesystem for the test file
    this.k.run(this.k.shmemEnabled({ mode: 'advise' }));
    if (mem === 'file') {
      this.k.run(this.k.probe({ size: 2 ** 30, as: 'pmem0' }));
      this.k.run(this.k.mount({ device: 'pmem0', dax: false }));
    }
  }
  huge(nr: number): boolean {
    return this.k.pmdMappedCacheThpsIn(at(0), this.mem) === nr;
  }
  /** ops->setup_area(nr): the file written (page i holds i), reopened read-only; or a memfd */
  setupArea(nr: number): void {
    const length = nr * NR * 4096;
    if (this.mem === 'file') {
      this.k.run(this.k.create({ file: 't', size: length }));
      this.k.run(this.k.mmap({ file: 't', length, shared: true, write: true, as: 'w' }));
      for (let i = 0; i < nr * NR; i++) this.k.run(this.k.write({ map: 'w', page: i, data: `${i}` }));
      this.k.run(this.k.munmap({ map: 'w' }));
      this.k.run(this.k.dropCaches({}));
      this.k.run(this.k.mmap({ file: 't', length, exec: true, as: 'mem' }));
    } else {
      this.k.run(this.k.memfdCreate({ file: 't', size: length }));
      this.k.run(this.k.mmap({ file: 't', length, shared: true, write: true, as: 'mem' }));
    }
  }
  /** ops->fault(p, from, to) in pages */
  fault(from: number, to: number): void {
    if (this.mem === 'file') {
      if (fails(() => this.k.run(this.k.madvise({ map: 'mem', advice: 'populate-read', offset: from * 4096, length: (to - from) * 4096 })))) throw new Exit();
    } else for (let i = from; i < to; i++) this.k.run(this.k.write({ map: 'mem', page: i, data: `${i}` }));
  }
  validate(from: number, to: number): void {
    for (let i = from; i < to; i++) if (this.k.run(this.k.read({ map: 'mem', page: i })) !== `${i}`) this.ok = false;
  }
  madvise(advice: 'hugepage' | 'nohugepage' | 'collapse' | 'dontneed', offset = 0, length?: number): boolean {
    return !fails(() => this.k.run(this.k.madvise({ map: 'mem', advice, offset, ...(length === undefined ? {} : { length }) })));
  }
  /** c->collapse(): khugepaged_collapse() (wait_for_scan, then the refault) or madvise_collapse() */
  collapse(nr: number, expect: boolean): void {
    if (!this.huge(0)) throw new Exit(); // "Unexpected huge page"
    if (this.ctx === 'khugepaged') {
      this.madvise('hugepage');
      this.k.run(this.k.khugepagedScan({ map: 'mem' }));
      this.madvise('nohugepage');
      this.fault(0, nr * NR);
      if (!this.huge(expect ? nr : 0)) this.ok = false;
      return;
    }
    this.k.run(this.k.shmemEnabled({ mode: 'never' }));
    this.madvise('hugepage');
    if (this.madvise('collapse') !== expect || !this.huge(expect ? nr : 0)) this.ok = false;
    this.k.run(this.k.shmemEnabled({ mode: 'advise' }));
  }
}

const FILE_CASES: Record<string, { mems: Mem[]; ctxs: Ctx[]; run: (r: SelftestRun) => void }> = {
  collapse_full: { mems: ['file', 'shmem'], ctxs: ['khugepaged', 'madvise'], run: (r) => { r.setupArea(4); r.fault(0, 4 * NR); r.collapse(4, true); r.validate(0, 4 * NR); } },
  collapse_single_pte_entry: { mems: ['file', 'shmem'], ctxs: ['khugepaged', 'madvise'], run: (r) => { r.setupArea(1); r.fault(0, 1); r.collapse(1, true); r.validate(0, 1); } },
  collapse_max_ptes_none: {
    mems: ['file'],
    ctxs: ['khugepaged', 'madvise'],
    run: (r) => {
      const none = NR / 2;
      r.k.run(r.k.khugepagedLimits({ maxPtesNone: none }));
      r.setupArea(1);
      r.fault(0, NR - none - 1);
      r.collapse(1, r.ctx === 'madvise');
      r.validate(0, NR - none - 1);
      if (r.ctx === 'khugepaged') {
        r.fault(0, NR - none);
        r.collapse(1, true);
        r.validate(0, NR - none);
      }
    },
  },
  collapse_single_pte_entry_compound: {
    mems: ['file'],
    ctxs: ['khugepaged', 'madvise'],
    run: (r) => {
      // alloc_hpage(): fault, MADV_COLLAPSE, check_huge(p, 1), MADV_HUGEPAGE (exit on failure)
      r.setupArea(1);
      r.fault(0, NR);
      if (!r.madvise('collapse') || !r.huge(1)) throw new Exit();
      r.madvise('hugepage');
      r.madvise('nohugepage');
      r.madvise('dontneed', 4096, (NR - 1) * 4096);
      if (!r.huge(0)) r.ok = false;
      r.collapse(1, true);
      r.validate(0, 1);
    },
  },
  madvise_collapse_existing_thps: {
    mems: ['file', 'shmem'],
    ctxs: ['madvise'],
    run: (r) => {
      r.setupArea(1);
      r.fault(0, NR);
      r.collapse(1, true);
      r.validate(0, NR);
      r.madvise('hugepage');
      if (!r.madvise('collapse') || !r.huge(1)) r.ok = false;
      r.validate(0, NR);
    },
  },
  madvise_retracted_page_tables: {
    mems: ['file', 'shmem'],
    ctxs: ['madvise'],
    run: (r) => {
      r.setupArea(1);
      r.fault(0, NR);
      r.madvise('hugepage');
      r.k.run(r.k.khugepagedScan({ map: 'mem' }));
      r.madvise('nohugepage');
      r.collapse(1, true);
      r.validate(0, NR);
    },
  },
};

/** docs/selftests.md's table: 'exit' (no MADV_POPULATE_READ before v5.14), then per release */
function expected(version: string, ctx: Ctx, mem: Mem): string {
  const old = version === 'v5.4' || version === 'v5.10';
  if (mem === 'file' && old) return 'exit';
  if (ctx === 'madvise') return old ? 'fail' : 'pass';
  // khugepaged: from v6.12 do_set_pmd() refuses the VM_NOHUGEPAGE VMA wait_for_scan() left
  return version === 'v6.15' || version === 'latest' ? 'fail' : 'pass';
}

describe('khugepaged.c file and shmem verdicts per preset (x86)', () => {
  for (const [name, c] of Object.entries(FILE_CASES)) {
    for (const ctx of c.ctxs) {
      for (const mem of c.mems) {
        it(`${name} (${ctx}:${mem})`, () => {
          const got = PRESETS.map((p) => {
            const r = new SelftestRun(p.name, ctx, mem);
            try {
              c.run(r);
            } catch (e) {
              if (e instanceof Exit) return `${p.name}: exit`;
              throw e;
            }
            return `${p.name}: ${r.ok ? 'pass' : 'fail'}`;
          });
          expect(got).toEqual(PRESETS.map((p) => `${p.name}: ${expected(p.name, ctx, mem)}`));
        });
      }
    }
  }
});
