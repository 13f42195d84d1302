import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import type { Op } from '../sched.js';
import type { Hstate, Mm } from '../types.js';

/** The hierarchy the hugetlb controller is bound to: cgroup v1 (legacy) or v2 (the unified one). */
export type CgroupVersion = 1 | 2;

/**
 * A page_counter (mm/page_counter.c), in base pages: usage, max, the high watermark and failcnt.
 * Every charge goes up to the root, so a parent counts its children's usage and a limit binds
 * its whole subtree.
 */
class PageCounter {
  usage = 0;
  watermark = 0;
  failcnt = 0;

  constructor(
    readonly parent: PageCounter | null,
    public max: number,
    /** the cgroup it belongs to, for messages */
    readonly owner: string,
  ) {}

  /** page_counter_try_charge(): the counter whose max refused (its failcnt counted, the levels below given back), or null. */
  tryCharge(n: number): PageCounter | null {
    for (let c: PageCounter | null = this; c; c = c.parent) {
      if (c.usage + n > c.max) {
        c.failcnt++;
        for (let u: PageCounter = this; u !== c; u = u.parent!) u.usage -= n;
        return c;
      }
      c.usage += n;
      c.watermark = Math.max(c.watermark, c.usage);
    }
    return null;
  }

  /** page_counter_charge(): no limit applies */
  charge(n: number): void {
    for (let c: PageCounter | null = this; c; c = c.parent) {
      c.usage += n;
      c.watermark = Math.max(c.watermark, c.usage);
    }
  }

  /** page_counter_uncharge() */
  uncharge(n: number): void {
    for (let c: PageCounter | null = this; c; c = c.parent) c.usage -= n;
  }
}

/** The two counters of one huge page size in one cgroup (hugepage[idx], rsvd_hugepage[idx]) and its HUGETLB_MAX events. */
interface SizeCounters {
  readonly fault: PageCounter;
  readonly rsvd: PageCounter;
  /** events[idx][HUGETLB_MAX]: failed charges here or below */
  events: number;
  /** events_local[idx][HUGETLB_MAX]: failed charges of tasks in this cgroup */
  eventsLocal: number;
}

/** A hugetlb cgroup (struct hugetlb_cgroup): a directory of the hierarchy, or a removed one that charges still name. */
export interface HugetlbCgroup {
  /** its path from the hierarchy's root ('/' for the root) */
  readonly path: string;
  readonly parent: HugetlbCgroup | null;
  readonly children: Map<string, HugetlbCgroup>;
  /** false once rmdir'ed (css offline): reservation charges may still name it until they are uncharged */
  online: boolean;
  /** by huge page size in base pages */
  readonly sizes: Map<number, SizeCounters>;
}

type Counter = 'fault' | 'rsvd';

/** The cgroup a charge went to, or the words saying which limit refused it. */
type Charge = { readonly cg: HugetlbCgroup } | { readonly refused: string };

/** The charges a huge folio carries (hugetlb_cgroup_from_folio() and its _rsvd twin). */
interface FolioCharges {
  fault: HugetlbCgroup;
  readonly rsvd: HugetlbCgroup | null;
  /** the folio's size in base pages */
  readonly pages: number;
}

/** What each hugetlb.<size>.<file> is, per hierarchy (__hugetlb_cgroup_file_legacy_init / _dfl_init). */
const FILES: Readonly<Record<CgroupVersion, Readonly<Record<string, { counter: Counter; attr: 'usage' | 'limit' | 'watermark' | 'failcnt' | 'events' | 'eventsLocal' }>>>> = {
  1: {
    limit_in_bytes: { counter: 'fault', attr: 'limit' },
    'rsvd.limit_in_bytes': { counter: 'rsvd', attr: 'limit' },
    usage_in_bytes: { counter: 'fault', attr: 'usage' },
    'rsvd.usage_in_bytes': { counter: 'rsvd', attr: 'usage' },
    max_usage_in_bytes: { counter: 'fault', attr: 'watermark' },
    'rsvd.max_usage_in_bytes': { counter: 'rsvd', attr: 'watermark' },
    failcnt: { counter: 'fault', attr: 'failcnt' },
    'rsvd.failcnt': { counter: 'rsvd', attr: 'failcnt' },
  },
  2: {
    max: { counter: 'fault', attr: 'limit' },
    'rsvd.max': { counter: 'rsvd', attr: 'limit' },
    current: { counter: 'fault', attr: 'usage' },
    'rsvd.current': { counter: 'rsvd', attr: 'usage' },
    events: { counter: 'fault', attr: 'events' },
    'events.local': { counter: 'fault', attr: 'eventsLocal' },
  },
};

