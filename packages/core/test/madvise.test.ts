import { describe, expect, it } from 'vitest';
import { createKernel, InputError, KernelError, Monitor, PRESETS, type ArchPlugin, type Kernel } from '../src/index.js';
import { parseScenario } from '../src/scenario/load.js';
import { testArch } from '../src/testing.js';
import { errorOf, written } from './vm-helpers.js';

const KiB = 1024;
const RELEASES = PRESETS.map((p) => p.name);

/**
 * core's test arch (x86-64 MMU constants) with a /dev/mem layout of the same shape as arch-x86's:
 * page 0 firmware-reserved, RAM up to 640 KiB, the x86 filter (the whole first MiB mappable).
 */
function devmemArch(): ArchPlugin {
  const a = testArch();
  return { ...a, mmu: { ...a.mmu, devmem: { lowMemory: [{ start: 0, end: 4 * KiB, kind: 'reserved' }, { start: 4 * KiB, end: 640 * KiB, kind: 'ram' }], filter: 'x86' } } };
}

function kernel(version = 'latest'): { k: Kernel; m: Monitor } {
  const k = createKernel({ arch: devmemArch(), kernel: version });
  return { k, m: new Monitor(k) };
}

/** 'ok', or the errno the call failed with. */
function code(f: () => unknown): string {
  const e = errorOf(f);
  return e === null ? 'ok' : e instanceof KernelError ? e.code : `not a KernelError: ${String(e)}`;
}

const advise = (k: Kernel, map: string, advice: Parameters<Kernel['madvise']>[0]['advice'], more: { offset?: number; length?: number; process?: string } = {}) => k.run(k.madvise({ map, advice, ...more }));

describe('MADV_DONTNEED: zap_page_range_single() of the range', () => {
  it('frees an exclusive anonymous page: the rmap goes at the zap (mapcount 1 -> 0), the mapping reference after the TLB flush (refcount 1 -> 0)', () => {
    for (const advice of ['dontneed', 'dontneed-locked'] as const) {
      const { k, m } = kernel('v6.6');
      const [pfn] = written(k, 'm', 1);
      // do_anonymous_page(): alloc_page (1) mapped once
      expect([k.refcount(pfn!), k.mapcount(pfn!)]).toEqual([1, 1]);
      advise(k, 'm', advice);
      expect(k.isMappedIn({ map: 'm', page: 0 })).toBe(false);
      expect(k.ram.live.has(pfn!)).toBe(false); // back to the allocator
      expect(k.mapcount(pfn!)).toBe(0);
      // the VMA stays: the next read faults in the shared zero page, the data is gone
      expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('');
      expect(k.pfnOf({ map: 'm', page: 0 })).toBe(k.zeroPfn);
      expect(k.process('init').vmas.length).toBe(1);
      expect(m.violations).toEqual([]);
    }
  });

  it('a page someone else holds survives: a FOLL_GET keeps it at refcount 1, unmapped, with its data, and no longer the page the address maps', () => {
    const { k, m } = kernel();
    const [pfn] = written(k, 'm', 1);
    k.run(k.gup({ map: 'm', page: 0, as: 'ref' }, false));
    expect(k.refcount(pfn!)).toBe(2); // mapping + get
    advise(k, 'm', 'dontneed');
    expect([k.refcount(pfn!), k.mapcount(pfn!)]).toEqual([1, 0]);
    expect(k.ram.live.has(pfn!)).toBe(true);
    expect(k.run(k.dmaRead({ pin: 'ref' }))).toBe('m0');
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('');
    k.run(k.put({ name: 'ref' }));
    expect(k.ram.live.has(pfn!)).toBe(false);
    // the reference and the address now disagree -- what a process that drops memory it has
    // handed to a device gets, and what the invariant exists to show
    expect(m.violations.map((v) => v.invariant)).toEqual(['pinned-page-diverged']);
  });

  it('zaps only the range and never splits the VMA', () => {
    const { k } = kernel();
    const pfns = written(k, 'm', 3);
    advise(k, 'm', 'dontneed', { offset: 4 * KiB, length: 4 * KiB });
    expect([0, 1, 2].map((page) => k.pfnOf({ map: 'm', page }))).toEqual([pfns[0], null, pfns[2]]);
    expect(k.process('init').vmas.length).toBe(1);
  });

  it('a hole in the range is ENOMEM after the VMAs around it got the advice (madvise_walk_vmas unmapped_error)', () => {
    const { k } = kernel();
    const pfns = written(k, 'm', 3);
    k.run(k.munmap({ map: 'm', offset: 4 * KiB, length: 4 * KiB }));
    expect(code(() => advise(k, 'm', 'dontneed'))).toBe('ENOMEM');
    expect([k.pfnOf({ map: 'm', page: 0 }), k.pfnOf({ map: 'm', page: 2 })]).toEqual([null, null]);
    expect(pfns.map((p) => k.ram.live.has(p))).toEqual([false, false, false]);
  });
});

