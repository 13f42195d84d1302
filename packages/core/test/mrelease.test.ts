import { describe, expect, it } from 'vitest';
import { createKernel, PRESETS, type Kernel } from '../src/index.js';
import { testArch } from '../src/testing.js';
import { code, written } from './vm-helpers.js';

// process_mrelease() (mm/mrelease.ts): what __oom_reap_task_mm() (mm/oom_kill.c) takes from a
// killed process before its exit_mmap(), per release: the syscall is v5.15 (884a7e5964e0); the
// reaper skips VM_HUGETLB and VM_PFNMAP, takes only anonymous or private VMAs, and skipped
// VM_LOCKED ones until a213e5cf71cb (v5.18 [M]). A page the reaper zaps goes back to the
// allocator only when nothing else holds it: a GUP pin keeps it.

const KiB = 1024;
const PAGE = 4 * KiB;
const RELEASES = PRESETS.map((p) => p.name);
const WITH = RELEASES.filter((v) => !['v5.4', 'v5.10'].includes(v));

function kernel(version = 'latest'): Kernel {
  return createKernel({ arch: testArch(), kernel: version });
}

/** A spawned process `c` with init's pidfd `pc` on it. */
function victim(k: Kernel): void {
  k.run(k.spawn({ as: 'c' }));
  k.run(k.pidfdOpen({ target: 'c', as: 'pc' }));
}

const mrelease = (k: Kernel) => code(() => k.run(k.processMrelease({ pidfd: 'pc' })));

