import { describe, expect, it } from 'vitest';
import { createKernel, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';

// Writes through /proc/PID/mem (Kernel.procMemWrite: access_remote_vm -> get_user_pages_remote
// with FOLL_FORCE | FOLL_WRITE), as ptrace and ksm_functional_tests.c's test_prot_none do.
const PAGE = 4096;

function kernel(version = 'latest'): Kernel {
  return createKernel({ arch: testArch(), kernel: version });
}

const mm = (k: Kernel, process = 'init') => k.processes.get(process)!;
const pte = (k: Kernel, map: string, page: number, process = 'init') => k.vm.lookup(mm(k, process), mm(k, process).ranges.get(map)!.start + page)!.pte;
const pfn = (k: Kernel, map: string, page: number, process?: string) => k.pfnOf({ map, page, ...(process ? { process } : {}) })!;

/** `data.length` private anonymous pages, written, then mprotect()ed to `prot`. */
function mapped(k: Kernel, data: string[], prot: 'none' | 'read'): void {
  k.run(k.mmap({ anon: true, length: data.length * PAGE, write: true, as: 'm' }));
  data.forEach((d, page) => k.run(k.write({ map: 'm', page, data: d })));
  k.run(k.mprotect({ map: 'm', write: false, read: prot === 'read' }));
}

describe('/proc/PID/mem writes (FOLL_FORCE | FOLL_WRITE)', () => {
  it('write into an exclusive anonymous page of a PROT_NONE mapping in place; the PTE stays inaccessible', () => {
    for (const v of ['v5.10', 'v6.1', 'v6.6', 'latest']) {
      const k = kernel(v);
      mapped(k, ['a'], 'none');
      const before = pfn(k, 'm', 0);
      k.run(k.procMemWrite({ map: 'm', page: 0, data: 'b' }));
      // up to v6.1 the first follow fails (no FOLL_COW): do_wp_page() reuses the exclusive page
      // (maybe_mkwrite: still no write bit) and FOLL_COW lets the retry through; from v6.2 the
      // page is PageAnonExclusive, so can_follow_write_pte() allows it without a fault
      expect(pfn(k, 'm', 0), v).toBe(before);
      expect(k.pages.data.get(before), v).toBe('b');
      expect(pte(k, 'm', 0).write, v).toBe(false);
      // get_user_pages_remote's reference is dropped again
      expect(k.folios.rc(before), v).toBe(1);
    }
  });

  it('breaks COW on a page shared with a fork child (PROT_READ): the child keeps the old data', () => {
    for (const v of ['v6.1', 'latest']) {
      const k = kernel(v);
      mapped(k, ['old'], 'read');
      k.run(k.fork({ as: 'child' }));
      const shared = pfn(k, 'm', 0);
      k.run(k.procMemWrite({ map: 'm', page: 0, data: 'new' }));
      expect(pfn(k, 'm', 0), v).not.toBe(shared);
      expect(k.run(k.read({ map: 'm', page: 0 })), v).toBe('new');
      expect(k.run(k.read({ map: 'm', page: 0, process: 'child' })), v).toBe('old');
      // wp_page_copy(): maybe_mkwrite(pte_mkdirty()) in a VMA without VM_WRITE -- dirty, not writable
      expect([pte(k, 'm', 0).write, pte(k, 'm', 0).dirty], v).toEqual([false, true]);
      expect(k.folios.rc(shared), v).toBe(1);
    }
  });

  it('copies a KSM page of a PROT_NONE mapping; the other PTEs keep the KSM page', () => {
    const k = kernel();
    mapped(k, ['x', 'x', 'x'], 'none');
    k.run(k.madvise({ map: 'm', advice: 'mergeable' }));
    k.run(k.ksmMerge({}));
    const kpage = pfn(k, 'm', 0);
    expect(k.ksm.isKsm(kpage)).toBe(true);
    expect(k.folios.rc(kpage)).toBe(3);
    k.run(k.procMemWrite({ map: 'm', page: 0, data: 'y' }));
    expect(pfn(k, 'm', 0)).not.toBe(kpage);
    expect(k.pages.data.get(pfn(k, 'm', 0))).toBe('y');
    expect([pfn(k, 'm', 1), pfn(k, 'm', 2)]).toEqual([kpage, kpage]);
    expect(k.folios.rc(kpage)).toBe(2);
  });

  it('is refused with EIO in a shared mapping without PROT_WRITE (FOLL_FORCE only COWs: check_vma_flags)', () => {
    const k = kernel();
    k.run(k.mmap({ anon: true, shared: true, length: PAGE, write: true, as: 's' }));
    k.run(k.write({ map: 's', page: 0, data: 'a' }));
    k.run(k.mprotect({ map: 's', write: false }));
    expect(() => k.run(k.procMemWrite({ map: 's', page: 0, data: 'b' }))).toThrow(expect.objectContaining({ code: 'EIO' }));
  });
});

describe('break_ksm() in a VMA without VM_WRITE', () => {
  it('before v6.2 its FAULT_FLAG_WRITE fault copies the KSM page there too, mapped read-only (maybe_mkwrite)', () => {
    const k = kernel('v5.10');
    mapped(k, ['x', 'x'], 'none');
    k.run(k.madvise({ map: 'm', advice: 'mergeable' }));
    k.run(k.ksmMerge({}));
    const kpage = pfn(k, 'm', 0);
    k.run(k.madvise({ map: 'm', advice: 'unmergeable' }));
    const now = [pfn(k, 'm', 0), pfn(k, 'm', 1)];
    expect(new Set(now).size).toBe(2);
    expect(now.some((p) => k.ksm.isKsm(p))).toBe(false);
    expect(k.pages.rc[k.pages.slot(kpage)]).toBe(0);
    expect([pte(k, 'm', 0).write, pte(k, 'm', 1).write]).toEqual([false, false]);
  });
});
