import { describe, expect, it } from 'vitest';
import { createKernel, PRESETS, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';
import { code, written } from './vm-helpers.js';

// NUMA page migration (mm/mempolicy.ts): mbind(MPOL_MF_MOVE[_ALL]), move_pages(), migrate_pages().
// Values are reasoned in each test from mm/mempolicy.c and mm/migrate.c (v5.18-era and v6.15+
// trees): what is queued, what migrate_pages() refuses, and what the new entry looks like.

const PAGE = 4096;
const MiB = 2 ** 20;
const RELEASES = PRESETS.map((p) => p.name);

function kernel(version = 'latest', nodes = 2): Kernel {
  const k = createKernel({ arch: testArch(), kernel: version });
  k.run(k.numaNodes({ nodes }));
  return k;
}

const node = (k: Kernel, map: string, page: number, process?: string) => k.nodeOf(k.pfnOf({ map, page, ...(process ? { process } : {}) })!);
const movePages = (k: Kernel, a: Parameters<Kernel['movePages']>[0]) => k.run(k.movePages(a));

describe('memory nodes', () => {
  it('one node by default: every RAM page is on node 0, and migration to node 1 is ENODEV', () => {
    const k = createKernel({ arch: testArch() });
    written(k, 'm', 1);
    expect(node(k, 'm', 0)).toBe(0);
    expect(code(() => movePages(k, { map: 'm', page: 0, node: 1 }))).toBe('ENODEV');
  });

  it('page_to_nid() is a property of the pfn: a page allocated on node 1 lies in node 1\'s range', () => {
    const k = kernel();
    const pfn = k.ram.allocAnon(1, 'x', 1)!;
    expect(k.nodeOf(pfn)).toBe(1);
    expect(pfn * PAGE).toBeGreaterThanOrEqual(2 ** 46);
  });
});

describe('mbind(MPOL_MF_MOVE)', () => {
  it('moves an exclusive anon page to the bound node: a new pfn, the data, refcount 1, mapcount 1, PTE bits kept', () => {
    for (const version of RELEASES) {
      const k = kernel(version);
      const [old] = written(k, 'm', 1);
      k.run(k.mbind({ map: 'm', policy: 'bind', nodes: [1], move: true }));
      const now = k.pfnOf({ map: 'm', page: 0 })!;
      expect({ version, moved: now !== old, node: k.nodeOf(now) }).toEqual({ version, moved: true, node: 1 });
      // remove_migration_pte(): one reference and one rmap for the one PTE; the allocation
      // reference was dropped by migrate_folio_move() and the old page freed
      expect([k.refcount(now), k.mapcount(now), k.ram.live.has(old!)]).toEqual([1, 1, false]);
      expect(k.isWritableIn({ map: 'm', page: 0 })).toBe(true);
      expect(k.run(k.read({ map: 'm', page: 0 }))).toBe('m0');
      // PageAnonExclusive survives (RMAP_EXCLUSIVE for a writable migration entry, v5.19+)
      if (k.features['wp-reuse'] === 'anon-exclusive') expect(k.anonExclusive(now)).toBe(true);
    }
  });

  it('MPOL_LOCAL with an empty nodemask migrates every page, even on one node (mkdirty.c relies on it)', () => {
    // do_mbind() passes the user's (empty) nodemask with MPOL_MF_INVERT: queue_folio_required() is
    // node_isset(nid, {}) == !INVERT -> false == false -> every folio is queued, and
    // alloc_migration_target_by_mpol() allocates on the local node: a new page on the same node
    const k = kernel('latest', 1);
    const [old] = written(k, 'm', 1);
    k.run(k.mbind({ map: 'm', policy: 'local', move: true }));
    const now = k.pfnOf({ map: 'm', page: 0 })!;
    expect(now).not.toBe(old);
    expect(k.nodeOf(now)).toBe(0);
  });

  it('a page already on an allowed node stays (bind {0,1}: nothing is misplaced)', () => {
    const k = kernel();
    const [old] = written(k, 'm', 1);
    k.run(k.mbind({ map: 'm', policy: 'bind', nodes: [0, 1], move: true }));
    expect(k.pfnOf({ map: 'm', page: 0 })).toBe(old);
  });

  it('without MOVE nothing migrates; MPOL_MF_STRICT alone is EIO for a misplaced page', () => {
    const k = kernel();
    const [old] = written(k, 'm', 1);
    k.run(k.mbind({ map: 'm', policy: 'bind', nodes: [1] }));
    expect(k.pfnOf({ map: 'm', page: 0 })).toBe(old);
    expect(code(() => k.run(k.mbind({ map: 'm', policy: 'bind', nodes: [1], strict: true })))).toBe('EIO');
  });

  it('a pinned page does not move: mbind() still returns 0, and EIO with MPOL_MF_STRICT; the pin keeps seeing the page', () => {
    for (const version of RELEASES) {
      const k = kernel(version);
      const [old] = written(k, 'm', 1);
      k.run(k.gup({ map: 'm', page: 0, write: true, longterm: true, as: 'dma' }, true));
      const rc = k.refcount(old!);
      k.run(k.mbind({ map: 'm', policy: 'bind', nodes: [1], move: true }));
      // v5.19+: try_to_migrate_one() refuses to unmap an exclusive, maybe-pinned page; before,
      // folio_migrate_mapping() finds rc != 1 and returns -EAGAIN until the retries run out, and
      // remove_migration_ptes(src, src) maps the same page back: either way nothing changed
      expect({ version, pfn: k.pfnOf({ map: 'm', page: 0 }), rc: k.refcount(old!), node: k.nodeOf(old!) }).toEqual({ version, pfn: old, rc, node: 0 });
      expect(code(() => k.run(k.mbind({ map: 'm', policy: 'bind', nodes: [1], move: true, strict: true })))).toBe('EIO');
    }
  });

  it('a page shared with a fork child stays without MOVE_ALL and moves (for both processes) with it', () => {
    const k = kernel();
    const [old] = written(k, 'm', 1);
    k.run(k.fork({ as: 'child' }));
    k.run(k.mbind({ map: 'm', policy: 'bind', nodes: [1], move: true }));
    // migrate_folio_add(): folio_maybe_mapped_shared() (mapcount 2) -> left alone, no failure
    expect(k.pfnOf({ map: 'm', page: 0 })).toBe(old);
    k.run(k.mbind({ map: 'm', policy: 'bind', nodes: [1], move: 'all', strict: true }));
    const now = k.pfnOf({ map: 'm', page: 0 })!;
    // the rmap walk moves every mapping: both processes map the new page, read-only (the COW state kept)
    expect([k.nodeOf(now), k.pfnOf({ map: 'm', page: 0, process: 'child' }), k.refcount(now), k.mapcount(now)]).toEqual([1, now, 2, 2]);
    expect(k.isWritableIn({ map: 'm', page: 0 })).toBe(false);
  });

  it('MOVE_ALL without CAP_SYS_NICE is EPERM (a process that dropped its capabilities)', () => {
    const k = kernel();
    written(k, 'm', 1);
    k.run(k.setrlimit({ memlock: 0 }));
    expect(code(() => k.run(k.mbind({ map: 'm', policy: 'bind', nodes: [1], move: 'all' })))).toBe('EPERM');
  });

  it('mpol_new() / mpol_set_nodemask() refusals: EINVAL', () => {
    const k = kernel();
    written(k, 'm', 1);
    expect(code(() => k.run(k.mbind({ map: 'm', policy: 'bind', move: true })))).toBe('EINVAL');
    expect(code(() => k.run(k.mbind({ map: 'm', policy: 'local', nodes: [0], move: true })))).toBe('EINVAL');
    // nodes & N_MEMORY is empty
    expect(code(() => k.run(k.mbind({ map: 'm', policy: 'bind', nodes: [5], move: true })))).toBe('EINVAL');
  });

  it('a hole in the range is EFAULT (queue_pages_test_walk)', () => {
    const k = kernel();
    written(k, 'm', 3);
    k.run(k.munmap({ map: 'm', offset: PAGE, length: PAGE }));
    expect(code(() => k.run(k.mbind({ map: 'm', policy: 'bind', nodes: [1], move: true })))).toBe('EFAULT');
  });

  it('the zero page is skipped: the PTE still maps it', () => {
    const k = kernel();
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'm' }));
    k.run(k.read({ map: 'm', page: 0 }));
    k.run(k.mbind({ map: 'm', policy: 'bind', nodes: [1], move: true }));
    expect(k.isZeroPfn(k.pfnOf({ map: 'm', page: 0 })!)).toBe(true);
  });

  it('MPOL_INTERLEAVE spreads misplaced pages by interleave index: {1,2} over four pages gives 1, 2, 1, 2', () => {
    // INVERT over {1,2} queues every page (all on node 0); interleave_nid(): an anon VMA's
    // vm_pgoff is vm_start >> PAGE_SHIFT, so page i's index is its virtual page number; the
    // model's mappings start PMD-aligned (an even page number): node = {1,2}[(start + i) % 2]
    const k = kernel('latest', 3);
    written(k, 'm', 4);
    expect(k.process(undefined).ranges.get('m')!.start % 2).toBe(0);
    k.run(k.mbind({ map: 'm', policy: 'interleave', nodes: [1, 2], move: true }));
    expect([0, 1, 2, 3].map((p) => node(k, 'm', p))).toEqual([1, 2, 1, 2]);
  });

  it('MPOL_INTERLEAVE over nodes that include the page\'s own node queues nothing', () => {
    const k = kernel();
    written(k, 'm', 2);
    k.run(k.mbind({ map: 'm', policy: 'interleave', nodes: [0, 1], move: true }));
    expect([node(k, 'm', 0), node(k, 'm', 1)]).toEqual([0, 0]);
  });

  it('a PMD-mapped THP migrates whole on x86 (thp_migration_supported()): a new PMD, dirty kept from v6.1', () => {
    for (const version of ['v5.10', 'latest']) {
      const k = kernel(version);
      k.run(k.mmap({ anon: true, length: 4 * MiB, write: true, as: 'mem' }));
      k.run(k.madvise({ map: 'mem', advice: 'hugepage', offset: 2 * MiB, length: 2 * MiB }));
      k.run(k.write({ map: 'mem', page: 512, data: 'T' }));
      const old = k.pfnOf({ map: 'mem', page: 512 })!;
      expect(k.vm.lookup(k.process(undefined), k.process(undefined).ranges.get('mem')!.start + 512)!.pte.level).toBe('pmd');
      k.run(k.mbind({ map: 'mem', offset: 2 * MiB, length: 2 * MiB, policy: 'bind', nodes: [1], move: true }));
      const mm = k.process(undefined);
      const leaf = k.vm.lookup(mm, mm.ranges.get('mem')!.start + 512)!;
      expect({ version, level: leaf.pte.level, node: k.nodeOf(leaf.pte.pfn), order: k.folios.order(leaf.pte.pfn), write: leaf.pte.write }).toEqual({ version, level: 'pmd', node: 1, order: 9, write: true });
      // remove_migration_pmd(): pmd_mkdirty only when the migration entry remembered it (v6.1+)
      expect(leaf.pte.dirty).toBe(version === 'latest');
      expect([k.refcount(leaf.pte.pfn), k.mapcount(leaf.pte.pfn), k.ram.live.has(old)]).toEqual([1, 1, false]);
      expect(k.run(k.read({ map: 'mem', page: 512 }))).toBe('T');
    }
  });
});

