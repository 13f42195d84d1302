import { describe, expect, it } from 'vitest';
import { createKernel, PRESETS, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';
import { code } from './vm-helpers.js';
import { finish, pte, startBlocked } from './uffd-helpers.js';

// userfaultfd minor faults as uffd-unit-tests.c's "minor" and "minor-wp" drive them
// (uffd_minor_test_common(), uffd-common.c uffd_handle_page_fault() and continue_range()): a shmem
// or hugetlbfs file mapped twice, the alias registered for MINOR faults, the other mapping filled
// first; a read through the alias is a userfault with UFFD_PAGEFAULT_FLAG_MINOR, resolved by
// UFFDIO_CONTINUE (MODE_WP in minor-wp), and a second CONTINUE of the same page is EEXIST. The test
// arch is x86-64 (HAVE_ARCH_USERFAULTFD_MINOR v5.13, the uffd-wp bit v5.7).

const PAGE = 4096;
const HPAGE = 2 * 1024 * 1024;
const HP = HPAGE / PAGE;
const RELEASES = PRESETS.map((p) => p.name);

/**
 * A `pages`-page memfd (or hugetlbfs memfd of `pages` huge pages) mapped shared twice: 'dst'
 * written page by page ('p<i>'), 'alias' registered with `modes`. Page indices of hugetlb mappings
 * count base pages.
 */
function aliased(version: string, opts: { hugetlb?: boolean; modes: ('minor' | 'wp' | 'missing')[]; pages?: number; features?: ('pagefault-flag-wp' | 'wp-unpopulated' | 'minor-shmem' | 'minor-hugetlbfs')[] }): Kernel {
  const k = createKernel({ arch: testArch(), kernel: version });
  const n = opts.pages ?? 2;
  const unit = opts.hugetlb ? HPAGE : PAGE;
  if (opts.hugetlb) k.run(k.hugetlbPool({ size: HPAGE, pages: n }));
  k.run(k.memfdCreate({ file: 'fd', size: n * unit, ...(opts.hugetlb ? { hugetlb: HPAGE } : {}) }));
  k.run(k.mmap({ file: 'fd', length: n * unit, shared: true, write: true, as: 'dst' }));
  k.run(k.mmap({ file: 'fd', length: n * unit, shared: true, write: true, as: 'alias' }));
  k.run(k.uffdApi({ features: opts.features ?? [] }));
  k.run(k.uffdRegister({ map: 'alias', mode: opts.modes }));
  // "populate the non-UFFD-registered side of the shared mapping. This should *not* trigger any
  // UFFD minor faults."
  for (let i = 0; i < n; i++) k.run(k.write({ map: 'dst', page: i * (unit / PAGE), data: `p${i}` }));
  return k;
}

describe('minor faults on shmem (shmem_get_folio_gfp(): a cached folio in a VM_UFFD_MINOR VMA goes to handle_userfault)', () => {
  it('the read through the alias sleeps with a MINOR message; the handler changes the page through dst, CONTINUE maps that very page', () => {
    const k = aliased('v6.1', { modes: ['minor'] });
    const reader = startBlocked(k.read({ map: 'alias', page: 0 }));
    // userfault_msg(): FLAG_MINOR, not WRITE (a load), not WP
    expect(k.run(k.uffdRead({ nonblock: true, map: 'alias' }))).toEqual({ event: 'pagefault', page: 0, write: false, wp: false, minor: true });
    k.run(k.write({ map: 'dst', page: 0, data: '~p0' }));
    k.run(k.uffdContinue({ map: 'alias', page: 0 }));
    expect(finish(reader)).toBe('~p0');
    // the PTE maps the page-cache folio dst maps, writable (shared, VM_WRITE): the cache's
    // reference plus one per mapping
    const p = k.pfnOf({ map: 'dst', page: 0 })!;
    expect([k.pfnOf({ map: 'alias', page: 0 }) === p, pte(k, 'alias', 0)!.write, k.folios.rc(p)]).toEqual([true, true, 3]);
    // continue_range()'s second CONTINUE: -EEXIST (mfill_atomic_install_pte(): the PTE is not none)
    expect(code(() => k.run(k.uffdContinue({ map: 'alias', page: 0 })))).toBe('EEXIST');
  });

  it('no fault-around in a MINOR VMA (uffd_disable_fault_around()): page 1 still faults to the handler after page 0 was continued', () => {
    const k = aliased('v6.1', { modes: ['minor'], pages: 4 });
    const r0 = startBlocked(k.read({ map: 'alias', page: 0 }));
    k.run(k.uffdContinue({ map: 'alias', page: 0 }));
    finish(r0);
    expect(pte(k, 'alias', 1)).toBe(null);
    startBlocked(k.read({ map: 'alias', page: 1 }));
    expect(k.run(k.uffdRead({ nonblock: true, map: 'alias' }))).toEqual({ event: 'pagefault', page: 1, write: false, wp: false, minor: true });
  });

  it('a page the cache lacks is no minor fault: without MISSING the kernel allocates it, with MISSING it is a missing userfault', () => {
    const k = aliased('v6.1', { modes: ['minor'], pages: 2 });
    k.run(k.punchHole({ file: 'fd', offset: PAGE, length: PAGE }));
    // shmem_get_folio_gfp() finds nothing and allocates a zeroed page (no VM_UFFD_MISSING)
    expect(k.run(k.read({ map: 'alias', page: 1 }))).toBe('');
    expect(code(() => k.run(k.uffdRead({ nonblock: true })))).toBe('EAGAIN');
    const both = aliased('v6.1', { modes: ['minor', 'missing'], pages: 2 });
    both.run(both.punchHole({ file: 'fd', offset: PAGE, length: PAGE }));
    startBlocked(both.read({ map: 'alias', page: 1 }));
    expect(both.run(both.uffdRead({ nonblock: true, map: 'alias' }))).toEqual({ event: 'pagefault', page: 1, write: false, wp: false, minor: false });
    // and CONTINUE cannot resolve it: SGP_NOALLOC finds no folio, -EFAULT
    expect(code(() => both.run(both.uffdContinue({ map: 'alias', page: 1 })))).toBe('EFAULT');
  });
});

describe('UFFDIO_CONTINUE_MODE_WP ("mm: userfaultfd: add UFFDIO_CONTINUE_MODE_WP to install WP PTEs", v6.4)', () => {
  it('is EINVAL before v6.4 (an unknown mode bit: "mode & ~UFFDIO_CONTINUE_MODE_DONTWAKE"); maps the page from v6.4', () => {
    // MINOR + WP on shmem needs v5.19 (WP on shmem) and v5.14 (MINOR on shmem): v6.1 on
    const since61 = RELEASES.filter((v) => !['v5.4', 'v5.10'].includes(v));
    const got = Object.fromEntries(since61.map((v) => {
      const k = aliased(v, { modes: ['minor', 'wp'] });
      return [v, code(() => k.run(k.uffdContinue({ map: 'alias', page: 0, wp: true })))];
    }));
    expect(got).toEqual(Object.fromEntries(since61.map((v) => [v, ['v6.1', 'v6.3'].includes(v) ? 'EINVAL' : null])));
  });

  it('is EINVAL into a VMA not registered for WP ("(flags & MFILL_ATOMIC_WP) && !(dst_vma->vm_flags & VM_UFFD_WP)")', () => {
    const k = aliased('v6.6', { modes: ['minor'] });
    expect(code(() => k.run(k.uffdContinue({ map: 'alias', page: 0, wp: true })))).toBe('EINVAL');
    expect(pte(k, 'alias', 0)).toBe(null);
  });

  it('shmem: the page is mapped read-only and uffd-wp (pagemap bit 57); a store then is a WP userfault, resolved by UFFDIO_WRITEPROTECT', () => {
    const k = aliased('v6.6', { modes: ['minor', 'wp'], features: ['pagefault-flag-wp', 'wp-unpopulated', 'minor-shmem', 'minor-hugetlbfs'] });
    const reader = startBlocked(k.read({ map: 'alias', page: 0 }));
    k.run(k.uffdContinue({ map: 'alias', page: 0, wp: true }));
    expect(finish(reader)).toBe('p0');
    expect([pte(k, 'alias', 0)!.write, pte(k, 'alias', 0)!.uffdWp, k.uffd.pagemapWp(k.processes.get('init')!, k.processes.get('init')!.ranges.get('alias')!.start)]).toEqual([false, true, true]);
    // the store meets the uffd-wp bit in do_wp_page() (userfaultfd_pte_wp()): FLAG_WRITE | FLAG_WP
    const writer = startBlocked(k.write({ map: 'alias', page: 0, data: 'w' }));
    expect(k.run(k.uffdRead({ nonblock: true, map: 'alias' }))).toEqual({ event: 'pagefault', page: 0, write: true, wp: true, minor: false });
    k.run(k.uffdWriteprotect({ map: 'alias', enable: false, length: PAGE }));
    finish(writer);
    // a shared mapping: the store went to the page cache, so dst sees it
    expect(k.run(k.read({ map: 'dst', page: 0 }))).toBe('w');
  });

  it('hugetlbfs: the huge entry is read-only and uffd-wp (hugetlb_mfill_atomic_pte(): wp_enabled)', () => {
    const k = aliased('latest', { hugetlb: true, modes: ['minor', 'wp'] });
    const reader = startBlocked(k.read({ map: 'alias', page: 0 }));
    expect(k.run(k.uffdRead({ nonblock: true, map: 'alias' }))).toEqual({ event: 'pagefault', page: 0, write: false, wp: false, minor: true });
    k.run(k.uffdContinue({ map: 'alias', page: 0, pages: HP, wp: true }));
    expect(finish(reader)).toBe('p0');
    const e = pte(k, 'alias', 0)!;
    expect([e.level, e.write, e.uffdWp, k.pfnOf({ map: 'alias', page: 0 }) === k.pfnOf({ map: 'dst', page: 0 })]).toEqual(['pmd', false, true, true]);
    // the second huge page without MODE_WP: writable (shared, VM_WRITE), no bit
    k.run(k.uffdContinue({ map: 'alias', page: HP, pages: HP }));
    expect([pte(k, 'alias', HP)!.write, pte(k, 'alias', HP)!.uffdWp ?? false]).toEqual([true, false]);
    expect(code(() => k.run(k.uffdContinue({ map: 'alias', page: HP, pages: HP })))).toBe('EEXIST');
  });
});

describe('uffdio_register.ioctls (userfaultfd_register(): UFFD_API_RANGE_IOCTLS[_BASIC], then the WP and CONTINUE masks)', () => {
  /** the ioctls a registration of a fresh mapping reports: anon, a shmem memfd or a hugetlbfs memfd */
  function ioctls(version: string, kind: 'anon' | 'shmem' | 'hugetlb', mode: ('missing' | 'wp' | 'minor')[]): string[] | string {
    const k = createKernel({ arch: testArch(), kernel: version });
    if (kind === 'anon') k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'm' }));
    else {
      if (kind === 'hugetlb') k.run(k.hugetlbPool({ size: HPAGE, pages: 1 }));
      k.run(k.memfdCreate({ file: 'fd', size: kind === 'hugetlb' ? HPAGE : PAGE, ...(kind === 'hugetlb' ? { hugetlb: HPAGE } : {}) }));
      k.run(k.mmap({ file: 'fd', length: kind === 'hugetlb' ? HPAGE : PAGE, shared: true, write: true, as: 'm' }));
    }
    k.run(k.uffdApi({}));
    let got: string[] = [];
    const errno = code(() => { got = [...k.run(k.uffdRegister({ map: 'm', mode }))]; });
    return errno ?? got;
  }

  it('anonymous MISSING: WAKE, COPY, ZEROPAGE in every release; POISON from v6.6, MOVE from v6.8; never WRITEPROTECT or CONTINUE unasked', () => {
    expect(Object.fromEntries(RELEASES.map((v) => [v, ioctls(v, 'anon', ['missing'])]))).toEqual({
      'v5.4': ['wake', 'copy', 'zeropage'],
      'v5.10': ['wake', 'copy', 'zeropage'],
      'v6.1': ['wake', 'copy', 'zeropage'],
      'v6.3': ['wake', 'copy', 'zeropage'],
      'v6.6': ['wake', 'copy', 'zeropage', 'poison'],
      'v6.15': ['wake', 'copy', 'zeropage', 'move', 'poison'],
      latest: ['wake', 'copy', 'zeropage', 'move', 'poison'],
    });
  });

  it('WRITEPROTECT is declared only with MODE_WP (v5.7), CONTINUE only with MODE_MINOR (v5.13)', () => {
    expect(ioctls('v5.10', 'anon', ['missing', 'wp'])).toEqual(['wake', 'copy', 'zeropage', 'writeprotect']);
    expect(ioctls('v6.1', 'shmem', ['minor'])).toEqual(['wake', 'copy', 'zeropage', 'continue']);
    expect(ioctls('v6.3', 'shmem', ['missing', 'wp', 'minor'])).toEqual(['wake', 'copy', 'zeropage', 'writeprotect', 'continue']);
  });

  it('a hugetlb range reports UFFD_API_RANGE_IOCTLS_BASIC: no ZEROPAGE and no MOVE in any release', () => {
    expect(ioctls('v5.10', 'hugetlb', ['missing'])).toEqual(['wake', 'copy']);
    expect(ioctls('v6.1', 'hugetlb', ['missing', 'wp', 'minor'])).toEqual(['wake', 'copy', 'writeprotect', 'continue']);
    expect(ioctls('latest', 'hugetlb', ['missing', 'wp', 'minor'])).toEqual(['wake', 'copy', 'writeprotect', 'continue', 'poison']);
  });

  it('mode 0 is EINVAL, and so is MINOR on anonymous memory whatever else is asked', () => {
    expect([ioctls('latest', 'anon', []), ioctls('latest', 'shmem', []), ioctls('latest', 'anon', ['minor']), ioctls('latest', 'anon', ['missing', 'wp', 'minor'])]).toEqual(['EINVAL', 'EINVAL', 'EINVAL', 'EINVAL']);
  });
});

