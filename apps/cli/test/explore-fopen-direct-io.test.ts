import { type PluginCatalog } from '@daxlab/core';
import { testArch } from '@daxlab/core/testing';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { fuse } from '@daxlab/fs-fuse';
import { describe, expect, it } from 'vitest';
import { exploreOn, expectReplays, inOrder } from './explore-family.js';

// explore/fuse-direct-io-read-vs-truncate.yaml: read(2) without O_DIRECT of a file a virtio-fs
// server opened FOPEN_DIRECT_IO (fuse_direct_read_iter -> fuse_direct_io: FUSE_READ with the
// buffer page GUPed) into a shared mapping of a file on a second, -o dax, virtio-fs mount, while
// another thread truncates that file and makes two files that need both ranges of its window.

const catalog: PluginCatalog = { arch: { x86: () => testArch() }, fs: { fuse: () => fuse() }, driver: { nvdimm: () => nvdimm() } };
const FILE = 'fuse-direct-io-read-vs-truncate.yaml';
const BROKEN = ['block-freed-while-pinned', 'dma-to-foreign-block'];

describe('an FOPEN_DIRECT_IO read into a FUSE DAX mapping vs truncate of the mapped file, every interleaving', () => {
  for (const [version, features, pin] of [
    ['v5.10', {}, false],
    ['v6.6', {}, false],
    ['v6.15', { 'fuse-break-whole-file': false }, true],
  ] as const) {
    it(`${version} ${JSON.stringify(features)}: truncate breaks page 0 only, so range reclaim frees a's range under the request (${pin ? 'FOLL_PIN' : 'FOLL_GET'}) and the server's data lands in c`, () => {
      const r = exploreOn(catalog, FILE, 'fuse', 'nvdimm', version, features);
      expect({ complete: r.complete, outcome: r.outcome, violations: r.violations.map((v) => v.invariant).sort() }).toEqual({ complete: true, outcome: 'completed', violations: BROKEN });
      const dma = r.violations.find((v) => v.invariant === 'dma-to-foreign-block')!;
      // the request's GUP of ma's page 1 (window block 1), range reclaim freeing a's range
      // (FUSE_REMOVEMAPPING), then FUSE_READ's data into that block
      const gup = new RegExp(`gup\\.pin .*name=fuse\\(pread\\(f, 0, 4096\\)\\)@1 pfns=\\[16777217\\] pin=${pin} .*write=true`);
      expect(inOrder(dma.trace, [gup, /FUSE_REMOVEMAPPING/, /block\.free device=win0 block=1 pfn=16777217 file=a/, /dma\.write name=fuse\(pread\(f, 0, 4096\)\)@1 pfn=16777217 data=F/])).toBe(true);
      expectReplays(catalog, FILE, { arch: 'x86', fs: 'fuse', driver: 'nvdimm', version, features }, r);
    });
  }

  for (const [version, features] of [
    ['v6.6', { 'fuse-break-whole-file': true }],
    ['v6.15', {}],
    ['latest', {}],
  ] as const) {
    it(`${version} ${JSON.stringify(features)}: truncate breaks the whole file and waits for the request's reference: no violation, always completes`, () => {
      const r = exploreOn(catalog, FILE, 'fuse', 'nvdimm', version, features);
      expect({ status: r.status, complete: r.complete, outcome: r.outcome, violations: r.violations.map((v) => v.invariant) }).toEqual({ status: 'pass', complete: true, outcome: 'completed', violations: [] });
    });
  }
});
