import { createKernel, KernelError, type DaxMountOption } from '@daxlab/core';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { describe, expect, it } from 'vitest';
import { xfs } from '../src/index.js';
import { testArch } from '@daxlab/core/testing';

// XFS on a raw-mode pmem namespace (no pfn device, no struct pages on an NFIT region, so no
// dax_device). Unlike ext4, XFS does not fail the mount: "DAX unsupported by block device.
// Turning off DAX." and it mounts without DAX (xfs_fs_fill_super() v5.4, later
// xfs_setup_dax_always()). That mount is a page-cache XFS, which daxlab does not model: every
// dax option is reported as unsupported (EOPNOTSUPP), never as the kernel's EINVAL.

function mountRaw(version: string, dax: DaxMountOption): { code: string; unsupported: boolean; message: string } {
  const k = createKernel({ arch: testArch(), fs: xfs(), driver: nvdimm(), kernel: version });
  k.run(k.probeRaw({ size: 64 << 20, as: 'pmem0' }));
  try {
    k.run(k.mount({ device: 'pmem0', dax }));
  } catch (e) {
    if (e instanceof KernelError) return { code: e.code, unsupported: e.unsupported !== null, message: e.message };
    throw e;
  }
  throw new Error('the mount succeeded');
}

describe('xfs on a raw-mode pmem namespace', () => {
  for (const v of ['v5.4', 'v6.6', 'latest']) {
    it(`${v}: -o dax turns DAX off and mounts (not modelled), it does not fail`, () => {
      const r = mountRaw(v, true);
      expect({ code: r.code, unsupported: r.unsupported }).toEqual({ code: 'EOPNOTSUPP', unsupported: true });
      expect(r.message).toMatch(/Turning off DAX/);
    });
  }

  it('without a dax option it is a plain non-DAX mount (no "Turning off DAX"), equally not modelled', () => {
    const r = mountRaw('v6.6', false);
    expect({ code: r.code, unsupported: r.unsupported }).toEqual({ code: 'EOPNOTSUPP', unsupported: true });
    expect(r.message).not.toMatch(/Turning off DAX/);
  });
});
