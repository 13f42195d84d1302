import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import type { Op } from '../sched.js';
import type { Mm, Vma } from '../types.js';
import { mmPopulateRange } from './populate.js';

/**
 * mlock(2), mlock2(2), munlock(2), mlockall(2), munlockall(2) and MAP_LOCKED (mm/mlock.c).
 *
 * What the model keeps is the VMA side: VM_LOCKED and VM_LOCKONFAULT (`VmFlags.locked`,
 * `VmFlags.lockonfault`), the VMA splits and merges that come with them, and the population of the
 * range. mlock2() with MLOCK_ONFAULT and mlockall() with MCL_ONFAULT set both flags. The flags
 * decide what later calls may do: MADV_DONTNEED, MADV_FREE, MADV_COLD and MADV_PAGEOUT refuse a
 * VM_LOCKED VMA (EINVAL; MADV_DONTNEED_LOCKED does not, mm/madvise.ts), and fork does not pass
 * them on (dup_mmap()). The page side is not modelled, because the model has no LRU or reclaim:
 * PG_mlocked, the unevictable list and mlock_count. A process has CAP_IPC_LOCK and no
 * RLIMIT_MEMLOCK until a `setrlimit` step gives it a limit (Mm.memlockLimit) and drops the
 * capability; mm->locked_vm is then the pages of its VM_LOCKED VMAs (lockedVm()), which is what
 * mmap_region(), mlock_fixup(), munmap and dup_mmap() keep it at.
 *
 * Every call here exists in every modelled release: mlock2() and MCL_ONFAULT are v4.4.
 */

export type LockHow = 'lock' | 'onfault' | 'unlock';

/**
 * mlock_fixup()'s filter: VMAs whose flags never change, and for which munlock is a no-op.
 * - VM_SPECIAL: VM_IO, VM_DONTEXPAND, VM_PFNMAP, VM_MIXEDMAP;
 * - hugetlb;
 * - vma_is_dax(): an fs-dax file, or a device-dax character device (its inode is S_DAX);
 * - vma_is_secretmem() (mm/secretmem.ts; in the filter since memfd_secret came, v5.14): its
 *   VM_LOCKED stays whatever munlock or munlockall asks;
 * - VM_DROPPABLE (MAP_DROPPABLE, 9651fcedf7b9, v6.11: mlock_fixup() filters it from the start);
 * - the gate VMA, which the model does not have.
 * The range is still populated: "for some special vmas, we go ahead and populate the ptes".
 * Returns why the VMA is filtered, or null.
 */
export function mlockFiltered(k: Kernel, vma: Vma): string | null {
  const f = vma.flags;
  if (f.io || f.dontexpand || f.pfnmap || f.mixedmap) return 'VM_SPECIAL';
  if (vma.hugetlb || vma.cacheFile?.hugetlb) return 'hugetlb';
  if (k.isFsdaxVma(vma) || (vma.kind === 'device' && vma.device?.pgmap.type === 'generic')) return 'vma_is_dax()';
  if (k.secretmem.isSecretmemVma(vma)) return 'vma_is_secretmem()';
  if (f.droppable) return 'VM_DROPPABLE';
  return null;
}

/** mm->locked_vm: the pages of the process's VM_LOCKED VMAs. */
export function lockedVm(mm: Mm): number {
  return mm.vmas.reduce((n, v) => n + (v.flags.locked ? v.pages : 0), 0);
}

/**
 * mlock_future_ok() (mm/mmap.c; mlock_future_check(), -EAGAIN, before v6.5 [M]): `pages` more
 * locked pages fit RLIMIT_MEMLOCK, or the process has CAP_IPC_LOCK (no `setrlimit`).
 */
export function mlockFutureOk(mm: Mm, pages: number): boolean {
  return mm.memlockLimit === undefined || pages + lockedVm(mm) <= mm.memlockLimit;
}

/** can_do_mlock(): a non-zero RLIMIT_MEMLOCK or CAP_IPC_LOCK, else EPERM. */
function checkCanDoMlock(mm: Mm, what: string): void {
  if (mm.memlockLimit === 0) throw new KernelError('EPERM', `${what}: RLIMIT_MEMLOCK is 0 and the process lacks CAP_IPC_LOCK (can_do_mlock)`);
}

/** The VM_LOCKED_MASK part of a VMA's new flags for `how`. */
function lockFlags(how: LockHow): { locked: boolean; lockonfault: boolean } {
  return { locked: how !== 'unlock', lockonfault: how === 'onfault' };
}

/**
 * mlock_fixup() over [s, e) of one VMA: nothing for a filtered VMA or unchanged flags; else the
 * VMA is split at the range's ends, the piece takes the new flags, and it merges with its
 * neighbours where they are alike (vma_modify_flags(); vma_merge() before v6.7).
 */
function fixup(k: Kernel, vma: Vma, s: number, e: number, how: LockHow): void {
  if (mlockFiltered(k, vma)) return;
  const want = lockFlags(how);
  if ((vma.flags.locked ?? false) === want.locked && (vma.flags.lockonfault ?? false) === want.lockonfault) return;
  const piece = k.vm.isolate(vma, s, e);
  piece.flags.locked = want.locked;
  piece.flags.lockonfault = want.lockonfault;
  k.vm.mergeAround(piece);
}

/**
 * do_mlock() / munlock() over pages [start, end) of a process.
 * 1. apply_vma_lock_flags() gives each VMA of the range its part. A hole ends it with ENOMEM, after
 *    the VMAs before the hole were changed.
 * 2. Only a lock, not an unlock, then populates the range with __mm_populate(ignore_errors = 0).
 */
