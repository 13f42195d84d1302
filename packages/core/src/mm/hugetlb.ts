import type { Kernel } from '../kernel.js';
import { KernelError, type Errno } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import { preempt, waitUntil, type Op } from '../sched.js';
import { hugetlbVmemmapFigures, type HugetlbVmemmapFigures } from '../vmemmap/hugetlb.js';
import type { HugetlbFile, HugetlbVma, Hstate, Mm, PageCacheFile, Vma } from '../types.js';
import type { Vmf } from './fault.js';
import { anonMappingOf, mappingOf, PG, type PageInit } from './pages.js';
import { isWpMarker, poisonedMarker } from './guard.js';
import { Ram } from './ram.js';
import { copyMigrationEntry, migrationEntryWait } from './migrate.js';
import { entryStillRead, origPte, pteSame, type Leaf } from './vm.js';

/** One hstate's pool (struct hstate): nr_hugepages, free_huge_pages, resv_huge_pages, and its free list. */
interface Pool {
  nr: number;
  free: number;
  resv: number;
  /** surplus_huge_pages: pages counted in nr beyond the persistent pool (nr_hugepages set below the pages in use or reserved, or a failed vmemmap restore) */
  surplus: number;
  /** surplus_huge_pages_node[]: the surplus pages per memory node (their sum is `surplus`) */
  readonly surplusNode: Map<number, number>;
  /** h->next_nid_to_alloc / h->next_nid_to_free: where the round-robin over nodes_allowed resumes (first_memory_node at boot) */
  nextAlloc: number;
  nextFree: number;
  /** hugepage_freelists: the head pfns of the free huge pages */
  readonly freeList: number[];
  /** head pfns of the pool's pages (free or in use) whose vmemmap HVO optimised (folio_test_hugetlb_vmemmap_optimized) */
  readonly optimized: Set<number>;
}

/** The vmemmap a hugetlb pool's pages use (all of them, free and in use) and what HVO freed. */
export interface HugetlbPoolVmemmap {
  /** vmemmap pages one page of this size has unoptimised (hugetlb_vmemmap_size() / PAGE_SIZE) */
  readonly perPage: number;
  /** pages whose vmemmap is optimised */
  readonly optimized: number;
  /** vmemmap pages the pool's pages use now */
  readonly vmemmapPages: number;
  readonly vmemmapBytes: number;
  /** vmemmap pages HVO freed for them */
  readonly savedPages: number;
  /** surplus_huge_pages (a page whose vmemmap could not be restored stays as one) */
  readonly surplus: number;
  /**
   * PTE-table pages HVO allocated to split PMD-mapped vmemmap (vmemmap_split_pmd()), for pages of
   * every size: they stay when the pages leave, and are not counted in vmemmapPages
   */
  readonly pteTablePages: number;
}

/**
 * Where pool pages come from: physical memory below the device ranges (which start at 64 GiB,
 * mm/memremap.ts), taken top-down so that it never meets core's RAM allocator growing up from
 * 4 GiB (mm/ram.ts) in any run the model can hold. Node n > 0 takes its pages the same way below
 * n * Ram.NODE_STRIDE + 64 GiB, inside its own pfn range, so page_to_nid() of a pool page is its
 * node's (the per-node pools of mm/hugetlb.c: hugepage_freelists[nid]).
 */
const POOL_TOP = 64 * 2 ** 30;

/**
 * hugetlb (mm/hugetlb.c, fs/hugetlbfs/inode.c): huge pages from a per-size pool, mapped whole by
 * one huge leaf. Every hugetlb VMA is a file VMA on a hugetlbfs inode — a memfd made with
 * MFD_HUGETLB, or for MAP_HUGETLB|MAP_ANONYMOUS the unnamed "anon_hugepage" file
 * ksys_mmap_pgoff() sets up with hugetlb_file_setup() — so the model keeps them in the shmem
 * registry (VMA kind 'pagecache', `Vma.hugetlb` / `PageCacheFile.hugetlb` set) and dispatches every fault,
 * fork copy and unshare here first, as handle_mm_fault() (is_vm_hugetlb_page -> hugetlb_fault)
 * and copy_page_range() (-> copy_hugetlb_page_range) do. A private mapping's pages are anon
 * folios (hugetlb_add_new_anon_rmap), a shared mapping's live in the inode's page cache.
 *
 * A size equal to the arch's PMD_SIZE is mapped by a PMD leaf, one equal to its PUD size by a PUD
 * leaf; the other sizes arches offer (arm64 cont-PTE/cont-PMD, ppc64 hugepd) are refused as not
 * modelled. The pool starts empty, as a booted kernel's does: `hugetlb-pool` sets nr_hugepages.
 *
 * HVO (vmemmap/hugetlb.ts): with `hugetlb-free-vmemmap` on and where the arch and release have
 * it, a page joining the pool has its tail vmemmap pages freed (hugetlb_vmemmap_optimize_folios()
 * on the new folios, before they reach the free list) and a page leaving it gets them back
 * (hugetlb_vmemmap_restore_folios() in update_and_free_pages_bulk()); a restore that cannot
 * allocate (fault site `hugetlb-vmemmap-restore`) puts the page back as a surplus page, and the
 * next folio freed while the pool has surplus pages leaves the pool (free_huge_folio()).
 *
 * Not modelled: surplus pages from overcommit (nr_overcommit_hugepages), subpools and the
 * hugetlbfs mount's size limits, unmap_ref_private() (the owner's COW that steals
 * the page from its children when the pool is empty), the ENOMEM of the PTE table HVO allocates
 * to split a PMD-mapped vmemmap (the tables themselves are counted: pteTablePages), HVO of
 * boot-time (gigantic) pool pages, memory_failure() of hugetlb pages, pool pages on kmem nodes,
 * PMD sharing. The pools are per node (setPool(), counters(), alloc()): mbind(), move_pages() and
 * soft offline migrate hugetlb folios between them (mm/mempolicy.ts, allocMigrationTarget()).
 */
export class Hugetlb {
  private readonly pools = new Map<number, Pool>();
  /** huge folios in use, head pfn -> pages: their tails are materialised lazily (initialPage) */
  private readonly inUse = new Map<number, number>();
  /**
   * folios with HPageTemporary (folio_test_hugetlb_temporary): a migration target allocated fresh
   * while the pool had no free page, or, after move_hugetlb_state(), the source it replaced; not
   * counted in the pool, and freed to the buddy allocator by their last put
   */
  private readonly temporary = new Set<number>();
  /**
   * VMAs whose hugetlb VMA lock a zap_page_range_single() holds for write, from hugetlb_zap_begin()
   * to hugetlb_zap_end() after tlb_finish_mmu() (v6.6: see zapSingle())
   */
  private readonly zapLocked = new Set<Vma>();
  /** folios with HPageRestoreReserve set by a zap (see zap()): their freeing gives a reservation back */
  private readonly restoreReserve = new Set<number>();
  /** per node, the lowest pfn pool pages were taken from so far */
  private readonly bottoms = new Map<number, number>();
  /** vm.hugetlb_optimize_vmemmap as last written (null: never, the boot value stands) */
  private optimizeVmemmap: boolean | null = null;
  /** vmemmap PMDs HVO split into PTE tables (their index in vmemmap VA), for every pool: never merged back */
  private readonly splitPmds = new Set<number>();

  constructor(private readonly k: Kernel) {}

  /**
   * size_to_hstate(): the hstate of a huge page size in bytes. A size the arch does not offer
   * (arch_hugetlb_valid_size(): x86-64 PMD_SIZE and, with GBPAGES, PUD_SIZE; s390 1 MiB with EDAT1
   * and 2 GiB with EDAT2; arm64 CONT_PTE, PMD, CONT_PMD and PUD sizes; ppc64 hash 16 MiB and 16 GiB)
   * is EINVAL, as mmap(MAP_HUGETLB | size << MAP_HUGE_SHIFT) and memfd_create(MFD_HUGETLB) say.
   */
  hstate(size: number): Hstate {
    const k = this.k;
    const sizes = k.mmu.hugetlbSizes ?? [];
    const mib = (b: number) => `${b / 2 ** 20} MiB`;
    if (!sizes.includes(size)) {
      throw new KernelError('EINVAL', `no hugetlb page size of ${mib(size)} on ${k.mmu.arch} with ${k.mmu.basePageSize / 1024} KiB pages (offered: ${sizes.map(mib).join(', ') || 'none'})`);
    }
    const pages = size / k.mmu.basePageSize;
    if (size === k.mmu.pmdSize) return { pages, level: 'pmd' };
    if (k.mmu.pudSize !== null && size === k.mmu.pudSize) return { pages, level: 'pud' };
    throw KernelError.unsupported('EINVAL', `hugetlb pages of ${mib(size)} on ${k.mmu.arch} are mapped by contiguous entries or a hugepd, not by one PMD/PUD leaf: not modelled`);
  }

  /**
   * hstate_sizelog() for MAP_HUGETLB, SHM_HUGETLB and MFD_HUGETLB: 'default' (page_size_log 0)
   * is default_hstate, HPAGE_SIZE without default_hugepagesz= (the arch's defaultHugetlbSize,
   * else its PMD size); a size is size_to_hstate()'s, checked by hstate().
   */
  pageSize(size: number | 'default'): number {
    return size === 'default' ? (this.k.mmu.defaultHugetlbSize ?? this.k.mmu.pmdSize) : size;
  }

  private pool(h: Hstate): Pool {
    let p = this.pools.get(h.pages);
    if (!p) this.pools.set(h.pages, (p = { nr: 0, free: 0, resv: 0, surplus: 0, surplusNode: new Map(), nextAlloc: 0, nextFree: 0, freeList: [], optimized: new Set() }));
    return p;
  }

  /** The pfn where node `node`'s pool pages start below (exclusive). */
  private poolTop(node: number): number {
    return (node * Ram.NODE_STRIDE + POOL_TOP) / this.k.mmu.basePageSize;
  }

