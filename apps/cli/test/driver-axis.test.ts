import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../src/main.js';
import { LIBRARY_DIR } from '../src/scenarios.js';
import { memoryIo } from './helpers.js';

interface Cell {
  readonly kernel: { readonly driver: string };
  readonly status: string;
  readonly reason: string | null;
}

/**
 * The driver axis applied to a filesystem scenario: only a pmem namespace in fsdax mode can carry
 * `mount -o dax` (fs_dax_get_by_bdev() finds no dax_device behind anything else), so a matrix that
 * forces device-dax or a mirror device onto it gets unsupported cells that say why, not failures.
 */
describe('matrix --driver on a filesystem scenario', () => {
  it('nvdimm runs it; devdax and hmm are unsupported with the reason', async () => {
    const io = memoryIo(process.cwd());
    const file = join(LIBRARY_DIR, 'fs', 'dma-vs-truncate-get.yaml');
    const code = await main(['node', 'daxlab', 'matrix', file, '--arch', 'x86', '--fs', 'xfs', '--driver', 'nvdimm,devdax,hmm', '--kernel', 'v6.6', '--jobs', '1', '--reporter', 'json'], io);
    const cells = (JSON.parse(io.out()) as { cells: Cell[] }).cells;
    const byDriver = Object.fromEntries(cells.map((c) => [c.kernel.driver, c]));
    expect(Object.keys(byDriver).sort()).toEqual(['devdax', 'hmm', 'nvdimm']);
    expect(byDriver.nvdimm!.status).toBe('pass');
    expect(byDriver.devdax!.status).toBe('unsupported');
    // the device-dax probe itself succeeds (4 KiB is a device-dax alignment); mount refuses
    expect(byDriver.devdax!.reason).toMatch(/mount: dev0 has a generic dev_pagemap, not fsdax: mount -o dax needs a pmem namespace in fsdax mode/);
    expect(byDriver.hmm!.status).toBe('unsupported');
    // the mirror device is refused earlier, at the probe's align
    expect(byDriver.hmm!.reason).toMatch(/probe: probe dev0: hmm device memory has no alignment/);
    expect(code).toBe(0);
  });
});
