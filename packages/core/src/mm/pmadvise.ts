import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import type { Op } from '../sched.js';
import type { Mm } from '../types.js';
import { madvise, type Advice } from './madvise.js';

/** One iovec of the vector: `pages` base pages from virtual page `start` of the target. */
export interface AdviseRange {
  readonly start: number;
  readonly pages: number;
}

/** UIO_MAXIOV: import_iovec() refuses a longer vector with -EINVAL. */
export const UIO_MAXIOV = 1024;

/**
 * The advices process_madvise_behavior_valid() takes (mm/madvise.c), per release: MADV_COLD and
 * MADV_PAGEOUT with the syscall (ecb8ac8b1f14, v5.10), MADV_WILLNEED from d5fffc5aff26 (v5.15;
 * not an advice the model has), MADV_COLLAPSE from 7ec952341312 (v6.1; its CAP_SYS_ADMIN
 * condition for another process went again in the same merge window, "mm/madvise: remove
 * CAP_SYS_ADMIN requirement for process_madvise(MADV_COLLAPSE)", dated from the mm branch [M]).
 * From v6.13 the list is
 * process_madvise_remote_valid() and only binds another process ("mm/madvise: unrestrict
 * process_madvise() for current process"): on itself a process may give any madvise() advice.
 */
function remoteAdviceValid(version: string, advice: Advice): boolean {
  if (advice === 'cold' || advice === 'pageout') return true;
  return advice === 'collapse' && kernelAtLeast(version, 6, 1);
}

/**
 * process_madvise(pidfd, iovec, vlen, advice, flags) (mm/madvise.c, v5.10) from process `caller`
 * on process `target` (the pidfd's): the checks in the syscall's order, then do_madvise() of each
 * range in turn (no merging of adjacent ranges: one madvise per iovec). Returns the bytes advised.
 *  - before v5.10: -ENOSYS. flags other than 0: -EINVAL; more than UIO_MAXIOV ranges: -EINVAL (import_iovec).
 *  - the pidfd's task gone (the process exited): -ESRCH (pidfd_get_task(), or mm_access() finding
 *    no mm). ptrace access (mm_access(): PTRACE_MODE_ATTACH_FSCREDS in v5.10, READ_FSCREDS from
 *    96cfe2c0fd23, v5.12) is taken as granted: scenario processes share one user.
 *  - the advice: before v6.13 process_madvise_behavior_valid() before mm_access(), for every
 *    target, the caller too (-EINVAL); from v6.13 only for another process, after mm_access().
 *  - CAP_SYS_NICE (`capSysNice`): none in v5.10 (the ptrace attach check stood for it); required
 *    from 96cfe2c0fd23 (v5.12) for every target (-EPERM, which guard-regions.c SKIPs on); only for
 *    another process from 22af8caff7d1 "mm/madvise: process_madvise() drop capability check if
 *    same mm" (v6.12, an mm hotfix of its merge window).
 *  - the walk: the first range madvise() refuses ends the call. v5.10 returned that error even
 *    after earlier ranges were advised; from 5bd009c7c9a9 "mm: madvise: return correct bytes
 *    advised with process_madvise" (v5.18) the call returns the bytes of the ranges advised before
 *    it, and the error only when there are none. A range with a hole is madvise()'s -ENOMEM (after
 *    advising the rest of it: madvise_walk_vmas()), so it counts as not advised ("skip unmapped vma
 *    holes", 08095d6310a7, was reverted in the same release).
 */
export function* processMadvise(
  k: Kernel,
  a: { caller: Mm; target: () => Mm; vlen: number; ranges: (target: Mm) => readonly AdviseRange[]; advice: Advice; flags: number; capSysNice: boolean },
): Op<number> {
  // the syscall came with ecb8ac8b1f14 (v5.10): before it, sys_ni_syscall
  if (!kernelAtLeast(k.version, 5, 10)) throw new KernelError('ENOSYS', 'process_madvise() is v5.10 (ecb8ac8b1f14): no such system call before');
  if (a.flags !== 0) throw new KernelError('EINVAL', `process_madvise: flags must be 0 (got ${a.flags})`);
  if (a.vlen > UIO_MAXIOV) throw new KernelError('EINVAL', `process_madvise: ${a.vlen} iovecs, more than UIO_MAXIOV (${UIO_MAXIOV}) (import_iovec)`);
  const target = a.target(); // ESRCH for an exited process
  const remote = target !== a.caller;
  const v613 = kernelAtLeast(k.version, 6, 13);
  if ((remote || !v613) && !remoteAdviceValid(k.version, a.advice)) {
    throw new KernelError('EINVAL', `process_madvise: ${a.advice} is not an advice process_madvise takes${v613 ? ' for another process (process_madvise_remote_valid)' : ' on this release (process_madvise_behavior_valid)'}`);
  }
  const v612 = kernelAtLeast(k.version, 6, 12);
  if (!a.capSysNice && kernelAtLeast(k.version, 5, 12) && (remote || !v612)) {
    throw new KernelError('EPERM', `process_madvise: ${a.caller.name} has no CAP_SYS_NICE${v612 ? ' (needed for another process from v6.12)' : ' (needed for any target, 96cfe2c0fd23)'}`);
  }
  const bytesPerPage = k.mmu.basePageSize;
  let advised = 0;
  for (const r of a.ranges(target)) {
    try {
      // do_madvise() with len 0 is 0 at once: nothing advised, nothing counted
      if (r.pages > 0) yield* madvise(k, target, r.start, r.pages, a.advice);
    } catch (e) {
      // an advice the model does not cover (e.unsupported) is no kernel error to count past
      if (!(e instanceof KernelError) || e.unsupported !== null || advised === 0 || !kernelAtLeast(k.version, 5, 18)) throw e;
      return advised;
    }
    advised += r.pages * bytesPerPage;
  }
  return advised;
}
