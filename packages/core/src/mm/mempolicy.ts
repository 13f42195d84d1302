import type { Kernel } from '../kernel.js';
import { InputError, KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import { preempt, waitUntil, type Op } from '../sched.js';
import type { Mm, PageCacheFile, Vma, VmaPolicy } from '../types.js';
import { migrationEntry } from './migrate.js';
import { PG } from './pages.js';
import { vmasIn } from './vm.js';

/** The mbind(2) / set_mempolicy(2) modes (include/uapi/linux/mempolicy.h), by name. */
export const MPOL_MODES = ['default', 'preferred', 'bind', 'interleave', 'local', 'preferred-many'] as const;
export type MpolMode = (typeof MPOL_MODES)[number];

/** MAX_NUMNODES with CONFIG_NODES_SHIFT=10 (x86-64 MAXSMP, the distributions' setting). */
export const MAX_NUMNODES = 1024;

/** mbind()'s MPOL_MF_* flags as a step gives them. */
export interface MbindFlags {
  /** MPOL_MF_MOVE (true) or MPOL_MF_MOVE | MPOL_MF_MOVE_ALL ('all') */
  readonly move?: boolean | 'all';
  /** MPOL_MF_STRICT */
  readonly strict?: boolean;
}

/** A folio isolated for migration, with where it was found (the page walk's VMA and address). */
interface Queued {
  head: number;
  readonly vma: Vma;
  readonly vpn: number;
}

/** Where a hugetlb folio's new folio may come from (alloc_hugetlb_folio_nodemask()'s gfp and nodemask). */
interface HugetlbAlloc {
  /** __GFP_THISNODE (move_pages(): do_move_pages_to_node()): the target node's pool only */
  readonly thisNode?: boolean;
  /** the policy's nodemask (mbind of MPOL_BIND / MPOL_PREFERRED_MANY) */
  readonly mask?: readonly number[];
}

/** How queue_pages_range() walks: which folios are misplaced, and whether they are queued. */
interface QueueWalk {
  /** the nodemask the walk compares folio_nid() with (queue_folio_required()) */
  readonly nmask: ReadonlySet<number>;
  /** MPOL_MF_INVERT (mbind): queue folios *not* on nmask's nodes; else (migrate_pages) those on them */
  readonly invert: boolean;
  readonly move: 'no' | 'move' | 'all';
  readonly strict: boolean;
  /** MPOL_MF_DISCONTIG_OK: holes in the range are fine */
  readonly discontig: boolean;
}

/**
 * NUMA memory nodes and page migration between them (mm/mempolicy.c, mm/migrate.c): mbind(2) with
 * MPOL_MF_MOVE / MPOL_MF_MOVE_ALL, move_pages(2) and migrate_pages(2). Read in torvalds/linux at
 * 000eca5d044d (v5.18-v6.0 era: queue_pages_pte_range(), migrate_page_add(), new_page()) and
 * 003fde4492c8 (v6.15+: queue_folios_pte_range(), folio_maybe_mapped_shared(),
 * alloc_migration_target_by_mpol()), and the move_pages paths of both eras.
 *
 * Nodes are RAM ranges (mm/ram.ts: page_to_nid() is the pfn's range); device memory is on node 0;
 * the online blocks of kmem memory (mm/hotplug.ts) are their target node's, which has memory while
 * one is online (hasMemory()).
 * The caller runs on a CPU of node 0 (numa_node_id()). Migration yields where the kernel may be
 * preempted (migrateFolio()): other threads meet its migration entries, and mm/migrate.ts says
 * what they do (migration_entry_wait(), fork's copy, munmap's zap).
 * mbind() also sets the VMA policy, which anonymous faults, swap-in and COW copies then follow
 * (allocNode()), falling back to the task policy set_mempolicy() gives, and tmpfs files keep it as
 * their shared policy (fileNode()). hugetlb folios migrate whole, to a page of their node's pool
 * (mm/hugetlb.ts allocMigrationTarget()), and hugetlb faults dequeue in hugetlbNodes()' order.
 * Not modelled: the task policy for shmem allocations, MPOL_MF_LAZY, cpusets.
 */
export class Numa {
  /** nodes with memory (node_states[N_MEMORY]): 0 .. nodes - 1 */
  nodes = 1;
  /** folios a migration has isolated (folio_isolate_lru() cleared PG_lru): isolating one again fails */
  private readonly isolated = new Set<number>();

  constructor(private readonly k: Kernel) {}

  /** The machine's memory nodes (firmware's SRAT, or numa=fake=N): set before the run needs them. */
  setNodes(count: number): void {
    if (!Number.isInteger(count) || count < 1 || count > MAX_NUMNODES) throw new KernelError('EINVAL', `numa nodes: ${count} is not between 1 and MAX_NUMNODES (${MAX_NUMNODES})`);
    // kmem memory sits on a node of its own (mm/hotplug.ts): boot RAM cannot be given to it afterwards
    for (const m of this.k.hotplug.added.values()) {
      if (m.node < count) throw new InputError(`numa-nodes: ${count} nodes would give boot RAM to node ${m.node}, which ${m.device}'s kmem memory joined; set numa-nodes before reconfigure (or give reconfigure a node >= ${count})`, undefined, 'nodes');
    }
    this.nodes = count;
  }

  /** page_to_nid(): a RAM page's node; device memory (pmem, device-dax, hmm) sits on node 0 here. */
  nodeOf(pfn: number): number {
    return this.k.memremap.pgmapOf(pfn) ? 0 : this.k.ram.nodeOf(pfn);
  }

  private online(nodes: readonly number[]): number[] {
    return [...new Set(nodes)].filter((n) => this.hasMemory(n)).sort((a, b) => a - b);
  }

  /** node_state(n, N_MEMORY): a boot RAM node, or a node kmem memory is online on (mm/hotplug.ts). */
  hasMemory(n: number): boolean {
    return (n >= 0 && n < this.nodes) || this.k.ram.hasHotplugged(n);
  }

  /** Only node 0 has memory: every allocation is local. */
  private singleNode(): boolean {
    return this.nodes === 1 && !this.k.ram.hasHotplugged();
  }

  /**
   * The node alloc_migration_target() falls back to when `node` is cleared from the nodemask
   * (do_migrate_range()): the nearest other memory node; all remote nodes are equally far here,
   * so the lowest. `node` itself when it is the only one ("reuse this node if there are no
   * other online nodes").
   */
  nearestOtherNode(node: number): number {
    for (let m = 0; m < MAX_NUMNODES; m++) if (m !== node && this.hasMemory(m)) return m;
    return node;
  }

  /**
   * do_mbind() (mm/mempolicy.c) over [start, end) of mm: validate (MOVE_ALL needs CAP_SYS_NICE:
   * EPERM; mpol_new() / mpol_set_nodemask(): EINVAL), queue_pages_range() with MPOL_MF_INVERT
   * (holes EFAULT unless the policy is MPOL_DEFAULT), then migrate the queued folios to where the
   * new policy allocates. Returns 0, or EIO with MPOL_MF_STRICT when a misplaced folio could not be
   * queued or moved; without STRICT such folios stay where they are and mbind() succeeds.
   */
  *mbind(mm: Mm, start: number, end: number, mode: MpolMode, nodes: readonly number[], flags: MbindFlags): Op {
    const k = this.k;
    const move = flags.move === 'all' ? 'all' : flags.move ? 'move' : 'no';
    if (move === 'all' && !hasSysNice(mm)) throw new KernelError('EPERM', 'mbind(MPOL_MF_MOVE_ALL) without CAP_SYS_NICE');
    // do_mbind(): "if (mode == MPOL_DEFAULT) flags &= ~MPOL_MF_STRICT"
    const strict = (flags.strict ?? false) && mode !== 'default';
    const policy = this.newPolicy('mbind', mode, nodes);
    const walk: QueueWalk = { nmask: new Set(nodes), invert: true, move, strict, discontig: policy === undefined };
    const { list, failed } = this.queue(mm, start, end, walk);
    this.mbindRange(mm, start, end, policy);
    let nrFailed = failed;
    // MPOL_DEFAULT migrates to where the task policy allocates ("Convert MPOL_DEFAULT's NULL to task or default policy")
    const target = policy ?? mm.taskPolicy ?? { mode: 'local', nodes: [] };
    // do_mbind(): "nr_failed |= migrate_pages()": -ENOMEM counts as a failure, which only STRICT reports (EIO)
    const mask = target.mode === 'bind' || target.mode === 'preferred-many' ? target.nodes : undefined;
    const moved = list.length > 0 ? yield* this.migrate(list, (q) => this.policyNode(target.mode, target.nodes, interleaveIndex(q.vma, q.vpn, k.folios.order(q.head))), { mask }) : 0;
    nrFailed += moved === 'ENOMEM' ? 1 : moved;
    if (nrFailed > 0 && strict) throw new KernelError('EIO', `mbind(MPOL_MF_STRICT): ${nrFailed} misplaced folio(s) could not be moved`);
  }

  /**
   * mpol_new() + mpol_set_nodemask(): DEFAULT (undefined: no policy) and LOCAL take no nodes,
   * PREFERRED without nodes is LOCAL, the others need some (EINVAL); the nodes are cut to those
   * with memory (N_MEMORY), and an empty result is EINVAL; PREFERRED keeps the first.
   */
  private newPolicy(call: string, mode: MpolMode, nodes: readonly number[]): VmaPolicy | undefined {
    // sanitize_mpol_flags(): a mode >= MPOL_MAX is EINVAL; MPOL_PREFERRED_MANY is v5.15 (b27abaccf8e8 [M])
    if (mode === 'preferred-many' && !kernelAtLeast(this.k.version, 5, 15)) throw new KernelError('EINVAL', `${call}(MPOL_PREFERRED_MANY): this release has no such mode (v5.15)`);
    if ((mode === 'default' || mode === 'local') && nodes.length > 0) throw new KernelError('EINVAL', `${call}(MPOL_${mode.toUpperCase()}) with a nodemask`);
    if (mode === 'default') return undefined;
    if (mode === 'local' || (mode === 'preferred' && nodes.length === 0)) return { mode: 'local', nodes: [] };
    if (nodes.length === 0) throw new KernelError('EINVAL', `${call}(${mpolName(mode)}) needs a nodemask`);
    const online = this.online(nodes);
    if (online.length === 0) throw new KernelError('EINVAL', `${call}(${mpolName(mode)}): none of nodes ${nodes.join(',')} has memory (${this.nodes} node(s))`);
    return { mode, nodes: mode === 'preferred' ? [online[0]!] : online };
  }

  /**
   * set_mempolicy(2) (do_set_mempolicy()): the process's task policy, which allocations in VMAs
   * without a policy of their own follow (get_task_policy()); MPOL_DEFAULT removes it.
   */
  setMempolicy(mm: Mm, mode: MpolMode, nodes: readonly number[]): void {
    const policy = this.newPolicy('set_mempolicy', mode, nodes);
    if (policy) mm.taskPolicy = policy;
    else delete mm.taskPolicy;
  }

  /**
   * The node alloc_migration_target_by_mpol() (new_page() before v6.7) allocates on: the local node
   * for MPOL_LOCAL / MPOL_DEFAULT (the task policy, default_policy); the preferred node; for BIND and
   * PREFERRED_MANY the local node if allowed, else the nearest allowed one (all remote nodes are
   * equally far here: the lowest); for INTERLEAVE the nth allowed node, n = the folio's
   * interleave index `ilx` (interleave_nid(): ilx modulo the node count).
   */
  private policyNode(mode: VmaPolicy['mode'] | 'default', nodes: readonly number[], ilx: number): number {
    switch (mode) {
      case 'default':
      case 'local':
        return 0;
      case 'preferred':
        return nodes[0]!;
      case 'bind':
      case 'preferred-many':
        return nodes.includes(0) ? 0 : nodes[0]!;
      case 'interleave':
        return nodes[ilx % nodes.length]!;
    }
  }

  /**
   * mbind_range(): every VMA of the range gets the new policy (vma_replace_policy()), split at the
   * range's ends where it differs (vma_modify_policy() / split_vma(): a hugetlb or device-dax VMA
   * refuses an unaligned split with EINVAL); MPOL_DEFAULT clears it. Neighbours with equal policies
   * merge as mergeAround() allows. A tmpfs (shmem) VMA also passes it to its file
   * (shmem_vm_ops->set_policy = shmem_set_policy(): the file pages the piece maps); a disk file's
   * and hugetlbfs' vm_ops have no set_policy.
   */
  private mbindRange(mm: Mm, start: number, end: number, policy: VmaPolicy | undefined): void {
    const vmas = vmasIn(mm, start, end);
    for (const vma of vmas) {
      if (samePolicy(vma.policy, policy)) continue;
      const piece = this.k.vm.isolate(vma, Math.max(start, vma.start), Math.min(end, vma.start + vma.pages));
      if (policy) piece.policy = policy;
      else delete piece.policy;
      const file = piece.cacheFile;
      if (file && !file.writeback && !file.hugetlb && !file.secretmem) setSharedPolicy(file, piece.pgoff, piece.pgoff + piece.pages, policy);
    }
  }

  /**
   * The node shmem_alloc_folio() allocates file page `index` on: shmem_get_pgoff_policy() looks up
   * the file's shared policy (mpol_shared_policy_lookup()), else the task's (the default: local).
   * Interleave index: the page index (the kernel adds the inode number from v6.7, which the model
   * does not number).
   */
  fileNode(file: PageCacheFile, index: number): number {
    if (this.singleNode() || !file.sharedPolicy) return 0;
    const r = file.sharedPolicy.find((x) => index >= x.start && index < x.end);
    return r ? this.policyNode(r.policy.mode, r.policy.nodes, index) : 0;
  }

  /**
   * The node a fault allocates a folio of `order` on for this VMA (vma_alloc_folio() ->
   * get_vma_policy()): the VMA's policy, else the task's (set_mempolicy()), else the default
   * (local: node 0). With one node, always node 0.
   */
  allocNode(vma: Vma, vpn: number, order = 0): number {
    const pol = vma.policy ?? vma.mm.taskPolicy;
    if (!pol || this.singleNode()) return 0;
    return this.policyNode(pol.mode, pol.nodes, interleaveIndex(vma, vpn, order));
  }

  /**
   * The nodes alloc_hugetlb_folio() dequeues a free huge page from, in order
   * (dequeue_hugetlb_folio_vma(): huge_node() gives the policy's node and nodemask, then
   * dequeue_hugetlb_folio_nodemask() walks that node's zonelist): the node, then the other boot
   * nodes, the nearest first (all equally far here: the lowest); MPOL_BIND keeps its nodes only;
   * MPOL_PREFERRED_MANY tries its nodes first, then every node ("Fallback to all nodes").
   */
  hugetlbNodes(vma: Vma, vpn: number, order: number): number[] {
    const pol = vma.policy ?? vma.mm.taskPolicy;
    return this.zonelist(this.allocNode(vma, vpn, order), pol?.mode === 'bind' || pol?.mode === 'preferred-many' ? pol.nodes : undefined, pol?.mode === 'preferred-many');
  }

  /** A zonelist walk over the boot nodes from `node` (nearest first), cut to `mask`, then (`widen`) the rest. */
  private zonelist(node: number, mask?: readonly number[], widen = false): number[] {
    const all = [node, ...Array.from({ length: this.nodes }, (_, n) => n).filter((n) => n !== node)];
    if (!mask) return all;
    const inMask = all.filter((n) => mask.includes(n));
    return widen ? [...inMask, ...all.filter((n) => !mask.includes(n))] : inMask;
  }

  /**
   * queue_pages_range() (mm/mempolicy.c): walk the VMAs of [start, end); a misplaced folio
   * (queue_folio_required()) is isolated onto the list when moving is asked for, the VMA is
   * migratable and migrate_folio_add() takes it; otherwise it counts as failed. What the walk passes
   * over: non-present entries, the zero page and huge zero page, PTE-mapped ZONE_DEVICE folios
   * (folio_is_zone_device(): never on the LRU), a shared folio without MOVE_ALL (skipped, "not
   * counted as a failure"), a large folio's second and later PTEs. A non-migratable VMA is not
   * walked at all unless STRICT. Holes: EFAULT (queue_pages_test_walk()) unless discontig.
   */
  private queue(mm: Mm, start: number, end: number, w: QueueWalk): { list: Queued[]; failed: number } {
    const k = this.k;
    const vmas = vmasIn(mm, start, end);
    // "whole range in hole": EFAULT even for MPOL_DEFAULT
    if (vmas.length === 0) throw new KernelError('EFAULT', `no VMA in the range (queue_pages_range: whole range in hole)`);
    if (!w.discontig) {
      let at = start;
      for (const v of vmas) {
        if (v.start > at) throw new KernelError('EFAULT', `a hole at page ${at - start} of the range (queue_pages_test_walk)`);
        at = v.start + v.pages;
      }
      if (at < end) throw new KernelError('EFAULT', `a hole at page ${at - start} of the range (queue_pages_test_walk)`);
    }
    const list: Queued[] = [];
    let failed = 0;
    let large = -1;
    for (const vma of vmas) {
      const migratable = this.vmaMigratable(vma);
      if (!migratable && !w.strict) continue;
      if (w.move === 'no' && !w.strict) continue;
      const s = Math.max(start, vma.start);
      const e = Math.min(end, vma.start + vma.pages);
      for (const leaf of k.vm.leavesIn(mm, s, e)) {
        const pte = leaf.pte;
        // queue_folios_hugetlb() from v6.7 (Hugh Dickins' mbind() rework): a hugetlb migration
        // entry -- another migration has the folio -- is counted as failed ("qp->nr_failed++")
        if (vma.hugetlb && pte.migration && kernelAtLeast(k.version, 6, 7)) failed++;
        // queue_folios_pte_range(): "if (!pte_present(ptent)) continue" (a migration entry too)
        if (pte.devicePrivate || pte.deviceExclusive || pte.swap || pte.marker || pte.migration) continue;
        let head: number;
        if (pte.level !== 'pte') {
          // queue_folios_pmd(): the huge zero folio is skipped; no ZONE_DEVICE test at this level
          if (k.isZeroPfn(pte.pfn)) continue;
          head = k.folios.folio(pte.pfn);
        } else {
          const page = k.vm.normalPage(pte, pte.pfn);
          if (page === null || k.isZeroPfn(page) || k.isGone(page)) continue;
          head = k.folios.folio(page);
          if (k.folios.kind(head) !== 'ram') continue; // folio_is_zone_device()
          if (k.folios.nr(head) > 1) {
            // "A large folio can only be isolated from LRU once, but may be mapped by many PTEs"
            if (head === large) continue;
            large = head;
          }
        }
        if (w.nmask.has(this.nodeOf(head)) === w.invert) continue;
        if (w.move === 'no' || !migratable || !this.folioAdd(list, head, vma, leaf.base, w.move === 'all')) {
          failed++;
          // strictly_unmovable(): STRICT without MOVE* stops at the first misplaced folio: EIO
          if (w.move === 'no') throw new KernelError('EIO', `mbind(MPOL_MF_STRICT): page ${leaf.base - start} of the range is on node ${this.nodeOf(head)}`);
        }
      }
    }
    return { list, failed };
  }

  /**
   * migrate_folio_add() (migrate_page_add() before v6.2): without MOVE_ALL a shared folio is left
   * alone, which is no failure; else folio_isolate_lru(), which fails for a folio already isolated.
   */
  private folioAdd(list: Queued[], head: number, vma: Vma, vpn: number, all: boolean): boolean {
    if (!all && this.mappedShared(head)) return true;
    if (list.some((q) => q.head === head) || this.isolated.has(head) || !this.onLru(head, vma)) return false;
    list.push({ head, vma, vpn });
    return true;
  }

  /**
   * PageLRU(): anonymous and page-cache folios are on an LRU list; a driver's page a VM_MIXEDMAP
   * mapping inserted with vm_insert_page() (the hmm mirror's buffer) never is, so
   * folio_isolate_lru() fails for it.
   */
  private onLru(head: number, vma: Vma): boolean {
    return this.k.folios.isAnon(head) || vma.cacheFile !== undefined;
  }

  /**
   * Whether NUMA migration treats a folio as shared: page_mapcount(head) > 1 up to v6.2 (for a
   * PMD-mapped THP the entire mapcount counts), folio_estimated_sharers() / folio_likely_mapped_shared()
   * (the first page's mapcount) up to v6.14, folio_maybe_mapped_shared() from v6.15 (a large folio:
   * mapped by more than one mm, CONFIG_MM_ID [M]).
   */
  private mappedShared(head: number): boolean {
    const k = this.k;
    // a hugetlb folio is mapped whole (one PMD/PUD per mapping): page_mapcount() of its head,
    // folio_likely_mapped_shared() and folio_maybe_mapped_shared() ("folio_test_hugetlb(folio):
    // return mapcount > 1") all count its mappings
    if (k.folios.nr(head) === 1 || (k.folios.flags(head) & PG.hugetlb) !== 0) return k.folios.mapcount(head) > 1;
    if (!kernelAtLeast(k.version, 6, 15)) return k.vm.pageMapcount(head, head) > 1;
    return this.mappings(head).reduce((mms, m) => mms.add(m.mm), new Set<Mm>()).size > 1;
  }

  /**
   * vma_migratable() (mm/mempolicy.c; include/linux/mempolicy.h before v5.x): not VM_IO|VM_PFNMAP,
   * not a DAX VMA (vma_is_dax(): "DAX device mappings require predictable access latency"), hugetlb
   * only where hugepage_migration_supported() (CONFIG_ARCH_ENABLE_HUGEPAGE_MIGRATION, which the
   * Kconfig of x86-64, arm64 and ppc64 book3s selects, for every size the model maps; s390's does
   * not [read in an old copy only]), and not a file
   * whose mapping gfp cannot reach policy_zone (none here).
   */
  vmaMigratable(vma: Vma): boolean {
    if (vma.flags.io || vma.flags.pfnmap) return false;
    // vma_is_dax(): an fs-dax file, or device-dax (its character device's inode is S_DAX); the hmm
    // mirror's VM_MIXEDMAP mapping is not DAX (its pages then fail isolation: folioAdd())
    if (this.k.isFsdaxVma(vma) || (vma.kind === 'device' && vma.device?.pgmap.type === 'generic')) return false;
    if (vma.hugetlb && this.k.desc.arch === 's390') return false;
    return true;
  }

  /**
   * thp_migration_supported(): CONFIG_ARCH_ENABLE_THP_MIGRATION — x86-64 (v4.14), ppc64 book3s,
   * arm64 from v5.8 (53fa117bb33c "arm64/mm: Enable THP migration" [M]); not s390. Without it
   * migrate_pages() splits a PMD-sized THP and migrates its pages.
   */
  private thpMigration(): boolean {
    switch (this.k.desc.arch) {
      case 'x86':
      case 'ppc-hash':
        return true;
      case 'arm64':
        return kernelAtLeast(this.k.version, 5, 8);
      default:
        return false;
    }
  }

  /**
   * migrate_pages(MIGRATE_SYNC) (mm/migrate.c) of the isolated folios, each to `target(q)`. A
   * PMD-sized THP is split first where the arch cannot migrate it whole, and a large folio whose
   * new folio cannot be allocated is split and its pages tried one by one (try_split_folio(); a
   * failed split fails the folio). A small folio whose page cannot be allocated ends the call:
   * "when memory is low, don't bother to try to migrate other folios" -- migrate_pages() returns
   * -ENOMEM. Otherwise returns how many folios did not move (each stays where it was,
   * putback_movable_pages()).
   */
  private *migrate(list: Queued[], target: (q: Queued) => number, hugetlbAlloc: HugetlbAlloc = {}): Op<number | 'ENOMEM'> {
    const k = this.k;
    // the walk isolated every queued folio before migrate_pages() runs (folio_isolate_lru():
    // a reference each, off the LRU, so another migration's isolation of it fails)
    for (const q of list) this.isolate(q.head, 'folio_isolate_lru');
    // putback_movable_pages(): what is still isolated when the call gives up goes back
    const putback = (heads: readonly number[], why: string): void => {
      for (const head of heads) this.release(head, `putback_movable_pages: ${why}`);
    };
    let failed = 0;
    for (let n = 0; n < list.length; n++) {
      const q = list[n]!;
      const rest = list.slice(n + 1).map((x) => x.head);
      const nr = k.folios.nr(q.head);
      // a hugetlb folio is never split: migrate_hugetlbs() (unmap_and_move_huge_page() before v6.3)
      const hugetlb = (k.folios.flags(q.head) & PG.hugetlb) !== 0;
      const cannotMoveWhole = !hugetlb && nr > 1 && nr === k.vm.pmdPages && !this.thpMigration();
      const r = cannotMoveWhole ? 'split' : yield* this.migrateFolio(q, target, 'policy', hugetlbAlloc);
      if (r !== 'enomem' && r !== 'split') this.isolated.delete(q.head);
      if (r === 'moved') continue;
      if (r === 'failed') {
        failed++;
        continue;
      }
      // -ENOMEM of a hugetlb folio (no free page on the nodes, and a gigantic page has no
      // temporary one) ends the call as for a small folio: "When memory is low, don't bother to
      // try to migrate other folios, just exit" (migrate_hugetlbs(); migrate_pages()'s loop before v6.3)
      if (r === 'enomem' && (nr === 1 || hugetlb)) {
        putback([q.head, ...rest], '-ENOMEM');
        return 'ENOMEM';
      }
      // try_split_folio() -> split_folio(): the isolation reference stays on the head page; each
      // other page still mapped is isolated on its own (the split puts them on the list)
      if (!k.thp.splitFolio(q.head)) {
        this.release(q.head, 'putback_movable_pages: the split failed');
        failed++;
        continue;
      }
      const subs: number[] = [q.head];
      for (let i = 1; i < nr; i++) {
        if (k.folios.rc(q.head + i) === 0) continue;
        this.isolate(q.head + i, 'split_folio_to_list: isolated subpage');
        subs.push(q.head + i);
      }
      for (let j = 0; j < subs.length; j++) {
        const pfn = subs[j]!;
        const sub = yield* this.migrateFolio({ ...q, head: pfn, vpn: q.vpn + (pfn - q.head) }, target);
        if (sub === 'enomem') {
          putback([...subs.slice(j), ...rest], '-ENOMEM');
          return 'ENOMEM';
        }
        this.isolated.delete(pfn);
        if (sub === 'failed') failed++;
      }
    }
    return failed;
  }

  /**
   * soft_offline_in_use_page()'s isolation and migrate_pages(MIGRATE_SYNC, MR_MEMORY_FAILURE) of
   * one folio (mm/memory-failure.c): isolate_folio_to_list() -- isolate_hugetlb() or
   * folio_isolate_lru(), refused ('busy') while another migration holds the folio isolated or
   * for a page on no LRU -- then the caller's reference (get_hwpoison_page()'s) is dropped either
   * way, and the folio migrates to alloc_migration_target() with NUMA_NO_NODE: its own node
   * (folio_nid(src)). 'moved': a small folio keeps the isolation reference for
   * page_handle_poison(), a hugetlb one was put back (freed to its pool); 'failed' / 'enomem': put
   * back where it was.
   */
  *migrateForSoftOffline(head: number, vma: Vma, vpn: number): Op<'moved' | 'busy' | 'failed' | 'enomem'> {
    const k = this.k;
    const hugetlb = (k.folios.flags(head) & PG.hugetlb) !== 0;
    const isolated = !this.isolated.has(head) && (hugetlb || this.onLru(head, vma));
    if (isolated) this.isolate(head, hugetlb ? 'isolate_hugetlb' : 'folio_isolate_lru');
    k.folios.put(head, 1, 'soft_offline_in_use_page: folio_put (get_hwpoison_page reference)');
    if (!isolated) return 'busy';
    // migrate_folio_unmap(): only the isolation reference left is a success at once, the source
    // kept for page_handle_poison() (migrate_folio_done() with MR_MEMORY_FAILURE)
    if (!hugetlb && k.folios.rc(head) === 1) {
      this.isolated.delete(head);
      return 'moved';
    }
    const r = yield* this.migrateFolio({ head, vma, vpn }, () => this.nodeOf(head), 'memory-failure');
    if (r === 'enomem') this.release(head, 'putback_movable_pages: -ENOMEM');
    else this.isolated.delete(head);
    return r;
  }

  /**
   * One folio moved out of where it may not stay, to `node`: do_migrate_range() (mm/memory_hotplug.c,
   * MR_MEMORY_HOTPLUG) for a range offline_pages() isolated, and check_and_migrate_movable_pages()
   * (mm/gup.c, MR_LONGTERM_PIN) for a ZONE_MOVABLE folio a FOLL_LONGTERM pin met: folio_isolate_lru(),
   * then migrate_pages(); the model finds the folio through a mapping of it (the rmap walk). An
   * unmapped anonymous folio is still referenced (a pin, a GUP reference): its migration would
   * fail folio_migrate_mapping()'s refcount check, so it is 'failed' here. An unmapped
   * page-cache folio the model cannot reach is refused as not modelled.
   */
  *migrateOut(head: number, node: number): Op<'moved' | 'failed' | 'enomem'> {
    const k = this.k;
    const m = this.mappings(head)[0];
    const vma = m ? k.vm.vmaAt(m.mm, m.vpn) : null;
    if (!m || !vma) {
      if (!k.folios.isAnon(head)) throw KernelError.unsupported('EOPNOTSUPP', `offline_pages: pfn ${head} is an unmapped page-cache folio; the model migrates a folio it finds through a mapping`);
      return 'failed';
    }
    if (this.isolated.has(head) || !this.onLru(head, vma)) return 'failed';
    this.isolate(head, 'do_migrate_range: folio_isolate_lru');
    const r = yield* this.migrateFolio({ head, vma, vpn: m.vpn }, () => node);
    if (r === 'enomem') this.release(head, 'putback_movable_pages: -ENOMEM');
    else this.isolated.delete(head);
    return r;
  }

  /** folio_isolate_lru(): a reference, and the folio is off the LRU until put back or freed. */
  private isolate(head: number, why: string): void {
    this.k.folios.get(head, 1, why);
    this.isolated.add(head);
  }

  /** folio_putback_lru(): back on the LRU, the isolation reference dropped. */
  private release(head: number, why: string): void {
    this.isolated.delete(head);
    this.k.folios.put(head, 1, why);
  }

  /**
   * How migrate_pages() spends its NR_MAX_MIGRATE_PAGES_RETRY (10) passes on one folio, as
   * rounds: each round unmaps the folio (up to `unmap` tries while try_to_migrate() leaves it
   * mapped), then tries to move it (up to `move` tries while folio_migrate_mapping() says
   * -EAGAIN) with the migration entries in place, and puts them back on the old folio if it
   * never moved (migrate_folio_undo_src() -> remove_migration_ptes(src, src)). Up to v6.2,
   * unmap_and_move() -> __unmap_and_move() does one unmap and one move per pass and restores the
   * entries at the end of every failed pass: ten rounds of one. From v6.3 (Huang Ying's
   * 5dfab109d519 "migrate_pages: batch _unmap and _move", with the v6.3-rc fixes fb3592c41a44
   * "fix deadlock in batched migration" and 2ef7dbb26990 "try migrate in batch asynchronously
   * firstly", read in their stable-backport lists) migrate_pages_sync() first runs
   * migrate_pages_batch() in MIGRATE_ASYNC mode with NR_MAX_MIGRATE_ASYNC_RETRY (3) passes, then
   * once more synchronously with NR_MAX_MIGRATE_SYNC_RETRY (7); each batch has its unmap loop and
   * its move loop of that many passes, and a failed move keeps the entries for the next pass
   * (migrate_folio_move(): "rc == -EAGAIN" returns without the undo).
   */
  private migrationRounds(hugetlb = false): readonly { readonly unmap: number; readonly move: number }[] {
    // migrate_hugetlbs() (v6.3) keeps unmap_and_move_huge_page()'s ten passes of one unmap and one move
    if (kernelAtLeast(this.k.version, 6, 3) && !hugetlb) return [{ unmap: 3, move: 3 }, { unmap: 7, move: 7 }];
    return Array.from({ length: 10 }, () => ({ unmap: 1, move: 1 }));
  }

  /**
   * One isolated folio (the caller holds the isolation reference), preemptible where the kernel
   * is (cond_resched() between passes, the PTE lock dropped between try_to_migrate() and
   * folio_migrate_mapping(), and before remove_migration_ptes()): other threads meet the
   * migration entries in between (a fault waits, GUP-fast backs off, fork copies them, munmap
   * drops them: mm/migrate.ts). Each pass: migrate_folio_unmap() -- "folio_ref_count(src) == 1":
   * every mapping and other reference went while it sat isolated, so it is freed without moving;
   * from v5.19 try_to_migrate_one() will not unmap a PageAnonExclusive page that may be
   * DMA-pinned (folio_try_share_anon_rmap_pte() fails: the walk stops, the folio stays mapped,
   * -EAGAIN); otherwise every mapping becomes a migration entry. Then folio_migrate_mapping()
   * wants the references to be exactly the expected ones (folio_expected_refs(): isolation, plus
   * the page cache's or swap cache's), checked again at each move pass: one more (a GUP pin or
   * get, a GUP-fast reference not yet given back) is -EAGAIN. A GUP that came after the unmap
   * met the entries and waits, so it pins the new folio, never the old one after the copy. On
   * success the new folio, allocated on the target node, takes the data, mapping, index and
   * flags, and remove_migration_ptes(src, dst) maps it wherever an entry is now (the entries
   * fork copied included, those munmap removed not), each keeping its write and soft-dirty bits
   * (and, v6.1+, its dirty bit: 2e3468778dbe "mm: remember young/dirty bit for page migrations"
   * [M]; before, the PTE was made clean and the folio kept PG_dirty), and each page its
   * PageAnonExclusive (RMAP_EXCLUSIVE for a writable or readable-exclusive entry). The old folio
   * is freed with the isolation reference.
   */
  private *migrateFolio(q: Queued, target: (q: Queued) => number, reason: 'policy' | 'memory-failure' = 'policy', hugetlbAlloc: HugetlbAlloc = {}): Op<'moved' | 'failed' | 'enomem'> {
    const k = this.k;
    const src = q.head;
    const nr = k.folios.nr(src);
    // a page-cache folio (shmem, hugetlbfs, a disk file); a COW copy in a private file mapping is anon
    const file = k.folios.isAnon(src) ? undefined : q.vma.cacheFile;
    const fail = (why: string): 'failed' => {
      k.folios.put(src, 1, `putback_movable_pages: ${why}`);
      return 'failed';
    };
    const hugetlb = (k.folios.flags(src) & PG.hugetlb) !== 0;
    // unmap_and_move_huge_page(): "if (!hugepage_migration_supported(folio_hstate(src))) return -ENOSYS"
    if (hugetlb && !this.vmaMigratable(q.vma)) return fail('hugepage_migration_supported: -ENOSYS');
    // secretmem_migrate_folio(): -EBUSY, always
    if (file?.secretmem) return fail('secretmem_migrate_folio: -EBUSY');
    // migrate_folio_unmap(): the new folio is allocated on the target node before anything is
    // unmapped; -ENOMEM leaves the folio isolated for the caller (split or give up)
    const node = target(q);
    const p = k.pages;
    const srcSlot = p.slot(src);
    const mapping = p.mapping[srcSlot]!;
    // a hugetlb folio's new folio comes from its pool (mm/hugetlb.ts allocMigrationTarget): the
    // target node's free pages only for move_pages() (__GFP_THISNODE), else the zonelist from it
    // (cut to an MPOL_BIND / PREFERRED_MANY nodemask: policy_nodemask()); soft offline's target is
    // the folio's own node (alloc_migration_target() with NUMA_NO_NODE: folio_nid(src))
    const hugetlbNodes = hugetlbAlloc.thisNode ? [node] : this.zonelist(node, hugetlbAlloc.mask);
    const dst = hugetlb ? k.hugetlb.allocMigrationTarget(src, hugetlbNodes) : nr > 1 ? k.ram.allocAnonLarge(0, Math.log2(nr), node) : file ? k.ram.allocFile(mapping, 0, node) : k.ram.allocAnon(0, '', node);
    if (dst === null) return 'enomem';
    const dropDst = (why: string): void => k.folios.put(dst, 1, why);
    // migrate_folio_done(): "if (reason != MR_MEMORY_FAILURE) folio_put(src)" -- soft offline
    // releases it in page_handle_poison(); a hugetlb source is put back all the same
    // (unmap_and_move_huge_page(): folio_putback_hugetlb())
    const keepSource = reason === 'memory-failure' && !hugetlb;
    // unmap_and_move_huge_page(): folio_lock(src) (MIGRATE_SYNC) -- a hugetlb fault holding it
    // (hugetlb_no_page()) finishes first -- kept until the folio moved or was given up, so a fault
    // that finds it in the page cache meanwhile waits for it (filemap_lock_hugetlb_folio())
    if (hugetlb) {
      yield* waitUntil('folio_lock (unmap_and_move_huge_page)', () => (k.folios.flags(src) & PG.locked) === 0);
      k.folios.setFlag(src, PG.locked, true);
    }
    const unlock = (): void => {
      if (hugetlb) k.folios.setFlag(src, PG.locked, false);
    };
    const anonExclusiveEra = k.features['wp-reuse'] === 'anon-exclusive';
    let why = 'never unmapped';
    let pass = 0;
    for (const round of this.migrationRounds(hugetlb)) {
      let unmapped = false;
      for (let u = 0; u < round.unmap && !unmapped; u++, pass++) {
        const at = pass;
        yield preempt('migrate_pages: cond_resched', () => at);
        if (k.folios.rc(src) === 1) {
          // migrate_folio_unmap(): "Folio was freed from under us. So we are done."
          dropDst('migrate_folio_unmap: the unused new folio');
          unlock();
          if (!keepSource) k.folios.put(src, 1, 'migrate_folio_done: the folio was freed from under us');
          return 'moved';
        }
        unmapped = this.unmapForMigration(src, anonExclusiveEra);
        if (!unmapped) why = 'try_to_migrate_one: an exclusive page may be pinned';
      }
      if (!unmapped) continue;
      // the entries are in: the PTE locks are dropped (try_to_unmap_flush() in the batch era)
      yield preempt('try_to_migrate: migration entries installed', () => pass);
      for (let m = 0; m < round.move; m++) {
        const at = `${pass}.${m}`;
        yield preempt('folio_migrate_mapping: folio_ref_freeze', () => at);
        // folio_expected_refs(): the isolation reference, plus the page cache's or the swap cache's
        const swapCache = k.swap.inSwapCache(src);
        const expected = 1 + (file || swapCache ? 1 : 0);
        if (k.folios.rc(src) !== expected) {
          why = `folio_migrate_mapping: refcount ${k.folios.rc(src)}, expected ${expected}: -EAGAIN`;
          continue;
        }
        this.moveToNewFolio(src, dst, nr, file, swapCache, anonExclusiveEra);
        yield preempt('remove_migration_ptes', () => at);
        this.remap(src, dst);
        if (hugetlb) k.hugetlb.migrated(src, dst);
        // the allocation reference (a file folio's became the page cache's)
        if (!file) dropDst('migrate_folio_move: folio_put(dst)');
        unlock();
        if (!keepSource) k.folios.put(src, 1, hugetlb ? 'folio_putback_hugetlb: the isolation reference' : 'migrate_folio_done: the isolation reference');
        return 'moved';
      }
      // migrate_folio_undo_src(): the entries go back to the old folio
      this.remap(src, src);
    }
    dropDst('migrate_folio_undo_dst: the unused new folio');
    unlock();
    return fail(`${why} after ${pass} passes`);
  }

  /**
   * try_to_migrate() (mm/rmap.c try_to_migrate_one(); try_to_unmap(TTU_MIGRATION) before v5.14's
   * a98a2f0c8ce1 "mm/rmap: split migration into its own function" [M]): each mapping of the folio
   * becomes a migration entry, its rmap and reference dropped. From v5.19, a PageAnonExclusive page that
   * may be DMA-pinned refuses (the model checks before unmapping anything). False: still mapped.
   */
  private unmapForMigration(src: number, anonExclusiveEra: boolean): boolean {
    const k = this.k;
    const maps = this.mappings(src);
    if (anonExclusiveEra && k.folios.maybeDmaPinned(src) && maps.some((m) => (k.folios.flags(m.level === 'pte' ? m.pfn : src) & PG.anonExclusive) !== 0)) return false;
    for (const m of maps) {
      const page = m.level === 'pte' ? m.pfn : src;
      // folio_try_share_anon_rmap_pte() cleared PageAnonExclusive; the entry remembers it
      const exclusive = anonExclusiveEra && (k.folios.flags(page) & PG.anonExclusive) !== 0;
      if (exclusive) k.folios.setFlag(page, PG.anonExclusive, false);
      const pte = k.vm.clear(m.mm, m.vpn, m.level)!;
      // "Set the dirty flag on the folio now the PTE is gone" (folio_mark_dirty())
      if (pte.dirty) k.folios.setFlag(src, PG.dirty, true);
      k.vm.install(m.mm, m.vpn, migrationEntry(k, pte, exclusive));
      k.emit('tlb.flush', { mm: m.mm.name });
      k.folios.removeMap(src);
      k.folios.put(src, 1, m.level === 'pmd' ? 'set_pmd_migration_entry' : 'try_to_migrate_one');
    }
    return true;
  }

  /** move_to_new_folio(): folio_migrate_mapping() + folio_migrate_flags() + folio_copy(). */
  private moveToNewFolio(src: number, dst: number, nr: number, file: PageCacheFile | undefined, swapCache: boolean, anonExclusiveEra: boolean): void {
    const k = this.k;
    const p = k.pages;
    const srcSlot = p.slot(src);
    // a hugetlb folio's tails are never materialised (mm/hugetlb.ts initialPage): its head
    // carries mapping, index and flags, and only the base pages that have data are copied
    const hugetlb = (p.flags[srcSlot]! & PG.hugetlb) !== 0;
    for (let i = 0; i < (hugetlb ? 1 : nr); i++) {
      const ss = p.slot(src + i);
      const ds = p.slot(dst + i);
      p.mapping[ds] = p.mapping[ss]!;
      p.index[ds] = p.index[ss]!;
      const keep = PG.dirty | (anonExclusiveEra ? 0 : PG.anonExclusive);
      p.flags[ds] = (p.flags[ds]! & ~(PG.dirty | PG.anonExclusive)) | (p.flags[ss]! & keep);
      if (!hugetlb) p.data.set(dst + i, p.data.get(src + i) ?? '');
    }
    if (hugetlb) for (const [pfn, d] of [...p.data]) if (pfn >= src && pfn < src + nr) p.data.set(dst + (pfn - src), d);
    if (k.ksm.isKsm(src)) k.ksm.migrated(src, dst);
    if (swapCache) k.swap.migrated(src, dst);
    if (file) {
      // the page cache now holds the new folio; its reference moves with it
      file.cache.set(p.index[srcSlot]!, dst);
      k.folios.put(src, 1, 'folio_migrate_mapping: page cache reference moves to the new folio');
      // move_to_new_folio(): "For pagecache folios, src->mapping must be cleared before src is freed"
      p.mapping[srcSlot] = 0;
    }
  }

  /**
   * remove_migration_ptes(src, to): the rmap walk finds every migration entry for a page of
   * `src` (in every process: fork may have copied some, munmap removed others), and each becomes
   * a present entry for `to` (a reference and an rmap each; RMAP_EXCLUSIVE for a writable or
   * readable-exclusive entry).
   */
  private remap(src: number, to: number): void {
    const k = this.k;
    const nr = k.folios.nr(src);
    const dirtyKept = to === src || kernelAtLeast(k.version, 6, 1);
    const exclusiveEra = k.features['wp-reuse'] === 'anon-exclusive';
    for (const mm of k.processes.values()) {
      if (!mm.alive) continue;
      for (const table of [mm.puds, mm.pmds, mm.ptes]) {
        for (const [vpn, e] of [...table]) {
          if (!e.migration || e.pfn < src || e.pfn >= src + nr) continue;
          const offset = e.pfn - src;
          k.vm.clear(mm, vpn, e.level);
          k.folios.get(to, 1, e.level === 'pmd' ? 'remove_migration_pmd' : 'remove_migration_pte');
          k.folios.addMap(to);
          if (exclusiveEra && (e.migration.exclusive || e.write) && k.folios.isAnon(to)) k.folios.setFlag(e.level === 'pte' ? to + offset : to, PG.anonExclusive, true);
          const { migration: _, ...present } = e;
          k.vm.install(mm, vpn, { ...present, pfn: to + offset, dirty: dirtyKept && e.dirty });
        }
      }
    }
  }

  /** The rmap walk (rmap_walk_anon / rmap_walk_file): every PMD and PTE of every live process mapping a page of the folio. */
  private mappings(head: number): { mm: Mm; vpn: number; level: 'pte' | 'pmd' | 'pud'; pfn: number }[] {
    const k = this.k;
    const nr = k.folios.nr(head);
    const found: { mm: Mm; vpn: number; level: 'pte' | 'pmd' | 'pud'; pfn: number }[] = [];
    for (const mm of k.processes.values()) {
      if (!mm.alive) continue;
      // a gigantic hugetlb folio's PUD leaves
      for (const [vpn, pud] of mm.puds) if (pud.pfn === head && !pud.special && !pud.migration) found.push({ mm, vpn, level: 'pud', pfn: head });
      for (const [vpn, pmd] of mm.pmds) if (pmd.pfn === head && !pmd.special && !pmd.devicePrivate && !pmd.migration) found.push({ mm, vpn, level: 'pmd', pfn: head });
      for (const [vpn, pte] of mm.ptes) {
        if (pte.pfn < head || pte.pfn >= head + nr || pte.special || pte.devmap || pte.devicePrivate || pte.deviceExclusive || pte.swap || pte.marker || pte.migration) continue;
        found.push({ mm, vpn, level: 'pte', pfn: pte.pfn });
      }
    }
    return found;
  }

  /**
   * move_pages(2) (mm/migrate.c kernel_move_pages()): with nodes, do_pages_move(); without,
   * do_pages_stat(). Per page, the status is the node the page is on, or a negative errno:
   * -EFAULT (no VMA, a VMA vma_migratable() refuses, the zero page), -ENOENT (nothing mapped, a
   * ZONE_DEVICE page), -EACCES (shared, without MPOL_MF_MOVE_ALL), -EBUSY (cannot be isolated: a
   * page of a folio an earlier page of the call already isolated). A node without memory is
   * ENODEV for the whole call. Queued pages move together when the target node changes or a page
   * is not queued (move_pages_and_store_status()); if some folios do not migrate, the call returns
   * how many pages were not migrated — those folios plus every page after the batch — and the
   * batch's status entries are left unwritten (null here). v5.4 differs as the loop says.
   */
  *movePages(mm: Mm, vpns: readonly number[], nodes: readonly number[] | null, all: boolean): Op<{ status: (number | string | null)[]; notMigrated: number }> {
    const k = this.k;
    yield* [];
    if (all && !hasSysNice(mm)) throw new KernelError('EPERM', 'move_pages(MPOL_MF_MOVE_ALL) without CAP_SYS_NICE');
    const status: (number | string | null)[] = vpns.map(() => null);
    if (nodes === null) {
      vpns.forEach((vpn, i) => (status[i] = this.pageStat(mm, vpn)));
      return { status, notMigrated: 0 };
    }
    if (nodes.length !== vpns.length) throw new KernelError('EINVAL', `move_pages: ${vpns.length} page(s) but ${nodes.length} node(s)`);
    for (const n of nodes) if (n < 0 || n >= MAX_NUMNODES || !this.hasMemory(n)) throw new KernelError('ENODEV', `move_pages: node ${n} has no memory (${this.nodes} node(s))`);
    let list: Queued[] = [];
    let start = 0;
    let current = -1;
    // v5.4 (before e0153fc2c760 "mm: move_pages: return valid node id in status if the page is
    // already on the target node" and 5984fabb6e82, v5.6 [M]): a page already on its node stays in
    // the batch like a queued one, each flush stores the node over the batch's whole range -- but
    // the last flush stores nothing when nothing was queued -- and a failed batch returns its
    // failures alone
    const old = !kernelAtLeast(k.version, 5, 6);
    const migrate = (node: number): Op<number | 'ENOMEM'> => this.migrate(list, () => node, { thisNode: true });
    const flush = function* (node: number, i: number, last: boolean): Op<number> {
      if (list.length === 0 && (!old || last)) return 0;
      const failed = list.length > 0 ? yield* migrate(node) : 0;
      list = [];
      if (failed === 'ENOMEM') throw new KernelError('ENOMEM', `move_pages: no memory on node ${node} (migrate_pages() -ENOMEM)`);
      if (failed > 0) return failed + (old ? 0 : vpns.length - i);
      for (let j = start; j < i; j++) status[j] = node;
      return 0;
    };
    for (let i = 0; i < vpns.length; i++) {
      const node = nodes[i]!;
      if (current === -1) {
        current = node;
        start = i;
      } else if (node !== current) {
        const err = yield* flush(current, i, false);
        if (err) return { status, notMigrated: err };
        start = i;
        current = node;
      }
      const r = this.addPage(mm, vpns[i]!, current, list, all);
      if (r === 'queued' || (old && typeof r === 'number')) continue;
      status[i] = r;
      const err = yield* flush(current, i, false);
      // "We have accounted for page i"
      if (err) return { status, notMigrated: err - (old ? 0 : 1) };
      current = -1;
    }
    return { status, notMigrated: yield* flush(current, vpns.length, true) };
  }

  /** add_folio_for_migration() (add_page_for_migration() before v6.12): 'queued', the node it is already on, or an errno. */
  private addPage(mm: Mm, vpn: number, node: number, list: Queued[], all: boolean): 'queued' | number | string {
    const k = this.k;
    const vma = k.vm.vmaAt(mm, vpn);
    if (!vma || !this.vmaMigratable(vma)) return 'EFAULT';
    const found = this.followPage(mm, vpn);
    if (typeof found === 'string') return found;
    const head = k.folios.folio(found);
    if (k.folios.kind(head) !== 'ram') return 'ENOENT';
    if (this.nodeOf(head) === node) return node;
    // page_mapcount(page) > 1 up to v6.9; the folio's test (folio_likely_mapped_shared(), then
    // folio_maybe_mapped_shared()) from v6.10 [M]
    const shared = kernelAtLeast(k.version, 6, 10) ? this.mappedShared(head) : k.vm.pageMapcount(found, head) > 1;
    if (shared && !all) return 'EACCES';
    if ((k.folios.flags(head) & PG.hugetlb) !== 0) {
      // "if (PageHuge(page)) { if (PageHead(page)) {...} }": a page inside the folio but its head
      // keeps err = -EACCES, until 2023's "mm: migrate: remove PageHead() check for HugeTLB in
      // add_page_for_migration()" (v6.7 [M]) queues the folio as for a THP's tail
      if (found !== head && !kernelAtLeast(k.version, 6, 7)) return 'EACCES';
      // isolate_hugetlb() fails for a folio another migration isolated: -EBUSY from 7ce82f4c3f3e
      // "mm/migration: return errno when isolate_huge_page failed" (v6.0 [M]); before, the result
      // was ignored ("isolate_huge_page(page, pagelist); err = 1"): counted as queued, never moved,
      // and its status left unwritten
      if (list.some((q) => q.head === head) || this.isolated.has(head)) return kernelAtLeast(k.version, 6, 0) ? 'EBUSY' : 'queued';
      list.push({ head, vma, vpn });
      return 'queued';
    }
    if (list.some((q) => q.head === head) || this.isolated.has(head) || !this.onLru(head, vma)) return 'EBUSY';
    list.push({ head, vma, vpn });
    return 'queued';
  }

  /**
   * follow_page(FOLL_GET | FOLL_DUMP) / folio_walk_start(FW_ZEROPAGE) at vpn: the page, or the
   * status for none (-ENOENT: nothing, or a non-present entry) and for the zero page (-EFAULT:
   * FOLL_DUMP "to ignore special (like zero) pages"; is_zero_folio() since the folio_walk
   * conversion). Another special PTE (VM_PFNMAP) is -EFAULT through FOLL_DUMP up to v6.11 and
   * nothing (-ENOENT) for folio_walk from v6.12 [M].
   */
  private followPage(mm: Mm, vpn: number): number | string {
    const k = this.k;
    const leaf = k.vm.lookup(mm, vpn);
    // a migration entry (another move_pages() of the page) is not present either: no page, -ENOENT
    if (!leaf || leaf.pte.devicePrivate || leaf.pte.deviceExclusive || leaf.pte.swap || leaf.pte.marker || leaf.pte.migration) return 'ENOENT';
    const pfn = k.vm.pfnAt(leaf, vpn);
    if (k.isZeroPfn(pfn)) return 'EFAULT';
    // a devmap PTE's page comes from get_dev_pagemap(): a ZONE_DEVICE page, -ENOENT after
    if (leaf.pte.special && !leaf.pte.devmap) return kernelAtLeast(k.version, 6, 12) ? 'ENOENT' : 'EFAULT';
    return pfn;
  }

  /** do_pages_stat_array() for one page: its node, or -EFAULT / -ENOENT. */
  private pageStat(mm: Mm, vpn: number): number | string {
    const k = this.k;
    if (!k.vm.vmaAt(mm, vpn)) return 'EFAULT';
    const found = this.followPage(mm, vpn);
    if (typeof found === 'string') return found;
    if (k.folios.kind(k.folios.folio(found)) !== 'ram') return 'ENOENT';
    return this.nodeOf(found);
  }

  /**
   * migrate_pages(2) (kernel_migrate_pages() -> do_migrate_pages()): move the pages of `mm` on
   * the `from` nodes to the `to` nodes, pairing them as node_remap() does (the nth node of from
   * to the nth of to, modulo; with unequal weights a source node that is also a destination
   * stays), one migrate_to_node() per pair: every VMA walked (MPOL_MF_DISCONTIG_OK), the folios
   * on the source node queued, MPOL_MF_MOVE_ALL with CAP_SYS_NICE, else MOVE (shared folios
   * stay). Returns the number of folios not moved (from v6.7 those that could not be queued too:
   * queue_pages_range() counts them [M]). No destination node with memory: EINVAL.
   */
  *migratePages(mm: Mm, from: readonly number[], to: readonly number[]): Op<number> {
    yield* [];
    const fromSet = [...new Set(from)].sort((a, b) => a - b);
    const toSet = this.online(to);
    if (toSet.length === 0) throw new KernelError('EINVAL', `migrate_pages: none of the new nodes ${to.join(',')} has memory`);
    const move = hasSysNice(mm) ? 'all' : 'move';
    const remap = (s: number): number => toSet[fromSet.indexOf(s) % toSet.length]!;
    const tmp = new Set(fromSet);
    let notMoved = 0;
    while (tmp.size > 0) {
      let source = -1;
      let dest = 0;
      for (const s of [...tmp].sort((a, b) => a - b)) {
        if (fromSet.length !== toSet.length && toSet.includes(s)) continue;
        const d = remap(s);
        if (s === d) continue;
        source = s;
        dest = d;
        if (!tmp.has(dest)) break;
      }
      if (source === -1) break;
      tmp.delete(source);
      const vmas = [...mm.vmas].sort((a, b) => a.start - b.start);
      if (vmas.length === 0) continue;
      const first = vmas[0]!.start;
      const last = Math.max(...vmas.map((v) => v.start + v.pages));
      const { list, failed } = this.queue(mm, first, last, { nmask: new Set([source]), invert: false, move, strict: false, discontig: true });
      const target = dest;
      // migrate_to_node(): GFP_HIGHUSER_MOVABLE | __GFP_THISNODE
      const moved = yield* this.migrate(list, () => target, { thisNode: true });
      if (moved === 'ENOMEM') throw new KernelError('ENOMEM', `migrate_pages: no memory on node ${target} (migrate_to_node() -ENOMEM)`);
      notMoved += moved + (kernelAtLeast(this.k.version, 6, 7) ? failed : 0);
    }
    return notMoved;
  }
}

/** CAP_SYS_NICE: every process has it until a `setrlimit` step drops its capabilities (cap_set_proc() of an empty set). */
function hasSysNice(mm: Mm): boolean {
  return mm.memlockLimit === undefined;
}

/**
 * The interleave index of a folio of `order` at vpn (get_vma_policy() / interleave_nid()): vm_pgoff
 * >> order plus the offset in the VMA >> order. An anonymous VMA's vm_pgoff is its start page at
 * mmap, so the model uses the address's page (exact unless mremap() moved the VMA).
 */
function interleaveIndex(vma: Vma, vpn: number, order: number): number {
  const index = vma.kind === 'anon' ? vpn : vma.pgoff + (vpn - vma.start);
  return Math.floor(index / 2 ** order);
}

/** mpol_set_shared_policy(): [start, end) of the file gets `policy` (none: the default), splitting ranges it overlaps. */
function setSharedPolicy(file: PageCacheFile, start: number, end: number, policy: VmaPolicy | undefined): void {
  const kept: { start: number; end: number; policy: VmaPolicy }[] = [];
  for (const r of file.sharedPolicy ?? []) {
    if (r.end <= start || r.start >= end) kept.push(r);
    else {
      if (r.start < start) kept.push({ start: r.start, end: start, policy: r.policy });
      if (r.end > end) kept.push({ start: end, end: r.end, policy: r.policy });
    }
  }
  if (policy) kept.push({ start, end, policy });
  kept.sort((a, b) => a.start - b.start);
  if (kept.length > 0) file.sharedPolicy = kept;
  else delete file.sharedPolicy;
}

/** mpol_equal() of two VMA policies (none: the default); vma_merge() merges only equal ones. */
export function samePolicy(a: VmaPolicy | undefined, b: VmaPolicy | undefined): boolean {
  if (!a || !b) return a === b;
  return a.mode === b.mode && a.nodes.length === b.nodes.length && a.nodes.every((n, i) => n === b.nodes[i]);
}

function mpolName(mode: MpolMode): string {
  return `MPOL_${mode.toUpperCase().replace('-', '_')}`;
}

