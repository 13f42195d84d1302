import { Subscription } from 'rxjs/internal/Subscription'; // not 'rxjs': see bus.ts
import type { Envelope } from './bus.js';
import type { KernelEvents } from './events.js';
import type { Kernel } from './kernel.js';
import { claimedBy } from './mm/devmem.js';

export interface Violation {
  readonly invariant: string;
  readonly message: string;
  /** the events up to and including the one that broke it */
  readonly trace: readonly string[];
}

/** Format one event as a trace line. */
export function formatEvent(e: Envelope<KernelEvents>): string {
  const d = e.data as unknown as Record<string, unknown>;
  const fields = Object.entries(d)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? `[${v.join(',')}]` : String(v)}`)
    .join(' ');
  return `#${e.seq} ${String(e.type)} ${fields}`;
}

/**
 * A kernel rule, checked by subscribing to the bus. Each has the stable name DESIGN.md gives it;
 * a violation records the trace of events that led to it.
 */
export abstract class Invariant {
  abstract readonly name: string;
  abstract readonly description: string;
  abstract attach(k: Kernel, report: (message: string) => void, bag: Subscription): void;
}

class BlockFreedWhilePinned extends Invariant {
  readonly name = 'block-freed-while-pinned';
  readonly description = 'a filesystem block went back to the allocator while its page still had a GUP reference';
  attach(k: Kernel, report: (m: string) => void, bag: Subscription): void {
    k.bus.listen('block.free', (e) => {
      const { pfn, block, file } = e.data;
      if (k.pages.has(pfn) && k.pages.gup[k.pages.slot(pfn)]! > 0) report(`block ${block} of ${file} freed while pfn ${pfn} is pinned`);
    }, bag);
  }
}

class DmaToForeignBlock extends Invariant {
  readonly name = 'dma-to-foreign-block';
  readonly description = 'a DMA write landed in a block that now belongs to another file (or to nobody)';
  attach(k: Kernel, report: (m: string) => void, bag: Subscription): void {
    // a pin's pfns never change: index them once (a DMA over a 4096-page pin searched the list
    // for every page it wrote)
    const indexes = new WeakMap<readonly number[], Map<number, number>>();
    const indexOf = (pfns: readonly number[], pfn: number): number => {
      let byPfn = indexes.get(pfns);
      if (!byPfn) {
        byPfn = new Map();
        pfns.forEach((p, i) => {
          if (!byPfn!.has(p)) byPfn!.set(p, i); // the first, as indexOf
        });
        indexes.set(pfns, byPfn);
      }
      return byPfn.get(pfn) ?? -1;
    };
    k.bus.listen('dma.write', (e) => {
      const h = k.pins.get(e.data.name);
      if (!h) return;
      const i = indexOf(h.pfns, e.data.pfn);
      const then = h.owners[i] ?? null;
      if (then === null) return;
      const now = k.blockOwner(e.data.pfn);
      if (now !== then) report(`DMA through '${h.name}' wrote pfn ${e.data.pfn}, pinned as ${then}, now ${now ?? 'a free block'}`);
    }, bag);
  }
}

class MappedPageZeroRef extends Invariant {
  readonly name = 'mapped-page-zero-ref';
  readonly description = 'a PTE/PMD maps a page whose refcount is 0 under a convention where mappings hold references';
  attach(k: Kernel, report: (m: string) => void, bag: Subscription): void {
    const check = (pfn: number, why: string): void => {
      if (!k.convention.mappingsHoldRefs || k.folios.kind(pfn) !== 'fsdax' || k.isGone(pfn)) return;
      if (k.refcount(pfn) === 0 && k.vm.isMapped(pfn)) report(`pfn ${pfn} is mapped with refcount 0 (${why})`);
    };
    k.bus.listen('pte.set', (e) => check(e.data.pfn, `${e.data.level} set in ${e.data.mm}`), bag);
    k.bus.listen('page.ref', (e) => e.data.rc === 0 && check(e.data.pfn, e.data.why), bag);
  }
}