describe('process_mrelease', () => {
  it('ENOSYS before v5.15; EINVAL for flags or a live process; 0 after SIGKILL; ESRCH once exited', () => {
    for (const v of RELEASES) {
      const k = kernel(v);
      victim(k);
      written(k, 'm', 2, 'c');
      if (!WITH.includes(v)) {
        expect({ v, got: mrelease(k) }).toEqual({ v, got: 'ENOSYS' });
        continue;
      }
      expect(code(() => k.run(k.processMrelease({ pidfd: 'pc', flags: 1 })))).toBe('EINVAL');
      expect(mrelease(k)).toBe('EINVAL');
      k.run(k.kill({ process: 'c' }));
      expect(mrelease(k)).toBeNull();
      // a second call finds nothing left to reap and still succeeds
      expect(mrelease(k)).toBeNull();
      k.run(k.exit({ process: 'c' }));
      expect(mrelease(k)).toBe('ESRCH');
    }
  });

  it('frees the anonymous pages at once, before exit: refcount 0, Rss 0, the VMA still there', () => {
    const k = kernel();
    victim(k);
    const pfns = written(k, 'm', 3, 'c');
    k.run(k.kill({ process: 'c' }));
    expect(pfns.map((p) => k.refcount(p))).toEqual([1, 1, 1]);
    k.run(k.processMrelease({ pidfd: 'pc' }));
    expect(pfns.map((p) => k.refcount(p))).toEqual([0, 0, 0]);
    expect(k.rssAnonIn({ process: 'c' })).toBe(0);
    expect(k.process('c').vmas.length).toBe(1);
  });

  it('a page pinned by another process (process_vm_readv-style GUP, FOLL_PIN) stays allocated, unmapped, until the unpin', () => {
    const k = kernel();
    victim(k);
    const [pfn] = written(k, 'm', 1, 'c');
    k.run(k.gup({ map: 'm', page: 0, process: 'c', as: 'dma' }, true));
    k.run(k.kill({ process: 'c' }));
    k.run(k.processMrelease({ pidfd: 'pc' }));
    // rc 1 + GUP_PIN_COUNTING_BIAS (1024) for the pin, minus the mapping's reference
    expect({ mapped: k.isMappedIn({ map: 'm', page: 0, process: 'c' }), rc: k.refcount(pfn!) }).toEqual({ mapped: false, rc: 1024 });
    k.run(k.unpin({ name: 'dma' }));
    expect(k.refcount(pfn!)).toBe(0);
  });

  it('shared mappings are left to exit_mmap(): a shared memfd page stays mapped; a private mapping of the same file is reaped', () => {
    const k = kernel();
    victim(k);
    k.run(k.memfdCreate({ file: 'f', size: 2 * PAGE }));
    k.run(k.mmap({ file: 'f', length: 2 * PAGE, shared: true, write: true, process: 'c', as: 'sh' }));
    k.run(k.mmap({ file: 'f', length: 2 * PAGE, write: true, process: 'c', as: 'pr' }));
    k.run(k.write({ map: 'sh', page: 0, data: 'S', process: 'c' }));
    k.run(k.write({ map: 'pr', page: 1, data: 'P', process: 'c' }));
    const cow = k.pfnOf({ map: 'pr', page: 1, process: 'c' })!;
    k.run(k.kill({ process: 'c' }));
    k.run(k.processMrelease({ pidfd: 'pc' }));
    expect({ shared: k.isMappedIn({ map: 'sh', page: 0, process: 'c' }), private: k.isMappedIn({ map: 'pr', page: 1, process: 'c' }), cow: k.refcount(cow) }).toEqual({ shared: true, private: false, cow: 0 });
  });

  it('hugetlb VMAs are skipped in every release', () => {
    const k = kernel();
    k.run(k.hugetlbPool({ size: 2 * 1024 * KiB, pages: 1 }));
    victim(k);
    k.run(k.mmap({ anon: true, hugetlb: 2 * 1024 * KiB, length: 2 * 1024 * KiB, write: true, process: 'c', as: 'h' }));
    k.run(k.write({ map: 'h', page: 0, data: 'H', process: 'c' }));
    k.run(k.kill({ process: 'c' }));
    k.run(k.processMrelease({ pidfd: 'pc' }));
    expect(k.isMappedIn({ map: 'h', page: 0, process: 'c' })).toBe(true);
  });

  it('an mlocked VMA: reaped from v5.18 (a213e5cf71cb), skipped in v5.15-v5.17 (v6.1 on: every preset with the syscall reaps it)', () => {
    for (const v of WITH) {
      const k = kernel(v);
      victim(k);
      written(k, 'm', 1, 'c');
      k.run(k.mlock({ map: 'm', process: 'c' }));
      k.run(k.kill({ process: 'c' }));
      k.run(k.processMrelease({ pidfd: 'pc' }));
      expect({ v, mapped: k.isMappedIn({ map: 'm', page: 0, process: 'c' }) }).toEqual({ v, mapped: false });
    }
  });

  it('after the reap (MMF_UNSTABLE) a GUP fault that would map new memory fails: process_vm_readv EFAULT, ptrace EIO; the shared page still reads', () => {
    const k = kernel();
    victim(k);
    written(k, 'm', 1, 'c');
    k.run(k.memfdCreate({ file: 'f', size: PAGE }));
    k.run(k.mmap({ file: 'f', length: PAGE, shared: true, write: true, process: 'c', as: 'sh' }));
    k.run(k.write({ map: 'sh', page: 0, data: 'S', process: 'c' }));
    k.run(k.kill({ process: 'c' }));
    k.run(k.processMrelease({ pidfd: 'pc' }));
    expect(code(() => k.run(k.remoteRead({ map: 'm', page: 0, process: 'c', via: 'process_vm_readv' })))).toBe('EFAULT');
    expect(code(() => k.run(k.remoteRead({ map: 'm', page: 0, process: 'c', via: 'ptrace' })))).toBe('EIO');
    expect(k.run(k.remoteRead({ map: 'sh', page: 0, process: 'c', via: 'process_vm_readv' }))).toBe('S');
    // without the reap the same read of the killed process's page works (its memory is intact until exit)
    const k2 = kernel();
    victim(k2);
    written(k2, 'm', 1, 'c');
    k2.run(k2.kill({ process: 'c' }));
    expect(k2.run(k2.remoteRead({ map: 'm', page: 0, process: 'c', via: 'process_vm_readv' }))).toBe('m0');
  });
});
