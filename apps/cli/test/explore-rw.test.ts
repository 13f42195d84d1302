import { exploreScenario, isExploreResult, parseScenario, type PluginCatalog } from '@daxlab/core';
import { testArch } from '@daxlab/core/testing';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { ext4 } from '@daxlab/fs-ext4';
import { xfs } from '@daxlab/fs-xfs';
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EXPLORE_DIR, exploreOn, expectReplays, inOrder } from './explore-family.js';

// explore/dio-read-vs-punch.yaml: pread(2) with O_DIRECT (core fs/rw.ts: iomap_dio_rw's GUP of
// the buffer, the bio in flight across a preemption point) into a DAX mapping, against punch
// hole of the mapped DAX file (generic/503's first loop with the real syscall).

const catalog: PluginCatalog = { arch: { x86: () => testArch() }, fs: { xfs: () => xfs(), ext4: () => ext4() }, driver: { nvdimm: () => nvdimm() } };
const FILE = 'dio-read-vs-punch.yaml';

describe('O_DIRECT pread into a DAX mapping vs punch hole, every interleaving', () => {
  for (const fs of ['xfs', 'ext4']) {
    for (const version of ['v5.4', 'v6.6', 'v6.15']) {
      it(`${fs} ${version}: punch hole waits for the bio's GUP reference in every interleaving: no violation, always completes`, () => {
        const r = exploreOn(catalog, FILE, fs, 'nvdimm', version);
        expect({ status: r.status, complete: r.complete, violations: r.violations.map((v) => v.invariant), outcome: r.outcome }).toEqual({ status: 'pass', complete: true, violations: [], outcome: 'completed' });
      });
    }

    it(`${fs}: with the DAX entries deleted before the busy wait, the block is freed under the GUP and the device's data lands in b's block`, () => {
      const features = { 'dax-delete-entries-before-wait': true };
      const r = exploreOn(catalog, FILE, fs, 'nvdimm', 'v6.6', features);
      expect(r.violations.map((v) => v.invariant).sort()).toEqual(['block-freed-while-pinned', 'dma-to-foreign-block']);
      // the order that breaks it: the GUP of the buffer page, the punch freeing the block, b taking it, then the bio's data
      const dma = r.violations.find((v) => v.invariant === 'dma-to-foreign-block')!;
      expect(inOrder(dma.trace, [/gup\.pin .*bio\(pread\(g, 0, 4096, O_DIRECT\)\)@0/, /block\.free/, /dma\.write name=bio\(pread/])).toBe(true);
      expectReplays(catalog, FILE, { arch: 'x86', fs, driver: 'nvdimm', version: 'v6.6', features }, r);
    });
  }
});

/** pwrite-vs-truncate.yaml with a third thread loading page 1 of the mapping (the page the write writes). */
function withReader(): ReturnType<typeof parseScenario> {
  const text = readFileSync(join(EXPLORE_DIR, 'pwrite-vs-truncate.yaml'), 'utf8');
  const reader = '  - name: reader\n    steps:\n      - read: { map: m, page: 1 }\n        expect: { error: SIGBUS, maySucceed: true }\n';
  return parseScenario(text.replace('\nexpect:\n', `\n${reader}expect:\n`), 'pwrite-vs-truncate+reader.yaml');
}

describe('pwrite(2) to a DAX file from a mapping of itself vs truncate, every interleaving', () => {
  it('xfs v6.6, with a thread faulting the written page in (a load takes the fault lock, not i_rwsem): nothing breaks, every schedule completes, and the load is SIGBUS where the truncate went first', () => {
    const r = exploreScenario(withReader(), { arch: 'x86', fs: 'xfs', driver: 'nvdimm', version: 'v6.6', features: {} }, catalog);
    if (!isExploreResult(r)) throw new Error(`${r.status}: ${r.reason}`);
    expect({ status: r.status, complete: r.complete, violations: r.violations.length, outcome: r.outcome }).toEqual({ status: 'pass', complete: true, violations: 0, outcome: 'completed' });
    // the load after a truncate that went first is SIGBUS: an allowed way for the reader
    expect(r.allowedFailures.flatMap((f) => f.messages).some((m) => /read.*SIGBUS/.test(m))).toBe(true);
  });

  for (const fs of ['xfs', 'ext4']) {
    it(`${fs}: no violation in any interleaving; where the truncate runs first the write copies nothing and fails with EFAULT`, () => {
      const r = exploreOn(catalog, 'pwrite-vs-truncate.yaml', fs, 'nvdimm', 'v6.6');
      expect({ status: r.status, complete: r.complete, violations: r.violations.length, outcome: r.outcome }).toEqual({ status: 'pass', complete: true, violations: 0, outcome: 'completed' });
      const writer = r.allowedFailures.flatMap((f) => f.messages).filter((m) => /pwrite/.test(m));
      expect(writer.length).toBeGreaterThan(0);
      expect(writer.every((m) => /EFAULT/.test(m))).toBe(true);
    });
  }
});