  /** A naturally aligned physical range of `nr` pages on `node` for a new huge page (alloc_buddy_hugetlb_folio(.., __GFP_THISNODE)), no struct page touched. */
  private takePages(node: number, nr: number): number {
    const head = Math.floor(((this.bottoms.get(node) ?? this.poolTop(node)) - nr) / nr) * nr;
    this.bottoms.set(node, head);
    return head;
  }

  /** The nodes a pool can have pages on: the boot RAM nodes (node_states[N_MEMORY] but kmem's). */
  private poolNodes(): number[] {
    return Array.from({ length: this.k.numa.nodes }, (_, n) => n);
  }

  private nodeOf(pfn: number): number {
    return this.k.ram.nodeOf(pfn);
  }

  /** surplus_huge_pages(_node[node]) += delta */
  private addSurplus(p: Pool, node: number, delta: number): void {
    p.surplus += delta;
    p.surplusNode.set(node, (p.surplusNode.get(node) ?? 0) + delta);
  }

  /** nr_huge_pages_node[node]: the pool's pages on the node, free, in use and temporary. */
  private nrNode(h: Hstate, node: number): number {
    const p = this.pool(h);
    let n = p.freeList.filter((pfn) => this.nodeOf(pfn) === node).length;
    for (const [head, nr] of this.inUse) if (nr === h.pages && this.nodeOf(head) === node) n++;
    return n;
  }

  /**
   * hstate_next_node_to_alloc() / hstate_next_node_to_free() as for_each_node_mask_to_alloc/free
   * use them: from the saved node on (get_valid_node_allowed(): the next allowed one), advancing
   * the saved node every time whether or not the node serves (next_node_allowed(), wrapping);
   * the first node `ok` accepts, or null after nodes_weight() tries.
   */
  private nextNode(p: Pool, which: 'nextAlloc' | 'nextFree', allowed: readonly number[], ok: (node: number) => boolean): number | null {
    const after = (n: number): number => allowed.find((m) => m > n) ?? allowed[0]!;
    for (let i = 0; i < allowed.length; i++) {
      const nid = allowed.includes(p[which]) ? p[which] : after(p[which]);
      p[which] = after(nid);
      if (ok(nid)) return nid;
    }
    return null;
  }

  /**
   * dequeue_hugetlb_folio_nodemask(): the first node of the zonelist order `nodes` whose free list
   * has a page (dequeue_hugetlb_folio_node_exact(): the list's head, the page freed last); removed
   * from the free list. Null when none has.
   */
  private dequeue(p: Pool, nodes: readonly number[]): number | null {
    for (const node of nodes) {
      for (let i = p.freeList.length - 1; i >= 0; i--) {
        if (this.nodeOf(p.freeList[i]!) !== node) continue;
        return p.freeList.splice(i, 1)[0]!;
      }
    }
    return null;
  }

  /** The zonelist order of an allocation on `node` that may fall back: the node, then the others (all remote nodes equally far: the lowest first). */
  private fallbackOrder(node: number): number[] {
    return [node, ...this.poolNodes().filter((n) => n !== node)];
  }

  /**
   * What HVO does to one page of this hstate on this arch and release, with vmemmap_optimize_enabled
   * as it is now: the sysctl's last value, else hugetlb_free_vmemmap= (the feature).
   */
  private hvo(h: Hstate): HugetlbVmemmapFigures {
    const k = this.k;
    const enabled = this.optimizeVmemmap ?? k.features['hugetlb-free-vmemmap'];
    return hugetlbVmemmapFigures(k.mmu, k.populator.hugetlbVmemmapOptIn, { hugetlbSize: h.pages * k.mmu.basePageSize, version: k.version, enabled });
  }

  /**
   * echo 0|1 > /proc/sys/vm/hugetlb_optimize_vmemmap ("mm: hugetlb_vmemmap: add
   * hugetlb_optimize_vmemmap sysctl", v5.19 [M]): vmemmap_optimize_enabled for the pages that join
   * a pool from now on. Pages already in a pool keep what they have: the decision is taken when a
   * folio is prepared (vmemmap_should_optimize_folio()), and a restore looks at the folio's own
   * flag. The file exists only where HVO can optimise some huge page size (hugetlb_vmemmap_init()
   * registers it when an hstate is hugetlb_vmemmap_optimizable(); in v5.19 when struct page is a
   * power of two and memmap_on_memory is off): ENOENT before v5.19 and on other arches.
   */
  setOptimizeVmemmap(on: boolean): void {
    const k = this.k;
    const path = '/proc/sys/vm/hugetlb_optimize_vmemmap';
    if (!kernelAtLeast(k.version, 5, 19)) throw new KernelError('ENOENT', `${path} does not exist before v5.19: HVO is chosen at boot (hugetlb_free_vmemmap=, the feature hugetlb-free-vmemmap)`);
    const sizes = k.mmu.hugetlbSizes ?? [];
    const any = sizes.map((size) => hugetlbVmemmapFigures(k.mmu, k.populator.hugetlbVmemmapOptIn, { hugetlbSize: size, version: k.version, enabled: true })).find((f) => f.optimizable);
    if (!any) {
      const why = sizes.length ? hugetlbVmemmapFigures(k.mmu, k.populator.hugetlbVmemmapOptIn, { hugetlbSize: sizes[0]!, version: k.version, enabled: true }).refusal : 'no hugetlb sizes';
      throw new KernelError('ENOENT', `${path} does not exist on ${k.mmu.arch} in ${k.version}: HVO can optimise no huge page size here (${why})`);
    }
    this.optimizeVmemmap = on;
  }

  /** The vmemmap of the pool of huge pages of `size`: what its pages use and what HVO saved. */
  vmemmap(size: number): HugetlbPoolVmemmap {
    const h = this.hstate(size);
    const p = this.pool(h);
    const f = this.hvo(h);
    const savedPages = p.optimized.size * f.freeablePages;
    const vmemmapPages = p.nr * f.vmemmapPages - savedPages;
    return { perPage: f.vmemmapPages, optimized: p.optimized.size, vmemmapPages, vmemmapBytes: vmemmapPages * this.k.mmu.basePageSize, savedPages, surplus: p.surplus, pteTablePages: this.splitPmds.size };
  }

  /**
   * hugetlb_vmemmap_split_folio() before the remap: each PMD leaf still mapping part of the page's
   * vmemmap [head, head + nr) struct pages (the reserved page included) becomes a PTE table
   * (vmemmap_split_pmd(): pte_alloc_one_kernel()). Free when the memmap is PTE-mapped.
   */
  private splitVmemmapPmds(head: number, nr: number): void {
    const k = this.k;
    if (!k.populator.vmemmapPmdMapped?.(k.mmu, k.version)) return;
    const sps = k.mmu.structPageSize;
    const perPmd = k.mmu.pmdSize; // bytes of vmemmap one PMD leaf maps
    for (let i = Math.floor((head * sps) / perPmd); i <= Math.floor(((head + nr) * sps - 1) / perPmd); i++) this.splitPmds.add(i);
  }

  private poolEvent(size: number, why: string): void {
    const p = this.pool(this.hstate(size));
    const v = this.vmemmap(size);
    this.k.emit('hugetlb.pool', { size, nr: p.nr, free: p.free, surplus: p.surplus, optimized: v.optimized, vmemmapPages: v.vmemmapPages, savedPages: v.savedPages, pteTablePages: v.pteTablePages, why });
  }

  /**
   * A page removed from the pool goes to the buddy allocator (update_and_free_hugetlb_folio): an
   * optimised one first gets its vmemmap back (hugetlb_vmemmap_restore_folio() ->
   * alloc_vmemmap_page_list()). Returns false when that allocation fails: the page cannot be
   * freed, and the caller puts it back with add_hugetlb_folio(h, folio, true), as a surplus page.
   */
  private restoreVmemmap(p: Pool, head: number): boolean {
    if (p.optimized.has(head) && this.k.faultInject.shouldFail('hugetlb-vmemmap-restore')) return false;
    p.optimized.delete(head);
    return true;
  }

  /**
   * /sys/kernel/mm/hugepages/hugepages-<size>kB/{nr,free,resv}_hugepages, or with `node`
   * /sys/devices/system/node/node<node>/hugepages/hugepages-<size>kB/{nr,free}_hugepages
   * (nr_huge_pages_node[], free_huge_pages_node[]; reservations are global only: resv is the
   * pool's). A node without memory has no such directory: ENOENT.
   */
  counters(size: number, node?: number): { nr: number; free: number; resv: number } {
    const h = this.hstate(size);
    const p = this.pool(h);
    if (node === undefined) return { nr: p.nr, free: p.free, resv: p.resv };
    this.checkNode(node, 'hugepages');
    return { nr: this.nrNode(h, node), free: p.freeList.filter((pfn) => this.nodeOf(pfn) === node).length, resv: p.resv };
  }

  /** surplus_hugepages of the pool, or of one node (surplus_huge_pages_node[]). */
  surplus(size: number, node?: number): number {
    const p = this.pool(this.hstate(size));
    if (node === undefined) return p.surplus;
    this.checkNode(node, 'hugepages');
    return p.surplusNode.get(node) ?? 0;
  }

  /** /sys/devices/system/node/node<n>/hugepages exists for a node with memory (hugetlb_register_node()); kmem's nodes are not modelled. */
  private checkNode(node: number, what: string): void {
    if (node < this.k.numa.nodes) return;
    if (this.k.ram.hasHotplugged(node)) throw KernelError.unsupported('EOPNOTSUPP', `/sys/devices/system/node/node${node}/${what}: huge pages on a node of kmem memory are not modelled`);
    throw new KernelError('ENOENT', `/sys/devices/system/node/node${node}/${what} does not exist: node ${node} has no memory (${this.k.numa.nodes} node(s))`);
  }

