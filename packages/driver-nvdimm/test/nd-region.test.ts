import { createKernel, type Kernel } from '@daxlab/core';
import { errnoOf as errno, testArch } from '@daxlab/core/testing';
import { describe, expect, it } from 'vitest';
import { nvdimm } from '../src/index.js';

// Region capacity and namespace allocation (core dax/nd-region.ts), the numbers worked out by hand
// from drivers/nvdimm/{region_devs,dimm_devs,namespace_devs}.c and ndctl/namespace.c:
//  - nfit_test.0's largest pmem region: 64 MiB over 4 DIMMs, 16 MiB of each; from v5.7 the region
//    align is 16 MiB (MEMREMAP_COMPAT_ALIGN_MAX), 4 MiB of each DIMM (dpa_align()).
//  - a 16 MiB namespace takes 4 MiB of every DIMM at the same DPA; the namespace's physical start
//    is the region's plus its DPA offset times 4.

const MiB = 1 << 20;

function kernel(version = 'latest'): Kernel {
  return createKernel({ arch: testArch(), driver: nvdimm(), kernel: version });
}

/** The region's (size, available_size, max_available_extent) in MiB. */
function sizes(k: Kernel, region = 'r'): number[] {
  const a = k.ndBus.attributes(region);
  return [a.size, a.available, a.maxExtent].map((b) => b / MiB);
}

function create(k: Kernel, size?: number, region = 'r', mode?: 'fsdax' | 'devdax' | 'raw'): string {
  return k.run(k.ndBus.createNamespace({ region, ...(size !== undefined ? { size } : {}), ...(mode ? { mode } : {}) }));
}

