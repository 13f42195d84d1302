import { createKernel, Monitor, type Kernel } from '@daxlab/core';
import { x86 } from '@daxlab/arch-x86';
import { devdax } from '@daxlab/driver-devdax';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { describe, expect, it } from 'vitest';
import { errnoOf } from './selftest-api.js';

// /dev/mem against memory a driver claims (core mm/devmem.ts): CONFIG_IO_STRICT_DEVMEM's
// exclusive busy ranges (v4.5) and revoke_devmem() when a driver claims a range (v5.8), as
// ndctl's revoke-devmem.c exercises them on a pmem namespace.

const MiB = 1024 * 1024;

/** A 64 MiB fsdax namespace, disabled, with its first 2 MiB mapped and written through /dev/mem. */
function disabledAndMapped(version: string, ioStrict: boolean): { k: Kernel; m: Monitor } {
  const k = createKernel({ arch: x86(), driver: nvdimm(), kernel: version, features: { 'io-strict-devmem': ioStrict } });
  const m = new Monitor(k);
  k.run(k.probe({ size: 64 * MiB, as: 'pmem0' }));
  k.run(k.unbind({ device: 'pmem0' }));
  k.run(k.mmap({ devmem: 'pmem0', length: 2 * MiB, shared: true, write: true, as: 'buf' }));
  k.run(k.write({ map: 'buf', page: 0, data: 'x' }));
  return { k, m };
}
const mapped = (k: Kernel, page: number): boolean => k.isMappedIn({ map: 'buf', page });

describe('/dev/mem revocation (revoke_devmem(), v5.8, CONFIG_IO_STRICT_DEVMEM)', () => {
  it('the /dev/mem mapping of a disabled namespace maps its physical pages: the store reaches the namespace\'s first pfn, no driver holds it', () => {
    const { k, m } = disabledAndMapped('v6.6', true);
    expect(k.pfnOf({ map: 'buf', page: 0 })).toBe(k.device('pmem0').pgmap.startPfn);
    expect(m.violations).toEqual([]);
  });

  it('v6.6: enabling the namespace zaps every PTE of the mapping; the next store is SIGBUS (a /dev/mem VMA has no ->fault)', () => {
    const { k, m } = disabledAndMapped('v6.6', true);
    expect(mapped(k, 0)).toBe(true);
    k.run(k.bind({ device: 'pmem0' }));
    expect(mapped(k, 0)).toBe(false);
    expect(errnoOf(() => k.run(k.write({ map: 'buf', page: 0, data: 'y' })))).toBe('SIGBUS');
    expect(m.violations).toEqual([]);
    // the namespace is back at the same physical range
    expect(k.device('pmem0').bound).toBe(true);
  });

  it('nothing revokes the old mapping on v5.4 with IO_STRICT_DEVMEM, nor on v6.6 without it (the Kconfig default): the store lands in the enabled namespace (devmem-write-to-claimed-range)', () => {
    for (const [version, ioStrict] of [['v5.4', true], ['v6.6', false]] as const) {
      const { k, m } = disabledAndMapped(version, ioStrict);
      k.run(k.bind({ device: 'pmem0' }));
      expect(mapped(k, 0)).toBe(true);
      k.run(k.write({ map: 'buf', page: 0, data: 'y' }));
      expect(m.violations.map((v) => v.invariant)).toEqual(['devmem-write-to-claimed-range']);
    }
  });

  it('with IO_STRICT_DEVMEM a new /dev/mem mapping of the enabled namespace is refused (busy range exclusive: EPERM) on v5.4 and v6.6 alike; without it, allowed', () => {
    for (const v of ['v5.4', 'v6.6']) {
      const k = createKernel({ arch: x86(), driver: nvdimm(), kernel: v, features: { 'io-strict-devmem': true } });
      k.run(k.probe({ size: 64 * MiB, as: 'pmem0' }));
      expect(errnoOf(() => k.run(k.mmap({ devmem: 'pmem0', length: 2 * MiB, shared: true, write: true, as: 'm' })))).toBe('EPERM');
    }
    const k = createKernel({ arch: x86(), driver: nvdimm(), kernel: 'v6.6' });
    k.run(k.probe({ size: 64 * MiB, as: 'pmem0' }));
    expect(errnoOf(() => k.run(k.mmap({ devmem: 'pmem0', length: 2 * MiB, shared: true, write: true, as: 'm' })))).toBe('ok');
  });

  it('device-dax memory kmem hot-added is System RAM: /dev/mem refuses it on x86 (devmem_is_allowed(): EPERM) with or without IO_STRICT_DEVMEM', () => {
    const k = createKernel({ arch: x86(), driver: devdax(), kernel: 'v6.6' });
    k.run(k.probe({ size: 256 * MiB, align: 2 * MiB, as: 'dax0' }));
    // without the memmap on the device the whole 256 MiB is data: two blocks from the device's base
    k.run(k.reconfigure({ device: 'dax0', mode: 'system-ram', online: false }));
    expect(errnoOf(() => k.run(k.mmap({ devmem: 'dax0', length: 2 * MiB, shared: true, write: true, as: 'm' })))).toBe('EPERM');
  });

  it('bind of a bound namespace is EBUSY', () => {
    const k = createKernel({ arch: x86(), driver: nvdimm(), kernel: 'v6.6' });
    k.run(k.probe({ size: 64 * MiB, as: 'pmem0' }));
    expect(errnoOf(() => k.run(k.bind({ device: 'pmem0' })))).toBe('EBUSY');
  });
});