describe('move_pages()', () => {
  it('status per page: the node after moving, -ENOENT for nothing mapped, -EFAULT for the zero page', () => {
    const k = kernel();
    k.run(k.mmap({ anon: true, length: 3 * PAGE, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'a' }));
    k.run(k.read({ map: 'm', page: 2 }));
    const r = movePages(k, { map: 'm', page: 0, pages: 3, node: 1 });
    expect(r).toEqual({ status: [1, 'ENOENT', 'EFAULT'], notMigrated: 0 });
    expect(node(k, 'm', 0)).toBe(1);
    // nodes == NULL: do_pages_stat()
    expect(movePages(k, { map: 'm', page: 0, pages: 3 }).status).toEqual([1, 'ENOENT', 'EFAULT']);
  });

  it('a page already on the node reports the node; a shared one -EACCES without MOVE_ALL', () => {
    const k = kernel();
    written(k, 'm', 2);
    k.run(k.fork({ as: 'child' }));
    k.run(k.write({ map: 'm', page: 0, data: 'own' })); // COW: page 0 exclusive again, page 1 shared
    expect(movePages(k, { map: 'm', page: 0, pages: 2, node: 0 }).status).toEqual([0, 0]);
    expect(movePages(k, { map: 'm', page: 0, pages: 2, node: 1 }).status).toEqual([1, 'EACCES']);
    expect(movePages(k, { map: 'm', page: 1, node: 1, all: true }).status).toEqual([1]);
  });

  it('a pinned page: migrate_pages() fails it, the call returns the pages not migrated and leaves the status unwritten', () => {
    const k = kernel();
    written(k, 'm', 2);
    k.run(k.gup({ map: 'm', page: 0, as: 'ref' }, false));
    // both pages queued in one batch (same node); migrate_pages() moves page 1 and fails page 0:
    // err = 1 (folios failed) + nr_pages - i (i = 2 at the final flush) = 1; status untouched
    expect(movePages(k, { map: 'm', page: 0, pages: 2, node: 1 })).toEqual({ status: [null, null], notMigrated: 1 });
    expect([node(k, 'm', 0), node(k, 'm', 1)]).toEqual([0, 1]);
  });

  it('two pages of one THP in a call: the second is -EBUSY (the folio is isolated already), the THP moves whole', () => {
    const k = kernel();
    k.run(k.mmap({ anon: true, length: 4 * MiB, write: true, as: 'mem' }));
    k.run(k.madvise({ map: 'mem', advice: 'hugepage', offset: 2 * MiB, length: 2 * MiB }));
    k.run(k.write({ map: 'mem', page: 512, data: 'T' }));
    expect(movePages(k, { map: 'mem', page: 512, pages: 2, node: 1 }).status).toEqual([1, 'EBUSY']);
    expect(node(k, 'mem', 513)).toBe(1);
  });
});

