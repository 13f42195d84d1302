import type { PluginCatalog } from '@daxlab/core';
import { testArch } from '@daxlab/core/testing';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { ext4 } from '@daxlab/fs-ext4';
import { fuse } from '@daxlab/fs-fuse';
import { xfs } from '@daxlab/fs-xfs';
import { describe, expect, it } from 'vitest';
import { exploreOn, expectReplays, inOrder } from './explore-family.js';

// explore/insert-range-vs-dma.yaml and explore/unshare-range-vs-dma.yaml: seed 004's pinned page
// against fallocate(FALLOC_FL_INSERT_RANGE) and against FICLONE + fallocate(FALLOC_FL_UNSHARE_RANGE),
// over every interleaving (the expectations in the files were written before the first run).

const catalog: PluginCatalog = { arch: { x86: () => testArch() }, fs: { xfs: () => xfs(), ext4: () => ext4(), fuse: () => fuse() }, driver: { nvdimm: () => nvdimm() } };
const summary = (r: ReturnType<typeof exploreOn>): unknown => ({ status: r.status, complete: r.complete, violations: r.violations.map((v) => v.invariant).sort(), outcome: r.outcome });

describe('insert range vs a pinned DMA page, every interleaving', () => {
  for (const fs of ['xfs', 'ext4']) {
    it(`${fs}: v6.15 waits for the unpin in every interleaving; v6.6 (mapping_mapped() early return after the munmap) shifts the pinned block to page 1 under the DMA`, () => {
      expect(summary(exploreOn(catalog, 'insert-range-vs-dma.yaml', fs, 'nvdimm', 'v6.15'))).toEqual({ status: 'pass', complete: true, violations: [], outcome: 'completed' });
      const r = exploreOn(catalog, 'insert-range-vs-dma.yaml', fs, 'nvdimm', 'v6.6');
      // nothing is freed: only the offset the DMA reaches is wrong
      expect(summary(r)).toEqual({ status: 'pass', complete: true, violations: ['dma-to-foreign-block'], outcome: 'completed' });
      expect(r.violations[0]!.message).toMatch(/pinned as a\[0\], now a\[1\]/);
      expectReplays(catalog, 'insert-range-vs-dma.yaml', { arch: 'x86', fs, driver: 'nvdimm', version: 'v6.6', features: {} }, r);
    });
  }

  it('fuse: EOPNOTSUPP, nothing moves, no violation with any variant', () => {
    for (const features of [{}, { 'dax-delete-entries-before-wait': true }] as Record<string, boolean>[]) {
      expect(summary(exploreOn(catalog, 'insert-range-vs-dma.yaml', 'fuse', 'nvdimm', 'v6.6', features))).toEqual({ status: 'pass', complete: true, violations: [], outcome: 'completed' });
    }
  });
});

describe('FICLONE + unshare range vs a pinned DMA page, every interleaving (XFS)', () => {
  it('v6.15: the clone and the unshare both wait for the unpin: no violation', () => {
    expect(summary(exploreOn(catalog, 'unshare-range-vs-dma.yaml', 'xfs', 'nvdimm', 'v6.15'))).toEqual({ status: 'pass', complete: true, violations: [], outcome: 'completed' });
  });

  it('v6.6 and v6.15 with the entries deleted before the wait: the clone shares the pinned block with c before the DMA lands', () => {
    for (const [version, features] of [['v6.6', {}], ['v6.15', { 'dax-delete-entries-before-wait': true }]] as [string, Record<string, boolean>][]) {
      const r = exploreOn(catalog, 'unshare-range-vs-dma.yaml', 'xfs', 'nvdimm', version, features);
      expect(summary(r), version).toEqual({ status: 'pass', complete: true, violations: ['dma-to-foreign-block'], outcome: 'completed' });
      const dma = r.violations[0]!;
      expect(inOrder(dma.trace, [/gup\.pin/, /fs\.step .*xfs_reflink_remap_blocks/, /dma\.write name=dma/])).toBe(true);
      expectReplays(catalog, 'unshare-range-vs-dma.yaml', { arch: 'x86', fs: 'xfs', driver: 'nvdimm', version, features }, r);
    }
  });

  it('v5.10: DAX files cannot be cloned, the unshare of an unshared file moves nothing: no violation even without the wait', () => {
    expect(summary(exploreOn(catalog, 'unshare-range-vs-dma.yaml', 'xfs', 'nvdimm', 'v5.10'))).toEqual({ status: 'pass', complete: true, violations: [], outcome: 'completed' });
  });

  it('ext4 and FUSE refuse the unshare (EOPNOTSUPP): no violation', () => {
    for (const fs of ['ext4', 'fuse']) {
      expect(summary(exploreOn(catalog, 'unshare-range-vs-dma.yaml', fs, 'nvdimm', 'v6.6')), fs).toEqual({ status: 'pass', complete: true, violations: [], outcome: 'completed' });
    }
  });
});
