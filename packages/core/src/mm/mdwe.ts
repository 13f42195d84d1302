import { KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import type { Mm } from '../types.js';

/**
 * Memory-Deny-Write-Execute: prctl(PR_SET_MDWE / PR_GET_MDWE) (kernel/sys.c) and the check every
 * mapping change asks, map_deny_write_exec() (include/linux/mman.h; mm/vma.h in later releases).
 *
 * - b507808ebce2 "mm: implement memory-deny-write-execute as a prctl" (v6.3): PR_SET_MDWE (65)
 *   with PR_MDWE_REFUSE_EXEC_GAIN (bit 0) sets MMF_HAS_MDWE, which nothing clears (EPERM) and
 *   MMF_INIT_MASK carries to fork children and execve'd programs. Before v6.3 both options fall to
 *   prctl()'s default case: EINVAL.
 * - 24e41bf8a6b4 "mm: add a NO_INHERIT flag to the PR_SET_MDWE prctl" (v6.7 [M]): PR_MDWE_NO_INHERIT
 *   (bit 1, only with bit 0) also sets MMF_HAS_MDWE_NO_INHERIT; mmf_init_flags() then drops both
 *   bits in a new mm (fork, execve). Once set, any other value is EPERM (the flags can be neither
 *   cleared nor gained).
 * - map_deny_write_exec(old, new): under MMF_HAS_MDWE a VMA may not become both writable and
 *   executable, nor executable when it was not. The signature took (vma, vm_flags) until "mm: refactor
 *   map_deny_write_exec()" (v6.12 [M]), with the same result.
 * - mmap_region() asked it of the new VMA after the MAP_FIXED unmap until "mm: resolve faulty
 *   mmap_region() error path behaviour" (v6.12 [M]) moved it to the top, before anything is
 *   unmapped (kernel.ts mmap).
 */

const REFUSE_EXEC_GAIN = 1;
const NO_INHERIT = 2;

/** prctl(PR_SET_MDWE, bits, arg3, arg4, arg5) (prctl_set_mdwe()); `rest` are arg3..arg5. */
export function setMdwe(version: string, mm: Mm, bits: number, rest: readonly number[] = []): void {
  if (!kernelAtLeast(version, 6, 3)) throw new KernelError('EINVAL', 'prctl(PR_SET_MDWE): no such option before v6.3 (b507808ebce2)');
  if (rest.some((a) => a !== 0)) throw new KernelError('EINVAL', 'prctl(PR_SET_MDWE): arg3, arg4 and arg5 must be 0');
  const noInherit = kernelAtLeast(version, 6, 7);
  const known = REFUSE_EXEC_GAIN | (noInherit ? NO_INHERIT : 0);
  if ((bits & ~known) !== 0) throw new KernelError('EINVAL', `prctl(PR_SET_MDWE, ${bits}): unknown bits (known: ${noInherit ? 'PR_MDWE_REFUSE_EXEC_GAIN | PR_MDWE_NO_INHERIT' : 'PR_MDWE_REFUSE_EXEC_GAIN; PR_MDWE_NO_INHERIT is v6.7'})`);
  if ((bits & NO_INHERIT) !== 0 && (bits & REFUSE_EXEC_GAIN) === 0) throw new KernelError('EINVAL', 'prctl(PR_SET_MDWE, PR_MDWE_NO_INHERIT): only with PR_MDWE_REFUSE_EXEC_GAIN');
  const current = mdweBits(mm);
  // v6.3-v6.6: only clearing is refused ("Cannot unset the flag"); v6.7: any change once set
  if (noInherit ? current !== 0 && current !== bits : current !== 0 && (bits & REFUSE_EXEC_GAIN) === 0) {
    throw new KernelError('EPERM', `prctl(PR_SET_MDWE, ${bits}) in ${mm.name}: MDWE is already ${current}, which cannot change`);
  }
  if ((bits & REFUSE_EXEC_GAIN) !== 0) mm.mdwe = { noInherit: (bits & NO_INHERIT) !== 0 };
}

/** prctl(PR_GET_MDWE, arg2..arg5) (prctl_get_mdwe()): the bits set, EINVAL with any argument. */
export function getMdwe(version: string, mm: Mm, args: readonly number[] = []): number {
  if (!kernelAtLeast(version, 6, 3)) throw new KernelError('EINVAL', 'prctl(PR_GET_MDWE): no such option before v6.3 (b507808ebce2)');
  if (args.some((a) => a !== 0)) throw new KernelError('EINVAL', 'prctl(PR_GET_MDWE): arg2 to arg5 must be 0');
  return mdweBits(mm);
}

function mdweBits(mm: Mm): number {
  return mm.mdwe ? REFUSE_EXEC_GAIN | (mm.mdwe.noInherit ? NO_INHERIT : 0) : 0;
}

/**
 * The MDWE state of a new mm made from `parent` (fork's dup_mm(), execve's bprm_mm_init(): both
 * through mm_init()): MMF_HAS_MDWE is in MMF_INIT_MASK; with MMF_HAS_MDWE_NO_INHERIT
 * mmf_init_flags() clears both.
 */
export function inheritMdwe(parent: Mm, child: Mm): void {
  if (parent.mdwe && !parent.mdwe.noInherit) child.mdwe = { noInherit: false };
}

/** The protections map_deny_write_exec() compares: VM_WRITE and VM_EXEC. */
export interface WriteExec {
  readonly write: boolean;
  readonly exec: boolean;
}

/**
 * map_deny_write_exec(old, new) as mmap_region() (old = new) and do_mprotect_pkey() (the VMA's
 * flags, the new ones) ask it: EACCES under MDWE when the VMA would be writable and executable,
 * or executable when it was not.
 */
export function refuseWriteExec(mm: Mm, old: WriteExec, next: WriteExec, what: string): void {
  if (!mm.mdwe || !next.exec) return;
  if (next.write) throw new KernelError('EACCES', `${what}: PROT_WRITE|PROT_EXEC under prctl(PR_SET_MDWE) (map_deny_write_exec)`);
  if (!old.exec) throw new KernelError('EACCES', `${what}: PROT_EXEC on a mapping that was not executable, under prctl(PR_SET_MDWE) (map_deny_write_exec)`);
}