export function* mlockRange(k: Kernel, mm: Mm, start: number, end: number, how: LockHow): Op {
  const what = how === 'unlock' ? 'munlock' : how === 'onfault' ? 'mlock2(MLOCK_ONFAULT)' : 'mlock';
  if (how !== 'unlock') {
    // do_mlock(): can_do_mlock(); lru_add_drain_all(); the range plus locked_vm, less what of the
    // range is locked already (count_mm_mlocked_page_nr()), within RLIMIT_MEMLOCK, else ENOMEM
    checkCanDoMlock(mm, what);
    k.secretmem.drainLru();
    if (mm.memlockLimit !== undefined) {
      const already = mm.vmas.reduce((n, v) => n + (v.flags.locked ? Math.max(0, Math.min(end, v.start + v.pages) - Math.max(start, v.start)) : 0), 0);
      if (end - start + lockedVm(mm) - already > mm.memlockLimit) throw new KernelError('ENOMEM', `${what}: ${end - start} page(s) more than RLIMIT_MEMLOCK (${mm.memlockLimit} pages) allows, without CAP_IPC_LOCK`);
    }
  }
  for (let at = start; at < end; ) {
    const vma = k.vm.vmaAt(mm, at);
    if (!vma) throw new KernelError('ENOMEM', `${what}: page ${at} of ${mm.name} is not mapped (apply_vma_lock_flags)`);
    const to = Math.min(end, vma.start + vma.pages);
    fixup(k, vma, at, to, how);
    at = to;
  }
  if (how !== 'unlock') yield* mmPopulateRange(k, mm, start, end, false, what);
  yield* [];
}

export interface MlockallFlags {
  readonly current?: boolean;
  readonly future?: boolean;
  readonly onfault?: boolean;
}

/**
 * mlockall(flags) and munlockall() (`flags` null). Flags with neither MCL_CURRENT nor MCL_FUTURE
 * are EINVAL: that covers 0 and MCL_ONFAULT alone.
 *
 * apply_mlockall_flags() does two things:
 * - MCL_FUTURE sets mm->def_flags: later mmaps come locked (mmap_region()) and are populated unless
 *   on-fault. Without MCL_FUTURE, def_flags is cleared.
 * - MCL_CURRENT applies mlock_fixup() to every VMA, and errors are ignored.
 * MCL_CURRENT without MCL_ONFAULT then populates the whole address space (mm_populate(0, TASK_SIZE)).
 * munlockall() clears def_flags and unlocks every VMA.
 */
export function* mlockall(k: Kernel, mm: Mm, flags: MlockallFlags | null): Op {
  if (flags && !flags.current && !flags.future) throw new KernelError('EINVAL', 'mlockall: give MCL_CURRENT and/or MCL_FUTURE (MCL_ONFAULT alone or no flag is EINVAL)');
  const how: LockHow = !flags ? 'unlock' : flags.onfault ? 'onfault' : 'lock';
  if (flags) {
    // mlockall(): can_do_mlock(), and with MCL_CURRENT the whole address space (total_vm) within RLIMIT_MEMLOCK, else ENOMEM
    checkCanDoMlock(mm, 'mlockall');
    const total = mm.vmas.reduce((n, v) => n + v.pages, 0);
    if (flags.current && mm.memlockLimit !== undefined && total > mm.memlockLimit) throw new KernelError('ENOMEM', `mlockall(MCL_CURRENT): ${total} mapped page(s) exceed RLIMIT_MEMLOCK (${mm.memlockLimit} pages), without CAP_IPC_LOCK`);
  }
  if (flags?.future) mm.lockFuture = how === 'onfault' ? 'onfault' : 'lock';
  else delete mm.lockFuture;
  if (!flags || flags.current) {
    for (const vma of [...mm.vmas].sort((a, b) => a.start - b.start)) {
      if (!mm.vmas.includes(vma)) continue; // merged into its neighbour by an earlier fixup
      fixup(k, vma, vma.start, vma.start + vma.pages, flags?.current ? how : 'unlock');
    }
  }
  if (flags?.current && !flags.onfault) {
    const end = Math.max(0, ...mm.vmas.map((v) => v.start + v.pages));
    yield* mmPopulateRange(k, mm, 0, end, true, 'mlockall');
  }
  yield* [];
}

/**
 * mmap_region() and do_mmap() for a new VMA. VM_LOCKED comes from MAP_LOCKED or from
 * mm->def_flags (MCL_FUTURE). It is cleared again where mlock_fixup() would filter the VMA:
 * VM_SPECIAL, vma_is_dax() or hugetlb. Then do_mmap() asks for population when VM_LOCKED is set,
 * and a VM_LOCKONFAULT VMA is skipped by it. Returns whether to populate.
 * A MAP_DROPPABLE VMA (MAP_LOCKED with it is EINVAL) was left VM_LOCKED under MCL_FUTURE: the
 * check in __mmap_complete() missed VM_DROPPABLE until "mm: prevent droppable mappings from being
 * locked" (Anthony Yznaga, March 2026 [M]: vma_supports_mlock(); in `latest` only), which
 * mlock2-tests.c's test_mlockall_future_droppable came with.
 */
export function lockNewVma(k: Kernel, vma: Vma, mapLocked: boolean): boolean {
  const how: LockHow | null = mapLocked ? 'lock' : (vma.mm.lockFuture ?? null);
  const filtered = mlockFiltered(k, vma);
  if (!how || (filtered && (filtered !== 'VM_DROPPABLE' || kernelAtLeast(k.version, 7, 0)))) return false;
  vma.flags.locked = true;
  vma.flags.lockonfault = how === 'onfault';
  return how === 'lock';
}
