import { PRESETS, runScenario, type CellResult } from '@daxlab/core';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { builtinCatalog } from '../src/catalog.js';
import { collectScenarioFiles, LIBRARY_DIR, loadScenarios } from '../src/scenarios.js';

// Seed 003 end to end through the built-in catalog, judged here independently of the scenarios'
// own expect rules: which (arch, release) oopses, which completes, which cannot be built.

const catalog = builtinCatalog();
const dir = join(LIBRARY_DIR, 'seed-003');
const scenario = (name: string) => {
  const l = loadScenarios(collectScenarioFiles([dir], dir), dir).find((x) => x.ok && x.scenario.name === name);
  if (!l || !l.ok) throw new Error(`no scenario ${name}`);
  return l.scenario;
};
const run = (name: string, arch: string, version: string, pageSize?: number): CellResult =>
  runScenario(scenario(name), { arch, ...(pageSize ? { pageSize } : {}), fs: null, driver: 'devdax', version, features: {} }, catalog);

describe('seed 003: the devdax probe on ppc64 hash (87a7ae75d738)', () => {
  it('ppc-hash 64K oopses exactly on the releases with the unguarded compound path (v6.1, v6.3: 4917f55b4ef9 was v5.19)', () => {
    const outcomes = Object.fromEntries(PRESETS.map((p) => [p.name, run('seed-003-devdax-probe', 'ppc-hash', p.name).outcome]));
    expect(outcomes).toEqual({ 'v5.4': 'completed', 'v5.10': 'completed', 'v6.1': 'oops', 'v6.3': 'oops', 'v6.6': 'completed', 'v6.15': 'completed', latest: 'completed' });
    const oops = run('seed-003-devdax-probe', 'ppc-hash', 'v6.3');
    expect(oops.violations.map((v) => v.invariant)).toEqual(['kernel-oops']);
    expect(oops.status).toBe('pass');
  });

  it('x86 and arm64 complete on every release they can build; hash with 4K pages (no THP: PAGE_SIZE alignment only) too', () => {
    for (const p of PRESETS) {
      expect(run('seed-003-devdax-probe', 'x86', p.name)).toMatchObject({ status: 'pass', outcome: 'completed' });
      expect(run('seed-003-devdax-probe', 'ppc-hash', p.name, 4096)).toMatchObject({ status: 'pass', outcome: 'completed' });
      const arm = run('seed-003-devdax-probe', 'arm64', p.name);
      expect(arm.status).toBe('pass');
      expect(arm.outcome).toBe(p.name === 'v5.4' ? 'unsupported' : 'completed');
    }
  });

  it('with the memmap on the device (altmap) no release takes the compound path: hash completes on v6.1 and v6.3', () => {
    for (const v of ['v6.1', 'v6.3']) expect(run('seed-003-devdax-altmap', 'ppc-hash', v)).toMatchObject({ status: 'pass', outcome: 'completed' });
  });

  it('s390 cannot build device-dax in any release, with the Kconfig reason', () => {
    for (const p of PRESETS) {
      const r = run('seed-003-devdax-probe', 's390', p.name);
      expect(r.outcome).toBe('unsupported');
      expect(r.reason).toMatch(p.name === 'latest' ? /configurable since the devmap removal/ : /depend on ARCH_HAS_PTE_DEVMAP/);
    }
  });
});