  /**
   * echo N > nr_hugepages (set_max_huge_pages(h, count, NUMA_NO_NODE, N_MEMORY)), or with `node`
   * echo N > /sys/devices/system/node/node<node>/hugepages/hugepages-<size>kB/nr_hugepages
   * (__nr_hugepages_store_common(): nodes_allowed is that node alone, and N becomes a global
   * count: the other nodes' persistent pages added -- persistent_huge_pages(h) -
   * (nr_huge_pages_node - surplus_huge_pages_node) from "mm/hugetlb: fix nodes huge page
   * allocation when there are surplus pages" (August 2023, v6.6 [M]), nr_huge_pages -
   * nr_huge_pages_node before).
   * Counting persistent pages (nr - surplus): surplus pages are taken back first
   * (adjust_pool_surplus(-1): a node with surplus, round-robin from next_nid_to_alloc); new pages
   * come round-robin over the allowed nodes (alloc_pool_huge_folio(): hstate_next_node_to_alloc(),
   * so a global N on two nodes alternates 0, 1, 0, ...); pages in use or reserved are never freed
   * (min_count = resv + nr - free), free ones leave round-robin from next_nid_to_free
   * (remove_pool_hugetlb_folio(): a node with a free page); what still exceeds N is counted as
   * surplus (adjust_pool_surplus(1): a node with more pages than surplus ones), to leave when freed.
   * New pages are HVO-optimised before they reach the free list (hugetlb_vmemmap_optimize_folios()
   * in prep_and_add_allocated_folios(), v6.7; hugetlb_vmemmap_optimize() from
   * prep_new_huge_page() before [M]); freed ones restored (update_and_free_pages_bulk()).
   */
  setPool(size: number, nr: number, node?: number): void {
    const h = this.hstate(size);
    const p = this.pool(h);
    const hvo = this.hvo(h);
    let count = nr;
    let allowed = this.poolNodes();
    if (node !== undefined) {
      this.checkNode(node, `hugepages/hugepages-${size / 1024}kB/nr_hugepages`);
      allowed = [node];
      const surplusHere = p.surplusNode.get(node) ?? 0;
      count += kernelAtLeast(this.k.version, 6, 6) ? p.nr - p.surplus - (this.nrNode(h, node) - surplusHere) : p.nr - this.nrNode(h, node);
    }
    for (let n: number | null; p.surplus > 0 && count > p.nr - p.surplus; ) {
      if ((n = this.nextNode(p, 'nextAlloc', allowed, (m) => (p.surplusNode.get(m) ?? 0) > 0)) === null) break;
      this.addSurplus(p, n, -1);
    }
    // alloc_pool_huge_folio(): naturally aligned physical ranges on the node, no struct page touched here
    for (; p.nr - p.surplus < count; p.nr++, p.free++) {
      const head = this.takePages(this.nextNode(p, 'nextAlloc', allowed, () => true)!, h.pages);
      p.freeList.push(head);
      if (hvo.optimized) {
        this.splitVmemmapPmds(head, h.pages);
        p.optimized.add(head);
      }
    }
    // remove_pool_hugetlb_folio(h, nodes, false): free pages leave the pool (nr and free drop;
    // their addresses are not reused). One whose vmemmap cannot be restored comes back with
    // add_hugetlb_folio(h, folio, true): on the free list again, nr and free as before, one more
    // surplus page, so the persistent count still reaches the target.
    const minCount = Math.max(count, p.resv + p.nr - p.free);
    const stay: number[] = [];
    for (let n: number | null; p.nr - p.surplus > minCount; ) {
      const candidates = p.freeList.filter((pfn) => !stay.includes(pfn));
      if ((n = this.nextNode(p, 'nextFree', allowed, (m) => candidates.some((pfn) => this.nodeOf(pfn) === m))) === null) break;
      const at = p.freeList.findLastIndex((pfn) => this.nodeOf(pfn) === n && !stay.includes(pfn));
      const head = p.freeList.splice(at, 1)[0]!;
      if (this.restoreVmemmap(p, head)) {
        p.nr--;
        p.free--;
      } else {
        this.addSurplus(p, n, 1);
        stay.push(head);
      }
    }
    p.freeList.push(...stay.reverse());
    // what could not be freed now (pages in use or reserved) is counted as surplus
    // (adjust_pool_surplus(h, nodes, 1) while count < persistent_huge_pages()), so each such page
    // leaves the pool when it is freed (free_huge_folio) instead of joining the free list
    for (let n: number | null; count < p.nr - p.surplus; ) {
      if ((n = this.nextNode(p, 'nextFree', allowed, (m) => (p.surplusNode.get(m) ?? 0) < this.nrNode(h, m))) === null) break;
      this.addSurplus(p, n, 1);
    }
    this.poolEvent(size, node === undefined ? `nr_hugepages ${nr}` : `node${node} nr_hugepages ${nr}`);
  }

  /**
   * The struct page of a pfn inside a huge folio in use, as prep_compound_page() left it: a tail
   * (refcount 0, compound_head the head). Asked by the page store for a page it has not seen
   * (mm/memremap.ts initialPage), so a 1 GiB folio costs the pages that are used, not 262,144.
   */
  initialPage(pfn: number): PageInit | null {
    for (const nr of this.pools.keys()) {
      const head = pfn - (pfn % nr);
      if (this.inUse.get(head) !== nr) continue;
      if (head === pfn) return { rc: 0, headPfn: head, order: Math.log2(nr), flags: PG.head | PG.hugetlb, pgmap: -1 };
      return { rc: 0, headPfn: head, order: 0, flags: PG.tail, pgmap: -1 };
    }
    return null;
  }

  /**
   * alloc_hugetlb_folio(): a folio from the free list, with `reserved` consuming a reservation
   * made earlier (resv_huge_pages--), else only if an unreserved page is free
   * (dequeue_hugetlb_folio_vma(): "gbl_chg && !available_huge_pages(h)"). The free page comes
   * from the first node of `nodes` that has one (dequeue_hugetlb_folio_nodemask() over the
   * zonelist of huge_node()'s node, cut to the policy's nodemask): see Numa.hugetlbNodes(). Null:
   * -ENOSPC (reservations are global, so a reserved fault can still find no page on its nodes).
   */
  private alloc(h: Hstate, mapping: number, reserved: boolean, nodes: readonly number[] = this.fallbackOrder(0)): number | null {
    const k = this.k;
    const p = this.pool(h);
    if (reserved ? p.free === 0 : p.free - p.resv <= 0) return null;
    if (k.faultInject.shouldFail('page-alloc')) return null;
    const head = this.dequeue(p, nodes);
    if (head === null) return null;
    p.free--;
    if (reserved) p.resv--;
    this.inUse.set(head, h.pages);
    // the folio leaves the free list with one reference; the page is anon only once
    // hugetlb_add_new_anon_rmap() says so (PageAnonExclusive with it)
    const s = k.pages.slot(head);
    k.pages.rc[s] = 1;
    k.pages.flags[s] = PG.head | PG.hugetlb | ((mapping & 1) === 1 ? PG.anonExclusive : 0);
    k.pages.mapping[s] = mapping;
    k.emit('page.ref', { pfn: head, rc: 1, delta: 1, why: `alloc_hugetlb_folio(order ${Math.log2(h.pages)})` });
    return head;
  }

  /**
   * alloc_hugetlb_folio() for the task of `mm`: its hugetlb cgroup charges first
   * (mm/hugetlbcg.ts: the rsvd counter too when `reserved` is false), then alloc(). A string says
   * why it failed (a refused charge, or no free page), where the kernel returns -ENOSPC.
   */
  private allocFor(mm: Mm, h: Hstate, mapping: number, reserved: boolean, nodes?: readonly number[]): number | string {
    return this.k.hugetlbCgroups.allocCharged(mm, h, reserved, () => this.alloc(h, mapping, reserved, nodes)) ?? 'no free huge page';
  }

  /**
   * free_huge_folio(): the last reference gives the folio back to its pool's free list, or, while
   * the pool has surplus pages, to the buddy allocator (remove_hugetlb_folio(h, folio, true) then
   * update_and_free_hugetlb_folio(), restoring its vmemmap). Its struct pages and contents are
   * forgotten (the next user gets a cleared page: clear_huge_page). A folio a zap marked
   * HPageRestoreReserve first gives its reservation back (h->resv_huge_pages++).
   */
  freeFolio(head: number): void {
    const k = this.k;
    const nr = this.inUse.get(head)!;
    this.inUse.delete(head);
    k.emit('page.free', { pfn: head, type: 'hugetlb' });
    for (const pfn of [...k.pages.touched(head, nr)]) k.pages.drop(pfn);
    for (const pfn of [...k.pages.data.keys()]) if (pfn >= head && pfn < head + nr) k.pages.data.delete(pfn);
    const p = this.pools.get(nr)!;
    const node = this.nodeOf(head);
    // free_huge_folio(): "if (folio_test_hugetlb_temporary(folio))" -> remove_hugetlb_folio(h,
    // folio, false) (nr_huge_pages(_node) - 1: alloc_fresh_hugetlb_folio() counted it) and
    // update_and_free_hugetlb_folio(), whose failed vmemmap restore puts it on the free list as
    // a surplus page (add_hugetlb_folio(h, folio, true))
    if (this.temporary.delete(head)) {
      if (this.restoreVmemmap(p, head)) p.nr--;
      else {
        this.addSurplus(p, node, 1);
        p.free++;
        p.freeList.push(head);
      }
      return;
    }
    // hugetlb_cgroup_uncharge_folio() and _rsvd() (a temporary folio was never charged)
    this.k.hugetlbCgroups.folioFreed(head);
    if (this.restoreReserve.delete(head)) p.resv++;
    // "else if (h->surplus_huge_pages_node[nid])": remove_hugetlb_folio(h, folio, true) and, if the
    // restore fails, add_hugetlb_folio(h, folio, true): the surplus count is back where it was and
    // the folio on the free list
    if ((p.surplusNode.get(node) ?? 0) > 0 && this.restoreVmemmap(p, head)) {
      p.nr--;
      this.addSurplus(p, node, -1);
      this.poolEvent(nr * k.mmu.basePageSize, 'free_huge_folio: a surplus page leaves the pool');
      return;
    }
    p.free++;
    p.freeList.push(head);
  }

