import { describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';
import { anonMappingOf, PG } from '../src/mm/pages.js';
import { code, errorOf, written } from './vm-helpers.js';
import { finish, pte, startBlocked } from './uffd-helpers.js';

// UFFDIO_MOVE (mm/uffdmove.ts; mm/userfaultfd.c move_pages(), move_pages_pte(),
// move_present_pte(), move_swap_pte(), move_zeropage_pte(), mm/huge_memory.c
// move_pages_huge_pmd()) as uffd-unit-tests.c's move, move-pmd and move-pmd-split drive it: a
// source area filled by the test, a destination registered MISSING, and the monitor answering each
// fault with UFFDIO_MOVE of the page (or the PMD-sized chunk) at the same offset. The test arch is
// x86-64: 4 KiB pages, 2 MiB PMDs (512 pages).

const PAGE = 4096;
const PMD = 512;

/** A kernel with 'src' (`pages` written pages, data src<i>) and an empty 'dst' of as many pages registered MISSING. */
function moveSetup(version = 'v6.15', pages = 4): { k: Kernel; pfns: number[] } {
  const k = createKernel({ arch: testArch(), kernel: version });
  const pfns = written(k, 'src', pages);
  k.run(k.mmap({ anon: true, length: pages * PAGE, write: true, as: 'dst' }));
  k.run(k.uffdApi({ features: ['move'] }));
  k.run(k.uffdRegister({ map: 'dst', mode: ['missing'] }));
  return { k, pfns };
}

function vmaOf(k: Kernel, map: string) {
  const mm = k.processes.get('init')!;
  return k.vm.vmaAt(mm, mm.ranges.get(map)!.start)!;
}

describe('UFFDIO_MOVE of exclusive anonymous pages (move_present_pte)', () => {
  it('the page itself moves: same pfn at dst, nothing at src, rmap and index follow it, counts unchanged', () => {
    const { k, pfns } = moveSetup();
    expect(k.run(k.uffdMove({ map: 'dst', page: 1, src: 'src' }))).toBe(PAGE);
    // page 1 of src was pfns[1] with rc 1 (its PTE) and mapcount 1; the move carries the mapping
    // over without a get or a put: the same pfn at dst page 1, rc 1, mapcount 1
    expect(k.pfnOf({ map: 'dst', page: 1 })).toBe(pfns[1]);
    expect(k.pfnOf({ map: 'src', page: 1 })).toBeNull();
    expect([k.folios.rc(pfns[1]!), k.folios.mapcount(pfns[1]!)]).toEqual([1, 1]);
    // folio_move_anon_rmap(): page->mapping is dst's anon_vma now (anon_vma_prepare() gave dst one,
    // a different one from src's: the VMAs are not neighbours); folio->index is dst's linear page
    // index of page 1 (its pgoff + 1)
    const dst = vmaOf(k, 'dst');
    const src = vmaOf(k, 'src');
    expect(dst.anonVma).not.toBe(src.anonVma);
    const s = k.pages.slot(pfns[1]!);
    expect([k.pages.mapping[s], k.pages.index[s]]).toEqual([anonMappingOf(dst.anonVma), dst.pgoff + 1]);
    // the written data is there, the PTE writable (both VMAs have VM_WRITE) and, the source having
    // been dirty, dirty (v6.15 keeps the source's dirty bit)
    expect(k.run(k.read({ map: 'dst', page: 1 }))).toBe('src1');
    expect([pte(k, 'dst', 1)!.write, pte(k, 'dst', 1)!.dirty]).toEqual([true, true]);
    // the source page reads zeros again: a new read fault maps the zero page
    expect(k.run(k.read({ map: 'src', page: 1 }))).toBe('');
  });

  it('uffd_move_test_common: a read of dst sleeps (MISSING, not WRITE), the monitor moves the page, the read returns the source data', () => {
    const { k, pfns } = moveSetup();
    for (let nr = 0; nr < 4; nr++) {
      expect(k.run(k.read({ map: 'src', page: nr }))).toBe(`src${nr}`);
      const reader = startBlocked(k.read({ map: 'dst', page: nr }));
      expect(k.run(k.uffdRead({ nonblock: true, map: 'dst' }))).toEqual({ event: 'pagefault', page: nr, write: false, wp: false, minor: false });
      // move_page(): UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES, len page_size
      expect(k.run(k.uffdMove({ map: 'dst', page: nr, src: 'src', allowSrcHoles: true }))).toBe(PAGE);
      expect(finish(reader)).toBe(`src${nr}`);
      expect(k.pfnOf({ map: 'dst', page: nr })).toBe(pfns[nr]);
      // "Re-check area_src content which should be empty"
      expect(k.run(k.read({ map: 'src', page: nr }))).toBe('');
    }
  });

  it('UFFDIO_MOVE_MODE_DONTWAKE: the sleeping read stays asleep on its now-populated page until UFFDIO_WAKE', () => {
    const { k, pfns } = moveSetup();
    const reader = startBlocked(k.read({ map: 'dst', page: 0 }));
    k.run(k.uffdRead({ nonblock: true, map: 'dst' }));
    expect(k.run(k.uffdMove({ map: 'dst', page: 0, src: 'src', dontwake: true }))).toBe(PAGE);
    expect(k.pfnOf({ map: 'dst', page: 0 })).toBe(pfns[0]);
    // no wake_userfault(): the fault is still in handle_userfault()
    const r = reader.next();
    expect(!r.done && r.value.kind === 'block' && !r.value.ready()).toBe(true);
    // a new access to the page does not fault at all
    expect(k.run(k.read({ map: 'dst', page: 0 }))).toBe('src0');
    k.run(k.uffdWake({ map: 'dst', page: 0 }));
    expect(finish(reader)).toBe('src0');
  });

  it('a moved range of several pages reports len; each page keeps its own data', () => {
    const { k, pfns } = moveSetup();
    expect(k.run(k.uffdMove({ map: 'dst', page: 0, src: 'src', pages: 4 }))).toBe(4 * PAGE);
    expect([0, 1, 2, 3].map((page) => k.pfnOf({ map: 'dst', page }))).toEqual(pfns);
    expect([0, 1, 2, 3].map((page) => k.run(k.read({ map: 'dst', page })))).toEqual(['src0', 'src1', 'src2', 'src3']);
  });
});

describe('UFFDIO_MOVE refusals', () => {
  it('EINVAL before v6.8 (unknown ioctl), and UFFD_FEATURE_MOVE is EINVAL at UFFDIO_API there', () => {
    const k = createKernel({ arch: testArch(), kernel: 'v6.6' });
    written(k, 'src', 1);
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'dst' }));
    expect(code(() => k.run(k.uffdApi({ features: ['move'] })))).toBe('EINVAL');
    k.run(k.uffdApi({}));
    // v6.6's uffdio_register.ioctls has no MOVE bit
    expect(k.run(k.uffdRegister({ map: 'dst', mode: ['missing'] }))).toEqual(['wake', 'copy', 'zeropage', 'poison']);
    expect(code(() => k.run(k.uffdMove({ map: 'dst', page: 0, src: 'src' })))).toBe('EINVAL');
  });

  it('EEXIST where dst is populated (the zero page of a read counts), ENOENT for a source hole unless ALLOW_SRC_HOLES', () => {
    const { k } = moveSetup();
    k.run(k.uffdZeropage({ map: 'dst', page: 0 }));
    expect(code(() => k.run(k.uffdMove({ map: 'dst', page: 0, src: 'src' })))).toBe('EEXIST');
    k.run(k.madvise({ map: 'src', advice: 'dontneed', offset: PAGE, length: PAGE }));
    // the zap leaves src's page table: pte_none, -ENOENT ("if (pte_none(orig_src_pte))")
    expect(code(() => k.run(k.uffdMove({ map: 'dst', page: 1, src: 'src' })))).toBe('ENOENT');
    // with the mode the hole counts as moved and dst stays empty
    expect(k.run(k.uffdMove({ map: 'dst', page: 1, src: 'src', allowSrcHoles: true }))).toBe(PAGE);
    expect(pte(k, 'dst', 1)).toBeNull();
  });

  it('an error after a page moved is EAGAIN and names the bytes moved', () => {
    const { k, pfns } = moveSetup();
    k.run(k.uffdZeropage({ map: 'dst', page: 1 }));
    const e = errorOf(() => k.run(k.uffdMove({ map: 'dst', page: 0, src: 'src', pages: 2 }))) as Error & { code: string };
    expect(e.code).toBe('EAGAIN');
    expect(e.message).toContain(`uffdio_move.move ${PAGE}`);
    expect(k.pfnOf({ map: 'dst', page: 0 })).toBe(pfns[0]);
  });

  it('EBUSY for a page shared with a child (not PageAnonExclusive after fork) and for a pinned page', () => {
    const { k, pfns } = moveSetup();
    k.run(k.fork({ as: 'child' }));
    // copy_present_pte() shares the page read-only: mapcount 2, PageAnonExclusive cleared
    expect((k.folios.flags(pfns[0]!) & PG.anonExclusive) !== 0).toBe(false);
    expect(code(() => k.run(k.uffdMove({ map: 'dst', page: 0, src: 'src' })))).toBe('EBUSY');
    // the child leaves; page 1 is written again (reuse: exclusive) and pinned
    k.run(k.exit({ process: 'child' }));
    k.run(k.write({ map: 'src', page: 1, data: 'again' }));
    k.run(k.gup({ map: 'src', page: 1, as: 'dma' }, true));
    // rc 1 + GUP_PIN_COUNTING_BIAS: folio_maybe_dma_pinned()
    expect(code(() => k.run(k.uffdMove({ map: 'dst', page: 1, src: 'src' })))).toBe('EBUSY');
    k.run(k.unpin({ name: 'dma' }));
    expect(k.run(k.uffdMove({ map: 'dst', page: 1, src: 'src' }))).toBe(PAGE);
  });

  it('EINVAL for a dst not registered with this userfaultfd, a shared source, a read-only pair; ENOENT (v6.9+) where nothing is mapped', () => {
    const { k } = moveSetup();
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'other' }));
    expect(code(() => k.run(k.uffdMove({ map: 'other', page: 0, src: 'src' })))).toBe('EINVAL');
    k.run(k.memfdCreate({ file: 'fd', size: PAGE }));
    k.run(k.mmap({ file: 'fd', length: PAGE, shared: true, write: true, as: 'shm' }));
    k.run(k.write({ map: 'shm', page: 0, data: 'x' }));
    expect(code(() => k.run(k.uffdMove({ map: 'dst', page: 0, src: 'shm' })))).toBe('EINVAL');
    k.run(k.mprotect({ map: 'src', write: false }));
    // VM_ACCESS_FLAGS differ (src r--, dst rw-)
    expect(code(() => k.run(k.uffdMove({ map: 'dst', page: 0, src: 'src' })))).toBe('EINVAL');
    k.run(k.munmap({ map: 'src' }));
    expect(code(() => k.run(k.uffdMove({ map: 'dst', page: 0, src: 'src' })))).toBe('ENOENT');
  });
});

