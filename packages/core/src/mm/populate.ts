import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import type { Op } from '../sched.js';
import type { Mm, Vma } from '../types.js';
import { nonPresent } from './exclusive.js';
import { vmasIn } from './vm.js';

/**
 * __get_user_pages() with no pages wanted, over pages [s, e) of one VMA: each page not mapped (or,
 * for a write, not mapped writable) is faulted in as a CPU access would (`faultin_page()`), in
 * address order; the first page that cannot be faulted in ends the walk. A fault that ends in
 * SIGBUS or SIGSEGV is -EFAULT to the caller (eb2faa513c24); a page still not mapped after a
 * fault and its retry is -EFAULT too. `what` names the caller in the error.
 */
export function* faultinRange(k: Kernel, vma: Vma, s: number, e: number, write: boolean, what: string): Op {
  for (let vpn = s; vpn < e; ) {
    let leaf = k.vm.lookup(vma.mm, vpn);
    for (let tries = 0; !leaf || nonPresent(leaf.pte) || (write && !leaf.pte.write); tries++) {
      if (tries === 2) throw new KernelError('EFAULT', `${what}: page ${vpn - vma.start} of '${vma.name}' could not be faulted in`);
      try {
        yield* k.faults.handle(vma, vpn, write);
      } catch (err) {
        if (err instanceof KernelError && (err.code === 'SIGBUS' || err.code === 'SIGSEGV')) throw new KernelError('EFAULT', `${what}: ${err.message}`);
        throw err;
      }
      leaf = k.vm.lookup(vma.mm, vpn);
    }
    vpn = leaf.base + leaf.pages;
  }
}

/**
 * mmap(MAP_POPULATE), or MAP_LOCKED, of a new VMA: mm_populate() is __mm_populate(start, len,
 * ignore_errors = 1) (mm/gup.c), so errors are ignored and mmap still succeeds. The pages from the
 * failing one to the VMA's end stay unpopulated: __get_user_pages() stops there. A private
 * MAP_PRIVATE file mapping gets its own anonymous copies at once
 * (tools/testing/selftests/mm/map_populate.c), and a shared one is read-faulted. FOLL_FORCE (any
 * VMA that is not PROT_NONE) changes nothing here, because mmap always grants read. This is the
 * same in every modelled release: the write rule is older than v5.4.
 */
export function* mmPopulate(k: Kernel, vma: Vma): Op {
  yield* mmPopulateRange(k, vma.mm, vma.start, vma.start + vma.pages, true, 'MAP_POPULATE');
}

/**
 * __mm_populate() over [start, end). ignore_errors is 0 for mlock(): the first failure ends the
 * call, and the errno is what __mlock_posix_error_return() makes of it (EFAULT -> ENOMEM,
 * ENOMEM -> EAGAIN). It is 1 for mmap() and mlockall(): the failing VMA's rest is skipped.
 * Each VMA is handled as populate_vma_page_range() does:
 * - VM_IO and VM_PFNMAP are skipped;
 * - a VM_LOCKONFAULT VMA is left as it is;
 * - FOLL_WRITE is used only in a private writable mapping.
 */
export function* mmPopulateRange(k: Kernel, mm: Mm, start: number, end: number, ignoreErrors: boolean, what: string): Op {
  const vmas = vmasIn(mm, start, end);
  for (const vma of vmas) {
    if (vma.flags.io || vma.flags.pfnmap || vma.flags.lockonfault) continue;
    const s = Math.max(start, vma.start);
    const e = Math.min(end, vma.start + vma.pages);
    try {
      // populate_vma_page_range() -> __get_user_pages() -> check_vma_flags(): a secretmem VMA is -EFAULT
      if (k.secretmem.isSecretmemVma(vma)) throw new KernelError('EFAULT', `${what}: GUP of secretmem mapping '${vma.name}' (check_vma_flags: vma_is_secretmem)`);
      yield* faultinRange(k, vma, s, e, vma.flags.write && !vma.flags.shared, what);
    } catch (err) {
      if (!(err instanceof KernelError)) throw err;
      if (ignoreErrors) continue;
      if (err.code === 'EFAULT') throw new KernelError('ENOMEM', `${what}: ${err.message} (__mlock_posix_error_return: EFAULT -> ENOMEM)`);
      if (err.code === 'ENOMEM') throw new KernelError('EAGAIN', `${what}: ${err.message} (__mlock_posix_error_return: ENOMEM -> EAGAIN)`);
      throw err;
    }
  }
}
