import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import type { Mm, Pte, Vma } from '../types.js';
import type { Leaf } from './vm.js';
import { nonPresent } from './exclusive.js';
import { uffdWpMarker } from './guard.js';

/**
 * ioctl(PAGEMAP_SCAN) on /proc/PID/pagemap (52526ca7fdb9 "fs/proc/task_mmu: implement IOCTL to
 * get and optionally clear info about PTEs", v6.7; fs/proc/task_mmu.c do_pagemap_scan()): walk a
 * range, give each page its PAGE_IS_* categories, keep the pages the masks select, report them as
 * page_region runs (adjacent pages with the same returned categories merged), and with
 * PM_SCAN_WP_MATCHING write-protect (uffd-wp) what matched and was written. Before v6.7 the
 * pagemap file has no ioctl: -ENOTTY.
 *
 * What the model keeps per release:
 * - pagemap_scan_get_args(): size, flags, category masks (the release's PM_SCAN_CATEGORIES),
 *   start alignment, end < start (access_ok: -EFAULT), vec without vec_len (-EINVAL); end rounded
 *   up, max_pages 0 meaning no limit.
 * - pagemap_scan_test_walk() (with 0dff1b407def "fix ioctl(PAGEMAP_SCAN) on vma check", in v6.7):
 *   PAGE_IS_WPALLOWED where userfaultfd_wp_async() && userfaultfd_wp_use_markers(); elsewhere
 *   PM_SCAN_CHECK_WPASYNC is -EPERM and PM_SCAN_WP_MATCHING skips the VMA; VM_PFNMAP VMAs are
 *   skipped; VM_SOFTDIRTY adds PAGE_IS_SOFT_DIRTY (v6.8).
 * - the categories: pagemap_page_category() (PTE), pagemap_thp_category() (PMD leaf),
 *   pagemap_hugetlb_category(), and a hole without a page table (pagemap_scan_pte_hole()):
 *   PAGE_IS_SOFT_DIRTY from "report SOFT_DIRTY bits through the PAGEMAP_SCAN ioctl" (v6.8),
 *   PAGE_IS_GUARD from "fs/proc/task_mmu: add guard region bit to pagemap" (v6.15); a pte_none reads as written in the PAGE_IS_WRITTEN fast path
 *   (12f6b01a0bcb, v6.7) and, from 07b4377bdbe7 (July 2026, `latest` [M]), in the generic path too;
 *   a hole of a uffd-wp, non-hugetlb VMA reads as written from 40de8160ca7f (`latest` [M]).
 * - pagemap_scan_output() / pagemap_scan_push_range(): merging, vec_len and max_pages (-ENOSPC
 *   internally: the walk stops, walk_end says where).
 * - make_uffd_wp_pte() / make_uffd_wp_pmd() / make_uffd_wp_huge_pte() and uffd_wp_range() for holes;
 *   a THP partly matched is split first (pagemap_scan_thp_entry()).
 *
 * Not modelled: PUD leaves (walk_pud_range() splits them: refused), a hugetlb page partly matched
 * under max_pages with PM_SCAN_WP_MATCHING (stops the scan here), the uffd-wp bit of device-private,
 * device-exclusive and migration entries (not armed).
 */

/** PAGE_IS_* (include/uapi/linux/fs.h), bit i is 1 << i. */
export const PAGE_CATEGORIES = ['wpallowed', 'written', 'file', 'present', 'swapped', 'pfnzero', 'huge', 'soft-dirty', 'guard'] as const;
export type PageCategory = (typeof PAGE_CATEGORIES)[number];
/** PM_SCAN_* flags, bit i is 1 << i. */
export const PM_SCAN_FLAGS = ['wp-matching', 'check-wpasync'] as const;
export type PmScanFlag = (typeof PM_SCAN_FLAGS)[number];
/** sizeof(struct pm_scan_arg): 12 u64 fields */
export const PM_SCAN_ARG_SIZE = 96;

const BIT = Object.fromEntries(PAGE_CATEGORIES.map((c, i) => [c, 1 << i])) as Record<PageCategory, number>;
const WP_MATCHING = 1;
const CHECK_WPASYNC = 2;

