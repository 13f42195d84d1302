import { describe, expect, it } from 'vitest';
import { createKernel, InputError, KernelError, Monitor, type Kernel } from '../src/index.js';
import { parseScenario } from '../src/scenario/load.js';
import { testArch } from '../src/testing.js';
import { code, errorOf, written } from './vm-helpers.js';

/** x86-64 MMU constants (4 KiB pages, 2 MiB PMD); anonymous memory needs no device or filesystem. */
function kernel(version = 'latest'): { k: Kernel; m: Monitor } {
  const k = createKernel({ arch: testArch(), kernel: version });
  return { k, m: new Monitor(k) };
}

const KiB = 1024;

function vmas(k: Kernel, process = 'init'): [string, number, number, number][] {
  const mm = k.process(process);
  const base = mm.vmas.length ? Math.min(...mm.vmas.map((v) => mm.ranges.get(v.name)!.start)) : 0;
  // an anonymous VMA's vm_pgoff is its address (do_mmap(): addr >> PAGE_SHIFT): shown relative, as the start
  return mm.vmas.map((v) => [v.name, v.start - base, v.pages, v.kind === 'anon' ? v.pgoff - base : v.pgoff]);
}

describe('partial munmap: split_vma at both ends, unmap only the range', () => {
  it('the middle of a VMA: two pieces remain, the unmapped pages are freed, the rest keep their state', () => {
    const { k, m } = kernel();
    const pfns = written(k, 'buf', 4);
    // each page: one PTE, so rc 1 (the mapping's) and mapcount 1
    expect(pfns.map((p) => [k.refcount(p), k.mapcount(p)])).toEqual([[1, 1], [1, 1], [1, 1], [1, 1]]);
    k.run(k.munmap({ map: 'buf', offset: 4 * KiB, length: 8 * KiB }));
    // __split_vma() at page 1 then page 3: [0, 1) keeps the original VMA, [3, 4) is a copy whose
    // vm_pgoff advanced by 3 (an anonymous VMA's pgoff is its address: shown relative); the middle copy was removed
    expect(vmas(k)).toEqual([['buf', 0, 1, 0], ['buf', 3, 1, 3]]);
    // zap: mapcount 1 -> 0 at once, the reference after the TLB flush: 1 -> 0, back to the allocator
    expect([k.refcount(pfns[1]!), k.mapcount(pfns[1]!), k.refcount(pfns[2]!)]).toEqual([0, 0, 0]);
    expect([k.refcount(pfns[0]!), k.mapcount(pfns[0]!), k.refcount(pfns[3]!), k.mapcount(pfns[3]!)]).toEqual([1, 1, 1, 1]);
    // pages keep their addresses: the name still counts from the mmap'd start
    expect(k.run(k.read({ map: 'buf', page: 3 }))).toBe('buf3');
    expect(k.pfnOf({ map: 'buf', page: 3 })).toBe(pfns[3]);
    // a CPU access with no VMA: bad_area() -> SIGSEGV; GUP finds no VMA: EFAULT
    expect(code(() => k.run(k.read({ map: 'buf', page: 1 })))).toBe('SIGSEGV');
    expect(code(() => k.run(k.gup({ map: 'buf', page: 2, as: 'g' }, false)))).toBe('EFAULT');
    expect(k.isMappedIn({ map: 'buf', page: 2 })).toBe(false);
    expect(m.violations).toEqual([]);
  });

  it('a range at the start or the end splits once; the whole-name munmap takes every piece', () => {
    const { k } = kernel();
    written(k, 'buf', 4);
    k.run(k.munmap({ map: 'buf', length: 4 * KiB }));
    expect(vmas(k)).toEqual([['buf', 1, 3, 1]]);
    k.run(k.munmap({ map: 'buf', offset: 12 * KiB }));
    expect(vmas(k)).toEqual([['buf', 1, 2, 1]]);
    // a length that is not a page multiple is rounded up (PAGE_ALIGN): 1 byte unmaps page 1
    k.run(k.munmap({ map: 'buf', offset: 4 * KiB, length: 1 }));
    expect(vmas(k)).toEqual([['buf', 2, 1, 2]]);
    k.run(k.munmap({ map: 'buf' }));
    expect(vmas(k)).toEqual([]);
    // nothing of the name is left
    expect(code(() => k.run(k.read({ map: 'buf', page: 2 })))).toBe('SIGSEGV');
  });

  it('refuses a misaligned offset (EINVAL) and a range outside the mapping (an input error naming the field)', () => {
    const { k } = kernel();
    written(k, 'buf', 2);
    expect(code(() => k.run(k.munmap({ map: 'buf', offset: 100, length: 4 * KiB })))).toBe('EINVAL');
    const e = errorOf(() => k.run(k.munmap({ map: 'buf', offset: 4 * KiB, length: 8 * KiB })));
    expect(e).toBeInstanceOf(InputError);
    expect((e as InputError).field).toBe('length');
    expect(vmas(k)).toEqual([['buf', 0, 2, 0]]);
  });

  it('a pinned page unmapped by a partial munmap keeps the pin: only the mapping reference goes', () => {
    const { k, m } = kernel('latest');
    const pfns = written(k, 'buf', 3);
    k.run(k.gup({ map: 'buf', page: 1, as: 'dma' }, true));
    // FOLL_PIN on a small folio: +GUP_PIN_COUNTING_BIAS (1024) on top of the mapping's 1
    expect(k.refcount(pfns[1]!)).toBe(1025);
    k.run(k.munmap({ map: 'buf', offset: 4 * KiB, length: 4 * KiB }));
    expect([k.refcount(pfns[1]!), k.mapcount(pfns[1]!), k.maybePinned(pfns[1]!)]).toEqual([1024, 0, true]);
    k.run(k.unpin({ name: 'dma' }));
    expect(k.refcount(pfns[1]!)).toBe(0);
    expect(m.violations).toEqual([]);
  });

  it('fork after a partial munmap copies both pieces; the child addresses pages by the same name', () => {
    const { k, m } = kernel();
    const pfns = written(k, 'buf', 3);
    k.run(k.munmap({ map: 'buf', offset: 4 * KiB, length: 4 * KiB }));
    k.run(k.fork({ as: 'child' }));
    expect(vmas(k, 'child')).toEqual([['buf', 0, 1, 0], ['buf', 2, 1, 2]]);
    // copy_present_pte(): the anon page is shared, write-protected in both: rc 2, mapcount 2
    expect([k.refcount(pfns[2]!), k.mapcount(pfns[2]!)]).toEqual([2, 2]);
    expect(k.run(k.read({ map: 'buf', page: 2, process: 'child' }))).toBe('buf2');
    expect(code(() => k.run(k.read({ map: 'buf', page: 1, process: 'child' })))).toBe('SIGSEGV');
    expect(m.violations).toEqual([]);
  });
});

