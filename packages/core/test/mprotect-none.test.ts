import { describe, expect, it } from 'vitest';
import { createKernel, InputError, KernelError, Monitor, type Kernel } from '../src/index.js';
import { parseScenario } from '../src/scenario/load.js';
import { testArch } from '../src/testing.js';

// mprotect(PROT_NONE) (`mprotect: { map, write: false, read: false }`): VM_READ and VM_WRITE go
// (protection_map[VM_NONE] = PAGE_NONE), change_pte_range() makes present PTEs pte_protnone, and
// every access path refuses the VMA: the CPU (access_error(): !vma_is_accessible -> SIGSEGV), GUP
// (check_vma_flags(): no VM_READ and no FOLL_FORCE -> -EFAULT; gup_fast_pte_range() leaves a
// pte_protnone() entry to the slow path). mprotect(PROT_READ) gives the same pages back.

const ALL = ['v5.4', 'v5.10', 'v6.1', 'v6.3', 'v6.6', 'v6.15', 'latest'];
const M = { map: 'm', page: 0 } as const;

function codeOf(k: Kernel, op: Parameters<Kernel['run']>[0]): string {
  try {
    k.run(op);
  } catch (e) {
    if (e instanceof KernelError) return e.code;
    throw e;
  }
  return 'ok';
}

describe('mprotect(PROT_NONE)', () => {
  it('keeps the pages mapped but inaccessible: CPU SIGSEGV, GUP -EFAULT (slow and fast), then PROT_READ reads them back', () => {
    for (const v of ALL) {
      const k = createKernel({ arch: testArch(), kernel: v });
      const mon = new Monitor(k);
      k.run(k.mmap({ anon: true, length: 2 * 4096, write: true, as: 'm' }));
      k.run(k.write({ ...M, data: 'A' }));
      const pfn = k.pfnOf(M);
      k.run(k.mprotect({ map: 'm', write: false, read: false }));
      expect([k.map('m').flags.read, k.map('m').flags.write], v).toEqual([false, false]);
      // the PTE stays (pte_modify keeps the pfn), without a write bit
      expect([k.pfnOf(M), k.isWritableIn(M)], v).toEqual([pfn, false]);
      expect(codeOf(k, k.read(M)), v).toBe('SIGSEGV');
      expect(codeOf(k, k.read({ map: 'm', page: 1 })), v).toBe('SIGSEGV'); // pte_none: no fault either
      expect(codeOf(k, k.write({ ...M, data: 'B' })), v).toBe('SIGSEGV');
      expect(codeOf(k, k.gup({ ...M, as: 'g' }, false)), v).toBe('EFAULT');
      expect(codeOf(k, k.gup({ ...M, fast: true, as: 'gf' }, true)), v).toBe('EFAULT');
      expect(codeOf(k, k.gup({ ...M, write: true, as: 'gw' }, true)), v).toBe('EFAULT');
      expect(k.refcount(pfn!), v).toBe(1); // no reference was taken on the way
      k.run(k.mprotect({ map: 'm', write: false }));
      expect(k.run(k.read(M)), v).toBe('A');
      expect(k.isWritableIn(M), v).toBe(false);
      expect(mon.violations, v).toEqual([]);
    }
  });

  it('a child inherits PROT_NONE at fork; a write after mprotect(RW) reuses the exclusive page', () => {
    const k = createKernel({ arch: testArch(), kernel: 'latest' });
    k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'm' }));
    k.run(k.write({ ...M, data: 'A' }));
    k.run(k.mprotect({ map: 'm', write: false, read: false }));
    k.run(k.fork({ as: 'child' }));
    expect(codeOf(k, k.read({ ...M, process: 'child' }))).toBe('SIGSEGV');
    k.run(k.exit({ process: 'child' }));
    const pfn = k.pfnOf(M);
    k.run(k.mprotect({ map: 'm', write: true }));
    k.run(k.write({ ...M, data: 'B' }));
    // the child's exit left the page to the parent alone: do_wp_page reuses it (one reference)
    expect([k.pfnOf(M), k.run(k.read(M))]).toEqual([pfn, 'B']);
  });

  it('the same protection twice changes nothing (mprotect_fixup returns early)', () => {
    const k = createKernel({ arch: testArch(), kernel: 'latest' });
    k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'm' }));
    k.run(k.write({ ...M, data: 'A' }));
    k.run(k.mprotect({ map: 'm', write: false, read: false }));
    const flushes: string[] = [];
    k.bus.on('tlb.flush').subscribe((e) => flushes.push(e.data.mm));
    k.run(k.mprotect({ map: 'm', write: false, read: false }));
    expect(flushes).toEqual([]);
    k.run(k.mprotect({ map: 'm', write: false }));
    expect(flushes).toEqual(['init']); // the protnone PTE became readable: a flush
  });

  it('scenario form: read: false with write: false; PROT_WRITE without PROT_READ is refused with the field', () => {
    const text = (step: string) => `name: t\nsteps:\n  - mmap: { anon: true, length: 4KiB, as: mem }\n  - ${step}\n`;
    expect(parseScenario(text('mprotect: { map: mem, write: false, read: false }'), 's.yaml').threads[0]!.steps[1]!.args).toEqual({ map: 'mem', write: false, read: false });
    let err: unknown;
    try {
      parseScenario(text('mprotect: { map: mem, write: true, read: false }'), 's.yaml');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).message).toMatch(/^s\.yaml:\d+:\d+: steps\[1\]\.mprotect\.read: PROT_WRITE without PROT_READ is not modelled/);
  });
});