  /**
   * The hugetlb migration target (mm/hugetlb.c alloc_hugetlb_folio_nodemask() from
   * alloc_migration_target() / alloc_migration_target_by_mpol(); alloc_huge_page_node() and
   * alloc_huge_page_nodemask() in older releases, the same rules): while the pool has a free page
   * not reserved (available_huge_pages(): free - resv > 0, a global count), a free page of the
   * first of `nodes` that has one (dequeue_hugetlb_folio_nodemask(): move_pages() passes
   * __GFP_THISNODE, so only its node; mbind() and soft offline may fall back to other nodes);
   * else a fresh page from the buddy allocator of `nodes[0]`, marked temporary
   * (alloc_migrate_hugetlb_folio(), "only temporary and will be released properly on the last
   * reference") and counted in nr_hugepages and its node's count while it lives (prep_new_hugetlb_folio()
   * -> __prep_account_new_huge_page()), which a gigantic (PUD-sized) page cannot be: null, -ENOMEM.
   * The folio comes with its allocation reference and no mapping.
   */
  allocMigrationTarget(src: number, nodes: readonly number[] = this.fallbackOrder(this.nodeOf(src))): number | null {
    const nr = this.inUse.get(src)!;
    const h: Hstate = { pages: nr, level: nr === this.k.vm.pmdPages ? 'pmd' : 'pud' };
    const p = this.pool(h);
    if (p.free - p.resv > 0) {
      const got = this.alloc(h, 0, false, nodes);
      if (got !== null) return got;
    }
    if (h.level === 'pud' || this.k.faultInject.shouldFail('page-alloc')) return null;
    const head = this.takePages(nodes[0]!, nr);
    this.inUse.set(head, nr);
    this.temporary.add(head);
    p.nr++;
    // __prep_new_hugetlb_folio() -> hugetlb_vmemmap_optimize_folio() (prep_new_huge_page() ->
    // free_huge_page_vmemmap() from v5.14): a fresh page is optimised like a pool page
    if (this.hvo(h).optimized) {
      this.splitVmemmapPmds(head, nr);
      p.optimized.add(head);
    }
    const s = this.k.pages.slot(head);
    this.k.pages.rc[s] = 1;
    this.k.pages.flags[s] = PG.head | PG.hugetlb;
    this.k.pages.mapping[s] = 0;
    this.k.emit('page.ref', { pfn: head, rc: 1, delta: 1, why: 'alloc_migrate_hugetlb_folio: a temporary huge page' });
    return head;
  }

  /**
   * move_hugetlb_state(old, new) after a successful migration: a temporary new folio hands its
   * temporary state to the old one, which then leaves when freed, the new one taking its place in
   * the pool ("the newpage is going to be final while the old one will be freed"), and across
   * nodes a surplus count of the old node moves to the new one ("we have to transfer the per-node
   * surplus state here as well").
   */
  migrated(src: number, dst: number): void {
    this.k.hugetlbCgroups.migrated(src, dst); // hugetlb_cgroup_migrate()
    if (!this.temporary.delete(dst)) return;
    this.temporary.add(src);
    const from = this.nodeOf(src);
    const to = this.nodeOf(dst);
    const p = this.pools.get(this.inUse.get(src)!)!;
    if (from === to || (p.surplusNode.get(from) ?? 0) === 0) return;
    p.surplusNode.set(from, p.surplusNode.get(from)! - 1);
    p.surplusNode.set(to, (p.surplusNode.get(to) ?? 0) + 1);
  }

  /**
   * dissolve_free_hugetlb_folio() (dissolve_free_huge_page() before v6.9) of the huge page holding
   * `pfn`, which soft offline migrated away from or found free: a free pool page leaves the pool (nr_hugepages and free_hugepages drop,
   * remove_hugetlb_folio(h, folio, false): the surplus count untouched) for the buddy allocator, its vmemmap restored first ('enomem' when
   * that fails: it stays free in the pool). 'gone' when it is no hugetlb page any more (freed to the
   * buddy allocator as a surplus or temporary page): nothing to do either.
   */
  dissolveFree(pfn: number): 'dissolved' | 'gone' | 'enomem' {
    for (const [nr, p] of this.pools) {
      const head = pfn - (pfn % nr);
      const at = p.freeList.indexOf(head);
      if (at < 0) continue;
      if (!this.restoreVmemmap(p, head)) return 'enomem';
      p.freeList.splice(at, 1);
      p.nr--;
      p.free--;
      this.poolEvent(nr * this.k.mmu.basePageSize, 'dissolve_free_hugetlb_folio: soft offline');
      return 'dissolved';
    }
    return 'gone';
  }

  /** Whether a pfn lies where pool pages are taken from (below its node's pool top, down to the lowest taken there). */
  isPoolPfn(pfn: number): boolean {
    const node = this.nodeOf(pfn);
    const bottom = this.bottoms.get(node);
    return bottom !== undefined && pfn >= bottom && pfn < this.poolTop(node);
  }

  isHugetlbFolio(head: number): boolean {
    return (this.k.folios.flags(head) & PG.hugetlb) !== 0;
  }

  /**
   * memfd_create(MFD_HUGETLB | size << MFD_HUGE_SHIFT) then ftruncate(size): the hugetlbfs inode's
   * hstate; i_size must be a whole number of huge pages (hugetlbfs_setattr). A size the arch does
   * not offer is ENODEV: memfd_create() leaves the check to hugetlb_file_setup(), whose
   * get_hstate_idx() fails so (mmap and shmget look first: EINVAL).
   */
  memfdHstate(hugetlbSize: number | 'default', size: number): HugetlbFile {
    const bytes = this.pageSize(hugetlbSize);
    const h = this.setupHstate(bytes);
    if (size % bytes !== 0) throw new KernelError('EINVAL', `ftruncate of a hugetlbfs memfd to ${size} bytes: not a multiple of the ${bytes / 2 ** 20} MiB page size (hugetlbfs_setattr)`);
    return { ...h, resv: new Set() };
  }

  /** hugetlb_file_setup()'s get_hstate_idx(): -ENODEV for a size without an hstate. */
  private setupHstate(size: number): Hstate {
    try {
      return this.hstate(size);
    } catch (e) {
      if (e instanceof KernelError && e.code === 'EINVAL' && e.unsupported === null) throw new KernelError('ENODEV', `hugetlb_file_setup: ${e.message}`);
      throw e;
    }
  }

  /**
   * hugetlb_file_setup(name, size, 0, HUGETLB_SHMFS_INODE, page_size_log) for shmget(SHM_HUGETLB)
   * (ipc/shm.c newseg(): hstate_sizelog() first, EINVAL without one; size rounded up to the huge
   * page): an unlinked hugetlbfs inode of that size whose every huge page is reserved now
   * (hugetlb_reserve_pages(inode, 0, size >> huge_page_shift) with the inode's resv_map, as a
   * shared mapping reserves). Not enough free unreserved pages: -ENOMEM, no file. The file is
   * held by the segment (mm/pagecache.ts released() evicts it after IPC_RMID and the last detach).
   */
  shmFileSetup(name: string, size: number, hugetlbSize: number | 'default', caller: Mm): PageCacheFile {
    const h = this.hstate(this.pageSize(hugetlbSize));
    const count = Math.ceil(size / (h.pages * this.k.mmu.basePageSize));
    const file = this.k.pageCache.newFile(name, count * h.pages, true, { ...h, resv: new Set() });
    try {
      this.reserveShared(caller, file, 0, count);
    } catch (e) {
      this.k.pageCache.files.delete(name);
      if (e instanceof KernelError) throw new KernelError(e.code, `shmget(SHM_HUGETLB): ${e.message.replace(/^\w+: /, '')}`);
      throw e;
    }
    return file;
  }

  /**
   * hugetlb_reserve_pages() of a shared mapping (the inode's resv_map) by the task of `mm`: the
   * huge pages of [first, first + count) not reserved yet (region_chg()), charged to its hugetlb
   * cgroup first, then taken from the pool's unreserved free pages (hugetlb_acct_memory());
   * either short: -ENOMEM and nothing reserved.
   */
  private reserveShared(mm: Mm, file: PageCacheFile, first: number, count: number): void {
    const h = file.hugetlb!;
    const fileResv = h.resv;
    const p = this.pool(h);
    const missing: number[] = [];
    for (let i = first; i < first + count; i++) if (!fileResv.has(i)) missing.push(i);
    const refused = this.k.hugetlbCgroups.reserve(mm, h, fileResv, missing);
    if (refused !== null) this.noReservation(file, `hugetlb_cgroup_charge_cgroup_rsvd: ${refused}`);
    if (p.free - p.resv < missing.length) {
      this.k.hugetlbCgroups.unreserve(h, fileResv, missing);
      this.noReservation(file, this.poolShort(missing.length, p));
    }
    for (const i of missing) fileResv.add(i);
    p.resv += missing.length;
  }