describe('migrate_pages()', () => {
  it('moves every page of the process on node 0 to node 1, shared ones too with CAP_SYS_NICE (MOVE_ALL)', () => {
    const k = kernel();
    written(k, 'a', 2);
    written(k, 'b', 1);
    k.run(k.fork({ as: 'child' }));
    expect(k.run(k.migratePages({ from: [0], to: [1] }))).toBe(0);
    expect([node(k, 'a', 0), node(k, 'a', 1), node(k, 'b', 0), node(k, 'a', 0, 'child')]).toEqual([1, 1, 1, 1]);
  });

  it('returns the number of folios it could not move (a GUP reference)', () => {
    const k = kernel();
    written(k, 'a', 2);
    k.run(k.gup({ map: 'a', page: 1, as: 'ref' }, false));
    expect(k.run(k.migratePages({ from: [0], to: [1] }))).toBe(1);
    expect([node(k, 'a', 0), node(k, 'a', 1)]).toEqual([1, 0]);
  });
});

describe('mkdirty.c test_page_migration, release by release', () => {
  it('the migrated PTE of a read-only, dirty page: read-only in every release, dirty from v6.1, soft-dirty kept', () => {
    for (const version of RELEASES) {
      const k = kernel(version, 1);
      const [old] = written(k, 'mem', 1);
      k.run(k.mprotect({ map: 'mem', write: false }));
      const mm = k.process(undefined);
      const vpn = mm.ranges.get('mem')!.start;
      const before = { ...mm.ptes.get(vpn)! };
      k.run(k.mbind({ map: 'mem', policy: 'local', move: true }));
      const pte = mm.ptes.get(vpn)!;
      // remove_migration_pte(): mk_pte(new, vm_page_prot), the migration entry's soft-dirty, no
      // write (a readable migration entry), pte_mkdirty() only when the entry remembered dirty (v6.1+)
      expect({ version, moved: pte.pfn !== old, write: pte.write, dirty: pte.dirty, softDirty: pte.softDirty }).toEqual({
        version, moved: true, write: false, dirty: before.dirty && ['v6.1', 'v6.3', 'v6.6', 'v6.15', 'latest'].includes(version), softDirty: before.softDirty,
      });
      expect(code(() => k.run(k.write({ map: 'mem', page: 0, data: 'x' })))).toBe('SIGSEGV');
    }
  });
});