describe('UFFDIO_MOVE of a KSM page and of PTE markers', () => {
  it('a KSM page is never PageAnonExclusive: EBUSY (move_pages_pte(): "!PageAnonExclusive(&folio->page)")', () => {
    const { k } = moveSetup('latest', 2);
    // two pages of the same content in one mergeable VMA: ksmd merges them into one stable page
    k.run(k.write({ map: 'src', page: 1, data: 'src0' }));
    k.run(k.madvise({ map: 'src', advice: 'mergeable' }));
    k.run(k.ksmMerge({}));
    expect(k.pfnOf({ map: 'src', page: 0 })).toBe(k.pfnOf({ map: 'src', page: 1 }));
    expect(code(() => k.run(k.uffdMove({ map: 'dst', page: 0, src: 'src' })))).toBe('EBUSY');
  });

  it('a guard marker (v6.13) at the source is a non-swap entry that is no migration entry: EFAULT; at the destination it is not pte_none: EEXIST', () => {
    const { k } = moveSetup('latest', 2);
    k.run(k.madvise({ map: 'src', advice: 'dontneed', length: PAGE }));
    k.run(k.madvise({ map: 'src', advice: 'guard-install', length: PAGE }));
    expect(code(() => k.run(k.uffdMove({ map: 'dst', page: 0, src: 'src' })))).toBe('EFAULT');
    // a marker at the destination is not pte_none: EEXIST ("if (!pte_none(orig_dst_pte))")
    k.run(k.madvise({ map: 'dst', advice: 'guard-install', offset: PAGE, length: PAGE }));
    expect(code(() => k.run(k.uffdMove({ map: 'dst', page: 1, src: 'src' })))).toBe('EEXIST');
  });
});

