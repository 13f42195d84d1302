import { describe, expect, it } from 'vitest';
import { testArch } from '../testing.js';
import { parseScenario } from './load.js';
import { runScenario, type PluginCatalog } from './run.js';

const catalog: PluginCatalog = { arch: { x86: () => testArch() }, fs: {}, driver: {} };
const req = { arch: 'x86', fs: null, driver: null, version: 'latest', features: {} };

describe('bad input met while a step runs', () => {
  it('names the file, the step and the field, and keeps the fix', () => {
    // 2 pages mapped; the munmap asks for 4 pages from page 1: only the run can tell (the schema
    // does not know the mapping's size)
    const s = parseScenario('name: s\nsetup:\n  - mmap: { anon: true, length: 8KiB, write: true, as: m }\nsteps:\n  - munmap: { map: m, offset: 4KiB, length: 16KiB }\n', 'dir/s.yaml');
    const r = runScenario(s, req, catalog);
    expect(r.status).toBe('error');
    expect(r.reason).toBe("dir/s.yaml: steps[0].munmap.length: range of 4 page(s) at page 1 runs outside mapping 'm' (2 pages): give an offset and length inside it");
  });
});