describe('mremap(MREMAP_MAYMOVE | MREMAP_FIXED): move_vma and move_page_tables', () => {
  it('moves the middle of a VMA onto another mapping: the destination is unmapped first, the entries move, the pages keep their counts', () => {
    const { k, m } = kernel();
    const src = written(k, 'src', 4);
    const dst = written(k, 'dst', 2);
    k.run(k.mremap({ map: 'src', offset: 4 * KiB, length: 8 * KiB, to: 'dst', as: 'moved' }));
    // MREMAP_FIXED: do_munmap() of the destination freed dst's two pages (rc 1 -> 0)
    expect(dst.map((p) => k.refcount(p))).toEqual([0, 0]);
    // move_ptes(): the same pages at the new address, rc 1 and mapcount 1 each, still exclusive
    expect([k.pfnOf({ map: 'moved', page: 0 }), k.pfnOf({ map: 'moved', page: 1 })]).toEqual([src[1], src[2]]);
    expect([k.refcount(src[1]!), k.mapcount(src[1]!), k.anonExclusive(src[1]!)]).toEqual([1, 1, true]);
    expect(k.run(k.read({ map: 'moved', page: 1 }))).toBe('src2');
    // the destination's name sees the moved pages at its addresses
    expect(k.run(k.read({ map: 'dst', page: 0 }))).toBe('src1');
    // the source split at pages 1 and 3, the middle went away (do_munmap of the old range)
    const mm = k.process('init');
    expect(mm.vmas.filter((v) => v.name === 'src').map((v) => [v.start - mm.ranges.get('src')!.start, v.pages])).toEqual([[0, 1], [3, 1]]);
    expect(code(() => k.run(k.read({ map: 'src', page: 1 })))).toBe('SIGSEGV');
    // copy_vma(): the new VMA keeps the anon_vma and the old linear pgoff (src's, the address of
    // its first page, plus 1): a faulted VMA's pgoff does not follow it to the new address
    const moved = k.map('moved');
    expect([moved.pgoff, moved.anonVma]).toEqual([k.map('src').pgoff + 1, k.map('src').anonVma]);
    // writing through the moved PTE needs no fault: it kept its write bit
    const faultsSince = (from: number) => m.trace.slice(from).filter((line) => line.split(' ')[1] === 'fault').length;
    let from = m.trace.length;
    k.run(k.write({ map: 'moved', page: 0, data: 'again' }));
    expect(faultsSince(from)).toBe(0);
    // (a page never touched does fault: the count above can tell)
    k.run(k.mmap({ anon: true, length: 4 * KiB, write: true, as: 'fresh' }));
    from = m.trace.length;
    k.run(k.write({ map: 'fresh', page: 0, data: 'f' }));
    expect(faultsSince(from)).toBe(1);
    expect(m.violations).toEqual([]);
  });

  it('move_soft_dirty_pte(): a moved entry is soft-dirty again after clear_refs cleaned it', () => {
    const { k } = kernel();
    written(k, 'src', 1);
    k.run(k.mmap({ anon: true, length: 4 * KiB, as: 'dst' }));
    k.run(k.clearRefs({}));
    expect(k.isSoftDirtyIn({ map: 'src', page: 0 })).toBe(false);
    k.run(k.mremap({ map: 'src', length: 4 * KiB, to: 'dst', as: 'moved' }));
    expect(k.vm.lookup(k.process('init'), k.map('moved').start)!.pte.softDirty).toBe(true);
  });

  it('MREMAP_DONTUNMAP keeps the old VMA, emptied: it loses its anon_vma and faults a zero page', () => {
    const { k, m } = kernel();
    const src = written(k, 'src', 2);
    const anonVma = k.map('src').anonVma;
    k.run(k.mremap({ map: 'src', length: 8 * KiB, dontUnmap: true, as: 'moved' }));
    expect(k.pfnOf({ map: 'moved', page: 1 })).toBe(src[1]);
    expect([k.map('src').pages, k.map('src').anonVma, k.map('moved').anonVma]).toEqual([2, 0, anonVma]);
    expect(k.isMappedIn({ map: 'src', page: 0 })).toBe(false);
    expect(k.run(k.read({ map: 'src', page: 0 }))).toBe('');
    expect(k.isAnon(k.pfnOf({ map: 'src', page: 0 })!)).toBe(false); // the shared zero page
    expect(m.violations).toEqual([]);
  });

  it('before v5.12 (1583aa278f5f) the emptied old VMA keeps its anon_vma: a write fault there joins it', () => {
    const { k } = kernel('v5.10');
    written(k, 'src', 2);
    const anonVma = k.map('src').anonVma;
    k.run(k.mremap({ map: 'src', length: 8 * KiB, dontUnmap: true, as: 'moved' }));
    expect([k.map('src').anonVma, k.map('moved').anonVma]).toEqual([anonVma, anonVma]);
    k.run(k.write({ map: 'src', page: 0, data: 'new' }));
    expect(k.map('src').anonVma).toBe(anonVma);
  });

  it('MREMAP_DONTUNMAP does not exist before v5.7: an unsupported operation there', () => {
    const { k } = kernel('v5.4');
    written(k, 'src', 1);
    const e = errorOf(() => k.run(k.mremap({ map: 'src', length: 4 * KiB, dontUnmap: true, as: 'moved' })));
    expect(e).toBeInstanceOf(KernelError);
    expect([(e as KernelError).code, (e as KernelError).unsupported !== null]).toEqual(['EINVAL', true]);
  });

  it('refuses what mremap refuses: overlapping ranges (EINVAL), a range across VMAs (EFAULT before v6.17), no destination (input error)', () => {
    // v6.17 moves a range across VMAs VMA by VMA (remap_move(): test/mremap-merge.test.ts)
    const { k } = kernel('v6.15');
    written(k, 'src', 4);
    expect(code(() => k.run(k.mremap({ map: 'src', length: 8 * KiB, to: 'src', toOffset: 4 * KiB, as: 'x' })))).toBe('EINVAL');
    k.run(k.munmap({ map: 'src', offset: 8 * KiB, length: 4 * KiB }));
    k.run(k.mmap({ anon: true, length: 16 * KiB, as: 'dst' }));
    // pages 1..2 of src: page 2 was unmapped, so the range is not inside one VMA
    expect(code(() => k.run(k.mremap({ map: 'src', offset: 4 * KiB, length: 8 * KiB, to: 'dst', as: 'x' })))).toBe('EFAULT');
    const e = errorOf(() => k.run(k.mremap({ map: 'src', length: 4 * KiB, as: 'x' })));
    expect(e).toBeInstanceOf(InputError);
    expect((e as InputError).field).toBe('to');
  });

  it('a pinned page moves with its pin: the pin still holds the page the new address maps', () => {
    const { k, m } = kernel('latest');
    const src = written(k, 'src', 1);
    k.run(k.mmap({ anon: true, length: 4 * KiB, as: 'dst' }));
    k.run(k.gup({ map: 'src', page: 0, write: true, as: 'dma' }, true));
    k.run(k.mremap({ map: 'src', length: 4 * KiB, to: 'dst', as: 'moved' }));
    expect([k.pfnOf({ map: 'moved', page: 0 }), k.refcount(src[0]!), k.mapcount(src[0]!)]).toEqual([src[0], 1025, 1]);
    k.run(k.dmaWrite({ pin: 'dma', data: 'dma' }));
    expect(k.run(k.read({ map: 'moved', page: 0 }))).toBe('dma');
    expect(m.violations).toEqual([]);
  });
});