describe('the VMA policy mbind() sets, as faults use it', () => {
  it('a fault in a VMA bound to node 1 allocates there (vma_alloc_folio() -> get_vma_policy()); MPOL_DEFAULT puts it back to local', () => {
    const k = kernel();
    k.run(k.mmap({ anon: true, length: 4 * PAGE, write: true, as: 'm' }));
    k.run(k.mbind({ map: 'm', policy: 'bind', nodes: [1] }));
    k.run(k.write({ map: 'm', page: 0, data: 'a' }));
    expect(node(k, 'm', 0)).toBe(1);
    k.run(k.mbind({ map: 'm', policy: 'default' }));
    k.run(k.write({ map: 'm', page: 1, data: 'b' }));
    expect([node(k, 'm', 0), node(k, 'm', 1)]).toEqual([1, 0]);
  });

  it('mbind() of part of a VMA splits it (mbind_range): the policy covers only that part', () => {
    const k = kernel();
    k.run(k.mmap({ anon: true, length: 4 * PAGE, write: true, as: 'm' }));
    k.run(k.mbind({ map: 'm', offset: PAGE, length: 2 * PAGE, policy: 'preferred', nodes: [1] }));
    const mm = k.process(undefined);
    expect(mm.vmas.filter((v) => v.name === 'm').map((v) => [v.pages, v.policy?.mode ?? 'default'])).toEqual([[1, 'default'], [2, 'preferred'], [1, 'default']]);
    for (let p = 0; p < 4; p++) k.run(k.write({ map: 'm', page: p, data: `${p}` }));
    expect([0, 1, 2, 3].map((p) => node(k, 'm', p))).toEqual([0, 1, 1, 0]);
  });

  it('MPOL_INTERLEAVE faults alternate nodes by page index (interleave_nid(): vm_pgoff + offset)', () => {
    const k = kernel();
    k.run(k.mmap({ anon: true, length: 4 * PAGE, write: true, as: 'm' }));
    k.run(k.mbind({ map: 'm', policy: 'interleave', nodes: [0, 1] }));
    for (let p = 0; p < 4; p++) k.run(k.write({ map: 'm', page: p, data: `${p}` }));
    // the mapping starts on an even page (PMD-aligned placement): page i on node i % 2
    expect([0, 1, 2, 3].map((p) => node(k, 'm', p))).toEqual([0, 1, 0, 1]);
  });

  it('a THP faulted into a bound VMA is allocated on the bound node whole', () => {
    const k = kernel();
    k.run(k.mmap({ anon: true, length: 4 * MiB, write: true, as: 'mem' }));
    k.run(k.madvise({ map: 'mem', advice: 'hugepage', offset: 2 * MiB, length: 2 * MiB }));
    k.run(k.mbind({ map: 'mem', policy: 'bind', nodes: [1] }));
    k.run(k.write({ map: 'mem', page: 512, data: 'T' }));
    expect([node(k, 'mem', 512), node(k, 'mem', 1023), k.folios.order(k.pfnOf({ map: 'mem', page: 512 })!)]).toEqual([1, 1, 9]);
  });

  it('fork duplicates the policy (vma_dup_policy()): the child\'s COW copy comes from the bound node', () => {
    const k = kernel();
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'a' })); // node 0: no policy yet
    k.run(k.mbind({ map: 'm', policy: 'bind', nodes: [1] }));
    k.run(k.fork({ as: 'child' }));
    k.run(k.write({ map: 'm', page: 0, data: 'c', process: 'child' })); // wp_page_copy() in the child
    expect([node(k, 'm', 0), node(k, 'm', 0, 'child')]).toEqual([0, 1]);
  });
});