describe('UFFDIO_CONTINUE into a large shmem folio (the PMD-order folio MADV_COLLAPSE left in the cache)', () => {
  it('maps the subpage by a PTE and counts the mapping on the folio (folio_add_file_rmap_pte), so munmap gives it back', () => {
    const k = createKernel({ arch: testArch(), kernel: 'latest' });
    k.run(k.memfdCreate({ file: 'fd', size: HPAGE }));
    k.run(k.mmap({ file: 'fd', length: HPAGE, shared: true, write: true, as: 'dst' }));
    k.run(k.write({ map: 'dst', page: 1, data: 'one' }));
    // collapse_file() + collapse_pte_mapped_thp(): one PMD-order folio, dst maps it by a PMD
    k.run(k.madvise({ map: 'dst', advice: 'collapse' }));
    const head = k.pfnOf({ map: 'dst', page: 0 })!;
    expect([pte(k, 'dst', 0)!.level, k.mapcount(head)]).toEqual(['pmd', 1]);
    // an alias at pgoff 1 cannot take a PMD: the MINOR fault and CONTINUE map page 1 of the folio by a PTE
    k.run(k.mmap({ file: 'fd', offset: PAGE, length: 2 * PAGE, shared: true, write: true, as: 'alias' }));
    k.run(k.uffdApi({}));
    k.run(k.uffdRegister({ map: 'alias', mode: ['minor'] }));
    const reader = startBlocked(k.read({ map: 'alias', page: 0 }));
    k.run(k.uffdContinue({ map: 'alias', page: 0 }));
    expect(finish(reader)).toBe('one');
    expect([pte(k, 'alias', 0)!.level, k.pfnOf({ map: 'alias', page: 0 }) === k.pfnOf({ map: 'dst', page: 1 }), k.mapcount(head)]).toEqual(['pte', true, 2]);
    k.run(k.munmap({ map: 'alias' }));
    expect(k.mapcount(head)).toBe(1);
  });
});

