import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import { preempt, type Op } from '../sched.js';
import type { Mm, Pte, PteLevel, Vma } from '../types.js';

/**
 * Guard regions (MADV_GUARD_INSTALL / MADV_GUARD_REMOVE, 662df3e5c376 "mm: madvise: implement
 * lightweight guard page mechanism", v6.13): a range of a VMA whose PTEs hold PTE_MARKER_GUARD
 * markers (7c53dfbdb024 "mm: add PTE_MARKER_GUARD PTE marker"), so that any access is SIGSEGV
 * without a PROT_NONE VMA of its own. The markers are page-table state, not VMA state: what keeps
 * or drops them is the page-table code (mm/vm.ts zap, mm/fork.ts, mm/mremap.ts, mm/mprotect.ts,
 * mm/fault.ts, GUP).
 */

/** MAX_MADVISE_GUARD_RETRIES (mm/internal.h, v6.13): walks before restart_syscall(). */
const MAX_GUARD_RETRIES = 3;

/** make_pte_marker(PTE_MARKER_GUARD): a non-present entry with no page (pfn -1), never writable. */
export function guardMarker(): Pte {
  return { ...pteMarker(), guard: true };
}

/**
 * make_pte_marker(PTE_MARKER_UFFD_WP) (v5.19, "mm/uffd: PTE_MARKER_UFFD_WP"): the write protection
 * of a page that is not mapped (mm/userfaultfd.ts).
 */
export function uffdWpMarker(level: PteLevel = 'pte'): Pte {
  return { ...pteMarker(level), uffdWp: true };
}

/**
 * make_pte_marker(PTE_MARKER_POISONED) (UFFDIO_POISON, v6.6: mm/userfaultfd.ts): an access to the
 * entry is VM_FAULT_HWPOISON (SIGBUS), as if the page behind it were poisoned.
 */
export function poisonedMarker(level: PteLevel = 'pte'): Pte {
  return { ...pteMarker(level), poisoned: true };
}

/** A PTE_MARKER_UFFD_WP and not a guard marker: pte_none_mostly() / huge_pte_none_mostly() take it for none. */
export function isWpMarker(pte: Pte): boolean {
  return pte.marker === true && pte.uffdWp === true && !pte.guard;
}

/** A PTE marker without bits: the non-present entry both kinds share (a hugetlb one at its level). */
function pteMarker(level: PteLevel = 'pte'): Pte {
  return { pfn: -1, level, write: false, dirty: false, special: false, devmap: false, devicePrivate: false, softDirty: false, marker: true };
}

/**
 * is_valid_guard_vma(vma, allow_locked) (mm/madvise.c): why the VMA cannot take guard regions, or
 * null. Every release refuses VM_SPECIAL (VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP) and
 * VM_HUGETLB, and for an install VM_LOCKED (installing zaps, and locked pages must not be zapped;
 * removal is allowed there: it is not destructive). v6.13 and v6.14 also want vma_is_anonymous()
 * and VM_MAYWRITE (which every private anonymous mapping has); "mm: allow guard regions in
 * file-backed and read-only mappings" (Lorenzo Stoakes, Feb 2025; v6.15 [M]) dropped both, so
 * shmem, page-cache files, fs-dax files and device-dax (VM_HUGEPAGE only, not VM_SPECIAL) qualify.
 */
export function guardRefusal(k: Kernel, vma: Vma, allowLocked: boolean): string | null {
  const f = vma.flags;
  if (f.io || f.dontexpand || f.pfnmap || f.mixedmap) return 'VM_SPECIAL (VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP)';
  if (vma.hugetlb) return 'VM_HUGETLB';
  if (!allowLocked && f.locked) return 'VM_LOCKED (installing zaps the range, and locked pages are never zapped)';
  // vma_is_anonymous(): no vm_ops -- private anonymous memory only (MAP_SHARED|MAP_ANONYMOUS is shmem)
  if (!kernelAtLeast(k.version, 6, 15) && (vma.kind !== 'anon' || f.shared)) return 'not anonymous memory (vma_is_anonymous(); file-backed mappings are allowed from v6.15)';
  return null;
}