describe('MADV_DONTFORK / MADV_DOFORK and MADV_WIPEONFORK / MADV_KEEPONFORK through fork (dup_mmap)', () => {
  it('DONTFORK splits the VMA at the range and the child has no VMA there: SIGSEGV; DOFORK lets the next child have it', () => {
    const { k, m } = kernel();
    const [p0, p1] = written(k, 'm', 2);
    advise(k, 'm', 'dontfork', { offset: 4 * KiB });
    const vmas = k.process('init').vmas;
    expect(vmas.map((v) => [v.pages, v.flags.dontcopy])).toEqual([[1, false], [1, true]]);
    k.run(k.fork({ as: 'child' }));
    expect(k.run(k.read({ map: 'm', page: 0, process: 'child' }))).toBe('m0');
    expect(code(() => k.run(k.read({ map: 'm', page: 1, process: 'child' })))).toBe('SIGSEGV');
    // page 0 is shared with the child (copy_present_pte: +1 ref, +1 map); page 1 stays the parent's alone
    expect([k.refcount(p0!), k.mapcount(p0!)]).toEqual([2, 2]);
    expect([k.refcount(p1!), k.mapcount(p1!)]).toEqual([1, 1]);
    advise(k, 'm', 'dofork', { offset: 4 * KiB });
    // madvise_update_vma() -> vma_merge(): the flags match again, so the two pieces are one VMA again
    expect(k.process('init').vmas.map((v) => [v.pages, v.flags.dontcopy])).toEqual([[2, false]]);
    k.run(k.fork({ as: 'child2' }));
    expect(k.run(k.read({ map: 'm', page: 1, process: 'child2' }))).toBe('m1');
    expect([k.refcount(p1!), k.mapcount(p1!)]).toEqual([2, 2]);
    expect(m.violations).toEqual([]);
  });

  it('WIPEONFORK gives the child the VMA empty (zero page on read, a page of its own on write) and leaves the parent page unshared', () => {
    for (const v of RELEASES) {
      const { k } = kernel(v);
      const [pfn] = written(k, 'm', 1);
      advise(k, 'm', 'wipeonfork');
      k.run(k.fork({ as: 'child' }));
      // no copy_page_range(): the parent's page kept its single mapping and its write permission
      expect([k.refcount(pfn!), k.mapcount(pfn!)], v).toEqual([1, 1]);
      expect(k.isWritableIn({ map: 'm', page: 0 })).toBe(true);
      expect(k.run(k.read({ map: 'm', page: 0, process: 'child' }))).toBe('');
      k.run(k.write({ map: 'm', page: 0, data: 'c', process: 'child' }));
      expect(k.pfnOf({ map: 'm', page: 0, process: 'child' })).not.toBe(pfn);
      expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('m0');
      // vm_area_dup() copies vm_flags: the child's VMA is wipe-on-fork too
      expect(k.map('m', 'child').flags.wipeonfork).toBe(true);
    }
  });

  it('KEEPONFORK undoes WIPEONFORK: the next fork shares the page again', () => {
    const { k } = kernel();
    const [pfn] = written(k, 'm', 1);
    advise(k, 'm', 'wipeonfork');
    advise(k, 'm', 'keeponfork');
    k.run(k.fork({ as: 'child' }));
    expect(k.run(k.read({ map: 'm', page: 0, process: 'child' }))).toBe('m0');
    expect(k.refcount(pfn!)).toBe(2);
  });

  it('a flag that would not change splits nothing (madvise_update_vma: "new_flags == vma->vm_flags")', () => {
    const { k } = kernel();
    written(k, 'm', 3);
    advise(k, 'm', 'dofork', { offset: 4 * KiB, length: 4 * KiB });
    advise(k, 'm', 'keeponfork', { offset: 4 * KiB, length: 4 * KiB });
    expect(k.process('init').vmas.length).toBe(1);
    advise(k, 'm', 'wipeonfork', { offset: 4 * KiB, length: 4 * KiB });
    expect(k.process('init').vmas.map((v) => [v.pages, v.flags.wipeonfork])).toEqual([[1, false], [1, true], [1, false]]);
  });
});

