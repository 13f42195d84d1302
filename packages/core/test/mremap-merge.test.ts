import { describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';
import { code } from './vm-helpers.js';

// VMA merging after mprotect(), mmap(MAP_FIXED) and mremap(), and mremap()'s in-place growth and
// multi-VMA move, release by release (mm/vm.ts mergeAround, mm/mremap.ts; docs/kernel-model.md
// "VMA merging"). The layouts are those tools/testing/selftests/mm/merge.c and mremap_test.c
// assert through PROCMAP_QUERY and /proc/self/maps.

const PAGE = 4096;

function kernel(version: string): Kernel {
  return createKernel({ arch: testArch(), kernel: version });
}

/** merge.c FIXTURE_SETUP: 30 PROT_NONE pages to map over (they never merge with R/W memory). */
function carveout(k: Kernel): void {
  k.run(k.mmap({ anon: true, length: 30 * PAGE, as: 'carveout' }));
  k.run(k.mprotect({ map: 'carveout', write: false, read: false }));
}

/** mmap(&carveout[at], pages, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANON | MAP_FIXED) */
function mapAt(k: Kernel, as: string, at: number, pages: number, process?: string): void {
  k.run(k.mmap({ anon: true, write: true, length: pages * PAGE, fixed: { map: 'carveout', offset: at * PAGE }, as, ...(process ? { process } : {}) }));
}

/** [vma_start relative to the mapping, vma_end - vma_start] of the VMA holding page 0 of `map`, as PROCMAP_QUERY reports it. */
function vmaOf(k: Kernel, map: string, process?: string): [number | null, number] {
  const t = { map, page: 0, ...(process ? { process } : {}) };
  return [k.vmaStartIn(t), k.vmaPagesIn(t)];
}

describe('mprotect() merges a faulted VMA with an unfaulted neighbour only from v6.16 (879bca0a2c4f)', () => {
  // merge.c mprotect_unfaulted_left: RO [unfaulted, 5 pages] | RW [faulted, 5 pages]; mprotect of
  // the RW half to RO makes the flags equal. Before v6.16 is_mergeable_anon_vma() asked whether
  // the unfaulted prev's anon_vma_chain was singular: it is empty, so no merge (the VMA at ptr stays
  // 5 pages); from v6.16 the faulted middle, not forked, may give prev its anon_vma: 10 pages.
  for (const [version, pages] of [['v5.4', 5], ['v6.1', 5], ['v6.15', 5], ['latest', 10]] as const) {
    it(`mprotect_unfaulted_left on ${version}: the VMA at ptr is ${pages} pages`, () => {
      const k = kernel(version);
      carveout(k);
      mapAt(k, 'ptr', 1, 10);
      k.run(k.mprotect({ map: 'ptr', length: 5 * PAGE, write: false }));
      k.run(k.write({ map: 'ptr', page: 5, data: 'x' }));
      k.run(k.mprotect({ map: 'ptr', offset: 5 * PAGE, length: 5 * PAGE, write: false }));
      expect(vmaOf(k, 'ptr')).toEqual([0, pages]);
    });
  }

  it('two unfaulted pieces merge back on every release: both anon_vmas are NULL (the case cow.c relies on)', () => {
    for (const version of ['v5.4', 'v6.15', 'latest']) {
      const k = kernel(version);
      carveout(k);
      mapAt(k, 'ptr', 1, 10);
      k.run(k.mprotect({ map: 'ptr', length: 5 * PAGE, write: false }));
      k.run(k.mprotect({ map: 'ptr', offset: 5 * PAGE, length: 5 * PAGE, write: false }));
      expect(vmaOf(k, 'ptr'), version).toEqual([0, 10]);
    }
  });
});

describe('a first fault next to a compatible faulted VMA reuses its anon_vma (find_mergeable_anon_vma())', () => {
  it('two VMAs faulted apart share one anon_vma and merge once their protections agree, on every release', () => {
    // a: faulted R/W then made read-only; b mapped R/W right after it (flags differ: no merge) and
    // written: anon_vma_compatible(a, b) ignores VM_READ/VM_WRITE and a's chain is singular, so b
    // takes a's anon_vma. mprotect(a, R/W) then finds the same anon_vma on both sides: 10 pages.
    // With an anon_vma of its own, b would stay apart (two faulted VMAs, different anon_vmas).
    for (const version of ['v5.4', 'v6.15', 'latest']) {
      const k = kernel(version);
      carveout(k);
      mapAt(k, 'a', 1, 5);
      k.run(k.write({ map: 'a', page: 0, data: 'a' }));
      k.run(k.mprotect({ map: 'a', write: false }));
      mapAt(k, 'b', 6, 5);
      expect(vmaOf(k, 'b'), version).toEqual([0, 5]);
      k.run(k.write({ map: 'b', page: 0, data: 'b' }));
      const mm = k.process('init');
      const at = (name: string) => k.vm.vmaAt(mm, mm.ranges.get(name)!.start)!;
      expect(at('b').anonVma, version).toBe(at('a').anonVma);
      k.run(k.mprotect({ map: 'a', write: true }));
      expect(vmaOf(k, 'a'), version).toEqual([0, 10]);
    }
  });
});

describe('anon_vma_compatible() ignores VM_EXEC as it ignores VM_READ / VM_WRITE (VM_ACCESS_FLAGS)', () => {
  it('a VMA mapped without PROT_EXEC right after a faulted PROT_EXEC one takes its anon_vma at its first fault', () => {
    // anon_vma_compatible(): the flags may differ in VM_ACCESS_FLAGS (VM_READ | VM_WRITE | VM_EXEC)
    // and VM_SOFTDIRTY, so b (R/W) reuses a's (R/W/X) anon_vma; the two do not merge (is_mergeable_vma()
    // wants equal VM_EXEC), so each stays 5 pages.
    for (const version of ['v5.4', 'v6.15', 'latest']) {
      const k = kernel(version);
      carveout(k);
      k.run(k.mmap({ anon: true, write: true, exec: true, length: 5 * PAGE, fixed: { map: 'carveout', offset: PAGE }, as: 'a' }));
      k.run(k.write({ map: 'a', page: 0, data: 'a' }));
      mapAt(k, 'b', 6, 5);
      k.run(k.write({ map: 'b', page: 0, data: 'b' }));
      const mm = k.process('init');
      const at = (name: string) => k.vm.vmaAt(mm, mm.ranges.get(name)!.start)!;
      expect([at('b').anonVma === at('a').anonVma, vmaOf(k, 'a')[1], vmaOf(k, 'b')[1]], version).toEqual([true, 5, 5]);
    }
  });
});

describe('a fork child never takes part in an anon_vma-transferring merge', () => {
  it('forked_target_vma: the child maps unfaulted memory right after its forked copy: no merge; the parent doing the same merges', () => {
    for (const version of ['v6.15', 'latest']) {
      const k = kernel(version);
      carveout(k);
      mapAt(k, 'ptr', 1, 5);
      k.run(k.write({ map: 'ptr', page: 0, data: 'x' }));
      k.run(k.fork({ as: 'child' }));
      // "unCOWing everything does not cause the AVC to go away"
      for (let page = 0; page < 5; page++) k.run(k.write({ map: 'ptr', page, data: 'y', process: 'child' }));
      mapAt(k, 'ptr2', 6, 5, 'child');
      // the child's ptr has a second anon_vma_chain entry (anon_vma_fork()): before v6.16 not
      // singular, from v6.16 vma_had_uncowed_parents(): either way [0, 5)
      expect(vmaOf(k, 'ptr', 'child'), version).toEqual([0, 5]);
      // the parent's chain is its own anon_vma alone: the new unfaulted range merges with it
      mapAt(k, 'ptr2', 6, 5);
      expect(vmaOf(k, 'ptr'), version).toEqual([0, 10]);
    }
  });
});

describe('a new VMA under PR_SET_MEMORY_MERGE merges with a VM_MERGEABLE neighbour only from v6.16', () => {
  // merge.c ksm_merge: before v6.16 mmap_region() tried vma_merge_new_range() with flags that
  // lacked the VM_MERGEABLE ksm_add_vma() sets afterwards, while prctl() had set it on the
  // neighbour: the flags differ, no merge (1 page); from v6.16 ksm_vma_flags() comes first: 2 pages
  for (const [version, pages] of [['v6.6', 1], ['v6.15', 1], ['latest', 2]] as const) {
    it(`ksm_merge on ${version}: the VMA at ptr is ${pages} page(s), VM_MERGEABLE either way`, () => {
      const k = kernel(version);
      carveout(k);
      mapAt(k, 'ptr', 1, 1);
      k.run(k.prctl({ memoryMerge: true }));
      mapAt(k, 'ptr2', 2, 1);
      expect(vmaOf(k, 'ptr')).toEqual([0, pages]);
      expect(k.vm.vmaAt(k.process('init'), k.process('init').ranges.get('ptr2')!.start)!.flags.mergeable).toBe(true);
    });
  }
});

describe('mremap() merges the moved VMA at its destination (copy_vma())', () => {
  it('mremap_unfaulted_to_faulted: an unfaulted VMA takes the pgoff of its new address and merges, on every release', () => {
    for (const version of ['v5.4', 'v6.15', 'latest']) {
      const k = kernel(version);
      carveout(k);
      mapAt(k, 'ptr', 1, 5);
      mapAt(k, 'ptr2', 7, 5);
      k.run(k.mmap({ anon: true, length: 5 * PAGE, as: 'far' }));
      k.run(k.mremap({ map: 'ptr2', length: 5 * PAGE, to: 'far', as: 'ptr2b' }));
      k.run(k.write({ map: 'ptr', page: 0, data: 'x' }));
      const farStart = k.process('init').ranges.get('far')!.start;
      // copy_vma(): "If anonymous vma has not yet been faulted, update new pgoff to match new location"
      expect(k.vm.vmaAt(k.process('init'), farStart)!.pgoff).toBe(farStart);
      k.run(k.mremap({ map: 'ptr2b', length: 5 * PAGE, to: 'carveout', toOffset: 6 * PAGE, as: 'ptr2c' }));
      // ptr: faulted, singular chain; the copy: no anon_vma, pgoff = ptr's pgoff + 5: [0, 10)
      expect(vmaOf(k, 'ptr'), version).toEqual([0, 10]);
      expect(k.run(k.read({ map: 'ptr', page: 0 }))).toBe('x');
    }
  });

  it('a faulted VMA keeps its pgoff: moved elsewhere it does not merge, moved back into place it does', () => {
    // merge.c mremap_correct_placed_faulted, first half: 15 faulted pages, the middle 5 moved away
    // and back. Away, the copy's pgoff is still ptr's + 5, which the neighbours there do not continue
    const k = kernel('v6.15');
    carveout(k);
    mapAt(k, 'ptr', 1, 15);
    k.run(k.write({ map: 'ptr', page: 0, data: 'x' }));
    k.run(k.mmap({ anon: true, length: 5 * PAGE, as: 'far' }));
    k.run(k.mremap({ map: 'ptr', offset: 5 * PAGE, length: 5 * PAGE, to: 'far', as: 'mid' }));
    expect(vmaOf(k, 'ptr')).toEqual([0, 5]);
    k.run(k.mremap({ map: 'mid', length: 5 * PAGE, to: 'ptr', toOffset: 5 * PAGE, as: 'back' }));
    // the same anon_vma on all three and contiguous pgoffs: one VMA of 15 pages again
    expect(vmaOf(k, 'ptr')).toEqual([0, 15]);
  });

  // merge.c mremap_faulted_to_unfaulted_prev: faulted A moved with MREMAP_DONTUNMAP next to
  // unfaulted B. The copy carries A's anon_vma; B's chain is empty: before v6.16 no merge (B stays
  // 3 pages), from v6.16 B takes A's anon_vma (dup_anon_vma(); vma_merge_copied_range() from v6.19
  // propagates it in every case) and grows over the copy: 6 pages.
  for (const [version, pages] of [['v6.6', 3], ['v6.15', 3], ['latest', 6]] as const) {
    it(`mremap_faulted_to_unfaulted_prev on ${version}: B is ${pages} pages`, () => {
      const k = kernel(version);
      carveout(k);
      mapAt(k, 'a', 4, 3);
      k.run(k.write({ map: 'a', page: 0, data: 'A' }));
      k.run(k.mremap({ map: 'a', length: 3 * PAGE, to: 'carveout', toOffset: 20 * PAGE, as: 'a2' }));
      mapAt(k, 'b', 1, 3);
      k.run(k.mremap({ map: 'a2', length: 3 * PAGE, to: 'carveout', toOffset: 4 * PAGE, dontUnmap: true, as: 'a3' }));
      expect(vmaOf(k, 'b')).toEqual([0, pages]);
      // the data came along either way, and the DONTUNMAP source is still mapped, empty
      expect(k.run(k.read({ map: 'a3', page: 0 }))).toBe('A');
      expect(k.vmaPagesIn({ map: 'a2', page: 0 })).toBe(3);
      expect(k.isMappedIn({ map: 'a2', page: 0 })).toBe(false);
    });
  }

  it('MREMAP_DONTUNMAP clears VM_LOCKED on the whole old VMA; the moved range stays locked', () => {
    for (const version of ['v5.10', 'latest']) {
      const k = kernel(version);
      k.run(k.mmap({ anon: true, write: true, length: 4 * PAGE, as: 'src' }));
      k.run(k.mlock({ map: 'src' }));
      k.run(k.mmap({ anon: true, length: 2 * PAGE, as: 'dst' }));
      k.run(k.mremap({ map: 'src', length: 2 * PAGE, to: 'dst', dontUnmap: true, as: 'moved' }));
      // move_vma(): "We always clear VM_LOCKED[ONFAULT] on the old vma" -- pages 2 and 3 were not
      // moved and are not split off: their VMA is the old one too
      expect([0, 3].map((page) => k.isLockedIn({ map: 'src', page })), version).toEqual([false, false]);
      expect(k.isLockedIn({ map: 'moved', page: 0 }), version).toBe(true);
    }
  });

  it('a forked source is refused as the anon_vma donor of a copied range only from v6.19 (vma_merge_copied_range())', () => {
    // the child moves its forked, faulted VMA next to an unfaulted one of its own: from v6.16 a new
    // range has no middle, so nothing asked whether the copied-from VMA was a fork child; v6.19
    // asks (61f67c230a5e): 'latest' keeps them apart
    const k = kernel('latest');
    carveout(k);
    mapAt(k, 'a', 4, 3);
    k.run(k.write({ map: 'a', page: 0, data: 'A' }));
    k.run(k.fork({ as: 'child' }));
    mapAt(k, 'b', 1, 3, 'child');
    k.run(k.mmap({ anon: true, length: 3 * PAGE, as: 'far', process: 'child' }));
    k.run(k.mremap({ map: 'a', length: 3 * PAGE, to: 'far', as: 'a2', process: 'child' }));
    k.run(k.mremap({ map: 'a2', length: 3 * PAGE, to: 'carveout', toOffset: 4 * PAGE, as: 'a3', process: 'child' }));
    expect(vmaOf(k, 'b', 'child')).toEqual([0, 3]);
  });
});

describe('mremap() growing in place merges with the next VMA from v6.0 (ca3d76b0aa80)', () => {
  // mremap_test.c mremap_expand_merge: 3 pages, the middle unmapped, the first grown to 2 pages:
  // it touches the third, and from v6.0 vma_merge() of the extension makes [0, 3) one VMA
  for (const [version, pages] of [['v5.4', 2], ['v5.10', 2], ['v6.1', 3], ['latest', 3]] as const) {
    it(`mremap_expand_merge on ${version}: the VMA at start is ${pages} pages`, () => {
      const k = kernel(version);
      k.run(k.mmap({ anon: true, write: true, length: 3 * PAGE, as: 'start' }));
      k.run(k.munmap({ map: 'start', offset: PAGE, length: PAGE }));
      k.run(k.mremap({ map: 'start', length: PAGE, newLength: 2 * PAGE }));
      expect(vmaOf(k, 'start')).toEqual([0, pages]);
    });
  }
});

describe('mremap() of a range over several VMAs (remap_move(), v6.17)', () => {
  /** mremap_test.c mremap_move_multiple_vmas: 11 pages, pages 1, 3, 7, 9 unmapped; each kept page written. */
  function holes(k: Kernel): void {
    k.run(k.mmap({ anon: true, write: true, length: 11 * PAGE, as: 'ptr' }));
    for (const page of [1, 3, 7, 9]) k.run(k.munmap({ map: 'ptr', offset: page * PAGE, length: PAGE }));
    for (const page of [0, 2, 4, 5, 6, 8, 10]) k.run(k.write({ map: 'ptr', page, data: `p${page}` }));
    k.run(k.mmap({ anon: true, length: 22 * PAGE, as: 'tgt' }));
    k.run(k.munmap({ map: 'tgt' }));
  }

  it('is EFAULT before v6.17: the range is not inside one VMA (vma_to_resize / check_prep_vma)', () => {
    const k = kernel('v6.15');
    holes(k);
    expect(code(() => k.run(k.mremap({ map: 'ptr', length: 11 * PAGE, to: 'tgt', as: 'moved' })))).toBe('EFAULT');
    expect(k.run(k.read({ map: 'ptr', page: 4 }))).toBe('p4');
  });

  it('moves every VMA and keeps the gaps: the data reads the same at the new address, the old range is empty', () => {
    const k = kernel('latest');
    holes(k);
    k.run(k.mremap({ map: 'ptr', length: 11 * PAGE, to: 'tgt', as: 'moved' }));
    for (const page of [0, 2, 4, 5, 6, 8, 10]) expect(k.run(k.read({ map: 'moved', page }))).toBe(`p${page}`);
    // the gaps stay gaps (the first part goes to new_addr, each later one as far after the previous)
    expect([1, 3, 7, 9].map((page) => k.vmaPagesIn({ map: 'moved', page }))).toEqual([0, 0, 0, 0]);
    // the moved parts are each one VMA: their faulted anon_vma is the same, but the gaps divide them
    expect([0, 4, 10].map((page) => k.vmaPagesIn({ map: 'moved', page }))).toEqual([1, 3, 1]);
    expect(k.vmaPagesIn({ map: 'ptr', page: 4 })).toBe(0);
  });

  it('a sealed VMA stops the move (EPERM) where it is met: check_prep_vma() per VMA from v6.17', () => {
    const k = kernel('latest');
    holes(k);
    // ptr's VMAs: [0,1) [2,3) [4,7) [8,9) [10,11); seal the third: the first two move, then EPERM
    k.run(k.mseal({ map: 'ptr', offset: 4 * PAGE, length: 3 * PAGE }));
    expect(code(() => k.run(k.mremap({ map: 'ptr', length: 11 * PAGE, to: 'tgt', as: 'moved' })))).toBe('EPERM');
    expect([0, 2, 4].map((page) => k.vmaPagesIn({ map: 'tgt', page }))).toEqual([1, 1, 0]);
    expect(k.run(k.read({ map: 'tgt', page: 2 }))).toBe('p2');
    expect(k.run(k.read({ map: 'ptr', page: 4 }))).toBe('p4');
  });

  it('mremap_move_multi_invalid_vmas: a userfaultfd-armed VMA stops the move (EFAULT) where it is met', () => {
    const k = kernel('latest');
    k.run(k.uffdApi({}));
    k.run(k.mmap({ anon: true, write: true, length: 10 * PAGE, as: 'ptr' }));
    k.run(k.mmap({ anon: true, length: 10 * PAGE, as: 'tgt' }));
    k.run(k.munmap({ map: 'tgt' }));
    for (let page = 0; page < 10; page += 2) {
      k.run(k.uffdRegister({ map: 'ptr', mode: ['missing'], offset: page * PAGE, length: PAGE }));
      k.run(k.munmap({ map: 'ptr', offset: (page + 1) * PAGE, length: PAGE }));
    }
    // the first VMA is armed and more follow: EFAULT before anything moves
    expect(code(() => k.run(k.mremap({ map: 'ptr', length: 10 * PAGE, to: 'tgt', as: 'm1' })))).toBe('EFAULT');
    expect(k.vmaPagesIn({ map: 'tgt', page: 0 })).toBe(0);
    // the same VMA alone is an ordinary move
    k.run(k.mremap({ map: 'ptr', length: PAGE, to: 'tgt', as: 'm2' }));
    expect(k.vmaPagesIn({ map: 'tgt', page: 0 })).toBe(1);
    // a plain VMA first, armed ones after: the first moves, then EFAULT
    k.run(k.munmap({ map: 'tgt', length: PAGE }));
    k.run(k.mmap({ anon: true, write: true, length: PAGE, fixed: { map: 'ptr' }, as: 'p0' }));
    expect(code(() => k.run(k.mremap({ map: 'ptr', length: 10 * PAGE, to: 'tgt', as: 'm3' })))).toBe('EFAULT');
    expect([0, 2].map((page) => k.vmaPagesIn({ map: 'tgt', page }))).toEqual([1, 0]);
  });
});