function refusedGuard(vma: Vma, advice: string, why: string): KernelError {
  return new KernelError('EINVAL', `madvise ${advice} refused on '${vma.name}': ${why} (is_valid_guard_vma)`);
}

/**
 * madvise_guard_install() over pages [s, e) of one VMA: anon_vma_prepare() first ("the range is no
 * longer empty from a page table perspective", so fork copies the page tables: vma_needs_copy()
 * wants an anon_vma; from v6.19 [M] the sticky VM_MAYBE_GUARD does that, and only anonymous VMAs
 * get an anon_vma -- no difference the model shows), then up to MAX_MADVISE_GUARD_RETRIES walks (walk_page_range_mm() with
 * guard_install_walk_ops): an empty PTE gets a marker (guard_install_set_pte), an existing marker
 * counts, anything else -- a present page, the zero page, a swap or device entry, a huge PMD/PUD
 * leaf -- ends the walk, and the whole range is zapped (zap_page_range_single(): pages go, markers
 * stay) before the next walk. A range that keeps being refaulted under the walks is
 * restart_syscall(): the syscall starts again, invisibly to the caller.
 */
export function* guardInstall(k: Kernel, vma: Vma, s: number, e: number): Op {
  const why = guardRefusal(k, vma, false);
  if (why) throw refusedGuard(vma, 'guard-install', why);
  k.vm.anonVmaPrepare(vma);
  for (;;) {
    for (let i = 0; i < MAX_GUARD_RETRIES; i++) {
      if (installWalk(k, vma, s, e)) return;
      yield* k.vm.zapRangeSingle(vma, s, e, 'madvise_guard_install');
    }
    yield preempt('madvise_guard_install: restart_syscall');
  }
}

/** One guard_install_walk_ops walk: true when every page of [s, e) holds a marker at the end. */
function installWalk(k: Kernel, vma: Vma, s: number, e: number): boolean {
  const mm = vma.mm;
  for (let vpn = s; vpn < e; vpn++) {
    const leaf = k.vm.lookup(mm, vpn);
    if (!leaf) {
      k.vm.install(mm, vpn, guardMarker());
      continue;
    }
    // guard_install_pud_entry / _pmd_entry: a huge leaf; guard_install_pte_entry: a non-guard entry
    if (!leaf.pte.guard) return false;
  }
  return true;
}

/**
 * madvise_guard_remove() over pages [s, e) of one VMA: is_valid_guard_vma(allow_locked = true),
 * then every guard marker in the range is cleared (guard_remove_pte_entry:
 * pte_clear_not_present_full); huge leaves hold none and are skipped; nothing else changes. The
 * next access faults the page in as on an empty PTE.
 */
export function* guardRemove(k: Kernel, vma: Vma, s: number, e: number): Op {
  const why = guardRefusal(k, vma, true);
  if (why) throw refusedGuard(vma, 'guard-remove', why);
  for (const leaf of k.vm.leavesIn(vma.mm, s, e)) if (leaf.pte.guard) k.vm.clear(vma.mm, leaf.base, 'pte');
  yield* [];
}

/**
 * pagemap's PM_GUARD_REGION (bit 58, "fs/proc/task_mmu: add guard region bit to pagemap", v6.15
 * [M]; pte_to_pagemap_entry(): is_guard_swp_entry()): the page's PTE is a guard marker. v6.13 and
 * v6.14 have markers but leave bit 58 zero.
 */
export function pagemapGuard(k: Kernel, mm: Mm, vpn: number): boolean {
  return kernelAtLeast(k.version, 6, 15) && k.vm.lookup(mm, vpn)?.pte.guard === true;
}
