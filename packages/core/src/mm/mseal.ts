import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import type { Op } from '../sched.js';
import type { Mm, Vma } from '../types.js';
import type { Advice } from './madvise.js';
import { vmasIn } from './vm.js';

/**
 * mseal(2): sealed mappings (8be7258aad44 "mseal: add mseal syscall", v6.10; mm/mseal.c). A
 * sealed VMA (VM_SEALED) can no longer be unmapped, moved, shrunk or grown, mapped over with
 * MAP_FIXED, mprotect()ed, or have its pages discarded by madvise() when it is anonymous memory
 * the process may not write. Nothing unseals it; exit and exec unmap it as any other (exit_mmap()
 * never asks). Reads, writes, faults, GUP and fork are not affected: dup_mmap()'s vm_area_dup()
 * copies the flags, so the child's copy is sealed too.
 *
 * Per release (the presets up to v6.6 have no mseal(): ENOSYS):
 * - v6.10, v6.11: the callers ask can_modify_mm() / can_modify_mm_madv() about the whole range
 *   before they change anything;
 * - v6.12 [M] ("mm: remove can_modify_mm()" and the four commits before it, Pedro Falcato): each
 *   caller asks can_modify_vma() as its own walk meets each VMA -- munmap in
 *   vms_gather_munmap_vmas() (still before anything is unmapped, but after it split the first VMA
 *   when that one is not sealed), mprotect in mprotect_fixup() (the VMAs before the sealed one
 *   keep their new protection), madvise in madvise_vma_behavior() (likewise), mremap once, on the
 *   VMA at the old address;
 * - v6.11 [M] (Cc stable, "mseal: fix is_madv_discard()"): the discarding advices are a list; in
 *   v6.10 they were OR-ed like bits, so almost every advice counted (isDiscard);
 * - v6.13 adds MADV_GUARD_INSTALL to them (662df3e5c376);
 * - v6.17 [M] (Lorenzo Stoakes, "mm/mseal: update madvise() logic" and the cleanups around it) moves
 *   the madvise rule to mm/madvise.c can_madvise_modify() and VM_SEALED to include/linux/mm.h,
 *   with the same outcome for every VMA the model has (vma_is_anonymous() instead of "no vm_file
 *   and not VM_SHARED").
 * The model's arches are all 64-bit: mseal.o is built only with CONFIG_64BIT (on 32-bit kernels
 * the syscall is not there).
 */

/** Whether the release has mseal() at all (8be7258aad44, v6.10). */
export function msealSupported(version: string): boolean {
  return kernelAtLeast(version, 6, 10);
}

/** vma_is_sealed() (can_modify_vma() up to v6.16): VM_SEALED is set. */
export function isSealed(vma: Vma): boolean {
  return vma.flags.sealed === true;
}

/** check_mm_seal() (v6.10) / range_contains_unmapped() (v6.17): a page of [start, end) no VMA covers. */
function containsUnmapped(mm: Mm, start: number, end: number): boolean {
  let prevEnd = start;
  for (const v of vmasIn(mm, start, end)) {
    if (v.start > prevEnd) return true;
    prevEnd = v.start + v.pages;
  }
  return prevEnd < end;
}

/**
 * do_mseal(start, len, flags) of `addr` and `len` in bytes: flags must be 0 (EINVAL), start page
 * aligned (EINVAL), len rounded up to pages, start + len must not wrap (EINVAL), len 0 is a no-op;
 * then under mmap_write_lock the whole range must be mapped, no hole (ENOMEM, nothing sealed);
 * then each VMA not sealed yet gets VM_SEALED on its part of the range through vma_modify_flags():
 * split at the range's ends, merged with a sealed neighbour it now matches (mseal_fixup() /
 * mseal_apply()). Sealing a sealed VMA again changes nothing and is no error.
 */