/**
 * The hugetlb cgroup controller (mm/hugetlb_cgroup.c) and where mm/hugetlb.c charges it. Every
 * task is in a cgroup (the root at boot; `fork` keeps its parent's, `spawn` init's); a charge goes
 * to the cgroup of the task doing it (hugetlb_cgroup_from_task(current)) and, page_counter being
 * hierarchical, to every ancestor, where any limit may refuse it.
 *
 * Two counters per huge page size (feature `hugetlb-cgroup`):
 * - the fault counter (usage_in_bytes / current): alloc_hugetlb_folio() charges a huge page before
 *   taking it from the pool (hugetlb_cgroup_charge_cgroup(), then _commit_charge() names the cgroup
 *   in the folio); free_huge_folio() uncharges it. Over the limit the allocation fails with
 *   -ENOSPC, which a fault turns into SIGBUS (vmf_error()).
 * - the reservation counter (rsvd.*, v5.7): hugetlb_reserve_pages() charges what an mmap or
 *   shmget reserves before asking the pool (hugetlb_cgroup_charge_cgroup_rsvd(); over the limit
 *   -ENOMEM). A private mapping's charge hangs off its resv_map (resv_map_set_hugetlb_cgroup_uncharge_info())
 *   for its whole length and goes when each VMA of it closes (hugetlb_cgroup_uncharge_counter()
 *   for the VMA's range, faulted or not); a shared file's hangs off each file_region
 *   (record_hugetlb_cgroup_uncharge_info()) and goes when region_del() drops it (hole punch,
 *   truncate, eviction: hugetlb_cgroup_uncharge_file_region()). An allocation that consumes no
 *   reservation (MAP_NORESERVE, a fault of a file index nobody reserved, a COW copy:
 *   alloc_hugetlb_folio()'s deferred_reserve) charges the rsvd counter too and the folio carries
 *   that charge until it is freed.
 *
 * rmdir takes a cgroup offline: hugetlb_cgroup_css_offline() moves the fault charge of every huge
 * page in use from it to its parent (hugetlb_cgroup_move_parent(): the folio names the parent,
 * page_counter_cancel() on the child's own counter only, as the parent counted it already).
 * Reservation charges are not reparented ("Reservations take a reference to the css because they
 * do not get reparented"): they stay on the removed cgroup, and so in its ancestors' usage, until
 * uncharged. Migration moves a folio's charges to the new folio (hugetlb_cgroup_migrate()).
 *
 * Not modelled: hugetlb.<size>.numa_stat, the memory controller's hugetlb accounting
 * (memory_hugetlb_accounting), cgroup.subtree_control as a file (on v2 every cgroup is taken to
 * enable hugetlb for its children, as the selftests do: a task can join only a cgroup without
 * children), subpools and hugetlbfs mount limits.
 */
export class HugetlbCgroups {
  /** the hierarchy hugetlb is mounted on (`cgroup-mount`): null before, when no directory exists to read or create */
  private mounted: CgroupVersion | null = null;
  /** root_h_cgroup: exists from boot, charged by every task still in it */
  private readonly root: HugetlbCgroup = this.newCgroup('/', null);
  /** each process's cgroup, by process name (a task keeps its cgroup across execve) */
  private readonly members = new Map<string, HugetlbCgroup>();
  /** the charges of each huge folio in use, by head pfn */
  private readonly folios = new Map<number, FolioCharges>();
  /** a private mapping's reservation charge, by its reservation map (shared by its split pieces) */
  private readonly privateResv = new WeakMap<Set<number>, HugetlbCgroup>();
  /** a hugetlbfs inode's charged file_regions: index -> cgroup, by the inode's reservation map */
  private readonly fileRegions = new WeakMap<Set<number>, Map<number, HugetlbCgroup>>();

  constructor(private readonly k: Kernel) {}

  /** v5.7+: the rsvd counters exist (feature hugetlb-cgroup: rsvd) */
  private get rsvd(): boolean {
    return this.k.features['hugetlb-cgroup'] === 'rsvd';
  }

  private newCgroup(path: string, parent: HugetlbCgroup | null): HugetlbCgroup {
    return { path, parent, children: new Map(), online: true, sizes: new Map() };
  }