  /**
   * fallocate(fd, 0 or FALLOC_FL_KEEP_SIZE, offset, length) on hugetlbfs (hugetlbfs_fallocate):
   * every huge page the byte range touches (offset rounded down, the end up) that the cache lacks
   * is allocated into it (hugetlb_add_to_page_cache) and the caller's reference put back:
   * refcount 1, the cache's. Without KEEP_SIZE a range past i_size extends it. Running out of free
   * pages is -ENOSPC, the pages added so far staying and i_size unchanged. Default: the whole file.
   */
  fallocate(file: PageCacheFile, offset = 0, length = file.pages * this.k.mmu.basePageSize, keepSize = true): void {
    const h = file.hugetlb!;
    const ps = this.k.mmu.basePageSize;
    const hbytes = h.pages * ps;
    for (let index = Math.floor(offset / hbytes); index * hbytes < offset + length; index++) {
      if (file.cache.has(index)) continue;
      // the model's fallocate has no caller: init's cgroup is charged
      const pfn = this.addToCache(file, index, 'hugetlbfs_fallocate', this.k.process('init'), 'ENOSPC');
      this.k.folios.put(pfn, 1, 'hugetlbfs_fallocate: folio_put');
    }
    if (!keepSize && offset + length > file.pages * ps) file.pages = Math.ceil((offset + length) / ps);
  }

  /**
   * fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) of a hugetlbfs file, and MADV_REMOVE of
   * its shared mappings (madvise_remove -> vfs_fallocate): hugetlbfs_punch_hole() takes the whole
   * huge pages inside the range (start rounded up, end down). hugetlb_vmdelete_list() unmaps them
   * from every VMA in the file's i_mmap -- private ones included, whose entries may map anon COW
   * copies: unmap_hugepage_range() zaps whatever the entries map, so those copies go back to the
   * pool too ("how it has worked since the initial hugetlb implementation", hugetlb-madvise.c).
   * remove_inode_hugepages() then drops each cached folio (hugetlb_delete_from_page_cache) and
   * its index from the inode's resv_map (hugetlb_unreserve_pages(index, index + 1, 1): the
   * reservation was consumed, so no global count moves); an index reserved but never faulted keeps
   * its reservation. From "hugetlbfs: zero partial pages during fallocate hole punch" (June 2022,
   * v5.19 [M]) the part of the range inside a huge page at either end is zeroed first
   * (hugetlbfs_zero_partial_page: folio_zero_segment() of the cached folio) -- here the base pages
   * wholly inside it (the model keeps data per base page). Before, those pages kept their data.
   * Seals are not modelled.
   */
  *punchHole(file: PageCacheFile, offset: number, length: number): Op {
    const h = file.hugetlb!;
    const hbytes = h.pages * this.k.mmu.basePageSize;
    const first = Math.ceil(offset / hbytes);
    const end = Math.floor((offset + length) / hbytes);
    if (kernelAtLeast(this.k.version, 5, 19)) {
      if (offset < first * hbytes) this.zeroPartial(file, offset, Math.min(offset + length, first * hbytes));
      if (offset + length > end * hbytes && offset + length > first * hbytes) this.zeroPartial(file, end * hbytes, offset + length);
    }
    if (end <= first) return;
    yield* this.vmdelete(file, first * h.pages, end * h.pages);
    this.removeInodePages(file, first, end, 'hugetlbfs_punch_hole');
  }

  /** hugetlbfs_zero_partial_page(): bytes [from, to) of one huge page of the file, if cached, zeroed (whole base pages). */
  private zeroPartial(file: PageCacheFile, from: number, to: number): void {
    const ps = this.k.mmu.basePageSize;
    const h = file.hugetlb!;
    const head = file.cache.get(Math.floor(from / (h.pages * ps)));
    if (head === undefined) return;
    for (let page = Math.ceil(from / ps); page < Math.floor(to / ps); page++) this.k.pages.data.delete(head + (page % h.pages));
  }

  /** hugetlb_vmdelete_list(): every VMA of the file's i_mmap, private ones too, zapped over file pages [start, end). */
  private *vmdelete(file: PageCacheFile, start: number, end: number, dropMarkers = false): Op {
    for (const vma of [...file.mapping.mmaps]) {
      const from = Math.max(vma.pgoff, start);
      const to = Math.min(vma.pgoff + vma.pages, end);
      if (from < to) yield* this.zap(vma, vma.start + (from - vma.pgoff), vma.start + (to - vma.pgoff), 'hugetlb_vmdelete_list', dropMarkers);
    }
  }

  /**
   * __unmap_hugepage_range() over [start, end) of a hugetlb VMA, for MADV_DONTNEED and
   * hugetlb_vmdelete_list(). From df7a6d1f6405 "mm/hugetlb: restore the reservation if needed"
   * (v6.9 [M]), while the pool has no surplus page, an anonymous folio unmapped from the VMA of its
   * private mapping's owner (HPAGE_RESV_OWNER) gets its reservation back: vma_add_reservation()
   * reserves the index in the owner's map again and the folio is marked HPageRestoreReserve, so
   * free_huge_folio() counts it in resv_huge_pages -- otherwise another mapping could take the page
   * and the owner's next fault would SIGBUS (hugetlb_madv_vs_map.c). munmap and exit zap without
   * this path here: there the VMA's close gives the same reservation back at once, so nothing
   * differs once they return.
   */
  *zap(vma: Vma, start: number, end: number, why: string, dropMarkers = false): Op {
    const k = this.k;
    const h = vma.hugetlb!;
    if (h.resv && kernelAtLeast(k.version, 6, 9) && this.pool(h).surplus === 0) {
      for (const leaf of k.vm.leavesIn(vma.mm, start, end)) {
        if (leaf.pte.marker) continue;
        const head = k.folios.folio(leaf.pte.pfn);
        if (!k.folios.isAnon(head)) continue;
        this.restoreReserve.add(head);
        h.resv.add(this.index(vma, leaf.base));
      }
    }
    yield* k.vm.zap(vma, start, end, why, dropMarkers);
  }

  /**
   * zap_page_range_single() of a hugetlb VMA (MADV_DONTNEED). From 2820b0f09be9 "hugetlbfs: close
   * race between MADV_DONTNEED and page fault" with bf4916922c60 "hugetlbfs: extend
   * hugetlb_vma_lock to private VMAs" (v6.6 [M]) hugetlb_zap_begin() takes the VMA lock for write
   * and hugetlb_zap_end() drops it after tlb_finish_mmu(), so a fault (hugetlb_fault() takes it for
   * read: vmaLockRead()) waits until the zapped pages are back in the pool. Before, the lock
   * (shared VMAs only, from v6.1) covered __unmap_hugepage_range_final() but not the TLB flush that
   * frees the pages: a fault in between finds neither the entry nor a free page, and with a pool
   * sized exactly it is SIGBUS (hugetlb_fault_after_madv.c). A fault already past the lock is not
   * waited for: it maps its page after the zap, an order the lock also allows.
   */
  *zapSingle(vma: Vma, start: number, end: number, why: string): Op {
    if (!kernelAtLeast(this.k.version, 6, 6)) return yield* this.zap(vma, start, end, why);
    yield* waitUntil('hugetlb_vma_lock_write', () => !this.zapLocked.has(vma));
    this.zapLocked.add(vma);
    try {
      yield* this.zap(vma, start, end, why);
    } finally {
      this.zapLocked.delete(vma);
    }
  }

  /** hugetlb_vma_lock_read() at the start of a hugetlb fault: sleeps while a zap holds the lock (zapSingle()). */
  private *vmaLockRead(vma: Vma): Op {
    yield* waitUntil('hugetlb_vma_lock_read', () => !this.zapLocked.has(vma));
  }

  /**
   * ftruncate() of a hugetlbfs file (hugetlbfs_setattr): the size must be a whole number of huge
   * pages (EINVAL). Any new size, larger too (7aa91e104028, 2012), goes through
   * hugetlb_vmtruncate(): i_size first, then hugetlb_vmdelete_list() from the new end over every
   * VMA (COW copies included, as for a punch), remove_inode_hugepages(offset, LLONG_MAX) -- which
   * on growth finds only pages a KEEP_SIZE fallocate left past the end -- and, as a truncate,
   * hugetlb_unreserve_pages(start, LONG_MAX, freed): the indexes past the end leave the resv_map
   * and those never faulted give their reservation back (resv_huge_pages -= chg - freed).
   */
  *truncate(file: PageCacheFile, size: number): Op {
    const h = file.hugetlb!;
    const hbytes = h.pages * this.k.mmu.basePageSize;
    if (size % hbytes !== 0) throw new KernelError('EINVAL', `ftruncate of hugetlbfs file '${file.name}' to ${size} bytes: not a multiple of the ${hbytes / 2 ** 20} MiB page size (hugetlbfs_setattr)`);
    const pages = size / this.k.mmu.basePageSize;
    if (pages === file.pages) return;
    file.pages = pages;
    // hugetlb_vmtruncate(): hugetlb_vmdelete_list(.., ZAP_FLAG_DROP_MARKER) -- uffd-wp markers go
    // too, where hugetlbfs_punch_hole() (zap_flags 0) keeps them (v5.19, "mm/hugetlb: only drop uffd-wp special pte if required")
    yield* this.vmdelete(file, pages, Infinity, true);
    const first = pages / h.pages;
    const freed = this.removeInodePages(file, first, Infinity, 'hugetlb_vmtruncate');
    let chg = 0;
    for (const i of [...h.resv]) {
      if (i < first) continue;
      h.resv.delete(i);
      this.k.hugetlbCgroups.regionDeleted(h, h.resv, i);
      chg++;
    }
    this.pool(h).resv -= chg - freed;
  }

  /**
   * remove_inode_hugepages() over huge-page indexes [first, end): each cached folio leaves the page
   * cache (page->mapping cleared) and the cache's reference goes, which frees it to the pool once
   * no mapping or pin holds it. A punch also drops the index from the inode's resv_map here
   * (remove_inode_single_folio -> hugetlb_unreserve_pages(index, index + 1, 1)); a truncate does it
   * for the whole range afterwards. Returns how many folios left the cache.
   */
  private removeInodePages(file: PageCacheFile, first: number, end: number, why: string): number {
    const k = this.k;
    const truncate = end === Infinity;
    let freed = 0;
    for (const [index, pfn] of [...file.cache].sort((a, b) => a[0] - b[0])) {
      if (index < first || index >= end) continue;
      file.cache.delete(index);
      if (!truncate) {
        file.hugetlb!.resv.delete(index);
        this.k.hugetlbCgroups.regionDeleted(file.hugetlb!, file.hugetlb!.resv, index);
      }
      const s = k.pages.slot(pfn);
      k.pages.mapping[s] = 0;
      k.emit('page.mapping', { pfn, mapping: 'NULL', index: 0, share: 0 });
      k.folios.put(pfn, 1, `${why}: hugetlb_delete_from_page_cache`);
      freed++;
    }
    return freed;
  }