describe('partial mprotect: mprotect_fixup() splits only a VMA whose flags change', () => {
  it('PROT_READ on the middle page: three VMAs, only the middle PTE write-protected', () => {
    const { k, m } = kernel();
    const pfns = written(k, 'buf', 3);
    k.run(k.mprotect({ map: 'buf', offset: 4 * KiB, length: 4 * KiB, write: false }));
    expect(vmas(k)).toEqual([['buf', 0, 1, 0], ['buf', 1, 1, 1], ['buf', 2, 1, 2]]);
    expect(k.process('init').vmas.map((v) => v.flags.write)).toEqual([true, false, true]);
    expect([0, 1, 2].map((page) => k.isWritableIn({ map: 'buf', page }))).toEqual([true, false, true]);
    // the pages stay where they were, with their counts
    expect(pfns.map((p) => [k.refcount(p), k.mapcount(p)])).toEqual([[1, 1], [1, 1], [1, 1]]);
    expect(code(() => k.run(k.write({ map: 'buf', page: 1, data: 'x' })))).toBe('SIGSEGV');
    k.run(k.write({ map: 'buf', page: 2, data: 'y' }));
    expect(m.violations).toEqual([]);
  });

  it('flags that do not change split nothing; a hole in the range is ENOMEM after the VMAs before it changed', () => {
    const { k } = kernel();
    written(k, 'buf', 4);
    k.run(k.mprotect({ map: 'buf', offset: 4 * KiB, length: 4 * KiB, write: true }));
    expect(vmas(k)).toEqual([['buf', 0, 4, 0]]);
    k.run(k.munmap({ map: 'buf', offset: 8 * KiB, length: 4 * KiB }));
    // pages 0..1 change (one VMA, split at nothing: it starts at 0 and ends at the hole), then the hole
    expect(code(() => k.run(k.mprotect({ map: 'buf', write: false })))).toBe('ENOMEM');
    expect(k.process('init').vmas.map((v) => [v.start - k.process('init').ranges.get(v.name)!.start, v.pages, v.flags.write])).toEqual([[0, 2, false], [3, 1, true]]);
    // a hole at the start: nothing changes
    expect(code(() => k.run(k.mprotect({ map: 'buf', offset: 8 * KiB, write: false })))).toBe('ENOMEM');
    expect(k.process('init').vmas.map((v) => v.flags.write)).toEqual([false, true]);
  });
});