  /**
   * hugetlb_cgroup_init(): the counters of one size, under the parent's, max
   * round_down(PAGE_COUNTER_MAX, pages_per_huge_page) (made when first needed: the kernel makes
   * them for every hstate at css_alloc, all alike).
   */
  private counters(cg: HugetlbCgroup, pages: number): SizeCounters {
    let c = cg.sizes.get(pages);
    if (!c) {
      const up = cg.parent ? this.counters(cg.parent, pages) : null;
      const max = this.unlimited(pages);
      c = { fault: new PageCounter(up?.fault ?? null, max, cg.path), rsvd: new PageCounter(up?.rsvd ?? null, max, cg.path), events: 0, eventsLocal: 0 };
      cg.sizes.set(pages, c);
    }
    return c;
  }

  /** round_down(PAGE_COUNTER_MAX, pages): PAGE_COUNTER_MAX is LONG_MAX / PAGE_SIZE on 64-bit */
  private unlimited(pages: number): number {
    const counterMax = Number((2n ** 63n - 1n) / BigInt(this.k.mmu.basePageSize));
    return counterMax - (counterMax % pages);
  }

  private cgroupOf(mm: Mm): HugetlbCgroup {
    return this.members.get(mm.name) ?? this.root;
  }

  /** hugetlb_cgroup_charge_cgroup(_rsvd)() for `current` (the task of `mm`): nr base pages of one hstate */
  private charge(mm: Mm, h: Hstate, counter: Counter, nr = h.pages): Charge {
    const cg = this.cgroupOf(mm);
    const c = this.counters(cg, h.pages);
    const refused = c[counter].tryCharge(nr);
    if (!refused) return { cg };
    // hugetlb_event(h_cg, idx, HUGETLB_MAX): events.local here, events here and up to (not into) the root
    c.eventsLocal++;
    for (let up: HugetlbCgroup | null = cg; up && up !== this.root; up = up.parent) this.counters(up, h.pages).events++;
    return { refused: `hugetlb cgroup ${refused.owner} is at its ${counter === 'rsvd' ? 'reservation ' : ''}limit (${this.fileName(h.pages, counter, 'limit')} ${refused.max * this.k.mmu.basePageSize}, usage ${refused.usage * this.k.mmu.basePageSize}, ${nr * this.k.mmu.basePageSize} more asked by ${mm.name})` };
  }

  /** hugetlb_cgroup_uncharge_cgroup(_rsvd)(): give back nr base pages charged for huge pages of `pages` */
  private uncharge(cg: HugetlbCgroup, pages: number, counter: Counter, nr = pages): void {
    this.counters(cg, pages)[counter].uncharge(nr);
  }

  /**
   * alloc_hugetlb_folio()'s charges, before it takes a page: the rsvd counter too when the
   * allocation consumes no reservation (deferred_reserve; v5.7), then the fault counter. `take`
   * is the allocation itself (null: no page, the charges given back). A refused charge is a
   * string saying which limit; the caller fails as alloc_hugetlb_folio() does (-ENOSPC).
   */
  allocCharged(mm: Mm, h: Hstate, reserved: boolean, take: () => number | null): number | string | null {
    const rsvd = !reserved && this.rsvd ? this.charge(mm, h, 'rsvd') : null;
    if (rsvd && 'refused' in rsvd) return rsvd.refused;
    const fault = this.charge(mm, h, 'fault');
    if ('refused' in fault) {
      if (rsvd) this.uncharge(rsvd.cg, h.pages, 'rsvd');
      return fault.refused;
    }
    const pfn = take();
    if (pfn === null) {
      this.uncharge(fault.cg, h.pages, 'fault');
      if (rsvd) this.uncharge(rsvd.cg, h.pages, 'rsvd');
      return null;
    }
    // hugetlb_cgroup_commit_charge(), and _rsvd() with deferred_reserve
    this.folios.set(pfn, { fault: fault.cg, rsvd: rsvd?.cg ?? null, pages: h.pages });
    return pfn;
  }

  /** free_huge_folio(): hugetlb_cgroup_uncharge_folio() and hugetlb_cgroup_uncharge_folio_rsvd() */
  folioFreed(head: number): void {
    const f = this.folios.get(head);
    if (!f) return;
    this.folios.delete(head);
    this.uncharge(f.fault, f.pages, 'fault');
    if (f.rsvd) this.uncharge(f.rsvd, f.pages, 'rsvd');
  }