export function* mseal(k: Kernel, mm: Mm, addr: number, len: number, flags: number): Op {
  if (!msealSupported(k.version)) throw new KernelError('ENOSYS', 'mseal() is v6.10 (8be7258aad44): no such system call before');
  if (flags !== 0) throw new KernelError('EINVAL', `mseal: flags must be 0 (got ${flags})`);
  const ps = k.mmu.basePageSize;
  if (addr % ps !== 0) throw new KernelError('EINVAL', `mseal: start ${addr} is not page aligned`);
  if (len < 0) throw new KernelError('EINVAL', `mseal: length ${len} is negative`);
  const pages = Math.ceil(len / ps);
  // "end = start + len; if (end < start) return -EINVAL": a range past the top of a 64-bit address space
  if (addr + pages * ps > 2 ** 64) throw new KernelError('EINVAL', `mseal: start + length wraps around the address space`);
  if (pages === 0) return yield* [];
  const start = addr / ps;
  const end = start + pages;
  if (containsUnmapped(mm, start, end)) throw new KernelError('ENOMEM', `mseal: part of pages ${start}..${end - 1} of ${mm.name} is not mapped`);
  for (const vma of vmasIn(mm, start, end)) {
    if (isSealed(vma)) continue;
    const piece = k.vm.isolate(vma, Math.max(start, vma.start), Math.min(end, vma.start + vma.pages));
    piece.flags.sealed = true;
    k.vm.mergeAround(piece);
  }
  yield* [];
}

function sealedError(what: string, vma: Vma): KernelError {
  return new KernelError('EPERM', `${what}: '${vma.name}' is sealed (mseal: VM_SEALED)`);
}

/**
 * munmap()'s seal check over [start, end) (do_vmi_munmap(): can_modify_mm() before anything in
 * v6.10-v6.11; vms_gather_munmap_vmas() from v6.12). Also what MAP_FIXED mmap and MREMAP_FIXED
 * meet when they unmap their destination. munmap is never partial: the VMAs are detached only
 * once all were checked. From v6.12 the walk has already split the first VMA at `start` when
 * that VMA is not sealed and starts below it ("Don't bother splitting the VMA if we can't unmap
 * it anyway" covers only a sealed one): the split stays, nothing is unmapped.
 */
export function refuseSealedUnmap(k: Kernel, mm: Mm, start: number, end: number, what: string): void {
  const vmas = vmasIn(mm, start, end);
  const sealed = vmas.find(isSealed);
  if (!sealed) return;
  const first = vmas[0]!;
  if (kernelAtLeast(k.version, 6, 12) && first !== sealed && first.start < start) k.vm.splitVma(first, start);
  throw sealedError(what, sealed);
}

/**
 * mprotect()'s seal check: v6.10-v6.11 do_mprotect_pkey() asks can_modify_mm() of the whole range
 * before the walk (`upfront`); from v6.12 mprotect_fixup() asks of each VMA as it comes, before
 * it compares the flags (so an mprotect that changes nothing is EPERM too).
 */
export function refuseSealedMprotect(k: Kernel, mm: Mm, start: number, end: number, vma: Vma | null): void {
  const perVma = kernelAtLeast(k.version, 6, 12);
  if (vma === null) {
    if (perVma) return;
    const sealed = vmasIn(mm, start, end).find(isSealed);
    if (sealed) throw sealedError('mprotect', sealed);
    return;
  }
  if (perVma && isSealed(vma)) throw sealedError('mprotect', vma);
}

/**
 * mremap()'s seal check of the old range: from v6.12 the VMA at the old address (vma_lookup()
 * then can_modify_vma(), before mremap_to() unmaps a MREMAP_FIXED destination, in the syscall and
 * from v6.16 in check_prep_vma()); v6.10-v6.11 can_modify_mm() of [addr, addr + old_len) in
 * mremap_to() and before a shrink or grow. A sealed destination is the unmap's (refuseSealedUnmap).
 */