describe('MADV_POPULATE_READ / MADV_POPULATE_WRITE (v5.14): fault in as a read / write would, without touching data', () => {
  it('populate-read maps the shared zero page (no reference taken); populate-write a new exclusive anon page (refcount 1, mapcount 1)', () => {
    const { k, m } = kernel('v6.1');
    k.run(k.mmap({ anon: true, length: 8 * KiB, write: true, as: 'm' }));
    advise(k, 'm', 'populate-read');
    expect([0, 1].map((page) => k.pfnOf({ map: 'm', page }))).toEqual([k.zeroPfn, k.zeroPfn]);
    expect(k.isWritableIn({ map: 'm', page: 0 })).toBe(false);
    k.run(k.mmap({ anon: true, length: 8 * KiB, write: true, as: 'w' }));
    advise(k, 'w', 'populate-write');
    for (const page of [0, 1]) {
      const pfn = k.pfnOf({ map: 'w', page })!;
      expect(k.ram.live.has(pfn)).toBe(true);
      expect([k.refcount(pfn), k.mapcount(pfn), k.anonExclusive(pfn), k.isWritableIn({ map: 'w', page })]).toEqual([1, 1, true, true]);
      expect(k.run(k.read({ map: 'w', page }))).toBe('');
    }
    expect(m.violations).toEqual([]);
  });

  it('populate-write over the zero page and over a page shared with a child breaks COW like a write fault, keeping the data', () => {
    const { k } = kernel('latest');
    const [pfn] = written(k, 'm', 1);
    k.run(k.mmap({ anon: true, length: 4 * KiB, write: true, as: 'z' }));
    advise(k, 'z', 'populate-read');
    advise(k, 'z', 'populate-write');
    expect(k.pfnOf({ map: 'z', page: 0 })).not.toBe(k.zeroPfn);
    k.run(k.fork({ as: 'child' }));
    expect(k.refcount(pfn!)).toBe(2);
    advise(k, 'm', 'populate-write', { process: 'child' });
    // do_wp_page(): not exclusive, refcount 2 -> wp_page_copy(); the parent's page is its alone again
    const copy = k.pfnOf({ map: 'm', page: 0, process: 'child' })!;
    expect(copy).not.toBe(pfn);
    expect(k.run(k.read({ map: 'm', page: 0, process: 'child' }))).toBe('m0');
    expect([k.refcount(pfn!), k.mapcount(pfn!)]).toEqual([1, 1]);
  });

  it('check_vma_flags() refusals are EINVAL: a write to a VMA without VM_WRITE, a read of PROT_NONE', () => {
    const { k } = kernel();
    k.run(k.mmap({ anon: true, length: 4 * KiB, as: 'ro' }));
    expect(code(() => advise(k, 'ro', 'populate-write'))).toBe('EINVAL');
    expect(code(() => advise(k, 'ro', 'populate-read'))).toBe('ok');
    k.run(k.mprotect({ map: 'ro', write: false, read: false }));
    expect(code(() => advise(k, 'ro', 'populate-read'))).toBe('EINVAL');
  });
});

