import { InputError, KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import type { Kernel } from '../kernel.js';
import type { UserVa } from '../arch.js';
import type { Mm } from '../types.js';
import { MiB } from '../units.js';
import { sliceTake } from './slices.js';

/**
 * The user address space as get_unmapped_area() sees it (mm/mmap.c, mm/util.c, the arch hooks):
 * DEFAULT_MAP_WINDOW, TASK_SIZE (Mmu.userVa, the feature `large-user-va`) and what an address
 * hint does. Without a hint, or with one the kernel would search below mmap_base for, the model
 * keeps its own placement (Vm.placeVma: bottom-up from 1 TiB, inside every arch's default
 * window); the kernel's own goes top-down from mmap_base. A hint it takes, a search in the window
 * a hint opens above DEFAULT_MAP_WINDOW and MAP_FIXED at an address follow the kernel, ASLR off
 * (no randomisation: mmap_base() with rnd 0). There is no stack VMA: a hint the stack would
 * refuse (vm_start_gap()) is taken if nothing else is there.
 */

/** _STK_LIM: RLIMIT_STACK of a process that did not change it (include/uapi/linux/resource.h) */
const STACK_RLIMIT = 8 * MiB;
/** stack_guard_gap: 256 pages (mm/mmap.c, 1be7107fbe18 "mm: larger stack guard gap", v4.12) */
const STACK_GUARD_GAP_PAGES = 256;
/** mmap_base()'s smallest gap below the stack (MIN_GAP / SIZE_128M: mm/util.c, arch/x86/mm/mmap.c) */
const MIN_GAP = 128 * MiB;

/** The layout of this kernel's arch under `large-user-va`. */
export function userVa(k: Kernel): UserVa | null {
  const facts = k.mmu.userVa;
  if (!facts) return null;
  return k.features['large-user-va'] && facts.large ? facts.large : facts.standard;
}

/**
 * mmap_base() with ASLR off, in pages: the stack's top (DEFAULT_MAP_WINDOW) less the stack
 * rlimit and stack_guard_gap, kept between 128 MiB and 5/6 of it (mm/util.c mmap_base(),
 * arch/x86/mm/mmap.c mmap_base() with task_size_64bit(0); powerpc the same below
 * DEFAULT_MAP_WINDOW_USER64).
 */
export function mmapBase(k: Kernel, va: UserVa): number {
  const ps = k.mmu.basePageSize;
  const top = va.defaultWindow;
  const gap = Math.min(Math.max(STACK_RLIMIT + STACK_GUARD_GAP_PAGES * ps, MIN_GAP), Math.floor(top / 6) * 5);
  return Math.ceil((top - gap) / ps);
}

/**
 * do_mmap()'s round_hint_to_min() of a hint in bytes (-1: (void *)-1), as a page number: the
 * hint & PAGE_MASK. Zero is no hint. A hint below vm.mmap_min_addr is refused as not modelled.
 */
export function hintPage(k: Kernel, addr: number): number {
  const ps = k.mmu.basePageSize;
  // (void *)-1 & PAGE_MASK: the last page of the 64-bit space, 2^64 / PAGE_SIZE - 1 (exact in pages)
  if (addr === -1) return 2 ** 64 / ps - 1;
  if (!Number.isSafeInteger(addr) || addr < 0) throw new InputError(`mmap addr ${addr}: write a whole number of bytes below 2^53, or -1 for (void *)-1`, undefined, 'addr');
  const page = Math.floor(addr / ps);
  if (page !== 0 && addr < 64 * 1024) throw new InputError(`mmap addr ${addr}: a hint below vm.mmap_min_addr (round_hint_to_min()) is not modelled`, undefined, 'addr');
  return page;
}

/** Whether no VMA of `mm` overlaps pages [start, start + pages) (find_vma() / vm_start_gap() without a stack VMA). */
function free(mm: Mm, start: number, pages: number): boolean {
  return !mm.vmas.some((v) => v.start < start + pages && start < v.start + v.pages);
}

/**
 * vm_unmapped_area() top-down (unmapped_area_topdown()): the highest `align`-aligned start below
 * page `high` where `pages` pages overlap no VMA and, on an MMU with slices, fit `psize`
 * (slice_find_area_topdown(), converting the free slices it takes).
 */
function unmappedAreaTopdown(k: Kernel, mm: Mm, high: number, pages: number, align: number, psize: number): number {
  let start = Math.floor((high - pages) / align) * align;
  while (start >= 1) {
    const hit = mm.vmas.find((v) => v.start < start + pages && start < v.start + v.pages);
    const below = hit ? hit.start : sliceTake(k.mmu, mm, start, pages, psize);
    if (below === null) return start;
    start = Math.floor((below - pages) / align) * align;
  }
  throw new KernelError('ENOMEM', `get_unmapped_area(): no ${pages} free pages below page ${high} of ${mm.name}`);
}

/**
 * get_unmapped_area() for an mmap() with the hint `hint` (a page number, round_hint_to_min()
 * done) of `pages` pages, `align`-aligned (a hugetlb mapping: its huge page, `psize` base pages),
 * per the arch's rule (UserVaFacts.hint):
 * - x86 (arch_get_unmapped_area_topdown(), sys_x86_64.c): the hint page-masked, a hugetlb one
 *   masked to its huge page (hugetlb_get_unmapped_area() in arch/x86/mm/hugetlbpage.c,
 *   1e0f25dbf246, v4.15 [M]) until that function went (v6.13 [M]), then aligned up by
 *   hugetlbfs's own; taken when mmap_address_hint_valid() — below TASK_SIZE - len and on one
 *   side of DEFAULT_MAP_WINDOW — and free; else a hint above the window searches below
 *   mmap_base + TASK_SIZE_MAX - DEFAULT_MAP_WINDOW;
 * - generic (generic_get_unmapped_area_topdown(), arm64's arch_get_mmap_end() /
 *   arch_get_mmap_base()): taken when it ends below mmap_end — TASK_SIZE for a hint above
 *   DEFAULT_MAP_WINDOW, else the window — and is free; else the search is below mmap_base moved
 *   up by TASK_SIZE - DEFAULT_MAP_WINDOW for a hint above the window;
 * - slices (powerpc slice_get_unmapped_area()): high_limit is TASK_SIZE when the hint (before
 *   its alignment to the page size) is at or above DEFAULT_MAP_WINDOW; taken when it ends below
 *   high_limit, is free and fits the page size in its slices; else searched top-down below
 *   mmap_base + slb_addr_limit - DEFAULT_MAP_WINDOW when high_limit is above the window;
 * - s390 (arch/s390/mm/mmap.c): taken anywhere below TASK_SIZE when free (check_asce_limit()
 *   grows the page table, crst_table_upgrade()); the search stays below mmap_base.
 * Null: the kernel would search below mmap_base (the model's own placement does instead).
 */
export function placeHinted(k: Kernel, mm: Mm, hint: number, pages: number, align: number, psize: number): number | null {
  const va = userVa(k);
  const facts = k.mmu.userVa;
  if (!va || !facts) throw new InputError(`mmap with an address hint on ${k.mmu.arch}: the arch plugin does not describe its user address space (Mmu.userVa)`, undefined, 'addr');
  const ps = k.mmu.basePageSize;
  const window = Math.floor(va.defaultWindow / ps); // pages below DEFAULT_MAP_WINDOW (x86: 2^35 - 1)
  const task = Math.floor(va.taskSize / ps);
  const up = Math.ceil(hint / align) * align; // hugetlbfs: ALIGN(addr, huge_page_size(h))
  const highSearch = () => unmappedAreaTopdown(k, mm, mmapBase(k, va) + task - window, pages, align, psize);
  switch (facts.hint) {
    case 'x86': {
      const h = align > 1 && !kernelAtLeast(k.version, 6, 13) ? Math.floor(hint / align) * align : up;
      const valid = task - pages >= h && (h > window) === (h + pages > window);
      if (valid && free(mm, h, pages)) return h;
      return h > window ? highSearch() : null;
    }
    case 'generic': {
      const mmapEnd = up > window ? task : window;
      if (mmapEnd - pages >= up && free(mm, up, pages)) return up;
      return up > window ? highSearch() : null;
    }
    case 'slices': {
      const highLimit = hint >= window ? task : window;
      if (up <= highLimit - pages && free(mm, up, pages) && sliceTake(k.mmu, mm, up, pages, psize) === null) return up;
      return highLimit > window ? highSearch() : null;
    }
    case 's390':
      return task - pages >= up && free(mm, up, pages) ? up : null;
  }
}

/**
 * MAP_FIXED at byte `addr` for `pages` pages: the page it starts at. EINVAL when it is not page
 * aligned (get_unmapped_area(): offset_in_page()), ENOMEM when the range ends above TASK_SIZE
 * (__get_unmapped_area(): addr > TASK_SIZE - len; slice_get_unmapped_area(): addr > high_limit -
 * len) — e.g. at 128 TiB on x86 with 4-level paging.
 */
export function fixedPage(k: Kernel, addr: number, pages: number): number {
  const ps = k.mmu.basePageSize;
  if (!Number.isSafeInteger(addr) || addr < 0) throw new InputError(`mmap fixed.addr ${addr}: write a whole number of bytes below 2^53`, undefined, 'fixed');
  if (addr % ps !== 0) throw new KernelError('EINVAL', `mmap MAP_FIXED at ${addr}: not page aligned`);
  if (addr < 64 * 1024) throw new InputError(`mmap fixed.addr ${addr}: below vm.mmap_min_addr (security_mmap_addr()) is not modelled`, undefined, 'fixed');
  const va = userVa(k);
  if (!va) throw new InputError(`mmap MAP_FIXED at an address on ${k.mmu.arch}: the arch plugin does not describe its user address space (Mmu.userVa)`, undefined, 'fixed');
  const task = Math.floor(va.taskSize / ps);
  if (addr / ps > task - pages) throw new KernelError('ENOMEM', `mmap MAP_FIXED at 0x${addr.toString(16)} for ${pages} pages: past TASK_SIZE 0x${va.taskSize.toString(16)} (get_unmapped_area)`);
  return addr / ps;
}
