import { createKernel, KernelError, Monitor } from '@daxlab/core';
import { x86 } from '@daxlab/arch-x86';
import { describe, expect, it } from 'vitest';
import { hmm } from '../src/index.js';

// A guard marker (MADV_GUARD_INSTALL, v6.13; core mm/guard.ts) under the mirror's page walk.
// mm/hmm.c hmm_vma_handle_pte(): a non-present entry with no fault requested is reported as 0
// (HMM_DMIRROR_PROT_NONE); with a fault requested, an entry that is neither a swap entry nor a
// device-private, device-exclusive or migration entry is "Report error for everything else":
// -EFAULT, without calling handle_mm_fault() (so no SIGSEGV, and the marker stays).

const PAGE = 4096;

function setup() {
  const k = createKernel({ arch: x86(), driver: hmm(), kernel: 'latest' });
  const mon = new Monitor(k);
  k.run(k.probe({ driver: 'hmm', size: 256 * 1024 * 1024, as: 'dmirror0' }));
  k.run(k.mmap({ anon: true, length: 2 * PAGE, write: true, as: 'buf' }));
  k.run(k.write({ map: 'buf', page: 0, data: 'i0' }));
  k.run(k.write({ map: 'buf', page: 1, data: 'i1' }));
  k.run(k.madvise({ map: 'buf', advice: 'guard-install', length: PAGE }));
  return { k, mon };
}

describe('hmm_range_fault() over a guard marker', () => {
  it('a device read or write of the guarded page is EFAULT; the page next to it is read as usual', () => {
    const { k, mon } = setup();
    for (const write of [false, true]) {
      let err: unknown = null;
      try {
        if (write) k.run(k.deviceWrite({ device: 'dmirror0', map: 'buf', page: 0, data: 'd' }));
        else k.run(k.deviceRead({ device: 'dmirror0', map: 'buf', page: 0 }));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(KernelError);
      expect((err as KernelError).code).toBe('EFAULT');
    }
    // the marker is still there: a CPU read still SIGSEGVs
    expect(k.isGuardIn({ map: 'buf', page: 0 })).toBe(true);
    expect(k.run(k.deviceRead({ device: 'dmirror0', map: 'buf', page: 1 }))).toBe('i1');
    expect(mon.violations).toEqual([]);
  });

  it('a snapshot (no fault requested) reports the guarded page as NONE (0), the written one WRITE', () => {
    const { k } = setup();
    // HMM_DMIRROR_PROT_NONE is 0x00; the second page is a writable anonymous PTE, which
    // dmirror_mkentry() (lib/test_hmm.c) reports as HMM_DMIRROR_PROT_WRITE (0x02) alone (READ when not writable)
    expect(k.run(k.deviceSnapshot({ device: 'dmirror0', map: 'buf', expect: [0x00, 0x02] }))).toEqual([0x00, 0x02]);
  });
});