  /**
   * hugetlbfs_error_remove_page() before v6.1 (memory failure's truncate_error_folio(), mm/memfailure.ts):
   * hugetlb_delete_from_page_cache() and hugetlb_unreserve_pages(index, index + 1, 1) -- the
   * poisoned folio leaves the cache and the index's reservation as a hole punch of it would.
   */
  removeErrorPage(file: PageCacheFile, index: number): void {
    this.removeInodePages(file, index, index + 1, 'hugetlbfs_error_remove_page');
  }

  /**
   * A new folio for index `index` of a hugetlbfs file, added to its page cache: one reference for
   * the cache (filemap_add_folio) and one for the caller. A reservation of the inode for the index
   * is consumed; an index with none is allocated from the unreserved free pages and recorded in
   * the inode's resv_map (region_add).
   */
  private addToCache(file: PageCacheFile, index: number, why: string, mm: Mm, errno: Errno, nodes?: readonly number[]): number {
    const k = this.k;
    const h = file.hugetlb!;
    const pfn = this.allocFor(mm, h, mappingOf(file.mapping.id), h.resv.has(index), nodes);
    if (typeof pfn === 'string') throw new KernelError(errno, `${why}: alloc_hugetlb_folio() -ENOSPC for page ${index} of '${file.name}' (${h.pages * k.mmu.basePageSize / 2 ** 20} MiB pages): ${pfn}`);
    h.resv.add(index);
    file.cache.set(index, pfn);
    const s = k.pages.slot(pfn);
    k.pages.index[s] = index;
    k.emit('page.mapping', { pfn, mapping: `hugetlbfs:${file.name}`, index, share: 0 });
    k.folios.get(pfn, 1, `${why}: hugetlb_add_to_page_cache`);
    return pfn;
  }

  /**
   * mmap() of a hugetlbfs file (hugetlbfs_file_mmap). `file` is a memfd made with MFD_HUGETLB, or
   * null for MAP_ANONYMOUS|MAP_HUGETLB, which gets its own unnamed file of the length rounded up
   * to the huge page size (ksys_mmap_pgoff: ALIGN(len, huge_page_size), hugetlb_file_setup). The
   * offset must be huge-page aligned (EINVAL); a writable mapping past i_size extends it. The VMA
   * is placed on a huge-page boundary (hugetlb_get_unmapped_area). hugetlb_reserve_pages()
   * reserves now what the mapping will fault: for a private mapping every huge page it spans,
   * owned by this VMA (HPAGE_RESV_OWNER); for a shared one the pages of the file not reserved yet.
   * Not enough unreserved free pages: -ENOMEM, as cow.c's "need more free huge pages".
   */
  mmap(mm: Mm, a: { length: number; offset: number; shared: boolean; write: boolean; as: string; noreserve: boolean; hugetlb?: number }, file: PageCacheFile | null): Vma {
    const k = this.k;
    const ps = k.mmu.basePageSize;
    if (file && a.hugetlb !== undefined) throw new KernelError('EINVAL', `mmap of '${file.name}' with MAP_HUGETLB: the file's page size decides (give hugetlb only with anon: true)`);
    const h = file ? file.hugetlb! : this.hstate(a.hugetlb!);
    const hbytes = h.pages * ps;
    if (a.offset % hbytes !== 0) throw new KernelError('EINVAL', `mmap offset ${a.offset} is not a multiple of the ${hbytes / 2 ** 20} MiB huge page size (hugetlbfs_file_mmap)`);
    const pages = Math.ceil(a.length / hbytes) * h.pages;
    const pgoff = a.offset / ps;
    const f = file ?? k.pageCache.newFile(this.anonName(a.as), pages, false, { ...h, resv: new Set() });
    if (a.write && f.pages < pgoff + pages) f.pages = pgoff + pages;
    const p = this.pool(h);
    const first = pgoff / h.pages;
    const count = pages / h.pages;
    let resv: Set<number> | null = null;
    // MAP_NORESERVE (VM_NORESERVE): "Only apply hugepage reservation if asked" -- nothing reserved
    // or charged now; each fault allocates outside any reservation (a private VMA has no resv_map)
    if (a.noreserve) {
      // nothing
    } else if (a.shared) {
      this.reserveShared(mm, f, first, count);
    } else {
      resv = new Set();
      // hugetlb_cgroup_charge_cgroup_rsvd() before hugetlb_acct_memory()
      const refused = this.k.hugetlbCgroups.reserve(mm, h, resv, count);
      if (refused !== null) this.noReservation(f, `hugetlb_cgroup_charge_cgroup_rsvd: ${refused}`);
      if (p.free - p.resv < count) {
        this.k.hugetlbCgroups.unreserve(h, resv, count);
        this.noReservation(f, this.poolShort(count, p));
      }
      for (let i = first; i < first + count; i++) resv.add(i);
      p.resv += count;
    }
    // hugetlb_get_unmapped_area(): aligned to the huge page, in slices of its size where the MMU has them
    const start = k.vm.placeVma(mm, pages, h.pages, h.pages);
    return k.vm.addVma(mm, { name: a.as, start, pages, pgoff, flags: k.vm.flags({ write: a.write, shared: a.shared }), kind: 'pagecache', inode: null, device: null, cacheFile: f, anonVma: 0, hugetlb: { ...h, resv } });
  }

  /** hugetlb_reserve_pages() failed: -ENOMEM, and an anonymous file made for the mapping goes again. */
  private noReservation(f: PageCacheFile, why: string): never {
    if (!f.held) this.k.pageCache.released(f);
    throw new KernelError('ENOMEM', `hugetlb_reserve_pages: ${why}`);
  }

  private poolShort(need: number, p: Pool): string {
    return `${need} huge page(s) needed, ${p.free - p.resv} free and unreserved (nr_hugepages ${p.nr}): set the pool with hugetlb-pool`;
  }

  private anonName(as: string): string {
    let name = `anon_hugepage(${as})`;
    for (let n = 2; this.k.pageCache.files.has(name); n++) name = `anon_hugepage(${as})#${n}`;
    return name;
  }

  /**
   * hugetlb_vm_op_close(): the private owner gives back what it reserved and never faulted, for
   * the part of the mapping this VMA covers (hugetlb_acct_memory(-gbl_reserve)).
   */
  close(vma: Vma): void {
    const h = vma.hugetlb!;
    if (!h.resv) return;
    const first = vma.pgoff / h.pages;
    const end = first + vma.pages / h.pages;
    // hugetlb_cgroup_uncharge_counter(resv, start, end): the VMA's whole range, faulted or not
    this.k.hugetlbCgroups.privateClosed(h, h.resv, end - first);
    for (const i of [...h.resv]) {
      if (i < first || i >= end) continue;
      h.resv.delete(i);
      this.pool(h).resv--;
    }
  }

  /**
   * The inode of a shared MAP_HUGETLB mapping went away with its last VMA: its unconsumed
   * reservations go back (hugetlbfs_evict_inode -> resv_map_release); its cached folios are
   * dropped by the shmem code like any page cache.
   */
  evicted(file: PageCacheFile): void {
    const h = file.hugetlb!;
    let unconsumed = 0;
    for (const i of h.resv) if (!file.cache.has(i)) unconsumed++;
    this.pool(h).resv -= unconsumed;
    for (const i of h.resv) this.k.hugetlbCgroups.regionDeleted(h, h.resv, i);
    h.resv.clear();
  }

  /**
   * clear_vma_resv_huge_pages() (550a7d60bd5e, v5.16 [M]), after mremap() moved a hugetlb VMA's
   * page tables: the copy shares the private owner's reservation map (vm_area_dup()), the old VMA
   * drops it -- HPAGE_RESV_OWNER and the map reset -- so its unmap gives no reservation back.
   */
  clearVmaResv(vma: Vma): void {
    const h = vma.hugetlb!;
    if (h.resv) (vma as { hugetlb?: HugetlbVma }).hugetlb = { ...h, resv: null };
  }

  /** The node order alloc_hugetlb_folio(vma, addr) dequeues in: huge_node()'s policy node first (mm/mempolicy.ts). */
  private nodesFor(vma: Vma, base: number): number[] {
    return this.k.numa.hugetlbNodes(vma, base, Math.log2(vma.hugetlb!.pages));
  }

  /** The index, in huge pages, of the page cache slot a VMA's vpn falls in (vma_hugecache_offset). */
  private index(vma: Vma, base: number): number {
    return (vma.pgoff + (base - vma.start)) / vma.hugetlb!.pages;
  }

