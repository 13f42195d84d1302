import { parseScenario, runScenario, type CellKernelRequest } from '@daxlab/core';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { builtinCatalog } from '../src/catalog.js';
import { LIBRARY_DIR } from '../src/scenarios.js';

// dax-tests row E10 (ndctl test/device-dax.c): the salted chunks written through the fsdax block
// device are read back through the device-dax instance at the same offsets only because both
// personalities put the data at the same nd_pfn_init() offset. The library scenario passes
// (docs/dax-tests.md asserts it per preset); these variants show the check is real.

const catalog = builtinCatalog();
const file = join(LIBRARY_DIR, 'ndctl/device-dax-2m.yaml');
const text = readFileSync(file, 'utf8');
const cell: CellKernelRequest = { arch: 'x86', pageSize: 4096, fs: null, driver: 'devdax', version: 'v6.6', features: {} };

function run(yaml: string) {
  return runScenario(parseScenario(yaml, file), cell, catalog);
}

describe('ndctl/device-dax-2m.yaml: the E10 data check', () => {
  it('passes as written (fsdax -M dev -a 2M, then devdax -M dev -a 2M: data at 4 MiB in both)', () => {
    expect(run(text).status).toBe('pass');
  });

  it('seeded with --map=mem, the fsdax data starts at ALIGN(8 KiB, 2 MiB) = 2 MiB while devdax -M dev puts it at 4 MiB: device-dax page 0 holds the chunk written at 2 MiB, and verify_data() fails', () => {
    const seeded = text.replace('- probe: { driver: nvdimm, size: 128MiB, align: 2MiB, altmap: true, as: dax0 }', '- probe: { driver: nvdimm, size: 128MiB, align: 2MiB, altmap: false, as: dax0 }');
    expect(seeded).not.toBe(text);
    const r = run(seeded);
    expect(r.status).toBe('fail');
    // device-dax page 0 = fsdax offset 4 MiB - 2 MiB; page 511 = fsdax offset 2 MiB + 511 * 4 KiB = 0x3ff000
    expect(r.failures).toContain("steps[13]: read 'salt+0x200000', expected 'salt+0x0'");
    expect(r.failures).toContain("steps[15]: read 'salt+0x3ff000', expected 'salt+0x1ff000'");
  });

  it('without the data kept across the mode change (the namespace probed anew), nothing written through /dev/pmem is there', () => {
    const fresh = text.replace('- reconfigure-namespace: { device: dax0, mode: devdax, align: 2MiB }', '- probe: { driver: devdax, size: 128MiB, align: 2MiB, altmap: true, as: dax1 }').replaceAll('device: dax0', 'device: dax1').replace('- pwrite: { device: dax1', '- pwrite: { device: dax0').replaceAll('- pwrite: { device: dax1', '- pwrite: { device: dax0');
    const r = run(fresh);
    expect(r.status).toBe('fail');
    expect(r.failures).toContain("steps[13]: read '', expected 'salt+0x0'");
  });
});