describe('MADV_FREE, MADV_COLD, MADV_PAGEOUT without memory pressure, LRU or swap', () => {
  it('FREE cleans the PTE of an anon page and changes nothing else, also for a page shared with a child (not PG_dirty, not in a swap cache)', () => {
    const { k } = kernel();
    const [pfn] = written(k, 'm', 1);
    const pte = () => k.vm.lookup(k.process('init'), k.map('m').start)!.pte;
    expect(pte().dirty).toBe(true);
    advise(k, 'm', 'free');
    expect(pte().dirty).toBe(false);
    expect([k.pfnOf({ map: 'm', page: 0 }), k.refcount(pfn!), k.mapcount(pfn!)]).toEqual([pfn, 1, 1]);
    expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('m0');
    const { k: k2 } = kernel();
    written(k2, 'm', 1);
    k2.run(k2.fork({ as: 'child' }));
    advise(k2, 'm', 'free');
    // madvise_free_pte_range() skips a shared folio only when it is PG_dirty or swap-cached
    expect(k2.vm.lookup(k2.process('init'), k2.map('m').start)!.pte.dirty).toBe(false);
    expect(k2.vm.lookup(k2.process('child'), k2.map('m', 'child').start)!.pte.dirty).toBe(true);
  });

  it('COLD leaves an anonymous page mapped with its counts (no LRU); PAGEOUT swaps it out (test/swap.test.ts)', () => {
    for (const v of RELEASES) {
      const { k } = kernel(v);
      const [pfn] = written(k, 'm', 1);
      advise(k, 'm', 'cold');
      expect([k.pfnOf({ map: 'm', page: 0 }), k.refcount(pfn!), k.mapcount(pfn!)], v).toEqual([pfn, 1, 1]);
      advise(k, 'm', 'pageout');
      expect([k.isMappedIn({ map: 'm', page: 0 }), k.isSwappedIn({ map: 'm', page: 0 }), k.swap.used], v).toEqual([false, true, 1]);
    }
  });
});

describe('validity per release and per VMA (madvise_behavior_valid, the per-advice VMA checks)', () => {
  const ADVICES = ['dontneed', 'dontneed-locked', 'free', 'cold', 'pageout', 'dontfork', 'dofork', 'wipeonfork', 'keeponfork', 'populate-read', 'populate-write'] as const;

  it('on private anonymous memory every advice works once it exists: DONTNEED_LOCKED from v5.18, POPULATE_* from v5.14', () => {
    const table = Object.fromEntries(RELEASES.map((v) => [v, ADVICES.map((advice) => {
      const { k } = kernel(v);
      written(k, 'm', 1);
      return code(() => advise(k, 'm', advice));
    })]));
    const ok = ADVICES.map(() => 'ok');
    const old = ADVICES.map((a) => (a === 'dontneed-locked' || a.startsWith('populate') ? 'EINVAL' : 'ok'));
    expect(table).toEqual({ 'v5.4': old, 'v5.10': old, 'v6.1': ok, 'v6.3': ok, 'v6.6': ok, 'v6.15': ok, latest: ok });
  });

  it('on a /dev/mem (VM_IO | VM_PFNMAP) mapping the eight advices of pfnmap.c are EINVAL in every release; DONTFORK works, DOFORK is refused on VM_IO', () => {
    for (const v of RELEASES) {
      const { k } = kernel(v);
      k.run(k.mmap({ devmem: true, length: 8 * KiB, shared: true, as: 'mem' }));
      const got = Object.fromEntries(ADVICES.map((advice) => [advice, code(() => advise(k, 'mem', advice, { length: 4 * KiB }))]));
      expect(got, v).toEqual({
        dontneed: 'EINVAL',
        'dontneed-locked': 'EINVAL',
        free: 'EINVAL',
        cold: 'EINVAL',
        pageout: 'EINVAL',
        dontfork: 'ok',
        dofork: 'EINVAL',
        wipeonfork: 'EINVAL',
        keeponfork: 'ok',
        'populate-read': 'EINVAL',
        'populate-write': 'EINVAL',
      });
      // nothing was zapped: both special PTEs are still there
      expect([0, 1].map((page) => k.pfnOf({ map: 'mem', page }))).toEqual([0, 1]);
    }
  });
});

