import { describe, expect, it } from 'vitest';
import { createKernel, InputError, KernelError, Monitor, type ArchPlugin, type Kernel } from '../src/index.js';
import { parseScenario } from '../src/scenario/load.js';
import { testArch } from '../src/testing.js';

/** x86-64 as core's test arch describes it: soft-dirty present (HAVE_ARCH_SOFT_DIRTY). */
function kernel(version: string, features: Record<string, unknown> = {}, arch: ArchPlugin = testArch()): { k: Kernel; m: Monitor } {
  const k = createKernel({ arch, kernel: version, features });
  return { k, m: new Monitor(k) };
}

/** The same MMU without a soft-dirty bit, as arm64 (arch/arm64/Kconfig selects no HAVE_ARCH_SOFT_DIRTY). */
function noSoftDirtyArch(): ArchPlugin {
  const a = testArch();
  return { ...a, mmu: { ...a.mmu, pteBits: { special: true, devmap: true, softDirty: false } } };
}

const M = { map: 'm', page: 0 } as const;

/** do_run_with_base_page(): a private anonymous page, written, so exclusive, dirty and soft-dirty. */
function writtenPage(k: Kernel): number {
  k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'm' }));
  k.run(k.write({ ...M, data: 'A' }));
  return k.pfnOf(M)!;
}

function mprotect(k: Kernel, write: boolean, process?: string): void {
  k.run(k.mprotect({ map: 'm', write, ...(process ? { process } : {}) }));
}

const ALL = ['v5.4', 'v5.10', 'v6.1', 'v6.3', 'v6.6', 'v6.15', 'latest'];

describe('mprotect(): change_protection() and the write upgrade', () => {
  it('PROT_READ clears VM_WRITE and write-protects the PTE; reads still work, a CPU write is refused', () => {
    for (const v of ALL) {
      const { k } = kernel(v);
      const pfn = writtenPage(k);
      expect(k.isWritableIn(M)).toBe(true);
      mprotect(k, false);
      expect(k.map('m').flags.write, v).toBe(false);
      expect(k.isWritableIn(M), v).toBe(false);
      // pte_modify() keeps the page, its dirty bit and its soft-dirty bit
      expect(k.pfnOf(M)).toBe(pfn);
      expect(k.vm.lookup(k.process('init'), k.map('m').start)!.pte.dirty).toBe(true);
      expect(k.isSoftDirtyIn(M)).toBe(true);
      expect(k.run(k.read(M))).toBe('A');
      // access_error(): SIGSEGV before any fault handling
      const err = (() => {
        try {
          k.run(k.write({ ...M, data: 'B' }));
        } catch (e) {
          return e;
        }
        return null;
      })();
      expect(err).toBeInstanceOf(KernelError);
      expect((err as KernelError).code).toBe('SIGSEGV');
      expect(k.run(k.read(M))).toBe('A');
    }
  });

  it('PROT_READ|PROT_WRITE maps an exclusive anon page writable at once from v6.0 (can_change_pte_writable, 64fe24a3e05e); before, the next write faults', () => {
    // the page is dirty, PageAnonExclusive, and VM_SOFTDIRTY is still set (nobody cleared
    // soft-dirty), so every can_change_pte_writable() condition holds from v6.0
    const want: Record<string, boolean> = { 'v5.4': false, 'v5.10': false, 'v6.1': true, 'v6.3': true, 'v6.6': true, 'v6.15': true, latest: true };
    for (const v of ALL) {
      const { k, m } = kernel(v);
      const pfn = writtenPage(k);
      mprotect(k, false);
      mprotect(k, true);
      expect(k.map('m').flags.write).toBe(true);
      expect(k.isWritableIn(M), v).toBe(want[v]);
      // either way the write lands in the same page: do_wp_page() reuses a page mapped once with
      // rc 1 in every era (mapcount 1; page_count 1; PageAnonExclusive)
      k.run(k.write({ ...M, data: 'B' }));
      expect(k.pfnOf(M), v).toBe(pfn);
      expect(k.run(k.read(M))).toBe('B');
      expect(m.violations).toEqual([]);
    }
  });

  it('a COW-shared page is never made writable (not PageAnonExclusive): the parent write still copies and the child keeps the old data', () => {
    for (const mode of ['off', 'dirty', 'clean']) {
      const { k } = kernel('latest', { 'mprotect-anon-writable': mode });
      const pfn = writtenPage(k);
      k.run(k.fork({ as: 'child' }));
      mprotect(k, false);
      mprotect(k, true);
      expect(k.isWritableIn(M), mode).toBe(false);
      k.run(k.write({ ...M, data: 'B' }));
      expect(k.pfnOf(M)).not.toBe(pfn);
      expect(k.run(k.read({ ...M, process: 'child' }))).toBe('A');
      // the child's VMA is its own copy: mprotect in the parent did not touch it
      expect(k.map('m', 'child').flags.write).toBe(true);
    }
  });

  it('a clean exclusive anon page (an unshare copy) is made writable only from v6.2 (mprotect-anon-writable=clean)', () => {
    const cleanExclusive = (version: string, features: Record<string, unknown> = {}): boolean => {
      const { k } = kernel(version, features);
      writtenPage(k);
      k.run(k.fork({ as: 'child' }));
      // a R/O pin of the COW-shared page: gup_must_unshare() -> FAULT_FLAG_UNSHARE -> wp_page_copy()
      // maps an exclusive copy read-only and clean (no pte_mkdirty for an unshare)
      k.run(k.gup({ ...M, longterm: true, as: 'ro' }, true));
      const leaf = k.vm.lookup(k.process('init'), k.map('m').start)!;
      expect([leaf.pte.write, leaf.pte.dirty, k.anonExclusive(leaf.pte.pfn)]).toEqual([false, false, true]);
      k.run(k.unpin({ name: 'ro' }));
      mprotect(k, false);
      mprotect(k, true);
      return k.isWritableIn(M);
    };
    expect(cleanExclusive('v6.1')).toBe(false); // v6.0-v6.1: !pte_dirty() -> false
    expect(cleanExclusive('v6.3')).toBe(true);
    expect(cleanExclusive('latest')).toBe(true);
    expect(cleanExclusive('v6.1', { 'mprotect-anon-writable': 'clean' })).toBe(true);
    expect(cleanExclusive('latest', { 'mprotect-anon-writable': 'dirty' })).toBe(false);
  });

  it('mprotect() to the protection a VMA already has changes nothing (mprotect_fixup returns early)', () => {
    const { k, m } = kernel('latest');
    writtenPage(k);
    k.run(k.fork({ as: 'child' }));
    k.run(k.exit({ process: 'child' }));
    // previously shared: R/O-mapped, mapped once; an unshare makes it exclusive and keeps it R/O
    k.run(k.gup({ ...M, longterm: true, as: 'ro' }, true));
    k.run(k.unpin({ name: 'ro' }));
    expect(k.anonExclusive(k.pfnOf(M)!)).toBe(true);
    const flushes = m.trace.filter((l) => l.includes('tlb.flush')).length;
    mprotect(k, true);
    expect(k.isWritableIn(M)).toBe(false);
    expect(m.trace.filter((l) => l.includes('tlb.flush')).length).toBe(flushes);
    // going through PROT_READ first does upgrade it (it is exclusive and dirty)
    mprotect(k, false);
    mprotect(k, true);
    expect(k.isWritableIn(M)).toBe(true);
  });

  it('an unknown mapping or process is an input error naming the field', () => {
    const { k } = kernel('latest');
    writtenPage(k);
    const e = (() => {
      try {
        k.run(k.mprotect({ map: 'mm', write: true }));
      } catch (err) {
        return err;
      }
      return null;
    })();
    expect(e).toBeInstanceOf(InputError);
    expect((e as InputError).message).toBe("unknown mapping 'mm'");
    expect((e as InputError).field).toBe('map');
    expect(() => k.run(k.clearRefs({ process: 'nobody' }))).toThrow(/unknown process 'nobody'/);
  });
});

