import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadScenarioFile, PRESETS, runScenario, type PluginCatalog } from '@daxlab/core';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { describe, expect, it } from 'vitest';
import { ext4 } from '../src/index.js';
import { testArch } from '@daxlab/core/testing';

/**
 * apps/cli/scenarios/dax-inode on ext4, on every preset, with their own rules and without them
 * (the steps' expected errors stay: they are the kernel's answers). Verdicts per release, as
 * docs/dax-tests.md's "DAX per inode: refusals" lists them: every scenario passes from v5.10;
 * on v5.4 the ext4 ones pass (their dax=inode steps are guarded by `when`), rename-keeps-dax is
 * unsupported (dax=inode is v5.8: EINVAL, "Unrecognized mount option").
 */
const dir = fileURLToPath(new URL('../../../apps/cli/scenarios/dax-inode/', import.meta.url));
const files = readdirSync(dir).filter((f) => f.endsWith('.yaml') && !f.startsWith('fuse-')).sort();
const catalog: PluginCatalog = { arch: { x86: () => testArch() }, fs: { ext4: () => ext4() }, driver: { nvdimm: () => nvdimm() } };

describe('dax-inode scenarios on ext4 per preset', () => {
  it('are the five ext4 ones of docs/dax-tests.md (the fuse- ones run in fs-fuse)', () => expect(files).toEqual(['ext4-data-journal-dax.yaml', 'ext4-inline-data-dax.yaml', 'ext4-journal-flag-dax.yaml', 'ext4-verity-dax.yaml', 'rename-keeps-dax.yaml']));
  for (const file of files) {
    const scenario = loadScenarioFile(join(dir, file), `dax-inode/${file}`);
    for (const p of PRESETS) {
      it(`${file} on ${p.name}`, () => {
        const k = { arch: 'x86', fs: 'ext4', driver: 'nvdimm', version: p.name, features: {} };
        const own = runScenario(scenario, k, catalog, { seed: 0 });
        const bare = runScenario({ ...scenario, expect: [] }, k, catalog, { seed: 0 });
        if (file === 'rename-keeps-dax.yaml' && p.name === 'v5.4') {
          expect({ status: own.status, reason: own.reason }).toEqual({ status: 'unsupported', reason: expect.stringMatching(/Unrecognized mount option/) });
          return;
        }
        expect({ status: own.status, failures: own.failures, reason: own.reason }).toEqual({ status: 'pass', failures: [], reason: null });
        expect(bare.status).toBe('pass');
      });
    }
  }
});