describe('scenario steps', () => {
  const steps = (lines: string) => `name: t\nsteps:\n  - mmap: { anon: true, length: 16KiB, write: true, as: buf }\n  - mmap: { anon: true, length: 8KiB, as: dst }\n${lines}`;
  it('munmap, mprotect and mremap take sizes for offset and length', () => {
    const s = parseScenario(steps('  - munmap: { map: buf, offset: 4KiB, length: 1 }\n  - mprotect: { map: buf, offset: 8KiB, write: false }\n  - mremap: { map: buf, offset: 12KiB, length: 4KiB, to: dst, toOffset: 4KiB, as: moved }\n'), 's.yaml');
    expect(s.threads[0]!.steps.slice(2).map((x) => [x.op, x.args])).toEqual([
      ['munmap', { map: 'buf', offset: 4096, length: 1 }],
      ['mprotect', { map: 'buf', offset: 8192, write: false }],
      ['mremap', { map: 'buf', offset: 12288, length: 4096, to: 'dst', toOffset: 4096, as: 'moved' }],
    ]);
  });
  it('toOffset without to is refused at load, naming the field and the fix', () => {
    const e = errorOf(() => parseScenario(steps('  - mremap: { map: buf, length: 4KiB, toOffset: 4KiB, dontUnmap: true, as: moved }\n'), 's.yaml'));
    expect(e).toBeInstanceOf(InputError);
    expect((e as InputError).message).toMatch(/toOffset.*give to: <mapping>/);
    expect((e as InputError).file).toBe('s.yaml');
  });
  it('the name an mremap defines is a mapping; to must name one', () => {
    const e = errorOf(() => parseScenario(steps('  - mremap: { map: buf, length: 4KiB, to: nowhere, as: moved }\n'), 's.yaml'));
    expect(e).toBeInstanceOf(InputError);
    expect((e as InputError).message).toMatch(/nowhere/);
    parseScenario(steps('  - mremap: { map: buf, length: 4KiB, to: dst, as: moved }\n  - read: { map: moved, page: 0 }\n'), 's.yaml');
  });
});