describe('clear_refs soft-dirty (echo 4 > /proc/PID/clear_refs)', () => {
  it('clears VM_SOFTDIRTY and the PTE bit and write-protects; the next write faults, reuses the page and marks it soft-dirty again', () => {
    for (const v of ALL) {
      const { k } = kernel(v);
      const pfn = writtenPage(k);
      expect(k.map('m').flags.softdirty).toBe(true); // mmap_region() sets VM_SOFTDIRTY
      expect(k.isSoftDirtyIn(M)).toBe(true);
      k.run(k.clearRefs({}));
      expect(k.map('m').flags.softdirty).toBe(false);
      expect(k.isSoftDirtyIn(M), v).toBe(false);
      expect(k.isWritableIn(M), v).toBe(false);
      k.run(k.write({ ...M, data: 'B' }));
      expect(k.pfnOf(M), v).toBe(pfn); // wp_page_reuse(): exclusive in every era (mapcount 1, rc 1)
      expect(k.isWritableIn(M)).toBe(true);
      expect(k.isSoftDirtyIn(M), v).toBe(true); // pte_mkdirty() sets _PAGE_SOFT_DIRTY
    }
  });

  it('with soft-dirty tracking on, mprotect(PROT_READ|PROT_WRITE) keeps a page that is not soft-dirty read-only (cow.c "R/O-mapping ... exclusive page" setup)', () => {
    for (const v of ['v6.1', 'v6.3', 'latest']) {
      const { k } = kernel(v);
      writtenPage(k);
      mprotect(k, false);
      k.run(k.clearRefs({}));
      mprotect(k, true);
      // vma_soft_dirty_enabled() && !pte_soft_dirty(): the write must fault so it is tracked
      expect(k.isWritableIn(M), v).toBe(false);
      expect(k.isSoftDirtyIn(M)).toBe(false);
    }
  });

  it('without arch soft-dirty clear_refs changes nothing, so the mprotect() upgrade happens (arm64)', () => {
    for (const v of ['v5.10', 'latest']) {
      const { k } = kernel(v, {}, noSoftDirtyArch());
      writtenPage(k);
      expect(k.map('m').flags.softdirty).toBe(false); // VM_SOFTDIRTY is 0
      expect(k.isSoftDirtyIn(M)).toBe(false);
      k.run(k.clearRefs({}));
      expect(k.isWritableIn(M)).toBe(true); // clear_soft_dirty() is an empty stub
      mprotect(k, false);
      k.run(k.clearRefs({}));
      mprotect(k, true);
      expect(k.isWritableIn(M), v).toBe(v !== 'v5.10');
    }
  });

  it('a writable, DMA-pinned anon PTE: write-protected up to v5.10 (the write then copies it away from the pin), left writable from v5.11 (pte_is_pinned)', () => {
    const run = (version: string, features: Record<string, unknown> = {}) => {
      const { k, m } = kernel(version, features);
      const pfn = writtenPage(k);
      k.run(k.gup({ ...M, write: true, longterm: true, as: 'fixed' }, true));
      k.run(k.clearRefs({}));
      const writable = k.isWritableIn(M);
      k.run(k.write({ ...M, data: 'B' }));
      const dma = k.run(k.dmaRead({ pin: 'fixed' }));
      k.run(k.unpin({ name: 'fixed' }));
      return { writable, samePage: k.pfnOf(M) === pfn, dma, diverged: m.has('pinned-page-diverged') };
    };
    // v5.10: rc 1 + 1024 != 1, do_wp_page() copies: the pin keeps the old data
    expect(run('v5.10')).toEqual({ writable: false, samePage: false, dma: 'A', diverged: true });
    // v5.4: a pin is one reference and reuse is by mapcount (1): the write stays in the page
    expect(run('v5.4')).toEqual({ writable: false, samePage: true, dma: 'B', diverged: false });
    expect(run('latest')).toEqual({ writable: true, samePage: true, dma: 'B', diverged: false });
    // without the skip the PTE is write-protected, but PageAnonExclusive reuse keeps the pin coherent
    expect(run('latest', { 'clear-refs-skip-pinned': false })).toEqual({ writable: false, samePage: true, dma: 'B', diverged: false });
  });
});