export function refuseSealedMremap(k: Kernel, mm: Mm, start: number, pages: number): void {
  const sealed = kernelAtLeast(k.version, 6, 12) ? vmasIn(mm, start, start + 1).find(isSealed) : vmasIn(mm, start, start + pages).find(isSealed);
  if (sealed) throw sealedError('mremap', sealed);
}

/** uapi MADV_* values (include/uapi/asm-generic/mman-common.h), for the v6.10 bit test. */
const MADV_VALUE: Readonly<Record<Advice, number>> = {
  normal: 0,
  random: 1,
  sequential: 2,
  dontneed: 4,
  free: 8,
  remove: 9,
  dontfork: 10,
  dofork: 11,
  mergeable: 12,
  unmergeable: 13,
  hugepage: 14,
  nohugepage: 15,
  wipeonfork: 18,
  keeponfork: 19,
  cold: 20,
  pageout: 21,
  'populate-read': 22,
  'populate-write': 23,
  'dontneed-locked': 24,
  collapse: 25,
  'guard-install': 102,
  'guard-remove': 103,
};

/**
 * is_madv_discard() (is_discard() from v6.17): does the advice throw data away? v6.11 ("mseal:
 * fix is_madv_discard()", Pedro Falcato, Cc stable) lists MADV_FREE, DONTNEED, DONTNEED_LOCKED,
 * REMOVE, DONTFORK and WIPEONFORK; v6.13 adds GUARD_INSTALL. v6.10 tested
 * `behavior & (MADV_FREE | MADV_DONTNEED | ...)`, values that are not bits: their OR is 31, so
 * every advice whose value has one of the low five bits set counted (MADV_RANDOM, MADV_HUGEPAGE,
 * MADV_COLD, MADV_POPULATE_READ, ...; test_seal_madvise_nodiscard was added with the fix).
 */
export function isDiscard(version: string, advice: Advice): boolean {
  if (!kernelAtLeast(version, 6, 11)) return (MADV_VALUE[advice] & 31) !== 0;
  if (advice === 'guard-install') return kernelAtLeast(version, 6, 13);
  return advice === 'free' || advice === 'dontneed' || advice === 'dontneed-locked' || advice === 'remove' || advice === 'dontfork' || advice === 'wipeonfork';
}

/**
 * can_modify_vma_madv() (v6.12; can_madvise_modify() from v6.17): a sealed VMA refuses a
 * discarding advice when it is anonymous memory (is_ro_anon(): no vm_file, not VM_SHARED;
 * vma_is_anonymous() later) the process cannot write: no VM_WRITE, or its protection key denies
 * writes (!arch_vma_access_permitted(vma, true, false, false): mm/pkeys.ts). Shared and file-backed
 * mappings, MAP_PRIVATE ones included, are always allowed: their data is not lost.
 */
export function sealRefusesAdvice(k: Kernel, vma: Vma, advice: Advice): boolean {
  return isSealed(vma) && isDiscard(k.version, advice) && vma.kind === 'anon' && !vma.flags.shared && (!vma.flags.write || !k.pkeys.permits(vma, true, false));
}

/**
 * madvise()'s seal check: v6.10-v6.11 do_madvise() asks can_modify_mm_madv() of every VMA of the
 * range before the walk (`vma` null); from v6.12 madvise_vma_behavior() asks of each VMA as the
 * walk reaches it, so the VMAs before it are advised.
 */
export function refuseSealedAdvice(k: Kernel, mm: Mm, start: number, end: number, vma: Vma | null, advice: Advice): void {
  const perVma = kernelAtLeast(k.version, 6, 12);
  const candidates = vma === null ? (perVma ? [] : vmasIn(mm, start, end)) : perVma ? [vma] : [];
  const refused = candidates.find((v) => sealRefusesAdvice(k, v, advice));
  if (refused) throw new KernelError('EPERM', `madvise ${advice} of '${refused.name}': sealed read-only anonymous memory (mseal: discarding advice)`);
}