describe('UFFDIO_POISON ("mm: userfaultfd: add new UFFDIO_POISON ioctl", v6.6)', () => {
  function anon(version: string, features: ('pagefault-flag-wp' | 'wp-unpopulated' | 'poison')[] = ['poison'], modes: ('missing' | 'wp')[] = ['missing']): Kernel {
    const k = createKernel({ arch: testArch(), kernel: version });
    k.run(k.mmap({ anon: true, length: 4 * PAGE, write: true, as: 'm' }));
    k.run(k.uffdApi({ features }));
    k.run(k.uffdRegister({ map: 'm', mode: modes }));
    return k;
  }

  it('is EINVAL before v6.6 (an unknown ioctl, and UFFD_FEATURE_POISON is not defined)', () => {
    const k = anon('v6.3', []);
    expect(code(() => k.run(k.uffdPoison({ map: 'm', page: 0 })))).toBe('EINVAL');
    expect(code(() => k.run(k.uffdApi({ features: ['poison'] })))).toBe('EINVAL');
  });

  it('wakes the sleeping MISSING fault, which then meets PTE_MARKER_POISONED: SIGBUS; later accesses too; a second POISON is EEXIST', () => {
    const k = anon('v6.6');
    const reader = startBlocked(k.read({ map: 'm', page: 1 }));
    k.run(k.uffdPoison({ map: 'm', page: 1 }));
    expect(code(() => finish(reader))).toBe('SIGBUS');
    expect([pte(k, 'm', 1)!.marker, pte(k, 'm', 1)!.poisoned, pte(k, 'm', 1)!.pfn]).toEqual([true, true, -1]);
    expect(code(() => k.run(k.write({ map: 'm', page: 1, data: 'x' })))).toBe('SIGBUS');
    expect(code(() => k.run(k.uffdPoison({ map: 'm', page: 1 })))).toBe('EEXIST');
    // a COPY there is EEXIST too: the marker is not a uffd-wp one (pte_none_mostly())
    expect(code(() => k.run(k.uffdCopy({ map: 'm', page: 1, data: 'y' })))).toBe('EEXIST');
  });

  it('overwrites no entry, not even a uffd-wp marker (WP_UNPOPULATED), unlike COPY', () => {
    const k = anon('v6.6', ['pagefault-flag-wp', 'wp-unpopulated', 'poison'], ['missing', 'wp']);
    k.run(k.uffdWriteprotect({ map: 'm', enable: true }));
    expect(code(() => k.run(k.uffdPoison({ map: 'm', page: 0 })))).toBe('EEXIST');
    k.run(k.uffdCopy({ map: 'm', page: 0, data: 'c' }));
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('c');
  });

  it('fork copies the marker whatever the child registration (copy_pte_marker(): "Always copy error entries"), if it copies the table at all', () => {
    // only markers: no anon_vma (UFFDIO_POISON takes none), so vma_needs_copy() is false and the
    // child, unregistered without EVENT_FORK, faults the zero page in
    const bare = anon('latest');
    bare.run(bare.uffdPoison({ map: 'm', page: 2 }));
    bare.run(bare.fork({ as: 'child' }));
    expect(bare.run(bare.read({ map: 'm', page: 2, process: 'child' }))).toBe('');
    // a page UFFDIO_COPY placed gave the VMA an anon_vma: the tables are copied, the marker with them
    const k = anon('latest');
    k.run(k.uffdCopy({ map: 'm', page: 0, data: 'c' }));
    k.run(k.uffdPoison({ map: 'm', page: 2 }));
    k.run(k.fork({ as: 'child' }));
    expect(code(() => k.run(k.read({ map: 'm', page: 2, process: 'child' })))).toBe('SIGBUS');
  });

  it('shmem: EFAULT past i_size (mfill_file_over_size()); hugetlb: one huge marker per huge page, SIGBUS anywhere in it', () => {
    const s = createKernel({ arch: testArch(), kernel: 'v6.6' });
    s.run(s.memfdCreate({ file: 'fd', size: 2 * PAGE }));
    s.run(s.mmap({ file: 'fd', length: 2 * PAGE, shared: true, write: true, as: 'm' }));
    s.run(s.uffdApi({}));
    s.run(s.uffdRegister({ map: 'm', mode: ['missing'] }));
    s.run(s.truncate({ file: 'fd', size: PAGE }));
    expect(code(() => s.run(s.uffdPoison({ map: 'm', page: 1 })))).toBe('EFAULT');
    s.run(s.uffdPoison({ map: 'm', page: 0 }));
    expect(code(() => s.run(s.read({ map: 'm', page: 0 })))).toBe('SIGBUS');

    const h = aliased('latest', { hugetlb: true, modes: ['missing'] });
    h.run(h.punchHole({ file: 'fd', offset: HPAGE, length: HPAGE }));
    expect(code(() => h.run(h.uffdPoison({ map: 'alias', page: HP, pages: 1 })))).toBe('EINVAL'); // not huge-page sized
    h.run(h.uffdPoison({ map: 'alias', page: HP, pages: HP }));
    expect([pte(h, 'alias', HP)!.level, pte(h, 'alias', HP)!.poisoned]).toEqual(['pmd', true]);
    expect(code(() => h.run(h.read({ map: 'alias', page: HP + 7 })))).toBe('SIGBUS');
  });
});