describe('/dev/mem: mmap_mem() -> remap_pfn_range()', () => {
  it('maps the physical pfns at once with special PTEs, references nothing, and fork copies the entries', () => {
    const { k, m } = kernel();
    const vma = k.run(k.mmap({ devmem: true, length: 8 * KiB, shared: true, as: 'mem' }));
    expect([vma.flags.io, vma.flags.pfnmap, vma.flags.dontexpand]).toEqual([true, true, true]);
    const leaves = [0, 1].map((page) => k.vm.lookup(k.process('init'), vma.start + page)!.pte);
    expect(leaves.map((p) => [p.pfn, p.special, p.write])).toEqual([[0, true, false], [1, true, false]]);
    expect([k.refcount(0), k.refcount(1)]).toEqual([0, 0]);
    expect(k.run(k.read({ map: 'mem', page: 1 }))).toBe('');
    k.run(k.fork({ as: 'child' }));
    expect([0, 1].map((page) => k.pfnOf({ map: 'mem', page, process: 'child' }))).toEqual([0, 1]);
    // check_vma_flags(): GUP never takes a VM_IO | VM_PFNMAP page
    expect(code(() => k.run(k.gup({ map: 'mem', page: 0, as: 'p' }, true)))).toBe('EFAULT');
    expect(m.violations).toEqual([]);
  });

  it('range_is_allowed(): RAM above x86s first MiB is EPERM, the first MiB maps; a private mapping is not modelled', () => {
    const { k } = kernel();
    expect(code(() => k.run(k.mmap({ devmem: true, offset: 4 * 2 ** 30, length: 4 * KiB, shared: true, as: 'ram' })))).toBe('EPERM');
    expect(code(() => k.run(k.mmap({ devmem: true, offset: 636 * KiB, length: 8 * KiB, shared: true, as: 'low' })))).toBe('ok');
    expect(errorOf(() => k.run(k.mmap({ devmem: true, length: 4 * KiB, as: 'priv' })))).toBeInstanceOf(InputError);
  });

  it('an arch that describes no physical memory cannot map /dev/mem (input error naming the field)', () => {
    const k = createKernel({ arch: testArch(), kernel: 'latest' });
    const e = errorOf(() => k.run(k.mmap({ devmem: true, length: 4 * KiB, shared: true, as: 'mem' })));
    expect(e).toBeInstanceOf(InputError);
    expect((e as InputError).field).toBe('devmem');
  });
});