describe('file, shmem and device VMAs merge back like anonymous ones (the same vm_file, contiguous vm_pgoff)', () => {
  const shape = (k: Kernel, map: string) => {
    const mm = k.process('init');
    const start = mm.ranges.get(map)!.start;
    return mm.vmas.filter((v) => v.name === map).map((v) => [v.start - start, v.pages, v.pgoff]);
  };

  it('a shared page-cache file: mprotect of its middle splits it in three, mprotect back merges it whole again and leaves one VMA in i_mmap', () => {
    const { k } = kernel();
    k.run(k.tmpfile({ file: 'f', fs: 'ext4', size: 16 * KiB }));
    k.run(k.mmap({ file: 'f', length: 16 * KiB, shared: true, write: true, as: 'm' }));
    k.run(k.mprotect({ map: 'm', offset: 4 * KiB, length: 8 * KiB, write: false }));
    expect(shape(k, 'm')).toEqual([[0, 1, 0], [1, 2, 1], [3, 1, 3]]);
    k.run(k.mprotect({ map: 'm', offset: 4 * KiB, length: 8 * KiB, write: true }));
    // vma_merge_existing_range(): prev and next both join the middle (is_mergeable_vma(): same file,
    // same flags; can_vma_merge_after() / _before(): contiguous vm_pgoff); the removed VMAs leave i_mmap
    expect(shape(k, 'm')).toEqual([[0, 4, 0]]);
    const mm = k.process('init');
    expect([...mm.vmas[0]!.cacheFile!.mapping.mmaps].map((v) => v.pages)).toEqual([4]);
  });

  it('a private file mapping whose middle page was COWed: merged back only from v6.16 (879bca0a2c4f), before that the faulted piece stays apart', () => {
    const pieces = (version: string) => {
      const { k } = kernel(version);
      k.run(k.tmpfile({ file: 'f', fs: 'ext4', size: 12 * KiB }));
      k.run(k.mmap({ file: 'f', length: 12 * KiB, as: 'ro' }));
      k.run(k.mprotect({ map: 'ro', offset: 4 * KiB, length: 4 * KiB, write: true }));
      k.run(k.write({ map: 'ro', page: 1, data: 'x' })); // do_cow_fault(): the piece gets an anon_vma
      k.run(k.mprotect({ map: 'ro', offset: 4 * KiB, length: 4 * KiB, write: false }));
      return shape(k, 'ro').map(([, pages]) => pages);
    };
    expect([pieces('v6.15'), pieces('latest')]).toEqual([[1, 1, 1], [3]]);
  });

  it('pieces of different files, or of one file at non-contiguous offsets, do not merge', () => {
    const { k } = kernel();
    k.run(k.tmpfile({ file: 'f', fs: 'ext4', size: 16 * KiB }));
    k.run(k.mmap({ file: 'f', length: 8 * KiB, shared: true, write: true, as: 'a' }));
    // MAP_FIXED over a's second page with f's page 3: adjacent, but vm_pgoff 3 does not follow 0
    k.run(k.mmap({ file: 'f', offset: 12 * KiB, length: 4 * KiB, shared: true, write: true, fixed: { map: 'a', offset: 4 * KiB }, as: 'b' }));
    expect(k.process('init').vmas.map((v) => [v.name, v.pages, v.pgoff])).toEqual([['a', 1, 0], ['b', 1, 3]]);
  });
});