describe('khugepaged and a MINOR-registered shmem alias (no release refuses VM_UFFD_MINOR)', () => {
  it('collapses the file; retract_page_tables() takes the alias\'s PTE table too, so its next load is a MINOR userfault again', () => {
    const k = createKernel({ arch: testArch(), kernel: 'latest' });
    // fallocate under shmem_enabled=never: order-0 folios (under always, shmem_fallocate() would
    // already allocate the PMD-order one); khugepaged follows shmem_enabled (TVA_ENFORCE_SYSFS) when
    // it scans, and "always" lets it collapse the memfd
    k.run(k.memfdCreate({ file: 'fd', size: HPAGE, fallocate: true }));
    k.run(k.shmemEnabled({ mode: 'always' }));
    k.run(k.mmap({ file: 'fd', length: HPAGE, shared: true, write: true, as: 'dst' }));
    k.run(k.mmap({ file: 'fd', length: HPAGE, shared: true, write: true, as: 'alias' }));
    k.run(k.uffdApi({}));
    k.run(k.uffdRegister({ map: 'alias', mode: ['minor'] }));
    k.run(k.write({ map: 'dst', page: 0, data: 'a' }));
    const first = startBlocked(k.read({ map: 'alias', page: 0 }));
    k.run(k.uffdContinue({ map: 'alias', page: 0 }));
    expect(finish(first)).toBe('a');
    k.run(k.khugepagedScan({ map: 'dst' }));
    // one PMD-order folio now caches the range; khugepaged's collapse_pte_mapped_thp() installs no
    // PMD (install_pmd is false), and the alias lost its PTE table with the rest
    expect([k.folios.nr(k.folios.folio(k.pfnOf({ file: 'fd', page: 0 })!)), pte(k, 'alias', 0)]).toEqual([HP, null]);
    startBlocked(k.read({ map: 'alias', page: 0 }));
    expect(k.run(k.uffdRead({ nonblock: true, map: 'alias' }))).toEqual({ event: 'pagefault', page: 0, write: false, wp: false, minor: true });
  });
});