describe('KSM pages and migration', () => {
  it('a KSM page mapped three times stays without MOVE_ALL; with it, it moves whole and stays the KSM page (folio_migrate_ksm())', () => {
    const k = kernel();
    k.run(k.mmap({ anon: true, length: 3 * PAGE, write: true, as: 'm' }));
    for (let p = 0; p < 3; p++) k.run(k.write({ map: 'm', page: p, data: 'same' }));
    k.run(k.madvise({ map: 'm', advice: 'mergeable' }));
    k.run(k.ksmMerge({}));
    const kpage = k.pfnOf({ map: 'm', page: 0 })!;
    expect([k.ksm.isKsm(kpage), k.mapcount(kpage)]).toEqual([true, 3]);
    k.run(k.mbind({ map: 'm', policy: 'bind', nodes: [1], move: true }));
    expect(k.pfnOf({ map: 'm', page: 0 })).toBe(kpage);
    k.run(k.mbind({ map: 'm', policy: 'bind', nodes: [1], move: 'all' }));
    const now = k.pfnOf({ map: 'm', page: 0 })!;
    // the walk meets the small folio at three PTEs: the first isolates it, the next two find it off
    // the LRU already (folio_isolate_lru() fails: nr_failed, which only MPOL_MF_STRICT would report)
    expect([now !== kpage, k.nodeOf(now), k.ksm.isKsm(now), k.refcount(now), k.mapcount(now)]).toEqual([true, 1, true, 3, 3]);
    expect([1, 2].map((p) => k.pfnOf({ map: 'm', page: p }))).toEqual([now, now]);
    // unmerging breaks the KSM page the stable node now names: each PTE gets its own copy
    k.run(k.ksmUnmerge({}));
    expect(new Set([0, 1, 2].map((p) => k.pfnOf({ map: 'm', page: p }))).size).toBe(3);
    expect(k.run(k.read({ map: 'm', page: 2 }))).toBe('same');
  });
});