describe('nd-region: available_size and max_available_extent', () => {
  it('three 16 MiB namespaces, the middle destroyed: 32 MiB available in two holes of 16 MiB (max_available_extent_ns.sh)', () => {
    const k = kernel();
    k.ndBus.create({ size: 64 * MiB, mappings: 4, id: 1, as: 'r' });
    expect(sizes(k)).toEqual([64, 64, 64]);
    expect(k.ndBus.region('r').align).toBe(16 * MiB);
    // namespace1.0 first (the idle 0th namespace), then each new seed: ida's lowest free id
    expect([create(k, 16 * MiB), create(k, 16 * MiB), create(k, 16 * MiB)]).toEqual(['namespace1.0', 'namespace1.1', 'namespace1.2']);
    expect(sizes(k)).toEqual([64, 16, 16]);
    // each namespace is 4 MiB further into every DIMM: 16 MiB further in the region
    const start = k.ndBus.region('r').start;
    for (const [i, name] of ['namespace1.0', 'namespace1.1', 'namespace1.2'].entries()) {
      expect(k.device(name).pgmap.startPfn * 4096).toBe(start + i * 16 * MiB);
    }
    k.run(k.ndBus.destroyNamespace({ device: 'namespace1.1', force: true }));
    // per DIMM free: [4, 8) and [12, 16) MiB; available adds them, the extent is the larger
    expect(sizes(k)).toEqual([64, 32, 16]);
    // ndctl refuses what exceeds the largest extent though the total would hold it
    expect(errno(() => create(k, 32 * MiB))).toBe('EAGAIN');
    // the default size is max_available_extent; the seed is namespace1.3 (1.1 was deleted)
    expect(create(k)).toBe('namespace1.3');
    expect(k.device('namespace1.3').size).toBe(16 * MiB);
    // first fit in DPA order: the hole 1.1 left, not the region's end
    expect(k.device('namespace1.3').pgmap.startPfn * 4096).toBe(start + 16 * MiB);
    expect(sizes(k)).toEqual([64, 16, 16]);
  });

  it('v5.4 has no region align: a raw namespace of 8 MiB is only ndctl\'s interleave granule; from v5.7 it is misaligned to 16 MiB', () => {
    const old = kernel('v5.4');
    old.ndBus.create({ size: 64 * MiB, mappings: 4, as: 'r' });
    expect(old.ndBus.region('r').align).toBeNull();
    expect(create(old, 8 * MiB, 'r', 'raw')).toBe('namespace0.0');
    // 2 MiB of each DIMM taken, exactly: no widening to an align
    expect(sizes(old)).toEqual([64, 56, 56]);
    // the next namespace starts 8 MiB into the region: ndctl's check_dax_align() refuses an fsdax
    // personality there, and the namespace keeps its capacity, disabled
    expect(errno(() => create(old, 16 * MiB))).toBe('EINVAL');
    expect(sizes(old)).toEqual([64, 40, 40]);
    expect(old.devices.has('namespace0.1')).toBe(false);
    const k = kernel('v6.6');
    k.ndBus.create({ size: 64 * MiB, mappings: 4, as: 'r' });
    expect(errno(() => create(k, 8 * MiB, 'r', 'raw'))).toBe('EINVAL');
  });

  it('allocations are widened to dpa_align() in available_size and free ranges trimmed to it (v5.7)', () => {
    const k = kernel();
    k.ndBus.create({ size: 64 * MiB, mappings: 1, align: 4 * MiB, as: 'r' });
    create(k, 16 * MiB, 'r', 'raw'); // [0, 16)
    k.ndBus.region('r').align = 32 * MiB; // echo 32M > regionX/align after the allocation (align_store() allows it any time)
    // busy [0, 16) widens to [0, 32): 32 free; the free range [16, 64) trims to [32, 64)
    expect(sizes(k)).toEqual([64, 32, 32]);
  });

  it('default_align() multiplies by the ways when they do not divide 16 MiB; align_store checks', () => {
    const k = kernel();
    k.ndBus.create({ size: 48 * MiB, mappings: 3, as: 'r' });
    expect(k.ndBus.region('r').align).toBe(48 * MiB);
    // 12 MiB / 4 = 3 MiB per DIMM: not a power of two
    expect(errno(() => k.ndBus.create({ size: 64 * MiB, mappings: 4, align: 12 * MiB, id: 1, as: 'bad' }))).toBe('EINVAL');
    // larger than the region
    expect(errno(() => k.ndBus.create({ size: 64 * MiB, mappings: 2, align: 128 * MiB, id: 2, as: 'big' }))).toBe('EINVAL');
    // 32 MiB / 2 = 16 MiB per DIMM: taken
    k.ndBus.create({ size: 64 * MiB, mappings: 2, align: 32 * MiB, id: 3, as: 'ok' });
    expect(k.ndBus.attributes('ok').align).toBe(32 * MiB);
    // before v5.7 the attribute does not exist: the cell is unsupported
    expect(() => kernel('v5.4').ndBus.create({ size: 64 * MiB, align: 16 * MiB, as: 'r' })).toThrow(/arrived in v5.7/);
  });

  it('fsdax and devdax namespaces under 16 MiB are refused; an active namespace needs force to be destroyed', () => {
    const k = kernel();
    k.ndBus.create({ size: 64 * MiB, as: 'r' });
    const ns = create(k, 16 * MiB);
    expect(errno(() => k.run(k.ndBus.destroyNamespace({ device: ns })))).toBe('EBUSY');
    k.run(k.unbind({ device: ns }));
    k.run(k.ndBus.destroyNamespace({ device: ns }));
    // namespace0.0 stays as a device with no capacity, and is taken again first
    expect(sizes(k)).toEqual([64, 64, 64]);
    expect(create(k)).toBe('namespace0.0');
  });

  it('a label-less region: its namespace spans it, enabled raw; only the whole region can be configured', () => {
    const k = kernel();
    k.ndBus.create({ size: 64 * MiB, mappings: 0, as: 'r' });
    expect(sizes(k)).toEqual([64, 0, 0]);
    expect(k.rawNamespaces.get('namespace0.0')?.size).toBe(64 * MiB);
    expect(errno(() => create(k))).toBe('EAGAIN'); // namespace0.0 is active and there is no seed
    k.run(k.ndBus.destroyNamespace({ device: 'namespace0.0', force: true }));
    expect(errno(() => create(k, 32 * MiB))).toBe('EINVAL');
    expect(create(k)).toBe('namespace0.0');
    expect(k.device('namespace0.0').size).toBe(64 * MiB);
    expect(k.device('namespace0.0').pgmap.startPfn * 4096).toBe(k.ndBus.region('r').start);
  });
});
