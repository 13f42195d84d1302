import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import type { Op } from '../sched.js';
import type { Mm, Vma } from '../types.js';

/**
 * process_mrelease(pidfd, flags) (mm/oom_kill.c, 884a7e5964e0, v5.15): reap the memory of a
 * process that is dying (SIGKILL pending) without waiting for its exit_mmap(), as the OOM reaper
 * does for an OOM victim.
 *  - before v5.15: -ENOSYS; flags other than 0: -EINVAL.
 *  - the pidfd's process has exited: -ESRCH (no task with an mm, find_lock_task_mm()).
 *  - task_will_free_mem() false (no fatal signal pending: a live process): -EINVAL.
 *  - __oom_reap_task_mm(): sets MMF_UNSTABLE, then zaps every VMA that is anonymous or not
 *    VM_SHARED (unmap_page_range() under mmu_notifier_invalidate_range_start_nonblock()), skipping
 *    VM_HUGETLB and VM_PFNMAP, and before v5.18 VM_LOCKED too (can_madv_lru_vma(), until
 *    a213e5cf71cb "mm/munlock: delete munlock_vma_pages_all(), allow oomreap" [M]). Shared mappings
 *    (shmem, a shared file, fs-dax or device-dax) are left to exit_mmap(): their pages do not go
 *    back to the allocator when one mapping goes. The VMAs stay; only their entries go.
 * A notifier that cannot invalidate without blocking (a contended mirror lock: -EAGAIN) is not
 * modelled: scenario steps never hold a driver's lock across a step, so the nonblocking start
 * always succeeds here.
 */
export function* processMrelease(k: Kernel, target: () => Mm, flags: number): Op {
  if (!kernelAtLeast(k.version, 5, 15)) throw new KernelError('ENOSYS', 'process_mrelease() is v5.15 (884a7e5964e0): no such system call before');
  if (flags !== 0) throw new KernelError('EINVAL', `process_mrelease: flags must be 0 (got ${flags})`);
  const mm = target(); // ESRCH once the process exited
  if (!mm.dying) throw new KernelError('EINVAL', `process_mrelease: ${mm.name} is not dying (task_will_free_mem(): no fatal signal pending; kill it first)`);
  mm.unstable = true;
  // mas_for_each_rev(): from the top of the address space down (the other end from exit_mmap())
  for (const vma of [...mm.vmas].sort((a, b) => b.start - a.start)) {
    if (!reapable(k, vma)) continue;
    yield* k.vm.zap(vma, vma.start, vma.start + vma.pages, 'process_mrelease: __oom_reap_task_mm');
  }
}

/** Whether __oom_reap_task_mm() zaps this VMA. */
function reapable(k: Kernel, vma: Vma): boolean {
  if (vma.hugetlb || vma.flags.pfnmap) return false;
  if (vma.flags.locked && !kernelAtLeast(k.version, 5, 18)) return false;
  return vma.kind === 'anon' || !vma.flags.shared;
}

/**
 * check_stable_address_space() (include/linux/oom.h): once the reaper has been at an mm
 * (MMF_UNSTABLE), a fault that would map new memory there is VM_FAULT_SIGBUS: do_anonymous_page(),
 * do_huge_pmd_anonymous_page() and finish_fault() of a private (!VM_SHARED) mapping check it, so
 * what was reaped is never silently replaced by zeroes or a fresh copy of the file.
 */
export function checkStableAddressSpace(vma: Vma, write: boolean): void {
  if (!vma.mm.unstable || (vma.kind !== 'anon' && vma.flags.shared)) return;
  throw new KernelError('SIGBUS', `${write ? 'write to' : 'read of'} '${vma.name}' of ${vma.mm.name} after its memory was reaped (MMF_UNSTABLE: check_stable_address_space)`);
}
