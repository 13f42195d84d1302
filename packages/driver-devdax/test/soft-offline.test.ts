import { createKernel, KernelError, PRESETS, type Kernel } from '@daxlab/core';
import { describe, expect, it } from 'vitest';
import { testArch } from '@daxlab/core/testing';
import { devdax } from '../src/index.js';

// Soft offline of device-dax pages (mm/memory-failure.c soft_offline_page(); ndctl device-dax.c
// test_dax_soft_offline() and dax-poison.c's MADV_SOFT_OFFLINE): ZONE_DEVICE memory is never
// online (pfn_to_online_page() is NULL), so every release refuses it with EIO and nothing changes.

const MiB = 1024 * 1024;
const RELEASES = PRESETS.map((p) => p.name);

function boot(version: string): Kernel {
  const k = createKernel({ arch: testArch(), driver: devdax(), kernel: version });
  k.run(k.probe({ size: 64 * MiB, align: 2 * MiB, as: 'dax0' }));
  return k;
}

function errno(f: () => unknown): string | null {
  try {
    f();
    return null;
  } catch (e) {
    return e instanceof KernelError ? e.code : String(e);
  }
}

describe('soft offline of a device-dax page', () => {
  it('the sysfs write of its physical address is EIO on every release', () => {
    for (const v of RELEASES) {
      const k = boot(v);
      expect(errno(() => k.run(k.softOffline({ device: 'dax0', page: 0 }))), v).toBe('EIO');
    }
  });

  it('madvise(MADV_SOFT_OFFLINE) of an unmapped page: GUP read-faults the 2 MiB leaf in, then EIO; the GUP reference is given back', () => {
    for (const v of RELEASES) {
      const k = boot(v);
      k.run(k.mmap({ device: 'dax0', length: 4 * MiB, shared: true, write: true, as: 'm' }));
      expect(errno(() => k.run(k.softOffline({ map: 'm', page: 256 }))), v).toBe('EIO');
      // the leaf stays mapped (madvise_inject_error()'s get_user_pages_fast() faulted it in) ...
      expect([k.isMappedIn({ map: 'm', page: 0 }), k.isMappedIn({ map: 'm', page: 511 }), k.isMappedIn({ map: 'm', page: 512 })], v).toEqual([true, true, false]);
      // ... and holds what a plain read fault leaves (put_ref_page() dropped the GUP reference)
      const c = boot(v);
      c.run(c.mmap({ device: 'dax0', length: 4 * MiB, shared: true, write: true, as: 'm' }));
      c.run(c.read({ map: 'm', page: 256 }));
      const pfn = k.pfnOf({ map: 'm', page: 256 })!;
      expect([pfn, k.refcount(pfn), k.mapcount(pfn)], v).toEqual([c.pfnOf({ map: 'm', page: 256 }), c.refcount(pfn), c.mapcount(pfn)]);
    }
  });

  it('a RAM page beside it is soft-offlined: it moves to a new page with its data (mm/softoffline.ts), the old one poisoned at refcount 1', () => {
    const k = boot('latest');
    k.run(k.mmap({ anon: true, length: 4096, write: true, as: 'a' }));
    k.run(k.write({ map: 'a', page: 0, data: 'x' }));
    const old = k.pfnOf({ map: 'a', page: 0 })!;
    k.run(k.softOffline({ map: 'a', page: 0 }));
    const now = k.pfnOf({ map: 'a', page: 0 })!;
    expect(now).not.toBe(old);
    expect(k.run(k.read({ map: 'a', page: 0 }))).toBe('x');
    // page_handle_poison(): put_page() of the isolation reference, then page_ref_inc()
    expect(k.refcount(old)).toBe(1);
  });

  it('a page past the device is an input error naming the field', () => {
    const k = boot('latest');
    expect(() => k.run(k.softOffline({ device: 'dax0', page: 1 << 20 }))).toThrow(/soft-offline of page 1048576 of 'dax0': it has \d+ data pages/);
  });
});