/** The release a category joined PM_SCAN_CATEGORIES. */
const CATEGORY_SINCE: Record<PageCategory, readonly [number, number]> = {
  wpallowed: [6, 7], written: [6, 7], file: [6, 7], present: [6, 7], swapped: [6, 7], pfnzero: [6, 7], huge: [6, 7],
  'soft-dirty': [6, 8], // Andrei Vagin's "fs/proc/task_mmu: report SOFT_DIRTY bits through the PAGEMAP_SCAN ioctl"
  guard: [6, 15], // "fs/proc/task_mmu: add guard region bit to pagemap" (with PM_GUARD_REGION, mm/guard.ts)
};

/** A mask as a scenario gives it: category names, or a raw number (bits the release may not know). */
export type Mask = readonly PageCategory[] | number;

export function maskBits(m: Mask | undefined): number {
  if (m === undefined) return 0;
  return typeof m === 'number' ? m : m.reduce((bits, c) => bits | BIT[c], 0);
}

/** The category names of a bit set, in bit order. */
export function categoryNames(bits: number): PageCategory[] {
  return PAGE_CATEGORIES.filter((c) => (bits & BIT[c]) !== 0);
}

/** struct pm_scan_arg, in the model's units: byte addresses, as userspace passes them. */
export interface PmScanArg {
  size: number;
  flags: number;
  start: number;
  end: number;
  /** arg.vec != 0 */
  vec: boolean;
  vecLen: number;
  maxPages: number;
  categoryInverted: number;
  categoryMask: number;
  categoryAnyofMask: number;
  returnMask: number;
}

/** struct page_region in pages: [start, start + pages) with its categories (already & return_mask). */
export interface PageRegion {
  start: number;
  pages: number;
  categories: number;
}

export interface ScanResult {
  /** what the ioctl returns: the regions written to vec */
  regions: PageRegion[];
  /** arg.walk_end, as a page number */
  walkEnd: number;
}

/** the scan's state (struct pagemap_scan_private) */
interface Scan {
  readonly arg: PmScanArg;
  readonly start: number;
  readonly end: number;
  readonly interest: number;
  readonly out: PageRegion[];
  vmaCategory: number;
  found: number;
  /** set when pagemap_scan_output() said -ENOSPC */
  walkEnd: number | null;
}

export class PagemapScan {
  constructor(private readonly k: Kernel) {}

  private since(at: readonly [number, number]): boolean {
    return kernelAtLeast(this.k.version, at[0], at[1]);
  }

  /** PM_SCAN_CATEGORIES of the release */
  private categories(): number {
    return PAGE_CATEGORIES.reduce((bits, c) => (this.since(CATEGORY_SINCE[c]) ? bits | BIT[c] : bits), 0);
  }

  /** do_pagemap_scan(mm, arg). */
  scan(mm: Mm, arg: PmScanArg): ScanResult {
    const k = this.k;
    // do_pagemap_cmd() and .unlocked_ioctl arrived with 52526ca7fdb9 (v6.7): before, vfs_ioctl() says -ENOTTY
    if (!this.since([6, 7])) throw new KernelError('ENOTTY', 'ioctl(PAGEMAP_SCAN): /proc/PID/pagemap has no ioctl before v6.7');
    const ps = k.mmu.basePageSize;
    // pagemap_scan_get_args()
    if (arg.size !== PM_SCAN_ARG_SIZE) throw new KernelError('EINVAL', `PAGEMAP_SCAN: arg.size ${arg.size} is not sizeof(struct pm_scan_arg) (${PM_SCAN_ARG_SIZE})`);
    if (arg.flags & ~(WP_MATCHING | CHECK_WPASYNC)) throw new KernelError('EINVAL', `PAGEMAP_SCAN: flags 0x${(arg.flags >>> 0).toString(16)} has bits other than PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC`);
    const known = this.categories();
    const masks = arg.categoryInverted | arg.categoryMask | arg.categoryAnyofMask | arg.returnMask;
    if (masks & ~known) throw new KernelError('EINVAL', `PAGEMAP_SCAN: a category mask has bits 0x${((masks & ~known) >>> 0).toString(16)} outside PM_SCAN_CATEGORIES of ${k.version}`);
    if (arg.start % ps !== 0) throw new KernelError('EINVAL', `PAGEMAP_SCAN: start ${arg.start} is not page aligned`);
    // access_ok(start, end - start): an end below start wraps to a huge length
    if (arg.end < arg.start) throw new KernelError('EFAULT', 'PAGEMAP_SCAN: end is below start (access_ok)');
    if (!arg.vec && arg.vecLen > 0) throw new KernelError('EINVAL', 'PAGEMAP_SCAN: vec_len without vec');
    const s: Scan = {
      arg: { ...arg, maxPages: arg.maxPages === 0 ? Number.MAX_SAFE_INTEGER : arg.maxPages },
      start: arg.start / ps,
      end: Math.ceil(arg.end / ps),
      interest: arg.categoryMask | arg.categoryAnyofMask | arg.returnMask,
      out: [],
      vmaCategory: 0,
      found: 0,
      walkEnd: null,
    };
    let wrote = false;
    // walk_page_range(): VMA by VMA; a range without a VMA is a hole pagemap_scan_pte_hole() ignores
    for (const vma of [...mm.vmas].sort((a, b) => a.start - b.start)) {
      const from = Math.max(s.start, vma.start);
      const to = Math.min(s.end, vma.start + vma.pages);
      if (from >= to) continue;
      if (!this.testWalk(vma, s)) continue;
      const done = vma.hugetlb ? this.walkHugetlb(vma, from, to, s) : this.walkVma(vma, from, to, s);
      wrote ||= done.wrote;
      if (done.stop) break;
    }
    if (wrote) k.emit('tlb.flush', { mm: mm.name });
    // without a vec nothing is output: the ioctl returns 0
    return { regions: s.out, walkEnd: s.walkEnd ?? s.end };
  }