  /**
   * hugetlb_fault(): no entry -> hugetlb_no_page(); a write (or, v5.19+, an unshare) on a R/O
   * entry -> hugetlb_wp() (hugetlb_cow() before v6.0); a write on a writable one only dirties it.
   */
  *fault(vmf: Vmf): Op {
    const k = this.k;
    const { vma, vpn } = vmf;
    const h = vma.hugetlb!;
    const base = vpn - (vpn % h.pages);
    yield* this.vmaLockRead(vma);
    const leaf = k.vm.lookup(vma.mm, vpn);
    k.emit('fault', { mm: vma.mm.name, vaddr: vpn, write: vmf.write, kind: 'hugetlb' });
    // hugetlb_fault(): "if (is_hugetlb_entry_migration(entry))" -> migration_entry_wait_huge(), then retry
    if (leaf?.pte.migration) return yield* migrationEntryWait(k, vma.mm, vpn, leaf.pte, vmf.write);
    // huge_pte_none_mostly(): a uffd-wp marker faults as an empty entry, and hugetlb_no_page() maps
    // the page uffd-wp (v5.19: "if (unlikely(pte_marker_uffd_wp(old_pte)))"); Faults.handle()
    // cleared a marker the VMA no longer wants
    if (!leaf || isWpMarker(leaf.pte)) return yield* this.noPage(vmf, base, leaf !== null);
    // hugetlb_fault() (v5.19): "if (flags & FAULT_FLAG_WRITE && huge_pte_uffd_wp(entry) &&
    // userfaultfd_wp(vma))" -> handle_userfault(VM_UFFD_WP) before hugetlb_wp()
    if (vmf.write && k.uffd.wpArmed(vma, leaf.pte)) {
      if (!k.uffd.wpAsync(vma)) return yield* k.uffd.handle(vmf, 'wp', vmf.noRetry !== true);
      // UFFD_FEATURE_WP_ASYNC (v6.7): huge_pte_clear_uffd_wp(), "Fallthrough to CoW"
      k.uffd.resolveAsync(vma, leaf);
    }
    if (vmf.write && !leaf.pte.write) return yield* this.wp(vmf, leaf, false);
    if (vmf.write) leaf.pte.dirty = true;
  }

  /** handle_mm_fault(FAULT_FLAG_UNSHARE) on a hugetlb VMA (v5.19, c89357e27f20): hugetlb_wp() keeping the entry R/O. */
  *unshare(vma: Vma, vpn: number): Op {
    yield* this.vmaLockRead(vma);
    const leaf = this.k.vm.lookup(vma.mm, vpn);
    if (!leaf || leaf.pte.write || leaf.pte.marker) return;
    this.k.emit('fault', { mm: vma.mm.name, vaddr: vpn, write: false, kind: 'unshare' });
    yield* this.wp({ vma, vpn, pgoff: vma.pgoff + (vpn - vma.start), write: false }, leaf, true);
  }

  /**
   * hugetlb_no_page(): the page-cache folio at the index, or a new one — added to the page cache
   * in a shared mapping (VM_MAYSHARE), an anon folio in a private one (hugetlb_add_new_anon_rmap:
   * exclusive, mapcount 1). An index at or past i_size is VM_FAULT_SIGBUS. The entry is
   * make_huge_pte(writable = VM_WRITE && VM_SHARED): writable and dirty only in a shared writable
   * mapping; a write in a private mapping then calls hugetlb_wp() at once, saving a second fault
   * (it reuses the new anon folio, or copies a page-cache one).
   * A folio the owner of a private mapping allocates consumes its reservation for the index.
   */
  private *noPage(vmf: Vmf, base: number, wpMarker = false): Op {
    const k = this.k;
    const { vma } = vmf;
    const h = vma.hugetlb!;
    const file = vma.cacheFile!;
    const index = this.index(vma, base);
    if (index * h.pages >= file.pages) throw new KernelError('SIGBUS', `page ${index} of hugetlbfs file '${file.name}' is past its end (hugetlb_no_page)`);
    let pfn = file.cache.get(index);
    // filemap_lock_hugetlb_folio(): sleep while a migration (soft offline) holds the folio lock,
    // then look again -- the migration may have put its new folio in the cache
    while (pfn !== undefined && (k.folios.flags(pfn) & PG.locked) !== 0) {
      const held = pfn;
      yield* waitUntil('filemap_lock_hugetlb_folio', () => file.cache.get(index) !== held || (k.folios.flags(held) & PG.locked) === 0);
      pfn = file.cache.get(index);
    }
    // "If memory error occurs between mmap() and fault, some process don't have hwpoisoned swap
    // entry for errored virtual address": a poisoned cached folio (kept from v6.1) is VM_FAULT_HWPOISON_LARGE
    if (pfn !== undefined && (k.folios.flags(pfn) & PG.hwpoison) !== 0) throw new KernelError('SIGBUS', `page ${index} of hugetlbfs file '${file.name}' is poisoned (hugetlb_no_page: VM_FAULT_HWPOISON_LARGE, BUS_MCEERR_AR)`);
    if (pfn !== undefined) k.folios.get(pfn, 1, 'hugetlb_no_page: filemap_lock_hugetlb_folio');
    // a failed allocation is VM_FAULT_SIGBUS (vmf_error(-ENOSPC))
    else if (vma.flags.shared) pfn = this.addToCache(file, index, 'hugetlb_no_page', vma.mm, 'SIGBUS', this.nodesFor(vma, base));
    else {
      // the reservation is consumed only by a successful allocation (vma_commit_reservation();
      // vma_end_reservation() on failure): per-node pools can fail a reserved fault
      const reserved = h.resv?.has(index) ?? false;
      const got = this.allocFor(vma.mm, h, anonMappingOf(k.vm.anonVmaPrepare(vma)), reserved, this.nodesFor(vma, base));
      if (typeof got === 'string') throw new KernelError('SIGBUS', `hugetlb_no_page: ${got} (alloc_hugetlb_folio -ENOSPC)`);
      h.resv?.delete(index);
      pfn = got;
    }
    // the folio stays locked until it is mapped (folio_unlock() at the end of hugetlb_no_page())
    k.folios.setFlag(pfn, PG.locked, true);
    yield preempt('hugetlb_no_page');
    k.folios.setFlag(pfn, PG.locked, false);
    k.folios.addMap(pfn); // hugetlb_add_new_anon_rmap / hugetlb_add_file_rmap
    const writable = vma.flags.shared && vma.flags.write;
    // over a uffd-wp marker: huge_pte_mkuffd_wp(), write-protected; the CoW optimisation below is
    // skipped ("Never handle CoW for uffd-wp protected pages"): the retried write meets the userfault
    k.vm.install(vma.mm, base, k.faults.pte(pfn, h.level, { write: writable && !wpMarker, dirty: writable, ...(wpMarker ? { uffdWp: true } : {}) }));
    if (vmf.write && !vma.flags.shared && !wpMarker) yield* this.wp(vmf, k.vm.lookup(vma.mm, base)!, false);
  }

  /**
   * hugetlb_mfill_atomic_pte() (hugetlb_mcopy_atomic_pte() before v6.5; UFFDIO_COPY v4.11,
   * UFFDIO_CONTINUE v5.13) for the huge page at `base`: -EEXIST unless the entry is empty
   * (huge_pte_none_mostly()). CONTINUE maps the folio the page cache holds (-EFAULT if none).
   * COPY fills a new folio with `data` (every base page): in a shared mapping it goes into the page
   * cache (-EFAULT at or past i_size, -EEXIST if the cache has the index), in a private one it is a
   * new exclusive anon folio (hugetlb_add_new_anon_rmap), consuming the VMA's reservation of the
   * index. make_huge_pte(writable): VM_WRITE, except a CONTINUE in a private mapping and a
   * MODE_WP fill (`wp`: a copy from v5.19, a CONTINUE from v6.4; then huge_pte_mkuffd_wp()); dirty
   * when writable, and always from v5.19 ("Always mark UFFDIO_COPY page dirty"). The caller checked
   * the alignment.
   */
  mfill(vma: Vma, base: number, mode: 'copy' | 'continue' | 'poison', data: string, wp: boolean, what: string): void {
    const k = this.k;
    const h = vma.hugetlb!;
    const file = vma.cacheFile!;
    const index = this.index(vma, base);
    const where = `huge page ${index} of '${vma.name}'`;
    const there = k.vm.lookup(vma.mm, base);
    // MFILL_ATOMIC_POISON (v6.6): "Don't overwrite any existing PTEs (even markers)", then a huge
    // PTE_MARKER_POISONED; no i_size check
    if (mode === 'poison') {
      if (there) throw new KernelError('EEXIST', `${what}: ${where} is not empty (UFFDIO_POISON overwrites no entry, not even a marker)`);
      k.vm.install(vma.mm, base, poisonedMarker(h.level));
      return;
    }
    // huge_pte_none_mostly() (v5.19): a uffd-wp marker is overwritten
    if (there && !isWpMarker(there.pte)) throw new KernelError('EEXIST', `${what}: ${where} is already mapped`);
    let pfn: number;
    if (mode === 'continue') {
      const cached = file.cache.get(index);
      if (cached === undefined) throw new KernelError('EFAULT', `${what}: the page cache of '${file.name}' has no huge page ${index} to continue with`);
      pfn = cached;
      k.folios.get(pfn, 1, `${what}: filemap_lock_hugetlb_folio`);
    } else {
      if (vma.flags.shared) {
        if (index * h.pages >= file.pages) throw new KernelError('EFAULT', `${what}: ${where} is past the end of '${file.name}'`);
        if (file.cache.has(index)) throw new KernelError('EEXIST', `${what}: the page cache of '${file.name}' has huge page ${index} already (hugetlb_add_to_page_cache)`);
        pfn = this.addToCache(file, index, what, vma.mm, 'ENOMEM', this.nodesFor(vma, base));
      } else {
        const got = this.allocFor(vma.mm, h, anonMappingOf(k.vm.anonVmaPrepare(vma)), h.resv?.has(index) ?? false, this.nodesFor(vma, base));
        if (typeof got === 'string') throw new KernelError('ENOMEM', `${what}: alloc_hugetlb_folio() for ${where}: ${got}`);
        h.resv?.delete(index);
        pfn = got;
      }
      for (let i = 0; i < h.pages; i++) k.pages.data.set(pfn + i, data);
    }
    k.folios.addMap(pfn); // hugetlb_add_new_anon_rmap / hugetlb_add_file_rmap
    const writable = vma.flags.write && !wp && !(mode === 'continue' && !vma.flags.shared);
    const dirty = writable || kernelAtLeast(k.version, 5, 19);
    k.vm.install(vma.mm, base, k.faults.pte(pfn, h.level, { write: writable, dirty, ...(wp ? { uffdWp: true } : {}) }));
  }