describe('UFFDIO_MOVE of the zero page and of swap entries', () => {
  it('move_zeropage_pte(): a read-faulted source page moves as the zero page, read-only', () => {
    const k = createKernel({ arch: testArch(), kernel: 'latest' });
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'src' }));
    k.run(k.read({ map: 'src', page: 0 }));
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'dst' }));
    k.run(k.uffdApi({}));
    k.run(k.uffdRegister({ map: 'dst', mode: ['missing'] }));
    expect(k.run(k.uffdMove({ map: 'dst', page: 0, src: 'src' }))).toBe(PAGE);
    expect([pte(k, 'dst', 0)!.pfn, pte(k, 'dst', 0)!.special, pte(k, 'dst', 0)!.write, pte(k, 'src', 0)]).toEqual([k.zeroPfn, true, false, null]);
  });

  it('move_swap_pte(): an exclusive swap entry moves; the swap-in at dst reads the data', () => {
    const { k } = moveSetup('latest', 1);
    k.run(k.madvise({ map: 'src', advice: 'pageout' }));
    const entry = pte(k, 'src', 0)!;
    expect(entry.swap?.exclusive).toBe(true);
    expect(k.run(k.uffdMove({ map: 'dst', page: 0, src: 'src' }))).toBe(PAGE);
    expect([pte(k, 'src', 0), pte(k, 'dst', 0)!.swap?.slot]).toEqual([null, entry.swap!.slot]);
    expect(k.run(k.read({ map: 'dst', page: 0 }))).toBe('src0');
  });

  it('a swap entry shared with a child (no pte_swp_exclusive after fork) is EBUSY', () => {
    const { k } = moveSetup('latest', 1);
    k.run(k.madvise({ map: 'src', advice: 'pageout' }));
    k.run(k.fork({ as: 'child' }));
    expect(code(() => k.run(k.uffdMove({ map: 'dst', page: 0, src: 'src' })))).toBe('EBUSY');
  });
});