describe('hugetlb mappings', () => {
  it('x86-64 migrates hugetlb folios (hugepage_migration_supported()) to a free page of the bound node; without MOVE only the policy is set', () => {
    const k = kernel();
    // nr_hugepages 2 on two nodes: alloc_pool_huge_folio() alternates, one page on each
    k.run(k.hugetlbPool({ size: 2 * MiB, pages: 2 }));
    k.run(k.mmap({ anon: true, hugetlb: 2 * MiB, length: 2 * MiB, write: true, as: 'h' }));
    // the default (local) policy dequeues node 0's page
    k.run(k.write({ map: 'h', page: 0, data: 'H' }));
    k.run(k.mbind({ map: 'h', policy: 'bind', nodes: [1] }));
    expect(k.map('h').policy).toEqual({ mode: 'bind', nodes: [1] });
    expect(node(k, 'h', 0)).toBe(0);
    // MPOL_MF_MOVE: the folio (mapcount 1) is queued (queue_folios_hugetlb()) and its new folio is
    // node 1's free pool page (available_huge_pages() 1: the fault consumed the reservation); the old
    // one goes back to node 0's free list
    k.run(k.mbind({ map: 'h', policy: 'bind', nodes: [1], move: true }));
    expect([node(k, 'h', 0), node(k, 'h', 511)]).toEqual([1, 1]);
    expect(k.run(k.read({ map: 'h', page: 0 }))).toBe('H');
    expect([0, 1].map((n) => k.hugetlb.counters(2 * MiB, n))).toEqual([{ nr: 1, free: 1, resv: 0 }, { nr: 1, free: 0, resv: 0 }]);
    // split_vma() of a hugetlb VMA off a huge page boundary: hugetlb_vm_op_split() -> EINVAL
    expect(code(() => k.run(k.mbind({ map: 'h', length: PAGE, policy: 'preferred', nodes: [1] })))).toBe('EINVAL');
  });
});

describe('shmem shared policy', () => {
  it('mbind() of a memfd mapping sets the file\'s shared policy (shmem_set_policy()): page-cache pages come from it, whichever mapping faults them', () => {
    const k = kernel();
    k.run(k.memfdCreate({ file: 'f', size: 4 * PAGE }));
    k.run(k.mmap({ file: 'f', length: 4 * PAGE, shared: true, write: true, as: 'a' }));
    k.run(k.mmap({ file: 'f', length: 4 * PAGE, shared: true, write: true, as: 'b' }));
    k.run(k.mbind({ map: 'a', offset: 2 * PAGE, length: 2 * PAGE, policy: 'bind', nodes: [1] }));
    // file pages 2 and 3 are bound to node 1 for every mapping; 0 and 1 keep the task's default
    for (let p = 0; p < 4; p++) k.run(k.write({ map: 'b', page: p, data: `${p}` }));
    expect([0, 1, 2, 3].map((p) => k.nodeOf(k.pfnOf({ file: 'f', page: p })!))).toEqual([0, 0, 1, 1]);
    // MPOL_DEFAULT removes the range again
    k.run(k.mbind({ map: 'a', policy: 'default' }));
    expect(k.pageCache.named('f')!.sharedPolicy).toBeUndefined();
  });

  it('a disk file\'s page cache ignores the VMA policy (generic_file_vm_ops has no set_policy)', () => {
    const k = kernel();
    k.run(k.tmpfile({ file: 't', fs: 'ext4', size: PAGE }));
    k.run(k.mmap({ file: 't', length: PAGE, shared: true, write: true, as: 'm' }));
    k.run(k.mbind({ map: 'm', policy: 'bind', nodes: [1] }));
    k.run(k.write({ map: 'm', page: 0, data: 'x' }));
    expect(k.nodeOf(k.pfnOf({ file: 't', page: 0 })!)).toBe(0);
  });
});

describe('swap-cache folios', () => {
  it('a swapped-in page the swap cache still holds migrates: the cache\'s reference is expected, and the slot now caches the new folio', () => {
    for (const version of ['v6.15', 'latest']) {
      const k = kernel(version);
      written(k, 'm', 1);
      k.run(k.madvise({ map: 'm', advice: 'pageout' }));
      // the child shares the swap entry, so the parent's swap-in keeps the folio in the swap cache
      k.run(k.fork({ as: 'child' }));
      k.run(k.read({ map: 'm', page: 0 }));
      const cached = k.pfnOf({ map: 'm', page: 0 })!;
      // one reference for the PTE, one for the swap cache
      expect([k.swap.inSwapCache(cached), k.refcount(cached)]).toEqual([true, 2]);
      // folio_migrate_mapping(): expected = isolation + swap cache, which is what it has: it moves
      k.run(k.mbind({ map: 'm', policy: 'bind', nodes: [1], move: true, strict: true }));
      const now = k.pfnOf({ map: 'm', page: 0 })!;
      expect({ version, moved: now !== cached, node: k.nodeOf(now), cache: k.swap.inSwapCache(now), rc: k.refcount(now), oldFreed: !k.ram.live.has(cached) }).toEqual({ version, moved: true, node: 1, cache: true, rc: 2, oldFreed: true });
      // the child's swap-in finds the new folio in the swap cache (the data came along)
      expect(k.run(k.read({ map: 'm', page: 0, process: 'child' }))).toBe('m0');
      expect(k.pfnOf({ map: 'm', page: 0, process: 'child' })).toBe(now);
    }
  });
});

