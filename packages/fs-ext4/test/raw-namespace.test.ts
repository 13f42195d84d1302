import { createKernel, InputError, KernelError, type DaxMountOption, type Kernel } from '@daxlab/core';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { describe, expect, it } from 'vitest';
import { ext4 } from '../src/index.js';
import { testArch } from '@daxlab/core/testing';

// A raw-mode pmem namespace (ndctl create-namespace -m raw, as dax-errors.sh makes one on
// nfit_test) and ext4 on it. The namespace has no pfn device and, on an NFIT region, no struct
// pages (pmem_should_map_pages() is false without ND_REGION_PAGEMAP), so its block device has no
// dax_device. ext4 fails a mount that asks for DAX ("DAX unsupported by block device.", EINVAL:
// ext4_fill_super() goto failed_mount since 2018-12, ext4_check_feature_compatibility() v6.4+);
// a mount without DAX succeeds: a page-cache ext4 (test/pmem-errors.test.ts).

function raw(version: string): Kernel {
  const k = createKernel({ arch: testArch(), fs: ext4(), driver: nvdimm(), kernel: version });
  k.run(k.probeRaw({ size: 64 << 20, as: 'pmem0' }));
  return k;
}

/** The mount's refusal: the errno and whether it is a model limit (unsupported) or the kernel's answer. */
function refusal(k: Kernel, dax: DaxMountOption): { code: string; unsupported: boolean } {
  try {
    k.run(k.mount({ device: 'pmem0', dax }));
  } catch (e) {
    if (e instanceof KernelError) return { code: e.code, unsupported: e.unsupported !== null };
    throw e;
  }
  throw new Error('the mount succeeded');
}

describe('ext4 on a raw-mode pmem namespace', () => {
  for (const v of ['v5.4', 'v5.10', 'v6.6', 'latest']) {
    it(`${v}: -o dax fails with EINVAL (the kernel's answer, not a model limit)`, () => {
      expect(refusal(raw(v), true)).toEqual({ code: 'EINVAL', unsupported: false });
    });

    it(`${v}: without a dax option ext4 mounts, a page-cache ext4: no file is DAX`, () => {
      const k = raw(v);
      k.run(k.mount({ device: 'pmem0', dax: false }));
      k.run(k.create({ file: 'f', size: 4096, device: 'pmem0' }));
      expect(k.file('f').inode.sDax).toBe(false);
      // a second mount of the mounted device: EBUSY, as on an fsdax namespace
      expect(refusal(k, false)).toEqual({ code: 'EBUSY', unsupported: false });
    });
  }

  it('dax=always is -o dax from v5.8 (EINVAL); v5.4 has no dax= at all ("Unrecognized mount option"); dax=never and dax=inode mount without DAX', () => {
    expect(refusal(raw('v6.6'), 'always')).toEqual({ code: 'EINVAL', unsupported: false });
    expect(refusal(raw('v5.4'), 'always')).toEqual({ code: 'EINVAL', unsupported: true });
    for (const dax of ['never', 'inode'] as const) {
      const k = raw('v6.6');
      k.run(k.mount({ device: 'pmem0', dax }));
      // EXT4_FLAGS_BDEV_IS_DAX is unset: FS_XFLAG_DAX inherited from the root changes nothing
      k.run(k.chattr({ dir: '/', dax: true }));
      k.run(k.create({ file: 'f', size: 4096, device: 'pmem0' }));
      expect(k.file('f').inode.sDax).toBe(false);
    }
  });

  it('the refused mount leaves the namespace unmounted: a second -o dax fails the same way', () => {
    const k = raw('v6.6');
    expect(refusal(k, true)).toEqual({ code: 'EINVAL', unsupported: false });
    expect(refusal(k, true)).toEqual({ code: 'EINVAL', unsupported: false });
  });

  it('a raw namespace is no ZONE_DEVICE device: no pgmap to look up, and no pfn-device fields at probe', () => {
    const k = raw('v6.6');
    // no dev_pagemap: the device lookup every other step makes names the reason
    expect(() => k.device('pmem0')).toThrow(/raw-mode pmem namespace/);
    expect(k.memremap.pgmaps).toEqual([]);
    // align and altmap belong to the pfn device (nd_pfn), which raw mode does not have
    expect(() => k.run(k.probeRaw({ size: 64 << 20, align: 2 << 20, as: 'pmem1' }))).toThrow(InputError);
    expect(() => k.run(k.probeRaw({ size: 64 << 20, as: 'pmem0' }))).toThrow(/already exists/);
    expect(() => k.run(k.probe({ size: 64 << 20, as: 'pmem0' }))).toThrow(/already exists/);
  });
});
