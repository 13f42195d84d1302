import { describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '../src/index.js';
import type { Op } from '../src/sched.js';
import { testArch } from '../src/testing.js';
import { code } from './vm-helpers.js';

// hugetlb pools per node and the migration of hugetlb folios between nodes (mm/hugetlb.ts,
// mm/mempolicy.ts), on the x86-64-shaped test arch with two memory nodes. The values are reasoned
// in each test from mm/hugetlb.c (set_max_huge_pages(), alloc_pool_huge_folio(),
// remove_pool_hugetlb_folio(), adjust_pool_surplus(), dequeue_hugetlb_folio_nodemask(),
// alloc_hugetlb_folio_nodemask(), alloc_migrate_hugetlb_folio(), move_hugetlb_state(),
// free_huge_folio()) and mm/migrate.c (add_page_for_migration() / add_folio_for_migration(),
// do_move_pages_to_node(): __GFP_THISNODE).

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const HPAGE = 2 * MiB;

function kernel(version = 'latest', nodes = 2, features: Record<string, boolean> = {}): Kernel {
  const k = createKernel({ arch: testArch(), kernel: version, features });
  k.run(k.numaNodes({ nodes }));
  return k;
}

const pool = (k: Kernel, pages: number, node?: number, size = HPAGE) => k.run(k.hugetlbPool({ size, pages, ...(node === undefined ? {} : { node }) }));
/** [node 0, node 1] of nr_hugepages (nr) or free_hugepages (free) */
const perNode = (k: Kernel, what: 'nr' | 'free', size = HPAGE) => [0, 1].map((n) => k.hugetlb.counters(size, n)[what]);
const nodeAt = (k: Kernel, map: string, page: number, process?: string) => k.nodeOf(k.pfnOf({ map, page, ...(process ? { process } : {}) })!);
const hugeMap = (k: Kernel, as: string, a: { shared?: boolean; size?: number } = {}) => {
  const size = a.size ?? HPAGE;
  k.run(k.mmap({ anon: true, hugetlb: size, length: size, write: true, shared: a.shared ?? false, as }));
  k.run(k.write({ map: as, page: 0, data: `${as}0` }));
};

describe('per-node pools (/sys/devices/system/node/nodeN/hugepages)', () => {
  it('the global nr_hugepages spreads pages round-robin and frees them round-robin; a node file counts the other nodes in', () => {
    const k = kernel();
    // hstate_next_node_to_alloc() from the first memory node: 0, 1, 0
    pool(k, 3);
    expect(perNode(k, 'nr')).toEqual([2, 1]);
    expect(perNode(k, 'free')).toEqual([2, 1]);
    // 3 -> 2: remove_pool_hugetlb_folio() from next_nid_to_free, which starts at node 0
    pool(k, 2);
    expect(perNode(k, 'nr')).toEqual([1, 1]);
    // echo 3 > node1/.../nr_hugepages: count = 3 + persistent 2 - node 1's 1 = 4 global, so two
    // more pages, both on node 1 (nodes_allowed is node 1 alone)
    pool(k, 3, 1);
    expect(perNode(k, 'nr')).toEqual([1, 3]);
    expect(k.hugetlb.counters(HPAGE)).toEqual({ nr: 4, free: 4, resv: 0 });
    // echo 0 > node0/...: count = 0 + 4 - 1 = 3, so node 0's page leaves
    pool(k, 0, 0);
    expect(perNode(k, 'nr')).toEqual([0, 3]);
    // the pages lie in each node's own pfn range (page_to_nid() of a pool page)
    hugeMap(k, 'h');
    expect(nodeAt(k, 'h', 0)).toBe(1);
  });

  it('a node without memory has no hugepages directory: ENOENT', () => {
    const k = kernel();
    expect(code(() => pool(k, 1, 2))).toBe('ENOENT');
    expect(code(() => k.hugetlb.counters(HPAGE, 5))).toBe('ENOENT');
  });

  it('surplus pages stay with their node: a node file counts persistent pages from v6.6 (before: nr_hugepages, so surplus pages were counted twice)', () => {
    // node 0 gets two pages, both in use, then node 0's file is set to 0: min_count keeps them,
    // and adjust_pool_surplus(1) makes both surplus on node 0 (persistent 0)
    const run = (version: string) => {
      const k = kernel(version);
      pool(k, 2, 0);
      hugeMap(k, 'a');
      hugeMap(k, 'b');
      pool(k, 0, 0);
      expect(k.hugetlb.surplus(HPAGE, 0)).toBe(2);
      expect(k.hugetlb.counters(HPAGE)).toMatchObject({ nr: 2, free: 0 });
      // echo 1 > node1/...: v6.6+ count = 1 + persistent 0 - (node 1's 0 - 0) = 1, one page;
      // before, count = 1 + nr 2 - node 1's 0 = 3, and node 1 has no surplus to take back: three
      pool(k, 1, 1);
      return perNode(k, 'nr');
    };
    expect(run('latest')).toEqual([2, 1]);
    expect(run('v6.1')).toEqual([2, 3]);
  });

  it('a freed page of a node with surplus pages leaves the pool (free_huge_folio(): surplus_huge_pages_node[nid])', () => {
    const k = kernel();
    pool(k, 1, 0);
    hugeMap(k, 'a');
    pool(k, 0);
    expect([k.hugetlb.surplus(HPAGE, 0), k.hugetlb.surplus(HPAGE, 1)]).toEqual([1, 0]);
    k.run(k.munmap({ map: 'a' }));
    expect(perNode(k, 'nr')).toEqual([0, 0]);
    expect(k.hugetlb.surplus(HPAGE)).toBe(0);
  });
});

describe('faults dequeue from the policy\'s node (dequeue_hugetlb_folio_vma())', () => {
  it('the default policy takes the local node first, then falls back; MPOL_PREFERRED takes its node; MPOL_BIND without a free page there is SIGBUS', () => {
    const k = kernel();
    pool(k, 2); // one page on each node
    // local (node 0) first
    hugeMap(k, 'a');
    expect(nodeAt(k, 'a', 0)).toBe(0);
    k.run(k.munmap({ map: 'a' }));
    // MPOL_PREFERRED node 1 before the fault
    k.run(k.mmap({ anon: true, hugetlb: HPAGE, length: HPAGE, write: true, as: 'p' }));
    k.run(k.mbind({ map: 'p', policy: 'preferred', nodes: [1] }));
    k.run(k.write({ map: 'p', page: 0, data: 'p' }));
    expect(nodeAt(k, 'p', 0)).toBe(1);
    // node 1 has no free page now: MPOL_BIND [1] finds none (the reservation is global, the
    // dequeue per node), and with nr_overcommit_hugepages 0 no surplus page either: -ENOSPC -> SIGBUS
    k.run(k.mmap({ anon: true, hugetlb: HPAGE, length: HPAGE, write: true, as: 'b' }));
    k.run(k.mbind({ map: 'b', policy: 'bind', nodes: [1] }));
    expect(code(() => k.run(k.write({ map: 'b', page: 0, data: 'b' })))).toBe('SIGBUS');
    // the local policy falls back to node 0's page... which is the one left
    k.run(k.mbind({ map: 'b', policy: 'default' }));
    k.run(k.write({ map: 'b', page: 0, data: 'b' }));
    expect(nodeAt(k, 'b', 0)).toBe(0);
  });
});

describe('move_pages() of hugetlb folios', () => {
  it('a free page of the target node is used when one is free and unreserved; the old page returns to its node\'s free list', () => {
    const k = kernel();
    pool(k, 2);
    hugeMap(k, 'h');
    const old = k.pfnOf({ map: 'h', page: 0 })!;
    const r = k.run(k.movePages({ map: 'h', page: 0, node: 1, all: true }));
    expect(r).toEqual({ status: [1], notMigrated: 0 });
    expect(nodeAt(k, 'h', 511)).toBe(1);
    expect(k.pfnOf({ map: 'h', page: 0 })).not.toBe(old);
    expect(k.run(k.read({ map: 'h', page: 0 }))).toBe('h0');
    // no temporary page: the pool has its 2 pages, node 0's free again
    expect(perNode(k, 'nr')).toEqual([1, 1]);
    expect(perNode(k, 'free')).toEqual([1, 0]);
    expect([k.refcount(k.pfnOf({ map: 'h', page: 0 })!), k.mapcount(k.pfnOf({ map: 'h', page: 0 })!)]).toEqual([1, 1]);
  });

  it('with no free page a temporary one comes from the target node and takes the old page\'s place in the pool (move_hugetlb_state())', () => {
    const k = kernel();
    pool(k, 1);
    hugeMap(k, 'h');
    expect(perNode(k, 'nr')).toEqual([1, 0]);
    expect(k.run(k.movePages({ map: 'h', page: 0, node: 1, all: true }))).toEqual({ status: [1], notMigrated: 0 });
    // nr_hugepages counted the temporary page while both lived (2) and lost the old one: 1, now on node 1
    expect(perNode(k, 'nr')).toEqual([0, 1]);
    expect(k.hugetlb.counters(HPAGE)).toEqual({ nr: 1, free: 0, resv: 0 });
    // unmapped, it goes back to the pool as a persistent page (the temporary state moved to the old one)
    k.run(k.munmap({ map: 'h' }));
    expect(perNode(k, 'free')).toEqual([0, 1]);
  });

  it('a gigantic (1 GiB) page has no temporary page: with none free on the target node move_pages() fails with ENOMEM; with one, it moves', () => {
    const k = kernel();
    pool(k, 1, 0, GiB);
    hugeMap(k, 'g', { size: GiB });
    // alloc_migrate_hugetlb_folio(): "if (hstate_is_gigantic(h)) return NULL" -> -ENOMEM ends the call
    expect(code(() => k.run(k.movePages({ map: 'g', page: 0, node: 1, all: true })))).toBe('ENOMEM');
    expect(nodeAt(k, 'g', 0)).toBe(0);
    expect(k.refcount(k.pfnOf({ map: 'g', page: 0 })!)).toBe(1);
    pool(k, 1, 1, GiB);
    expect(k.run(k.movePages({ map: 'g', page: 0, node: 1, all: true }))).toEqual({ status: [1], notMigrated: 0 });
    expect(nodeAt(k, 'g', 262143)).toBe(1);
    expect(perNode(k, 'free', GiB)).toEqual([1, 0]);
  });

  it('a page inside the folio but its head is -EACCES until v6.7 (the PageHead() check), then the folio moves', () => {
    const tail = (version: string) => {
      const k = kernel(version);
      pool(k, 2);
      hugeMap(k, 'h');
      return k.run(k.movePages({ map: 'h', page: 5, node: 1, all: true }));
    };
    expect(tail('v6.6')).toEqual({ status: ['EACCES'], notMigrated: 0 });
    expect(tail('v6.15')).toEqual({ status: [1], notMigrated: 0 });
  });

  it('a shared folio mapped by two processes is -EACCES without MOVE_ALL (page_mapcount() of a hugetlb page counts its mappings)', () => {
    const k = kernel();
    pool(k, 2);
    hugeMap(k, 's', { shared: true });
    k.run(k.fork({ as: 'c' }));
    expect(k.run(k.read({ map: 's', page: 0, process: 'c' }))).toBe('s0');
    expect(k.run(k.movePages({ map: 's', page: 0, node: 1 }))).toEqual({ status: ['EACCES'], notMigrated: 0 });
    expect(k.run(k.movePages({ map: 's', page: 0, node: 1, all: true }))).toEqual({ status: [1], notMigrated: 0 });
    expect([nodeAt(k, 's', 0), nodeAt(k, 's', 0, 'c')]).toEqual([1, 1]);
    // the page cache's reference and one per mapping
    expect(k.refcount(k.pfnOf({ map: 's', page: 0 })!)).toBe(3);
  });

  it('with HVO the temporary page is optimised as it is made, and the old one restored as it leaves: one optimised page before and after', () => {
    const k = kernel('latest', 2, { 'hugetlb-free-vmemmap': true });
    pool(k, 1);
    hugeMap(k, 'h');
    expect(k.hugetlb.vmemmap(HPAGE)).toMatchObject({ optimized: 1, vmemmapPages: 1, savedPages: 7, pteTablePages: 1 });
    k.run(k.movePages({ map: 'h', page: 0, node: 1, all: true }));
    // node 1's page lies in another section: a second vmemmap PMD was split (never merged back)
    expect(k.hugetlb.vmemmap(HPAGE)).toMatchObject({ optimized: 1, vmemmapPages: 1, savedPages: 7, pteTablePages: 2 });
  });
});

describe('a second move_pages() of a hugetlb folio under migration', () => {
  /** run `op` until it yields the preemption point `point` */
  const stepTo = (op: Op<unknown>, point: string): void => {
    for (let r = op.next(); !r.done; r = op.next()) if (r.value.kind === 'preempt' && r.value.point === point) return;
    throw new Error(`the operation ended before '${point}'`);
  };
  const finish = <T>(op: Op<T>): T => {
    for (;;) {
      const r = op.next();
      if (r.done) return r.value;
    }
  };

  it('isolate_hugetlb() fails for the isolated folio: -EBUSY from v6.0; before, the failure was ignored (err = 1): "queued", its status never written, return 0', () => {
    const second = (version: string) => {
      const k = kernel(version);
      pool(k, 2);
      hugeMap(k, 'h');
      const first = k.movePages({ map: 'h', page: 0, node: 1, all: true });
      // the first call holds the folio isolated and is about to unmap it
      stepTo(first, 'migrate_pages: cond_resched');
      const r = k.run(k.movePages({ map: 'h', page: 0, node: 1, all: true }));
      // the first call moves it all the same
      return { second: r, first: finish(first), node: nodeAt(k, 'h', 0) };
    };
    expect(second('v6.1')).toEqual({ second: { status: ['EBUSY'], notMigrated: 0 }, first: { status: [1], notMigrated: 0 }, node: 1 });
    expect(second('v5.10')).toEqual({ second: { status: [null], notMigrated: 0 }, first: { status: [1], notMigrated: 0 }, node: 1 });
  });
});

describe('migrate_pages(2) of hugetlb folios', () => {
  it('migrate_to_node() queues the folios on the source node (MOVE_ALL with CAP_SYS_NICE) and moves them to the destination\'s own pool (__GFP_THISNODE)', () => {
    const k = kernel();
    pool(k, 2);
    hugeMap(k, 'h');
    // do_migrate_pages() returns the folios not moved: none
    expect(k.run(k.migratePages({ from: [0], to: [1] }))).toBe(0);
    expect(nodeAt(k, 'h', 0)).toBe(1);
    expect(perNode(k, 'free')).toEqual([1, 0]);
  });
});

describe('mbind() of hugetlb folios (queue_folios_hugetlb())', () => {
  it('MPOL_MF_MOVE leaves a shared folio alone, which is no failure even with MPOL_MF_STRICT; MOVE_ALL moves it', () => {
    const k = kernel();
    pool(k, 2);
    hugeMap(k, 's', { shared: true });
    k.run(k.fork({ as: 'c' }));
    k.run(k.read({ map: 's', page: 0, process: 'c' }));
    k.run(k.mbind({ map: 's', policy: 'bind', nodes: [1], move: true, strict: true }));
    expect(nodeAt(k, 's', 0)).toBe(0);
    k.run(k.mbind({ map: 's', policy: 'bind', nodes: [1], move: 'all', strict: true }));
    expect([nodeAt(k, 's', 0), nodeAt(k, 's', 0, 'c')]).toEqual([1, 1]);
  });

});