  /**
   * hugetlb_wp() (hugetlb_cow() before v6.0). Shared mappings are made writable. A private one
   * reuses the folio when folio_mapcount() == 1 and it is anon — a mapcount test in every release
   * (the comment added in 2024 explains why hugetlb never moved to the refcount: FOLL_GET users
   * such as vmsplice() can still leak, the leak cow.c marks xfail for hugetlb) — setting
   * PageAnonExclusive from v5.19 (6c287605fd56) and, for an unshare fault, keeping the entry R/O.
   * Otherwise the whole huge page is copied into a new anon folio (copy_user_large_folio),
   * mapped writable and dirty, or R/O for an unshare (make_huge_pte(vma, new, !unshare)); the
   * old folio loses the mapping and the reference. The owner of a private mapping copying an anon
   * page does so outside its reservation (outside_reserve); copying a page-cache folio uses the
   * reservation of the index when the VMA still has it.
   */
  private *wp(vmf: Vmf, leaf: Leaf, unshare: boolean): Op {
    const k = this.k;
    const { vma } = vmf;
    const h = vma.hugetlb!;
    if (vma.flags.shared) {
      if (unshare) return;
      this.mkwrite(vma, leaf);
      return;
    }
    const old = k.folios.folio(leaf.pte.pfn);
    const anon = k.folios.testAnon(old, 'hugetlb_wp');
    if (anon && k.folios.mapcount(old) === 1) {
      if (k.features['wp-reuse'] === 'anon-exclusive') k.folios.setFlag(old, PG.anonExclusive, true);
      if (!unshare) this.mkwrite(vma, leaf);
      return;
    }
    const reserved = !anon && (h.resv?.has(this.index(vma, leaf.base)) ?? false);
    const copy = this.allocFor(vma.mm, h, anonMappingOf(k.vm.anonVmaPrepare(vma)), reserved, this.nodesFor(vma, leaf.base));
    if (typeof copy === 'string') {
      throw KernelError.unsupported('ENOMEM', `hugetlb_wp: alloc_hugetlb_folio() for the COW of '${vma.name}': ${copy} (cow.c needs two free pages); the owner's unmap_ref_private() and the child's VM_FAULT_OOM are not modelled`);
    }
    const index = this.index(vma, leaf.base);
    if (reserved) h.resv?.delete(index);
    // folio_get(old_folio): the extra reference held while the lock is dropped for the copy, so
    // a migration meanwhile fails folio_migrate_mapping()'s count (-EAGAIN) and tries again
    k.folios.get(old, 1, 'hugetlb_wp: folio_get(old_folio)');
    this.copyData(old, copy);
    const orig = origPte(leaf.pte);
    yield preempt('copy_user_large_folio', entryStillRead(k.vm, vma.mm, leaf.base, leaf.pte));
    // "if (likely(vmf->pte && pte_same(huge_ptep_get(..), pte)))": an entry a migration or a zap
    // replaced meanwhile drops the copy (restore_reserve_on_error() gives its reservation back)
    // and the fault is retried
    if (!pteSame(k.vm.lookup(vma.mm, leaf.base)?.pte, leaf.pte, orig)) {
      if (reserved) {
        this.restoreReserve.add(copy);
        h.resv?.add(index);
      }
      k.folios.put(copy, 1, 'hugetlb_wp: the entry changed, folio_put(new_folio)');
      k.folios.put(old, 1, 'hugetlb_wp: folio_put(old_folio)');
      return;
    }
    k.vm.clear(vma.mm, leaf.base, h.level); // huge_ptep_clear_flush
    k.folios.addMap(copy); // hugetlb_add_new_anon_rmap
    // make_huge_pte(vma, new, !unshare): an unshare copy is R/O and clean; it keeps the uffd-wp bit
    // from 0f230bc24b6e "mm/hugetlb: fix uffd-wp bit lost when unsharing happens" (v6.4)
    const keepWp = unshare && leaf.pte.uffdWp === true && kernelAtLeast(k.version, 6, 4);
    k.vm.install(vma.mm, leaf.base, k.faults.pte(copy, h.level, unshare ? (keepWp ? { uffdWp: true } : {}) : { write: true, dirty: true }));
    k.emit('cow', { mm: vma.mm.name, vaddr: leaf.base, from: old, to: copy, why: unshare ? 'hugetlb_wp: unshare' : 'hugetlb_wp: copy the huge page' });
    k.folios.removeMap(old); // hugetlb_remove_rmap
    k.emit('tlb.flush', { mm: vma.mm.name });
    // "Make the old page be freed below": the mapping's reference, then the extra one
    k.folios.put(old, 1, 'hugetlb_wp: folio_put(old_folio) (the mapping\'s reference)');
    k.folios.put(old, 1, 'hugetlb_wp: folio_put(old_folio)');
  }

  /** set_huge_ptep_writable(): huge_pte_mkwrite(huge_pte_mkdirty()). */
  private mkwrite(vma: Vma, leaf: Leaf): void {
    const k = this.k;
    leaf.pte.write = true;
    leaf.pte.dirty = true;
    leaf.pte.softDirty = k.softDirtyArch;
    k.emit('pte.set', { mm: vma.mm.name, vaddr: leaf.base, pfn: leaf.pte.pfn, level: leaf.pte.level, write: true, devmap: false, special: false });
  }

  /** copy_user_large_folio(): every base page's contents (the pages that have any). */
  private copyData(from: number, to: number): void {
    const data = this.k.pages.data;
    const nr = this.k.folios.nr(from);
    for (const [pfn, d] of [...data]) if (pfn >= from && pfn < from + nr) data.set(to + (pfn - from), d);
  }

  /**
   * copy_hugetlb_page_range() for a private VMA fork copies (one with an anon_vma: vma_needs_copy).
   * Each huge entry is shared (a reference and a mapcount more, PageAnonExclusive cleared by
   * page_try_dup_anon_rmap() / hugetlb_try_dup_anon_rmap(), both entries write-protected), unless
   * the source may be pinned: from v5.12 (4eae4efa2c29 "hugetlb: do early cow when page pinned on
   * src mm", with `fork-cow-pinned`) an anon folio of an mm that has pinned and that
   * page_maybe_dma_pinned() is copied for the child at once (a new anon folio mapped writable,
   * hugetlb_install_folio), the parent keeping its entry writable; from v5.19 only an exclusive
   * folio can be pinned, so only one is copied. A failed allocation fails fork with -ENOMEM.
   */
  *copyRange(src: Vma, dst: Vma, cow: boolean): Op {
    const k = this.k;
    const h = src.hugetlb!;
    for (const seen of k.vm.leavesIn(src.mm, src.start, src.start + src.pages)) {
      yield preempt('copy_hugetlb_page_range');
      // the entry is read under the source PTL when its turn comes (huge_ptep_get(src_pte)): a
      // migration may have replaced it by a migration entry (or put the new folio there) meanwhile
      const leaf = k.vm.lookup(src.mm, seen.base);
      if (!leaf || leaf.base !== seen.base) continue;
      if (leaf.pte.marker) {
        // "We copy the pte marker only if the dst vma has uffd-wp enabled" (v5.19)
        if (dst.flags.uffdWp) k.vm.install(dst.mm, leaf.base, { ...leaf.pte });
        continue;
      }
      // "if (unlikely(is_hugetlb_entry_migration(entry)))": the child gets the entry (made
      // readable in both for a COW mapping), no reference taken
      if (leaf.pte.migration) {
        copyMigrationEntry(k, src, dst, leaf.base, leaf.pte, cow);
        continue;
      }
      const head = k.folios.folio(leaf.pte.pfn);
      const anon = k.folios.testAnon(head, 'copy_hugetlb_page_range');
      if (cow && anon && kernelAtLeast(k.version, 5, 12) && k.forker.needsCowForDma(src.mm, head, head)) {
        // alloc_hugetlb_folio(dst_vma, addr, 0) by the parent (current): its cgroup is charged
        const copy = this.allocFor(src.mm, h, anonMappingOf(dst.anonVma || k.vm.anonVmaPrepare(dst)), false, this.nodesFor(dst, leaf.base));
        if (typeof copy === 'string') throw new KernelError('ENOMEM', `fork: alloc_hugetlb_folio() for the early-COW copy of a pinned hugetlb page (copy_hugetlb_page_range): ${copy}`);
        this.copyData(head, copy);
        k.folios.addMap(copy);
        // hugetlb_install_folio(): make_huge_pte(dst_vma, new, 1), writable and dirty whatever VM_WRITE
        // says; uffd-wp (so read-only) when the parent's entry was and the child stays VM_UFFD_WP,
        // from 5a2f8d22ace4 "mm/hugetlb: fix uffd-wp during fork()" (v6.4): before, the bit was lost
        const wp = leaf.pte.uffdWp === true && dst.flags.uffdWp === true && kernelAtLeast(k.version, 6, 4);
        k.vm.install(dst.mm, leaf.base, k.faults.pte(copy, h.level, { write: !wp, dirty: true, ...(wp ? { uffdWp: true } : {}) }));
        k.emit('cow', { mm: dst.mm.name, vaddr: leaf.base, from: head, to: copy, why: 'fork: early COW of a maybe-pinned hugetlb page' });
        continue;
      }
      k.forker.share(src, dst, leaf.base, leaf.pte, head, cow, 'copy_hugetlb_page_range');
      // until 5a2f8d22ace4 (v6.4) the entry was copied with its uffd-wp bit whatever the child's VMA
      // ("we should drop uffd-wp bit when !EVENT_FORK"); share() applies the later rule
      if (leaf.pte.uffdWp && !kernelAtLeast(k.version, 6, 4)) k.vm.lookup(dst.mm, leaf.base)!.pte.uffdWp = true;
    }
  }
}