describe('set_mempolicy()', () => {
  it('the task policy places faults in VMAs without their own policy; an mbind() policy wins; fork copies it, MPOL_DEFAULT removes it', () => {
    const k = kernel('latest', 3);
    k.run(k.mmap({ anon: true, length: 2 * PAGE, write: true, as: 'a' }));
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'b' }));
    k.run(k.setMempolicy({ policy: 'preferred', nodes: [2] }));
    k.run(k.mbind({ map: 'b', policy: 'bind', nodes: [1] }));
    k.run(k.write({ map: 'a', page: 0, data: 'a0' }));
    k.run(k.write({ map: 'b', page: 0, data: 'b0' }));
    expect([node(k, 'a', 0), node(k, 'b', 0)]).toEqual([2, 1]);
    k.run(k.fork({ as: 'child' }));
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'c', process: 'child' }));
    k.run(k.write({ map: 'c', page: 0, data: 'c0', process: 'child' }));
    expect(node(k, 'c', 0, 'child')).toBe(2);
    k.run(k.setMempolicy({ policy: 'default' }));
    k.run(k.write({ map: 'a', page: 1, data: 'a1' }));
    expect(node(k, 'a', 1)).toBe(0);
  });

  it('mbind(MPOL_DEFAULT, MPOL_MF_MOVE) migrates to where the task policy allocates (do_mbind(): MPOL_DEFAULT becomes the task policy)', () => {
    const k = kernel();
    written(k, 'm', 1);
    k.run(k.setMempolicy({ policy: 'bind', nodes: [1] }));
    k.run(k.mbind({ map: 'm', policy: 'default', move: true }));
    // an empty nodemask under MPOL_MF_INVERT queues the page; the task policy puts it on node 1
    expect(node(k, 'm', 0)).toBe(1);
  });

  it('mpol_new() refusals are EINVAL as for mbind(); MPOL_PREFERRED_MANY is v5.15', () => {
    expect(code(() => { const o = kernel('v5.10'); o.run(o.setMempolicy({ policy: 'preferred-many', nodes: [1] })); })).toBe('EINVAL');
    const k = kernel();
    k.run(k.setMempolicy({ policy: 'preferred-many', nodes: [1] }));
    expect(code(() => k.run(k.setMempolicy({ policy: 'interleave' })))).toBe('EINVAL');
    expect(code(() => k.run(k.setMempolicy({ policy: 'default', nodes: [0] })))).toBe('EINVAL');
    expect(code(() => k.run(k.setMempolicy({ policy: 'bind', nodes: [7] })))).toBe('EINVAL');
  });
});

describe('move_pages() on v5.4', () => {
  it('a page already on the target node is left unwritten when nothing in its batch moves (fixed by e0153fc2c760, v5.6)', () => {
    // v5.4: add_page_for_migration() returns 0 for "already there" as for "queued", and the last
    // flush (out_flush) returns early on an empty list without store_status()
    const v54 = kernel('v5.4');
    written(v54, 'm', 2);
    expect(v54.run(v54.movePages({ map: 'm', page: 0, pages: 2, node: 0 })).status).toEqual([null, null]);
    // with a page to move in the same batch, the flush stores the node over the whole batch
    expect(v54.run(v54.movePages({ map: 'm', page: 0, pages: 2, node: [0, 1] })).status).toEqual([0, 1]);
    const v510 = kernel('v5.10');
    written(v510, 'm', 2);
    expect(v510.run(v510.movePages({ map: 'm', page: 0, pages: 2, node: 0 })).status).toEqual([0, 0]);
  });

  it('a failed batch returns its failures alone on v5.4, plus the pages not attempted from v5.6', () => {
    for (const [version, want] of [['v5.4', 1], ['v5.10', 2]] as const) {
      const k = kernel(version);
      written(k, 'm', 2);
      k.run(k.gup({ map: 'm', page: 0, as: 'ref' }, false));
      // page 0 (node 1) fails; the node changes at page 1, so its batch is flushed at i = 1:
      // v5.6+: 1 failure + nr_pages - i = 1 + 1 = 2; v5.4: 1
      expect({ version, r: k.run(k.movePages({ map: 'm', page: 0, pages: 2, node: [1, 0] })).notMigrated }).toEqual({ version, r: want });
    }
  });
});