  /** pagemap_scan_test_walk(): whether to walk the VMA (its categories in s.vmaCategory). */
  private testWalk(vma: Vma, s: Scan): boolean {
    const uffd = this.k.uffd;
    const wpAllowed = uffd.wpAsync(vma) && uffd.useMarkers(vma);
    if (!wpAllowed) {
      if (s.arg.flags & CHECK_WPASYNC) throw new KernelError('EPERM', `PAGEMAP_SCAN: '${vma.name}' is not registered for async write-protection (PM_SCAN_CHECK_WPASYNC)`);
      if (s.arg.flags & WP_MATCHING) return false;
    }
    if (vma.flags.pfnmap) return false;
    let cat = wpAllowed ? BIT.wpallowed : 0;
    if (vma.flags.softdirty && this.since(CATEGORY_SINCE['soft-dirty'])) cat |= BIT['soft-dirty'];
    // pagemap_scan_is_interesting_vma(): only a required WPALLOWED is decided per VMA
    const required = s.arg.categoryMask & BIT.wpallowed;
    if (((cat ^ s.arg.categoryInverted) & required) !== required) return false;
    s.vmaCategory = cat;
    return true;
  }

  /** pagemap_scan_is_interesting_page() */
  private interesting(cat: number, s: Scan): boolean {
    const c = cat ^ s.arg.categoryInverted;
    if ((c & s.arg.categoryMask) !== s.arg.categoryMask) return false;
    return !(s.arg.categoryAnyofMask && !(c & s.arg.categoryAnyofMask));
  }

  /**
   * pagemap_scan_output(): report [addr, end) (trimmed to max_pages); returns the end reported,
   * addr when nothing fits. Without vec nothing is counted or limited.
   */
  private output(cat: number, addr: number, end: number, s: Scan): number {
    if (s.arg.vecLen === 0) return end;
    const c = cat & s.arg.returnMask;
    let stop = false;
    if (s.found + (end - addr) > s.arg.maxPages) {
      end = addr + Math.max(0, s.arg.maxPages - s.found);
      stop = true;
    }
    // pagemap_scan_push_range(): extend the last region when adjacent with the same categories,
    // else start one (none left in vec: nothing reported, -ENOSPC)
    const last = s.out[s.out.length - 1];
    if (last && last.start + last.pages === addr && last.categories === c) last.pages += end - addr;
    else if (end > addr) {
      if (s.out.length >= s.arg.vecLen) {
        end = addr;
        stop = true;
      } else s.out.push({ start: addr, pages: end - addr, categories: c });
    }
    s.found += end - addr;
    if (stop) s.walkEnd = end;
    return end;
  }

