import { exploreScenario, isExploreResult, parseScenario, type PluginCatalog } from '@daxlab/core';
import { testArch } from '@daxlab/core/testing';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { ext4 } from '@daxlab/fs-ext4';
import { fuse } from '@daxlab/fs-fuse';
import { xfs } from '@daxlab/fs-xfs';
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EXPLORE_DIR, exploreOn, expectReplays, inOrder } from './explore-family.js';

// explore/dio-read-vs-punch.yaml: pread(2) with O_DIRECT (core fs/rw.ts: iomap_dio_rw's GUP of
// the buffer, the bio in flight across a preemption point) into a DAX mapping, against punch
// hole of the mapped DAX file (generic/503's first loop with the real syscall).

const catalog: PluginCatalog = { arch: { x86: () => testArch() }, fs: { xfs: () => xfs(), ext4: () => ext4(), fuse: () => fuse() }, driver: { nvdimm: () => nvdimm() } };
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

describe('O_DIRECT pread on FUSE (fuse_direct_IO: FUSE_READ of the GUPed buffer page) vs punch hole of the mapped DAX file', () => {
  for (const version of ['v6.6', 'v6.15']) {
    it(`fuse ${version}: fuse_dax_break_layouts() waits for the FUSE_READ's reference in every interleaving`, () => {
      const r = exploreOn(catalog, FILE, 'fuse', 'nvdimm', version);
      expect({ status: r.status, complete: r.complete, violations: r.violations.length, outcome: r.outcome }).toEqual({ status: 'pass', complete: true, violations: 0, outcome: 'completed' });
    });
  }
});

// explore/dio-read-vs-fork.yaml: the O_DIRECT read's GUP reference against fork and a store to the
// buffer. FOLL_GET (bios up to v6.4, FUSE up to v6.8) is invisible to fork's early COW, so the
// store copies the page away from the I/O; FOLL_PIN (bios from v6.5: a7e689dd1c06, FUSE from
// v6.9: 738adade96b2) makes fork copy for the child instead.
describe('O_DIRECT pread into an anonymous buffer vs fork and a store to the buffer, every interleaving', () => {
  const FORK = 'dio-read-vs-fork.yaml';
  const cases: [string, string, boolean][] = [
    ['xfs', 'v6.3', true],
    ['xfs', 'v6.6', false],
    ['ext4', 'v5.10', true],
    ['ext4', 'v6.15', false],
    ['fuse', 'v6.6', true],
    ['fuse', 'v6.15', false],
  ];
  for (const [fs, version, diverges] of cases) {
    it(`${fs} ${version}: ${diverges ? 'FOLL_GET: GUP, fork, then the store copies the page away from the I/O (pinned-page-diverged)' : 'FOLL_PIN: fork copies the pinned page for the child, nothing diverges'}`, () => {
      const r = exploreOn(catalog, FORK, fs, 'nvdimm', version);
      expect(r.complete).toBe(true);
      expect(r.violations.map((v) => v.invariant)).toEqual(diverges ? ['pinned-page-diverged'] : []);
      if (!diverges) return expect(r.outcome).toBe('completed');
      const v = r.violations[0]!;
      // the breaking order: the read's GUP, the fork, then the parent's COW, all while the I/O is in flight
      const who = fs === 'fuse' ? 'fuse' : 'bio';
      expect(inOrder(v.trace, [new RegExp(`gup\\.pin .*${who}\\(pread\\(f, 0, 4096, O_DIRECT\\)\\)@0`), /fork parent=init child=child/, /pte\.set mm=init .*write=true/])).toBe(true);
      expectReplays(catalog, FORK, { arch: 'x86', fs, driver: 'nvdimm', version, features: {} }, r);
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

