import type { PluginCatalog } from '@daxlab/core';
import { devdax } from '@daxlab/driver-devdax';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { ext4 } from '@daxlab/fs-ext4';
import { fuse } from '@daxlab/fs-fuse';
import { describe, expect, it } from 'vitest';
import { testArch } from '@daxlab/core/testing';
import { exploreOn, exploreSeed004Family, expectReplays } from './explore-family.js';

// The explore library on the plugins the CLI ships beyond XFS (apps/cli/test/explore-xfs.test.ts
// runs the same family on XFS): here because the CLI depends on all of them, so no plugin
// package has to depend on another one's tests.

// ext4_break_layouts / ext4_setattr ordering under every interleaving (issue 6)
exploreSeed004Family('ext4', { arch: { x86: () => testArch() }, fs: { ext4: () => ext4() }, driver: { nvdimm: () => nvdimm() } });

// virtio-fs DAX (window ranges, FUSE_SETUPMAPPING/REMOVEMAPPING, range reclaim) under every interleaving
exploreSeed004Family('fuse', { arch: { x86: () => testArch() }, fs: { fuse: () => fuse() }, driver: { nvdimm: () => nvdimm() } });

const catalog: PluginCatalog = { arch: { x86: () => testArch() }, fs: {}, driver: { devdax: () => devdax() } };
const unbind = (version: string, features: Record<string, string | boolean> = {}) => exploreOn(catalog, 'unbind-vs-dma.yaml', null, 'devdax', version, features);

describe('device-dax unbind racing the DMA on a pinned page, under every interleaving', () => {
  for (const version of ['v5.4', 'v5.10']) {
    it(`${version}: memunmap_pages() waits for the page references, so no interleaving tears the pinned page down`, () => {
      const r = unbind(version);
      expect({ status: r.status, complete: r.complete, outcome: r.outcome, violations: r.violations }).toEqual({ status: 'pass', complete: true, outcome: 'completed', violations: [] });
    });
  }

  for (const version of ['v6.1', 'v6.6', 'v6.15']) {
    it(`${version}: nothing waits for the pin; the shortest schedule is the unbind running alone`, () => {
      const r = unbind(version);
      expect({ status: r.status, complete: r.complete, violations: r.violations.map((v) => v.invariant) }).toEqual({ status: 'pass', complete: true, violations: ['pgmap-teardown-while-referenced'] });
      const v = r.violations[0]!;
      expect(v.schedule.map((s) => s.thread)).toEqual(['remove']);
      expect(v.message).toMatch(/torn down while pfn \d+ is pinned/);
      expectReplays(catalog, 'unbind-vs-dma.yaml', { arch: 'x86', fs: null, driver: 'devdax', version, features: {} }, r);
    });
  }

  it('the feature alone decides: v6.15 with memunmap-waits-page-refs=true is safe, v5.10 without it is not', () => {
    expect(unbind('v6.15', { 'memunmap-waits-page-refs': true }).violations).toEqual([]);
    expect(unbind('v5.10', { 'memunmap-waits-page-refs': false }).violations.map((v) => v.invariant)).toEqual(['pgmap-teardown-while-referenced']);
  });
});