class RefcountUnderflow extends Invariant {
  readonly name = 'refcount-underflow';
  readonly description = "a put dropped a refcount below its convention's floor";
  attach(k: Kernel, report: (m: string) => void, bag: Subscription): void {
    k.bus.listen('page.ref', (e) => {
      if (e.data.delta >= 0) return;
      const floor = k.folios.floor(e.data.pfn);
      if (e.data.rc < floor) report(`pfn ${e.data.pfn} refcount ${e.data.rc} < floor ${floor} after ${e.data.why}`);
    }, bag);
  }
}

class PageFreedWhileMapped extends Invariant {
  readonly name = 'page-freed-while-mapped';
  readonly description = 'a page was freed (back to its driver or pgmap) while a PTE still maps it';
  attach(k: Kernel, report: (m: string) => void, bag: Subscription): void {
    k.bus.listen('page.free', (e) => {
      if (e.data.type === 'ram' || !k.vm.isMapped(e.data.pfn)) return;
      report(`${e.data.type} pfn ${e.data.pfn} freed while still mapped`);
    }, bag);
  }
}

/**
 * A device's own page table (a mirror's, test_hmm's atomic entries after make_device_exclusive())
 * holds no page reference: it relies on the MMU notifier to drop an entry before the CPU side
 * lets the page go. A page freed while a device still maps it is a use-after-free by the device.
 */
class DeviceMapsFreedPage extends Invariant {
  readonly name = 'device-maps-freed-page';
  readonly description = "a page was freed while a device's own page table (mmu-notifier mirror) still mapped it";
  attach(k: Kernel, report: (m: string) => void, bag: Subscription): void {
    k.bus.listen('page.free', (e) => {
      const device = k.deviceMapping(e.data.pfn);
      if (device) report(`${e.data.type} pfn ${e.data.pfn} freed while ${device.name} still maps it`);
    }, bag);
  }
}

class PgmapTeardownWhileReferenced extends Invariant {
  readonly name = 'pgmap-teardown-while-referenced';
  readonly description = 'memunmap_pages() completed while pages of the pgmap were mapped or referenced';
  attach(k: Kernel, report: (m: string) => void, bag: Subscription): void {
    k.bus.listen('pgmap.teardown', (e) => {
      const pgmap = k.memremap.pgmaps.find((p) => p.device === e.data.device && !p.gone);
      if (!pgmap) return;
      for (const pfn of k.pages.touched(pgmap.startPfn, pgmap.nrPages)) {
        const s = k.pages.slot(pfn);
        if (k.pages.gup[s]! > 0) return report(`${e.data.device} torn down while pfn ${pfn} is pinned`);
        if (k.vm.isMapped(pfn)) return report(`${e.data.device} torn down while pfn ${pfn} is mapped`);
      }
    }, bag);
  }
}

class PinnedPageDiverged extends Invariant {
  readonly name = 'pinned-page-diverged';
  readonly description = 'after fork/COW the pinned page is no longer the page mapped at that address in the pinning process';
  attach(k: Kernel, report: (m: string) => void, bag: Subscription): void {
    // the pinned pages of `mmName` in [from, to) (vpns): what a new entry there maps now
    const check = (mmName: string, from = -Infinity, to = Infinity): void => {
      for (const h of k.pins.values()) {
        if (h.released || h.mm.name !== mmName || !h.mm.vmas.includes(h.vma)) continue;
        const end = Math.min(h.vpn + h.pfns.length, to);
        for (let vpn = Math.max(h.vpn, from); vpn < end; vpn++) {
          const pfn = h.pfns[vpn - h.vpn]!;
          const leaf = k.vm.lookup(h.mm, vpn);
          // a swap entry maps nothing: the pinned folio stays in the swap cache, and swap-in finds it;
          // a migration entry neither: the migration either fails on the pin's reference or has moved
          // the page, which remove_migration_ptes() shows by installing the new one
          if (leaf && !leaf.pte.devicePrivate && !leaf.pte.swap && !leaf.pte.marker && !leaf.pte.migration && k.vm.pfnAt(leaf, vpn) !== pfn) {
            report(`'${h.name}' pins pfn ${pfn} but ${h.mm.name} now maps pfn ${k.vm.pfnAt(leaf, vpn)} there`);
          }
        }
      }
    };
    // A new entry can only change what its own range maps: checking every pin on every entry made
    // a THP split (512 entries under a 512-page pin) cost 262,144 lookups. A COW and the TLB flush
    // that ends a batch of changes still look at every pin of the mm.
    const pages = { pte: 1, pmd: k.vm.pmdPages, pud: k.vm.pudPages } as const;
    k.bus.listen('pte.set', (e) => check(e.data.mm, e.data.vaddr, e.data.vaddr + pages[e.data.level]), bag);
    k.bus.listen('cow', (e) => check(e.data.mm), bag);
    k.bus.listen('tlb.flush', (e) => check(e.data.mm), bag);
  }
}