  /** One non-hugetlb VMA, PMD span by PMD span (pagemap_scan_pmd_entry / pagemap_scan_pte_hole). */
  private walkVma(vma: Vma, from: number, to: number, s: Scan): { stop: boolean; wrote: boolean } {
    const vm = this.k.vm;
    const span = vm.pmdPages;
    let wrote = false;
    for (let base = from - (from % span); base < to; base += span) {
      const a = Math.max(from, base);
      const e = Math.min(to, base + span);
      if (vm.lookup(vma.mm, a)?.pte.level === 'pud') throw KernelError.unsupported('EOPNOTSUPP', `PAGEMAP_SCAN over a PUD-mapped page of '${vma.name}' (walk_pud_range() splits it) is not modelled`);
      const pmd = vma.mm.pmds.get(base);
      if (pmd) {
        const r = this.thpEntry(vma, { pte: pmd, base, pages: span }, a, e, s);
        wrote ||= r.wrote;
        if (r.stop) return { stop: true, wrote };
        if (!r.split) continue;
      }
      const r = vm.pteTableAt(vma.mm, a) ? this.pteEntries(vma, a, e, s) : this.hole(vma, a, e, s);
      wrote ||= r.wrote;
      if (r.stop) return { stop: true, wrote };
    }
    return { stop: false, wrote };
  }

  /** pagemap_scan_pte_hole(): no page table under [a, e). */
  private hole(vma: Vma, a: number, e: number, s: Scan): { stop: boolean; wrote: boolean } {
    let cat = s.vmaCategory;
    // 40de8160ca7f "fix PAGEMAP_SCAN written state for PMD holes" (latest [M]): a hole of a
    // uffd-wp, non-hugetlb VMA is written, like a pte_none
    if (this.k.version === 'latest' && vma.flags.uffdWp && !vma.hugetlb) cat |= BIT.written;
    if (!this.interesting(cat, s)) return { stop: false, wrote: false };
    const end = this.output(cat, a, e, s);
    if (end === a) return { stop: true, wrote: false };
    // "err = uffd_wp_range(vma, addr, end - addr, true)": markers where they are used
    const wrote = (s.arg.flags & WP_MATCHING) !== 0 && this.k.uffd.wpRange(vma, a, end);
    return { stop: s.walkEnd !== null, wrote };
  }

  /** pagemap_scan_pmd_entry() over the PTEs of [a, e): the exclusive-WP and PAGE_IS_WRITTEN fast paths, or the generic one. */
  private pteEntries(vma: Vma, a: number, e: number, s: Scan): { stop: boolean; wrote: boolean } {
    const { arg } = s;
    const mm = vma.mm;
    let wrote = false;
    const armed = (pte: Pte | undefined) => pte?.uffdWp === true && !pte.devicePrivate && !pte.deviceExclusive && !pte.migration;
    // "Fast path for performing exclusive WP": WP_MATCHING without vec arms every entry
    if (arg.flags & WP_MATCHING && !arg.vec) {
      for (let vpn = a; vpn < e; vpn++) {
        const pte = mm.ptes.get(vpn);
        if (armed(pte)) continue;
        wrote = this.makeUffdWpPte(vma, vpn, pte) || wrote;
      }
      return { stop: false, wrote };
    }
    const writtenOnly = !arg.categoryAnyofMask && !arg.categoryInverted && arg.categoryMask === BIT.written && arg.returnMask === BIT.written;
    for (let vpn = a; vpn < e; vpn++) {
      const pte = mm.ptes.get(vpn);
      let cat: number;
      if (writtenOnly) {
        // the PAGE_IS_WRITTEN fast path (12f6b01a0bcb): whatever is not uffd-wp is written, pte_none too
        if (armed(pte)) continue;
        cat = s.vmaCategory | BIT.written;
      } else {
        cat = s.vmaCategory | this.pageCategory(pte, s);
        if (!this.interesting(cat, s)) continue;
      }
      const next = this.output(cat, vpn, vpn + 1, s);
      if (next === vpn) return { stop: true, wrote };
      if (arg.flags & WP_MATCHING && cat & BIT.written) wrote = this.makeUffdWpPte(vma, vpn, pte) || wrote;
    }
    return { stop: false, wrote };
  }