  /** hugetlb_cgroup_migrate(): the new folio carries the old one's charges */
  migrated(src: number, dst: number): void {
    const f = this.folios.get(src);
    if (!f) return;
    this.folios.delete(src);
    this.folios.set(dst, f);
  }

  /**
   * hugetlb_reserve_pages()'s charge for `count` huge pages (v5.7; nothing before): null when
   * charged (or nothing to charge), else which limit refused (the mmap fails with -ENOMEM). `owner`
   * is where the charge hangs: a private mapping's reservation map, or with `indexes` the inode's
   * (one file_region per index).
   */
  reserve(mm: Mm, h: Hstate, owner: Set<number>, indexes: readonly number[] | number): string | null {
    const count = typeof indexes === 'number' ? indexes : indexes.length;
    if (!this.rsvd || count === 0) return null;
    const got = this.charge(mm, h, 'rsvd', count * h.pages);
    if ('refused' in got) return got.refused;
    if (typeof indexes === 'number') this.privateResv.set(owner, got.cg);
    else {
      let regions = this.fileRegions.get(owner);
      if (!regions) this.fileRegions.set(owner, (regions = new Map()));
      for (const i of indexes) regions.set(i, got.cg);
    }
    return null;
  }

  /** hugetlb_reserve_pages() failed after the charge (the pool had too few pages): give it back */
  unreserve(h: Hstate, owner: Set<number>, indexes: readonly number[] | number): void {
    if (typeof indexes === 'number') {
      const cg = this.privateResv.get(owner);
      if (cg) this.uncharge(cg, h.pages, 'rsvd', indexes * h.pages);
      this.privateResv.delete(owner);
    } else for (const i of indexes) this.regionDeleted(h, owner, i);
  }

  /** hugetlb_vm_op_close() -> hugetlb_cgroup_uncharge_counter(): a private VMA of `pages` huge pages closes */
  privateClosed(h: Hstate, resv: Set<number>, pages: number): void {
    const cg = this.privateResv.get(resv);
    if (cg) this.uncharge(cg, h.pages, 'rsvd', pages * h.pages);
  }

  /** region_del() of one index of an inode's map: hugetlb_cgroup_uncharge_file_region() when a reservation charged it */
  regionDeleted(h: Hstate, resv: Set<number>, index: number): void {
    const regions = this.fileRegions.get(resv);
    const cg = regions?.get(index);
    if (!cg) return;
    regions!.delete(index);
    this.uncharge(cg, h.pages, 'rsvd');
  }

  /** cgroup_fork(): a child starts in its parent's cgroup */
  forked(parent: string, child: string): void {
    const cg = this.members.get(parent);
    if (cg) this.members.set(child, cg);
  }

  // ---- the cgroup filesystem ---------------------------------------------------------------------

  /**
   * mount -t cgroup -o hugetlb (v1), or mount -t cgroup2 and echo +hugetlb > cgroup.subtree_control
   * (v2; faced7e0806c, v5.6 [M]: before, the controller has no dfl_cftypes, cgroup_init() puts it in
   * cgrp_dfl_inhibit_ss_mask and cgroup_subtree_control_write() knows no "+hugetlb": EINVAL). A
   * controller is bound to one hierarchy at a time: the other version is EBUSY.
   */
  *mount(a: { version: CgroupVersion }): Op {
    yield* [];
    if (a.version === 2 && this.k.features['hugetlb-cgroup'] === 'v1') {
      throw KernelError.unsupported('EINVAL', 'echo +hugetlb > cgroup.subtree_control: no hugetlb controller on cgroup v2 before v5.6 (faced7e0806c "mm: hugetlb controller for cgroups v2"); mount it on cgroup v1 (version: 1)');
    }
    if (this.mounted !== null && this.mounted !== a.version) throw new KernelError('EBUSY', `the hugetlb controller is bound to cgroup v${this.mounted} already (rebind_subsystems())`);
    this.mounted = a.version;
  }

  /** mkdir <hierarchy>/<path>: a new cgroup with the parent's counters above its own (hugetlb_cgroup_css_alloc()) */
  *mkdir(a: { cgroup: string }): Op {
    yield* [];
    const { parent, name } = this.parentOf(a.cgroup, 'mkdir');
    if (parent.children.has(name)) throw new KernelError('EEXIST', `mkdir ${this.show(a.cgroup)}: the cgroup exists`);
    parent.children.set(name, this.newCgroup(a.cgroup, parent));
  }

