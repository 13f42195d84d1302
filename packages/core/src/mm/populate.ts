import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import type { Op } from '../sched.js';
import type { Vma } from '../types.js';
import { nonPresent } from './exclusive.js';

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
 * mmap(MAP_POPULATE) of a new VMA: mm_populate() -> __mm_populate(start, len, ignore_errors = 1)
 * (mm/gup.c). A VM_IO | VM_PFNMAP VMA is skipped. populate_vma_page_range() faults with
 * FOLL_WRITE only in a private writable mapping ("touch writable mappings with a write fault in
 * order to break COW, except for shared mappings because these don't COW and we would not want
 * to dirty them for nothing"): so a MAP_PRIVATE file mapping gets its own anonymous copies at
 * once (tools/testing/selftests/mm/map_populate.c) and a shared one is read-faulted. FOLL_FORCE
 * (any VMA that is not PROT_NONE) changes nothing here: mmap always grants read. Errors are
 * ignored: mmap still succeeds, and the pages from the failing one to the VMA's end stay
 * unpopulated (__get_user_pages() stops there; __mm_populate() goes on at the next VMA). The
 * same in every modelled release (the write rule is older than v5.4).
 */
export function* mmPopulate(k: Kernel, vma: Vma): Op {
  if (vma.flags.io || vma.flags.pfnmap) return;
  const write = vma.flags.write && !vma.flags.shared;
  try {
    yield* faultinRange(k, vma, vma.start, vma.start + vma.pages, write, 'MAP_POPULATE');
  } catch (err) {
    if (!(err instanceof KernelError)) throw err;
  }
}