  /** pagemap_page_category() of one PTE-level entry (undefined: pte_none). */
  private pageCategory(pte: Pte | undefined, s: Scan): number {
    const k = this.k;
    const sd = this.since(CATEGORY_SINCE['soft-dirty']);
    // 07b4377bdbe7 "fix PAGEMAP_SCAN written state for unpopulated ptes" (latest [M]): "return
    // PAGE_IS_WRITTEN" for a pte_none, as the fast path reads it; before, 0
    if (!pte) return k.version === 'latest' ? BIT.written : 0;
    if (!nonPresent(pte)) {
      let cat = BIT.present;
      if (!pte.uffdWp) cat |= BIT.written;
      if (s.interest & BIT.file) {
        const page = k.vm.normalPage(pte, pte.pfn);
        if (page !== null && !k.isAnon(page)) cat |= BIT.file;
      }
      if (pte.pfn === k.zeroPfn) cat |= BIT.pfnzero;
      if (sd && pte.softDirty) cat |= BIT['soft-dirty'];
      return cat;
    }
    // is_swap_pte(): swap entries, markers, device-private / -exclusive and migration entries
    let cat = BIT.swapped;
    // pte_swp_uffd_wp_any(): a swap entry's bit or a PTE_MARKER_UFFD_WP
    if (!pte.uffdWp) cat |= BIT.written;
    if (pte.guard && this.since(CATEGORY_SINCE.guard)) cat |= BIT.guard;
    else if (s.interest & BIT.file && (pte.devicePrivate || pte.deviceExclusive || pte.migration) && pte.pfn >= 0 && !k.isAnon(pte.pfn)) cat |= BIT.file;
    if (sd && pte.softDirty) cat |= BIT['soft-dirty'];
    return cat;
  }

  /** make_uffd_wp_pte(): present -> pte_mkuffd_wp() (write-protected too), none -> PTE_MARKER_UFFD_WP, swap -> pte_swp_mkuffd_wp(). */
  private makeUffdWpPte(vma: Vma, vpn: number, pte: Pte | undefined): boolean {
    const k = this.k;
    if (!pte) {
      k.vm.install(vma.mm, vpn, uffdWpMarker('pte'));
      return true;
    }
    if (pte.swap || pte.marker) {
      pte.uffdWp = true;
      return true;
    }
    if (nonPresent(pte)) return false;
    pte.uffdWp = true;
    pte.write = false;
    k.emit('pte.set', { mm: vma.mm.name, vaddr: vpn, pfn: pte.pfn, level: pte.level, write: false, devmap: pte.devmap, special: pte.special });
    return true;
  }

  /** pagemap_scan_thp_entry(): a PMD leaf; `split` when it was split for a partial WP and the PTEs are to be walked. */
  private thpEntry(vma: Vma, leaf: Leaf, a: number, e: number, s: Scan): { stop: boolean; wrote: boolean; split: boolean } {
    const k = this.k;
    const cat = s.vmaCategory | this.thpCategory(vma, leaf, s);
    if (!this.interesting(cat, s)) return { stop: false, wrote: false, split: false };
    const foundBefore = s.found;
    const outBefore = s.out.map((r) => ({ ...r }));
    const end = this.output(cat, a, e, s);
    if (end === a) return { stop: true, wrote: false, split: false };
    if (!(s.arg.flags & WP_MATCHING) || !(cat & BIT.written)) return { stop: s.walkEnd !== null, wrote: false, split: false };
    // "Break huge page into small pages if the WP operation needs to be performed on a portion of
    // the huge page": split, back the output out, report as if there was no THP
    if (end !== leaf.base + leaf.pages || a !== leaf.base) {
      k.vm.splitHugePmd(vma, leaf.base);
      s.out.splice(0, s.out.length, ...outBefore);
      s.found = foundBefore;
      s.walkEnd = null;
      return { stop: false, wrote: true, split: true };
    }
    // make_uffd_wp_pmd(): pmd_mkuffd_wp() of a present PMD
    if (!nonPresent(leaf.pte)) {
      leaf.pte.uffdWp = true;
      leaf.pte.write = false;
      k.emit('pte.set', { mm: vma.mm.name, vaddr: leaf.base, pfn: leaf.pte.pfn, level: 'pmd', write: false, devmap: leaf.pte.devmap, special: leaf.pte.special });
    }
    return { stop: s.walkEnd !== null, wrote: true, split: false };
  }