describe('allocation failure on the target node', () => {
  it('a small page: migrate_pages() gives up with -ENOMEM; move_pages() fails with ENOMEM, mbind() still returns 0 (EIO with STRICT); nothing was unmapped', () => {
    const k = kernel();
    const [old] = written(k, 'm', 1);
    k.faultInject.arm('page-alloc');
    expect(code(() => k.run(k.movePages({ map: 'm', page: 0, node: 1 })))).toBe('ENOMEM');
    expect([k.pfnOf({ map: 'm', page: 0 }), k.refcount(old!), k.mapcount(old!)]).toEqual([old, 1, 1]);
    k.faultInject.arm('page-alloc');
    k.run(k.mbind({ map: 'm', policy: 'bind', nodes: [1], move: true }));
    k.faultInject.arm('page-alloc');
    expect(code(() => k.run(k.mbind({ map: 'm', policy: 'bind', nodes: [1], move: true, strict: true })))).toBe('EIO');
    expect(k.pfnOf({ map: 'm', page: 0 })).toBe(old);
  });

  /** A THP at pages 512..1023 of `mem`, page 512 written ('T') and the others zero-filled, moved to node 1 by move_pages() while the order-9 allocation fails. */
  function splitByMovePages(version: string): Kernel {
    const k = kernel(version);
    k.run(k.mmap({ anon: true, length: 4 * MiB, write: true, as: 'mem' }));
    k.run(k.madvise({ map: 'mem', advice: 'hugepage', offset: 2 * MiB, length: 2 * MiB }));
    k.run(k.write({ map: 'mem', page: 512, data: 'T' }));
    k.faultInject.arm('page-alloc'); // the order-9 allocation fails, the order-0 ones after it succeed
    expect(k.run(k.movePages({ map: 'mem', page: 512, node: 1 }))).toEqual({ status: [1], notMigrated: 0 });
    const mm = k.process(undefined);
    expect(k.vm.lookup(mm, mm.ranges.get('mem')!.start + 512)!.pte.level).toBe('pte');
    expect(k.run(k.read({ map: 'mem', page: 512 }))).toBe('T');
    return k;
  }

  it('a THP whose new THP cannot be allocated is split and its pages moved one by one (try_split_folio()), v6.6', () => {
    const k = splitByMovePages('v6.6');
    // every page of the split THP moved (the split put them all on the list), as order-0 folios under PTEs
    expect([node(k, 'mem', 512), node(k, 'mem', 1023), k.folios.order(k.pfnOf({ map: 'mem', page: 512 })!)]).toEqual([1, 1, 0]);
    expect(k.rssAnonIn({})).toBe(512 * 4);
  });

  it('from v6.12 that split maps the zero-filled pages to the shared zero page: only the written page moves', () => {
    const k = splitByMovePages('latest');
    // try_split_folio() -> split_folio_to_list() -> __split_huge_page() with RMP_USE_SHARED_ZEROPAGE
    // (b1f202060afe, v6.12): pages 513..1023 map the zero page and lose their mapping; each is on
    // the split list with the list's reference only, so migrate_folio_unmap() finds it "freed from
    // under us" (refcount 1) and frees it: nothing to move, and 'T' moved alone
    expect([node(k, 'mem', 512), k.folios.order(k.pfnOf({ map: 'mem', page: 512 })!)]).toEqual([1, 0]);
    expect([k.pfnOf({ map: 'mem', page: 513 }), k.pfnOf({ map: 'mem', page: 1023 })]).toEqual([k.zeroPfn, k.zeroPfn]);
    expect(k.rssAnonIn({})).toBe(4);
  });
});

describe('migrate_pages() node pairing (do_migrate_pages(), node_remap())', () => {
  it('[0,1] -> [1,2] moves node 1 to 2 first (its destination is not a source still to do), then 0 to 1: no page moves twice', () => {
    const k = kernel('latest', 3);
    written(k, 'a', 1);
    written(k, 'b', 1);
    k.run(k.mbind({ map: 'b', policy: 'bind', nodes: [1], move: true }));
    expect([node(k, 'a', 0), node(k, 'b', 0)]).toEqual([0, 1]);
    expect(k.run(k.migratePages({ from: [0, 1], to: [1, 2] }))).toBe(0);
    expect([node(k, 'a', 0), node(k, 'b', 0)]).toEqual([1, 2]);
  });

  it('[0,1,2] -> [1]: weights differ, so node 1 (also a destination) stays and 0 and 2 both go to 1', () => {
    const k = kernel('latest', 3);
    for (const [name, n] of [['a', 0], ['b', 1], ['c', 2]] as const) {
      written(k, name, 1);
      if (n > 0) k.run(k.mbind({ map: name, policy: 'bind', nodes: [n], move: true }));
    }
    const b = k.pfnOf({ map: 'b', page: 0 });
    k.run(k.migratePages({ from: [0, 1, 2], to: [1] }));
    expect(['a', 'b', 'c'].map((m) => node(k, m, 0))).toEqual([1, 1, 1]);
    // node 1's page was not migrated onto its own node: the same page
    expect(k.pfnOf({ map: 'b', page: 0 })).toBe(b);
  });
});