describe('UFFDIO_MOVE of a PMD-mapped THP (move-pmd, move-pmd-split)', () => {
  /** 'src' and 'dst' of 2 PMDs each, src MADV_HUGEPAGE and written (one THP per PMD), dst registered MISSING with `dstAdvice`. */
  function thpSetup(dstAdvice: 'hugepage' | 'nohugepage'): { k: Kernel; heads: number[] } {
    const k = createKernel({ arch: testArch(), kernel: 'latest' });
    k.run(k.mmap({ anon: true, length: 2 * PMD * PAGE, write: true, as: 'src' }));
    k.run(k.madvise({ map: 'src', advice: 'hugepage' }));
    for (const page of [0, 1, PMD - 1, PMD]) k.run(k.write({ map: 'src', page, data: `s${page}` }));
    k.run(k.mmap({ anon: true, length: 2 * PMD * PAGE, write: true, as: 'dst' }));
    k.run(k.madvise({ map: 'dst', advice: dstAdvice }));
    k.run(k.uffdApi({ features: ['move'] }));
    k.run(k.uffdRegister({ map: 'dst', mode: ['missing'] }));
    const heads = [0, PMD].map((page) => k.pfnOf({ map: 'src', page })!);
    expect(heads.map((h) => k.folios.nr(h))).toEqual([PMD, PMD]);
    return { k, heads };
  }

  it('move-pmd: the fault leaves dst PMD none (do_huge_pmd_anonymous_page), so the aligned 2 MiB chunk moves whole', () => {
    const { k, heads } = thpSetup('hugepage');
    const reader = startBlocked(k.read({ map: 'dst', page: 0 }));
    expect(k.run(k.uffdRead({ nonblock: true, map: 'dst' }))).toEqual({ event: 'pagefault', page: 0, write: false, wp: false, minor: false });
    expect(k.run(k.uffdMove({ map: 'dst', page: 0, src: 'src', pages: PMD, allowSrcHoles: true }))).toBe(PMD * PAGE);
    expect(finish(reader)).toBe('s0');
    // one PMD mapping the same order-9 folio: entire mapcount 1, rc 1 (no split, no extra reference)
    expect([pte(k, 'dst', 0)!.level, pte(k, 'dst', 0)!.pfn, k.folios.nr(heads[0]!), k.folios.rc(heads[0]!), k.folios.mapcount(heads[0]!)]).toEqual(['pmd', heads[0], PMD, 1, 1]);
    expect(k.run(k.read({ map: 'dst', page: PMD - 1 }))).toBe(`s${PMD - 1}`);
    // the source reads zeros: a read fault in the VM_HUGEPAGE source maps the huge zero page
    expect(k.run(k.read({ map: 'src', page: 1 }))).toBe('');
    expect(pte(k, 'src', 1)!.pfn).toBe(k.hugeZeroPfn);
  });

  it('move-pmd-split: the fault pte_alloc()s dst (VM_NOHUGEPAGE), so the PMD is split and the folio split into 512 pages that move one by one', () => {
    const { k, heads } = thpSetup('nohugepage');
    const reader = startBlocked(k.read({ map: 'dst', page: 0 }));
    k.run(k.uffdRead({ nonblock: true, map: 'dst' }));
    expect(k.run(k.uffdMove({ map: 'dst', page: 0, src: 'src', pages: PMD, allowSrcHoles: true }))).toBe(PMD * PAGE);
    expect(finish(reader)).toBe('s0');
    // split_huge_pmd() then split_folio(): dst maps 512 order-0 pages, the former subpages
    // heads[0] + i, each rc 1 and mapcount 1, PTE-level
    for (const i of [0, 1, PMD - 1]) {
      const p = heads[0]! + i;
      expect({ i, level: pte(k, 'dst', i)!.level, pfn: pte(k, 'dst', i)!.pfn, nr: k.folios.nr(p), rc: k.folios.rc(p), map: k.folios.mapcount(p) }).toEqual({ i, level: 'pte', pfn: p, nr: 1, rc: 1, map: 1 });
    }
    expect(k.run(k.read({ map: 'dst', page: PMD - 1 }))).toBe(`s${PMD - 1}`);
    // the second THP is untouched until its own chunk moves
    expect([pte(k, 'src', PMD)!.level, k.folios.nr(heads[1]!)]).toEqual(['pmd', PMD]);
  });

  it('an unaligned move of a THP splits it; a shared (forked) THP is EBUSY at the split decision', () => {
    const { k, heads } = thpSetup('nohugepage');
    expect(k.run(k.uffdMove({ map: 'dst', page: 1, src: 'src', srcPage: 1 }))).toBe(PAGE);
    expect([pte(k, 'dst', 1)!.pfn, k.folios.nr(heads[0]!)]).toEqual([heads[0]! + 1, 1]);
    k.run(k.fork({ as: 'child' }));
    expect(code(() => k.run(k.uffdMove({ map: 'dst', page: PMD + 1, src: 'src', srcPage: PMD + 1 })))).toBe('EBUSY');
  });
});