  /** pagemap_thp_category() */
  private thpCategory(vma: Vma, leaf: Leaf, s: Scan): number {
    const k = this.k;
    const pte = leaf.pte;
    const sd = this.since(CATEGORY_SINCE['soft-dirty']);
    let cat = BIT.huge;
    if (!nonPresent(pte)) {
      cat |= BIT.present;
      if (!pte.uffdWp) cat |= BIT.written;
      if (s.interest & BIT.file) {
        const page = k.vm.normalPage(pte, pte.pfn);
        if (page !== null && !k.isAnon(page)) cat |= BIT.file;
      }
      if (k.thp.isHugeZeroPmd(vma, leaf)) cat |= BIT.pfnzero;
      if (sd && pte.softDirty) cat |= BIT['soft-dirty'];
      return cat;
    }
    cat |= BIT.swapped;
    if (!pte.uffdWp) cat |= BIT.written;
    if (sd && pte.softDirty) cat |= BIT['soft-dirty'];
    if (s.interest & BIT.file && pte.pfn >= 0 && !k.isAnon(pte.pfn)) cat |= BIT.file;
    return cat;
  }

  /** walk_hugetlb_range() -> pagemap_scan_hugetlb_entry(), or pagemap_scan_pte_hole() where no page table holds the entry. */
  private walkHugetlb(vma: Vma, from: number, to: number, s: Scan): { stop: boolean; wrote: boolean } {
    const k = this.k;
    const hp = vma.hugetlb!.pages;
    let wrote = false;
    for (let base = from - ((from - vma.start) % hp); base < to; base += hp) {
      const a = Math.max(from, base);
      const e = Math.min(to, base + hp);
      const leaf = k.vm.lookup(vma.mm, base);
      if (!leaf && !k.uffd.hugeTableAt(vma, base)) {
        const r = this.hole(vma, a, e, s);
        wrote ||= r.wrote;
        if (r.stop) return { stop: true, wrote };
        continue;
      }
      const cat = s.vmaCategory | this.hugetlbCategory(leaf?.pte);
      if (!this.interesting(cat, s)) continue;
      const outBefore = s.out.map((r) => ({ ...r }));
      const foundBefore = s.found;
      const end = this.output(cat, a, e, s);
      if (end === a) return { stop: true, wrote };
      if (s.arg.flags & WP_MATCHING && cat & BIT.written) {
        if (end !== base + hp || a !== base) {
          // "Partial HugeTLB page WP isn't possible": backed out, walk_end = start
          s.out.splice(0, s.out.length, ...outBefore);
          s.found = foundBefore;
          s.walkEnd = a;
          return { stop: true, wrote };
        }
        wrote = this.makeUffdWpHuge(vma, base, leaf) || wrote;
      }
      if (s.walkEnd !== null) return { stop: true, wrote };
    }
    return { stop: false, wrote };
  }

  /** pagemap_hugetlb_category() (undefined: huge_pte_none) */
  private hugetlbCategory(pte: Pte | undefined): number {
    const k = this.k;
    const sd = this.since(CATEGORY_SINCE['soft-dirty']);
    let cat = BIT.huge;
    if (!pte) return cat;
    if (!nonPresent(pte)) {
      cat |= BIT.present;
      if (!pte.uffdWp) cat |= BIT.written;
      if (!k.isAnon(pte.pfn)) cat |= BIT.file;
      if (sd && pte.softDirty) cat |= BIT['soft-dirty'];
      return cat;
    }
    cat |= BIT.swapped;
    if (!pte.uffdWp) cat |= BIT.written;
    if (sd && pte.softDirty) cat |= BIT['soft-dirty'];
    return cat;
  }

  /** make_uffd_wp_huge_pte(): none -> a huge PTE_MARKER_UFFD_WP; a marker stays; present -> huge_pte_mkuffd_wp(). */
  private makeUffdWpHuge(vma: Vma, base: number, leaf: Leaf | null): boolean {
    const k = this.k;
    if (!leaf) {
      k.vm.install(vma.mm, base, uffdWpMarker(vma.hugetlb!.level));
      return true;
    }
    if (leaf.pte.marker || nonPresent(leaf.pte)) return false;
    leaf.pte.uffdWp = true;
    leaf.pte.write = false;
    k.emit('pte.set', { mm: vma.mm.name, vaddr: base, pfn: leaf.pte.pfn, level: leaf.pte.level, write: false, devmap: leaf.pte.devmap, special: leaf.pte.special });
    return true;
  }
}
