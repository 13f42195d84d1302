import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadScenarioFile, PRESETS, resolveFeatures, ruleApplies, runScenario, type PluginCatalog } from '@daxlab/core';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { ext4 } from '@daxlab/fs-ext4';
import { xfs } from '@daxlab/fs-xfs';
import { describe, expect, it } from 'vitest';
import { fuse } from '../src/index.js';
import { testArch } from '@daxlab/core/testing';

/**
 * The built-in fs scenario family (apps/cli/scenarios/fs): every file on every filesystem, on
 * the presets of the three eras and on the feature variants the files have rules for, under the
 * default schedule (seed 0).
 */
const dir = fileURLToPath(new URL('../../../apps/cli/scenarios/fs/', import.meta.url));
const files = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();

const catalog: PluginCatalog = {
  arch: { x86: () => testArch() },
  fs: { xfs: () => xfs(), ext4: () => ext4(), fuse: () => fuse() },
  driver: { nvdimm: () => nvdimm() },
};

/** Presets, the third convention, and fixes applied to older kernels: every scenario must pass on these. */
const kernels: readonly [string, Record<string, string | boolean>][] = [
  ...PRESETS.map((p): [string, Record<string, string | boolean>] => [p.name, {}]),
  ['v6.15', { 'fsdax-refcount': 'entry-holds-ref' }],
  ['v6.6', { 'dax-busy-mapping-mapped-check': false }],
  ['v6.6', { 'fuse-break-whole-file': true }],
  ['v6.15', { 'fuse-break-whole-file': false }],
];

/** The bug variants of seed 004: a scenario that has rules for one is run with it. */
const variants: readonly [string, Record<string, string | boolean>][] = [
  ['v6.15', { 'dax-delete-entries-before-wait': true }],
  ['v6.6', { 'dax-delete-entries-before-wait': true }],
  ['v6.15', { 'dax-wait-refcount-one': true }],
  ['v6.6', { 'dax-wait-refcount-one': true }],
  ['v6.15', { 'fsdax-refcount': 'entry-holds-ref', 'dax-wait-refcount-one': true }],
  ['v6.15', { 'dax-insert-failure-cleanup': true }],
  ['v6.6', { 'dax-insert-failure-cleanup': true }],
  ['v6.15', { 'fsdax-refcount': 'entry-holds-ref', 'dax-insert-failure-cleanup': true }],
];

/** Scenarios whose subject is a shared extent: unsupported cells where the kernel cannot reflink. */
const ABOUT_REFLINK = ['fs-reflink-cow'];

describe('the fs scenario family on xfs, ext4 and fuse', () => {
  it('has scenarios', () => expect(files.length).toBeGreaterThan(5));
  for (const file of files) {
    const scenario = loadScenarioFile(join(dir, file), `fs/${file}`);
    const text = readFileSync(join(dir, file), 'utf8');
    const mine = variants.filter(([, f]) => Object.keys(f).some((name) => name.startsWith('dax-') && text.includes(name)));
    for (const fs of ['xfs', 'ext4', 'fuse']) {
      for (const [version, features] of [...kernels, ...mine]) {
        it(`${scenario.name} on ${fs} ${version} ${JSON.stringify(features)}`, () => {
          const r = runScenario(scenario, { arch: 'x86', fs, driver: 'nvdimm', version, features }, catalog, { seed: 0 });
          // virtio-fs DAX came with v5.10: older FUSE cells are refused with the reason
          if (fs === 'fuse' && version === 'v5.4') expect({ status: r.status, reason: r.reason }).toEqual({ status: 'unsupported', reason: expect.stringMatching(/arrived in v5\.10/) });
          // a scenario about reflink where the kernel has none: ext4 and FUSE (no ->remap_file_range), XFS before fsdax reflink
          else if (ABOUT_REFLINK.includes(scenario.name) && (fs !== 'xfs' || !resolveFeatures(version, features)['fsdax-reflink']))
            expect({ status: r.status, reason: r.reason }).toEqual({ status: 'unsupported', reason: expect.stringMatching(fs === 'xfs' ? /refuses to share DAX file .*\(EINVAL\)/ : /has no ->remap_file_range.*\(EOPNOTSUPP\)/) });
          else expect({ status: r.status, failures: r.failures, reason: r.reason }).toEqual({ status: 'pass', failures: [], reason: null });
        });
      }
    }
  }
});

describe('kernels the rules call correct stay correct under other schedules', () => {
  // `violations: none` claims no interleaving breaks an invariant: seeded random schedules sample that
  for (const file of files) {
    const scenario = loadScenarioFile(join(dir, file), `fs/${file}`);
    for (const fs of ['xfs', 'ext4', 'fuse']) {
      for (const [version, features] of kernels) {
        if (fs === 'fuse' && version === 'v5.4') continue;
        const desc = { arch: 'x86', fs, driver: 'nvdimm', version, features: resolveFeatures(version, { ...scenario.kernel.features, ...features }) };
        const rules = scenario.expect.filter((r) => ruleApplies(r, desc));
        if (rules.some((r) => r.violations && r.violations !== 'none')) continue;
        it(`${scenario.name} on ${fs} ${version} ${JSON.stringify(features)}, seeds 1-12`, () => {
          for (let seed = 1; seed <= 12; seed++) {
            const r = runScenario(scenario, { arch: 'x86', fs, driver: 'nvdimm', version, features }, catalog, { seed });
            expect(r.violations.map((v) => v.invariant), `seed ${seed}`).toEqual([]);
          }
        });
      }
    }
  }
});

describe('apps/cli/scenarios/dax-inode/fuse-*.yaml per preset (docs/dax-tests.md, "DAX per inode")', () => {
  const daxInode = fileURLToPath(new URL('../../../apps/cli/scenarios/dax-inode/', import.meta.url));
  for (const file of readdirSync(daxInode).filter((f) => f.startsWith('fuse-') && f.endsWith('.yaml'))) {
    const scenario = loadScenarioFile(join(daxInode, file), `dax-inode/${file}`);
    for (const p of PRESETS) {
      it(`${file} on ${p.name}: pass with and without its rules (n/a on v5.4: no virtio-fs DAX)`, () => {
        const k = { arch: 'x86', fs: 'fuse', driver: 'nvdimm', version: p.name, features: {} };
        const own = runScenario(scenario, k, catalog, { seed: 0 });
        if (p.name === 'v5.4') return expect(own.status).toBe('unsupported');
        expect({ status: own.status, failures: own.failures, reason: own.reason }).toEqual({ status: 'pass', failures: [], reason: null });
        expect(runScenario({ ...scenario, expect: [] }, k, catalog, { seed: 0 }).status).toBe('pass');
      });
    }
  }
});