class LongtermPinOfFsdax extends Invariant {
  readonly name = 'longterm-pin-of-fsdax';
  readonly description = 'a FOLL_LONGTERM pin succeeded on an fs-dax page';
  attach(k: Kernel, report: (m: string) => void, bag: Subscription): void {
    k.bus.listen('gup.pin', (e) => {
      if (!e.data.longterm) return;
      const pfn = e.data.pfns.find((p) => k.folios.kind(p) === 'fsdax');
      if (pfn !== undefined) report(`'${e.data.name}' holds a longterm pin on fs-dax pfn ${pfn}`);
    }, bag);
  }
}

class DaxPageSeenAsAnon extends Invariant {
  readonly name = 'dax-page-seen-as-anon';
  readonly description = 'an fs-dax file page tested as anonymous (PAGE_MAPPING_DAX_SHARED == PAGE_MAPPING_ANON)';
  attach(k: Kernel, report: (m: string) => void, bag: Subscription): void {
    k.bus.listen('page.anon-test', (e) => {
      if (e.data.anon && k.folios.kind(e.data.pfn) === 'fsdax') report(`fs-dax pfn ${e.data.pfn} reads as anonymous in ${e.data.by}`);
    }, bag);
  }
}

class KernelOopsInvariant extends Invariant {
  readonly name = 'kernel-oops';
  readonly description = 'the simulated kernel crashed';
  attach(k: Kernel, report: (m: string) => void, bag: Subscription): void {
    k.bus.listen('oops', (e) => report(e.data.message), bag);
  }
}

/**
 * Seed 004's failed insert: dax_fault_iter() associated the page with the file (the entry), then
 * vmf_insert_*() failed. If the entry is left and the page sits at refcount 0, the file tracks a
 * page that went through its final put — the "zero-referenced entry" a full cleanup would not
 * leave. (v6.15 accepts it as an idle, tracked page; an entry that holds a reference never is.)
 */
class DaxEntryZeroRef extends Invariant {
  readonly name = 'dax-entry-zero-ref';
  readonly description = 'a failed DAX insert left its entry associating a page at refcount 0';
  attach(k: Kernel, report: (m: string) => void, bag: Subscription): void {
    k.bus.listen('dax.insert-failed', (e) => {
      const { file, index, pfn, entryLeft } = e.data;
      if (entryLeft && !k.isGone(pfn) && k.refcount(pfn) === 0) report(`${file}[${index}]: the entry still associates pfn ${pfn} at refcount 0 after vmf_insert failed`);
    }, bag);
  }
}

/**
 * Memory a driver has claimed (a bound pmem namespace or device-dax instance, kmem's System RAM)
 * written through /dev/mem: the driver's data changes behind its back. CONFIG_IO_STRICT_DEVMEM
 * refuses new such mappings (v4.5) and revokes old ones when the driver claims the range
 * (revoke_devmem(), v5.8); without it, or before v5.8, the store lands (ndctl revoke-devmem.c).
 */
class DevmemWriteToClaimedRange extends Invariant {
  readonly name = 'devmem-write-to-claimed-range';
  readonly description = 'a store through /dev/mem reached memory a driver has claimed';
  attach(k: Kernel, report: (m: string) => void, bag: Subscription): void {
    k.bus.listen('devmem.write', (e) => {
      const owner = claimedBy(k, e.data.pfn);
      if (owner !== null) report(`${e.data.mm} wrote physical page ${e.data.pfn} through /dev/mem while ${owner} holds it`);
    }, bag);
  }
}