  /**
   * rmdir: EBUSY while a live task is in it or it has children (cgroup_destroy_locked()); then
   * hugetlb_cgroup_css_offline() moves the fault charge of each huge page in use to the parent.
   */
  *rmdir(a: { cgroup: string }): Op {
    yield* [];
    const cg = this.lookup(a.cgroup, 'rmdir');
    if (cg === this.root) throw new KernelError('EBUSY', `rmdir ${this.show(a.cgroup)}: the root of the hierarchy goes with umount, not rmdir`);
    if (cg.children.size > 0) throw new KernelError('EBUSY', `rmdir ${this.show(a.cgroup)}: it has child cgroups (${[...cg.children.keys()].join(', ')})`);
    const tasks = this.tasksIn(cg);
    if (tasks.length > 0) throw new KernelError('EBUSY', `rmdir ${this.show(a.cgroup)}: process ${tasks.join(', ')} is in it (cgroup_is_populated())`);
    cg.parent!.children.delete(a.cgroup.split('/').at(-1)!);
    cg.online = false;
    for (const f of this.folios.values()) {
      if (f.fault !== cg) continue;
      // hugetlb_cgroup_move_parent(): page_counter_cancel() of the child's own counter; the parent counted the page already
      this.counters(cg, f.pages).fault.usage -= f.pages;
      f.fault = cg.parent!;
    }
  }

  /**
   * echo PID > cgroup.procs (v1: or tasks): the process moves, its charges stay where they are
   * (hugetlb has no can_attach/attach). On v2 a cgroup with children takes no task
   * (cgroup_migrate_vet_dst(): its subtree_control enables hugetlb: EBUSY).
   */
  *attach(a: { cgroup: string; process?: string }): Op {
    yield* [];
    const mm = this.k.process(a.process);
    const cg = this.lookup(a.cgroup, 'echo PID > cgroup.procs of');
    if (this.mounted === 2 && cg !== this.root && cg.children.size > 0) {
      throw new KernelError('EBUSY', `echo ${mm.name} > ${this.show(a.cgroup)}/cgroup.procs: on cgroup v2 a cgroup whose children have the hugetlb controller takes no process ("no internal processes")`);
    }
    this.members.set(mm.name, cg);
  }

  /**
   * echo value > hugetlb.<size>.<file> (hugetlb_cgroup_write() / hugetlb_cgroup_reset()): a limit
   * ("-1" on v1, "max" on v2: unlimited; else bytes, memparse() suffixes, rounded down to whole huge
   * pages; EBUSY below the usage: page_counter_set_max()); a v1 max_usage_in_bytes or failcnt file
   * is reset whatever is written. EINVAL on the root (no limit there) and for read-only files.
   */
  *write(a: { cgroup: string; file: string; value: number | string }): Op {
    yield* [];
    const cg = this.lookup(a.cgroup, 'write');
    const { pages, what } = this.file(cg, a.cgroup, a.file);
    const c = this.counters(cg, pages);
    const where = `echo ${String(a.value)} > ${this.show(a.cgroup)}/${a.file}`;
    if (what.attr === 'watermark' || what.attr === 'failcnt') {
      if (what.attr === 'watermark') c[what.counter].watermark = c[what.counter].usage;
      else c[what.counter].failcnt = 0;
      return;
    }
    if (what.attr !== 'limit') throw new KernelError('EINVAL', `${where}: a read-only file (no write handler: cgroup_file_write())`);
    if (cg === this.root) throw new KernelError('EINVAL', `${where}: "Can't set limit on root" (hugetlb_cgroup_write())`);
    const unlimited = this.mounted === 1 ? -1 : 'max';
    let nr: number;
    if (a.value === unlimited) nr = this.unlimited(pages);
    else if (typeof a.value === 'number' && a.value >= 0) nr = Math.floor(a.value / this.k.mmu.basePageSize);
    else throw new KernelError('EINVAL', `${where}: page_counter_memparse() takes bytes or "${unlimited}" on cgroup v${this.mounted}`);
    nr = Math.min(nr, this.unlimited(pages));
    nr -= nr % pages;
    const counter = c[what.counter];
    if (counter.usage > nr) throw new KernelError('EBUSY', `${where}: ${counter.usage * this.k.mmu.basePageSize} bytes are charged already (page_counter_set_max())`);
    counter.max = nr;
  }