describe('mremap() with a new length', () => {
  it('shrinking in place unmaps the tail: its page is freed (refcount 1 -> 0), the mapping keeps its name', () => {
    const { k } = kernel();
    const pfns = written(k, 'm', 3);
    k.run(k.mremap({ map: 'm', length: 12 * KiB, newLength: 8 * KiB }));
    expect(k.process('init').vmas.map((v) => [v.name, v.pages])).toEqual([['m', 2]]);
    expect(pfns.map((p) => k.ram.live.has(p))).toEqual([true, true, false]);
    expect(k.run(k.read({ map: 'm', page: 1 }))).toBe('m1');
  });

  it('growing a VM_PFNMAP | VM_DONTEXPAND mapping is EFAULT in every release, with or without MREMAP_MAYMOVE', () => {
    for (const v of RELEASES) {
      const { k } = kernel(v);
      k.run(k.mmap({ devmem: true, length: 8 * KiB, shared: true, as: 'mem' }));
      expect(code(() => k.run(k.mremap({ map: 'mem', length: 8 * KiB, newLength: 12 * KiB }))), v).toBe('EFAULT');
      expect(code(() => k.run(k.mremap({ map: 'mem', length: 8 * KiB, newLength: 12 * KiB, mayMove: true, as: 'big' }))), v).toBe('EFAULT');
      expect(k.process('init').vmas.map((x) => x.pages)).toEqual([2]);
    }
  });

  it('growing in place (vma_expandable: the pages after the VMA are free): the same VMA, longer, the new page not faulted in', () => {
    const { k } = kernel();
    const [p0, p1] = written(k, 'm', 2);
    const before = k.map('m');
    k.run(k.mremap({ map: 'm', length: 8 * KiB, newLength: 12 * KiB, as: 'big' }));
    expect(k.process('init').vmas).toEqual([before]);
    expect(before.pages).toBe(3);
    expect([0, 1, 2].map((page) => k.pfnOf({ map: 'big', page }))).toEqual([p0, p1, null]);
    expect(k.run(k.read({ map: 'big', page: 2 }))).toBe('');
    // the old name still stands for its two pages, now in the longer VMA
    expect(k.run(k.read({ map: 'm', page: 1 }))).toBe('m1');
    // a later mmap is placed after the longer VMA
    const next = k.run(k.mmap({ anon: true, length: 4 * KiB, as: 'n' }));
    expect(next.start).toBeGreaterThanOrEqual(before.start + 3);
  });

  it('no room after it: -ENOMEM without MREMAP_MAYMOVE; with it the range moves to a new VMA of new_len (its entries and counts moved, the old range unmapped)', () => {
    const { k } = kernel();
    const [p0, p1] = written(k, 'm', 2);
    // the first page only: a range that does not end where its VMA ends can never grow in place
    expect(code(() => k.run(k.mremap({ map: 'm', length: 4 * KiB, newLength: 12 * KiB })))).toBe('ENOMEM');
    expect(errorOf(() => k.run(k.mremap({ map: 'm', length: 4 * KiB, newLength: 12 * KiB, mayMove: true })))).toBeInstanceOf(InputError);
    k.run(k.mremap({ map: 'm', length: 4 * KiB, newLength: 12 * KiB, mayMove: true, as: 'big' }));
    const big = k.map('big');
    expect(big.pages).toBe(3);
    expect(k.pfnOf({ map: 'big', page: 0 })).toBe(p0);
    expect([k.refcount(p0!), k.mapcount(p0!)]).toEqual([1, 1]);
    expect(code(() => k.run(k.read({ map: 'm', page: 0 })))).toBe('SIGSEGV');
    expect(k.pfnOf({ map: 'm', page: 1 })).toBe(p1);
  });

  it('MREMAP_DONTUNMAP with a new length is EINVAL; a shrink in place may name the shrunk range', () => {
    const { k } = kernel();
    written(k, 'm', 2);
    expect(code(() => k.run(k.mremap({ map: 'm', length: 8 * KiB, newLength: 4 * KiB, dontUnmap: true, as: 'x' })))).toBe('EINVAL');
    k.run(k.mremap({ map: 'm', length: 8 * KiB, newLength: 4 * KiB, as: 'x' }));
    expect(k.run(k.read({ map: 'x', page: 0 }))).toBe('m0');
    expect(code(() => k.run(k.read({ map: 'x', page: 1 })))).toBe('EFAULT');
  });
});

describe('scenario input: madvise', () => {
  const scenario = (step: string) => `name: t\nsteps:\n  - mmap: { anon: true, length: 4KiB, as: m }\n  - ${step}\n`;
  it('accepts every advice and names the field of a bad one', () => {
    for (const advice of ['dontneed', 'populate-write', 'keeponfork']) expect(() => parseScenario(scenario(`madvise: { map: m, advice: ${advice} }`), 't.yaml')).not.toThrow();
    const e = errorOf(() => parseScenario(scenario('madvise: { map: m, advice: willneed }'), 't.yaml'));
    expect(e).toBeInstanceOf(InputError);
    expect((e as Error).message).toMatch(/steps\[1\]\.madvise\.advice: advice is one of dontneed, dontneed-locked, free/);
    expect((errorOf(() => parseScenario(scenario('madvise: { map: n, advice: free }'), 't.yaml')) as Error).message).toMatch(/a mapping named 'n' is used before it is defined/);
  });

  it('an mremap move without as is refused where the file is read', () => {
    const e = errorOf(() => parseScenario(scenario('mremap: { map: m, length: 4KiB, dontUnmap: true }'), 't.yaml'));
    expect((e as Error).message).toMatch(/steps\[1\]\.mremap\.as: a move \(to or dontUnmap\) makes a new mapping: name it with as/);
    expect(() => parseScenario(scenario('mremap: { map: m, length: 4KiB, newLength: 8KiB }'), 't.yaml')).not.toThrow();
  });

  it('a /dev/mem mapping without shared: true is refused where the file is read, naming the field', () => {
    const e = errorOf(() => parseScenario('name: t\nsteps:\n  - mmap: { devmem: true, length: 8KiB, as: mem }\n', 't.yaml'));
    expect(e).toBeInstanceOf(InputError);
    expect((e as Error).message).toMatch(/^t\.yaml:3:\d+: steps\[0\]\.mmap\.shared: a \/dev\/mem mapping needs shared: true/);
  });
});