describe('scenario input: mprotect and clear-refs', () => {
  function errorOf(text: string): InputError {
    try {
      parseScenario(text, 's.yaml');
    } catch (e) {
      expect(e).toBeInstanceOf(InputError);
      return e as InputError;
    }
    throw new Error(`expected an InputError for:\n${text}`);
  }
  const mapped = (step: string) => `name: t\nsteps:\n  - mmap: { anon: true, length: 4KiB, write: true, as: mem }\n  - ${step}\n`;

  it('parses both operations', () => {
    const s = parseScenario(mapped('mprotect: { map: mem, write: false }') + '  - clear-refs: { soft-dirty: true }\n', 's.yaml');
    expect(s.threads[0]!.steps.map((x) => [x.op, x.args])).toEqual([
      ['mmap', { anon: true, length: 4096, write: true, as: 'mem' }],
      ['mprotect', { map: 'mem', write: false }],
      ['clear-refs', { 'soft-dirty': true }],
    ]);
  });

  it('an unknown mapping, with the nearest name', () => {
    expect(errorOf(mapped('mprotect: { map: mme, write: true }')).message).toMatch(/^s\.yaml:4:22: steps\[1\]\.mprotect\.map: a mapping named 'mme' is used before it is defined; did you mean 'mem'\?/);
  });

  it('a missing or misspelt field', () => {
    expect(errorOf(mapped('mprotect: { map: mem }')).message).toMatch(/steps\[1\]\.mprotect\.write: missing required field 'write'/);
    expect(errorOf(mapped('mprotect: { map: mem, writ: true }')).message).toMatch(/steps\[1\]\.mprotect\.writ: unknown field 'writ'; did you mean 'write'\?/);
    expect(errorOf(mapped('mprotect: { map: mem, write: yes please }')).message).toMatch(/steps\[1\]\.mprotect\.write: write: true \(PROT_READ\|PROT_WRITE\) or write: false \(PROT_READ\)/);
  });

  it('clear-refs models only the soft-dirty type', () => {
    expect(errorOf(mapped('clear-refs: { soft-dirty: false }')).message).toMatch(/steps\[1\]\.clear-refs\.soft-dirty: clear-refs only models soft-dirty clearing: write soft-dirty: true/);
    expect(errorOf(mapped('clear-refs: { process: nobody, soft-dirty: true }')).message).toMatch(/steps\[1\]\.clear-refs\.process: a process named 'nobody' is used before it is defined/);
  });

  it('writable and softDirty look at a mapping entry only', () => {
    expect(errorOf(mapped('check: { writable: { file: a, page: 0 }, equals: true }')).message).toMatch(/check\.writable: writable looks at the entry that maps a page of a mapping: write \{ map, page \}/);
    expect(errorOf(mapped('check: { softDirty: { map: mem, page: 0 }, equals: 1 }')).message).toMatch(/softDirty compares with a boolean \(equals: true\)/);
  });
});
