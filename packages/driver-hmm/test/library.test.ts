import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exploreScenario, loadScenarioFile, PRESETS, runScenario, type PluginCatalog } from '@daxlab/core';
import { x86 } from '@daxlab/arch-x86';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { xfs } from '@daxlab/fs-xfs';
import { describe, expect, it } from 'vitest';
import { hmm } from '../src/index.js';

/**
 * The built-in hmm scenarios (apps/cli/scenarios/hmm), each mirroring a hmm-tests.c case: every
 * preset, plus the two seed-000/001 features flipped on kernels of the other era. Device-coherent
 * memory arrived in v6.0, so its scenarios are refused on v5.4 and v5.10 with that reason.
 */
const dir = fileURLToPath(new URL('../../../apps/cli/scenarios/hmm/', import.meta.url));
const files = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();
const catalog: PluginCatalog = { arch: { x86: (o) => x86(o.pageSize !== undefined ? { pageSize: o.pageSize } : {}) }, fs: { xfs: () => xfs() }, driver: { hmm: () => hmm(), nvdimm: () => nvdimm() } };

const kernels: readonly [string, Record<string, string | boolean>][] = [
  ...PRESETS.map((p): [string, Record<string, string | boolean>] => [p.name, {}]),
  // the extra reference alone, and migrate_device_range alone, on kernels of the other era
  ['v6.6', { 'devmem-extra-ref': true }],
  ['v6.6', { 'migrate-device-range': false }],
  ['v5.10', { 'migrate-device-range': true }],
  ['v5.10', { 'devmem-extra-ref': false, 'memunmap-waits-page-refs': false }],
  // the do_swap_page reference alone, both ways
  ['v6.6', { 'device-fault-page-ref': false }],
  ['v5.10', { 'device-fault-page-ref': true }],
  // device-exclusive entries of the other era on each side of the v6.15 rework
  ['v6.15', { 'device-exclusive': 'rmap' }],
  ['v6.6', { 'device-exclusive': 'folio-walk' }],
];

describe('the hmm scenario library', () => {
  // docs/selftests.md "Coverage: hmm-tests.c": 21 scenarios of the device-private fixture (one
  // per covered case, anon_write_child twice: without and with migration, migrate_remap_fault
  // twice: without and with MREMAP_DONTUNMAP), 14 of the coherent one (file names end in
  // -coherent), and two that mirror no selftest case: extra-ref (seeds 000/001) and
  // fault-vs-migrate (the CVE-2022-3523 race)
  it('has one scenario per covered hmm-tests.c case and fixture', () => {
    // plus the THP cases of the device-private fixture (file names end in -thp): anon_write_huge,
    // anon_write_child (use_thp) without and with migration, migrate_partial_unmap_fault and
    // migrate_remap_fault (use_thp = 1; the latter without and with MREMAP_DONTUNMAP), and
    // migrate_anon_huge_empty, _zero, _free and _fault
    expect(files.filter((f) => f.endsWith('-thp.yaml')).length).toBe(10);
    // plus exclusive, exclusive_mprotect and exclusive_cow (make_device_exclusive(), v5.14: the
    // scenarios expect the refusal before; one file serves both fixtures, as for anon_read)
    // and (with shmem) migrate_shared in both fixtures, anon_write_child_shared, file_read and
    // file_write (/tmp on tmpfs), and anon_teardown (an explore-mode race)
    expect(files.filter((f) => !f.endsWith('-thp.yaml')).length).toBe(46);
    expect(files.filter((f) => f.startsWith('exclusive')).length).toBe(3);
    expect(files.filter((f) => f.includes('coherent')).length).toBe(15);
  });
  for (const file of files) {
    const scenario = loadScenarioFile(join(dir, file), `hmm/${file}`);
    const coherent = file.includes('coherent');
    for (const [version, features] of kernels) {
      it(`${scenario.name} on ${version} ${JSON.stringify(features)}`, () => {
        const req = { arch: 'x86', fs: scenario.kernel.fs ?? null, driver: 'hmm', version, features };
        // explore-mode scenarios are judged over every interleaving, as the matrix does
        const r = scenario.mode === 'explore' ? exploreScenario(scenario, req, catalog) : runScenario(scenario, req, catalog, { seed: 0 });
        if (coherent && (version === 'v5.4' || version === 'v5.10')) {
          expect({ status: r.status, reason: r.reason }).toEqual({ status: 'unsupported', reason: expect.stringMatching(/MEMORY_DEVICE_COHERENT arrived in v6\.0/) });
        } else if (file.includes('dontunmap') && version === 'v5.4') {
          expect({ status: r.status, reason: r.reason }).toEqual({ status: 'unsupported', reason: expect.stringMatching(/MREMAP_DONTUNMAP does not exist before v5\.7/) });
        } else if (file.startsWith('exclusive') && (version === 'v5.4' || version === 'v5.10')) {
          // make_device_exclusive() is v5.14: the scenarios expect the refusal
          expect({ status: r.status, outcome: r.outcome, reason: r.reason }).toEqual({ status: 'pass', outcome: 'unsupported', reason: expect.stringMatching(/make_device_exclusive\(\) arrived in v5\.14/) });
        } else expect({ status: r.status, failures: r.failures, reason: r.reason }).toEqual({ status: 'pass', failures: [], reason: null });
      });
    }
  }
});