/**
 * A page-cache mapping maps, at each address, the page the file caches at that address's offset
 * (vma->vm_pgoff + the page's offset in the VMA): finish_fault() maps folio_file_page() of the
 * folio the lookup returned, so a lookup that returns a folio of other indexes (the non-uniform
 * folio_split() race, feature folio-split-misplaced-entries) maps another offset's data there. An
 * anonymous page (a private COW copy) and hugetlbfs (indexed by huge page) are not page-cache pages
 * of that offset and are left out.
 */
class WrongFilePageMapped extends Invariant {
  readonly name = 'wrong-file-page-mapped';
  readonly description = 'a fault mapped, at a file offset, a page the page cache holds for another offset';
  attach(k: Kernel, report: (m: string) => void, bag: Subscription): void {
    k.bus.listen('pte.set', (e) => {
      const { mm: name, vaddr, pfn, special } = e.data;
      const mm = k.processes.get(name);
      if (special || !mm) return;
      const vma = k.vm.vmaAt(mm, vaddr);
      const file = vma?.cacheFile;
      if (!vma || !file || file.hugetlb || !k.pages.has(pfn) || k.folios.isAnon(k.folios.folio(pfn))) return;
      const index = vma.pgoff + (vaddr - vma.start);
      const cached = file.cache.get(index);
      if (cached !== undefined && cached !== pfn) report(`${name} maps pfn ${pfn} at page ${vaddr - vma.start} of '${vma.name}' (${file.name}[${index}]), but the page cache holds pfn ${cached} there`);
    }, bag);
  }
}

/** Every invariant, in DESIGN.md's order. */
export function allInvariants(): Invariant[] {
  return [
    new BlockFreedWhilePinned(),
    new DmaToForeignBlock(),
    new MappedPageZeroRef(),
    new RefcountUnderflow(),
    new PageFreedWhileMapped(),
    new PgmapTeardownWhileReferenced(),
    new PinnedPageDiverged(),
    new LongtermPinOfFsdax(),
    new DaxPageSeenAsAnon(),
    new DaxEntryZeroRef(),
    new DeviceMapsFreedPage(),
    new DevmemWriteToClaimedRange(),
    new WrongFilePageMapped(),
    new KernelOopsInvariant(),
  ];
}

/**
 * Watch a kernel: a trace of every event (optional) and every invariant. Each invariant reports
 * once per run (its first violation), with the trace up to that event.
 */
export class Monitor {
  readonly violations: Violation[] = [];
  /**
   * The events seen, formatted only when a trace is read (a violation, `--trace`): most runs
   * never read theirs, and formatting every event was most of a THP scenario's time. Event data
   * is written once at emit (arrays are copies), so formatting later gives the same lines.
   */
  private readonly events: Envelope<KernelEvents>[] = [];
  private readonly lines: string[] = [];
  private readonly bag = new Subscription();
  private readonly reported = new Set<string>();

  constructor(
    readonly kernel: Kernel,
    invariants: readonly Invariant[] = allInvariants(),
    /** trace: false keeps no trace (violations then carry none): the explorer's searching runs */
    options: { readonly trace?: boolean } = {},
  ) {
    if (options.trace !== false) kernel.bus.listenAll((e) => this.events.push(e), this.bag);
    for (const inv of invariants) {
      inv.attach(kernel, (message) => {
        if (this.reported.has(inv.name)) return;
        this.reported.add(inv.name);
        this.violations.push({ invariant: inv.name, message, trace: [...this.trace] });
      }, this.bag);
    }
  }

  /** One line per event seen so far (none when the monitor keeps no trace). */
  get trace(): readonly string[] {
    for (let i = this.lines.length; i < this.events.length; i++) this.lines.push(formatEvent(this.events[i]!));
    return this.lines;
  }

  has(name: string): boolean {
    return this.reported.has(name);
  }

  /**
   * Put back the violations a run had reported at some point: after a replay with the bus muted
   * (EventBus.muted), which reports nothing, these are what the replayed schedule reported.
   */
  restoreViolations(violations: readonly Violation[]): void {
    this.violations.length = 0;
    this.reported.clear();
    for (const v of violations) {
      this.violations.push(v);
      this.reported.add(v.invariant);
    }
  }

  dispose(): void {
    this.bag.unsubscribe();
  }
}