  /** cat <hierarchy>/<path>/hugetlb.<size>.<file>: the file's text, without the newline */
  read(path: string, file: string): string {
    const cg = this.lookup(path, 'cat');
    const { pages, what } = this.file(cg, path, file);
    const c = this.counters(cg, pages);
    const counter = c[what.counter];
    const bytes = (n: number) => String(BigInt(n) * BigInt(this.k.mmu.basePageSize));
    switch (what.attr) {
      case 'usage': return bytes(counter.usage);
      case 'watermark': return bytes(counter.watermark);
      case 'failcnt': return String(counter.failcnt);
      case 'events': return `max ${c.events}`;
      case 'eventsLocal': return `max ${c.eventsLocal}`;
      case 'limit': return this.mounted === 2 && counter.max === this.unlimited(pages) ? 'max' : bytes(counter.max);
    }
  }

  /** The huge page size and meaning of a control file, or ENOENT as the directory has no such file. */
  private file(cg: HugetlbCgroup, path: string, file: string): { pages: number; what: (typeof FILES)[CgroupVersion][string] } {
    const version = this.mounted!;
    const sizes = this.k.mmu.hugetlbSizes ?? [];
    const m = /^hugetlb\.(\d+[KMG]B)\.(.+)$/.exec(file);
    const size = sizes.find((s) => memFmt(s) === m?.[1]);
    const what = m ? FILES[version][m[2]!] : undefined;
    const missing = (why: string): never => {
      throw new KernelError('ENOENT', `${this.show(path)}/${file}: no such file (${why})`);
    };
    if (m?.[2] === 'numa_stat') throw KernelError.unsupported('ENOENT', `${file}: hugetlb.<size>.numa_stat is not modelled`);
    if (!m || size === undefined || !what) {
      const names = Object.keys(FILES[version]).filter((f) => this.rsvd || !f.startsWith('rsvd.'));
      return missing(`cgroup v${version} has hugetlb.<size>.{${names.join(',')}} for the sizes ${sizes.map(memFmt).join(', ') || '(none)'}`);
    }
    if (what.counter === 'rsvd' || m[2]!.startsWith('rsvd.')) {
      if (!this.rsvd) missing('the rsvd.* files are v5.7 (cdc2fcfea79b "hugetlb_cgroup: add hugetlb_cgroup reservation counter"): this kernel has no reservation counters');
    }
    // the dfl files are CFTYPE_NOT_ON_ROOT
    if (version === 2 && cg === this.root) missing('on cgroup v2 the hugetlb files exist below the root only');
    return { pages: size / this.k.mmu.basePageSize, what };
  }

  private lookup(path: string, verb: string): HugetlbCgroup {
    this.requireMount(verb, path);
    if (path === '/') return this.root;
    let cg = this.root;
    for (const part of path.split('/')) {
      const next = cg.children.get(part);
      if (!next) throw new KernelError('ENOENT', `${verb} ${this.show(path)}: no such cgroup (cgroup-mkdir it first)`);
      cg = next;
    }
    return cg;
  }

  private parentOf(path: string, verb: string): { parent: HugetlbCgroup; name: string } {
    this.requireMount(verb, path);
    if (path === '/') throw new KernelError('EEXIST', `${verb} ${this.show(path)}: the root of the hierarchy exists`);
    const parts = path.split('/');
    const name = parts.pop()!;
    return { parent: parts.length ? this.lookup(parts.join('/'), verb) : this.root, name };
  }

  private requireMount(verb: string, path: string): void {
    if (this.mounted === null) throw new KernelError('ENOENT', `${verb} ${path}: no cgroup hierarchy has the hugetlb controller: cgroup-mount it first`);
  }

  private tasksIn(cg: HugetlbCgroup): string[] {
    return [...this.members].filter(([name, c]) => c === cg && this.k.processes.get(name)?.alive).map(([name]) => name);
  }

  private show(path: string): string {
    return `cgroup v${this.mounted} ${path === '/' ? '/' : `/${path}`}`;
  }

  private fileName(pages: number, counter: Counter, attr: 'limit'): string {
    const name = Object.entries(FILES[this.mounted ?? 1]).find(([, w]) => w.counter === counter && w.attr === attr)![0];
    return `hugetlb.${memFmt(pages * this.k.mmu.basePageSize)}.${name}`;
  }
}

/** mem_fmt(): how a huge page size is written in the file names (2MB, 1GB, 64KB) */
export function memFmt(bytes: number): string {
  if (bytes >= 2 ** 30) return `${bytes / 2 ** 30}GB`;
  if (bytes >= 2 ** 20) return `${bytes / 2 ** 20}MB`;
  return `${bytes / 2 ** 10}KB`;
}
