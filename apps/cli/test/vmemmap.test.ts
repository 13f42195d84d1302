import { join } from 'node:path';
import { vmemmapPopulator, type ArchPlugin, type PluginCatalog } from '@daxlab/core';
import { arm64 } from '@daxlab/arch-arm64';
import { x86, X86_MMU } from '@daxlab/arch-x86';
import { describe, expect, it } from 'vitest';
import { builtinCatalog } from '../src/catalog.js';
import { vmemmapReport } from '../src/commands/vmemmap.js';
import { main } from '../src/main.js';
import { memoryIo, tempTree } from './helpers.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const TiB = 1024 * GiB;

async function cli(args: string[], catalog?: PluginCatalog) {
  const io = memoryIo(process.cwd());
  const code = await main(['node', 'daxlab', ...args], io, catalog ? { catalog } : {});
  return { code, out: io.out(), err: io.err() };
}
async function json(args: string[]) {
  const r = await cli([...args, '--json']);
  expect(r.err).toBe('');
  return { code: r.code, report: JSON.parse(r.out) as Record<string, unknown> };
}

describe('daxlab vmemmap --json (SCENARIOS.md shape)', () => {
  it('x86, 2 MiB compound: 6 of 8 vmemmap pages saved, 128 struct pages initialised (4917f55b4ef9, 6fd3620b3428)', async () => {
    const { code, report } = await json(['vmemmap', '--arch', 'x86', '--size', '2MiB', '--align', '2MiB']);
    expect(code).toBe(0);
    expect(report).toMatchObject({ arch: 'x86', pageSize: 4096, structPageSize: 64, size: 2 * MiB, align: 2 * MiB, altmap: false, optimized: true, structPages: 512, structPagesInitialized: 128, vmemmapPages: 2, vmemmapBytes: 8 * KiB, savedPages: 6 });
    for (const key of ['arch', 'pageSize', 'structPageSize', 'size', 'align', 'altmap', 'optimized', 'structPages', 'structPagesInitialized', 'vmemmapPages', 'vmemmapBytes', 'savedPages']) expect(report).toHaveProperty(key);
  });

  it('x86, 1 GiB compound (PUD devdax): 4094 saved, 128 initialised instead of 262144', async () => {
    const { report } = await json(['vmemmap', '--arch', 'x86', '--size', '1GiB', '--align', '1GiB']);
    expect(report).toMatchObject({ optimized: true, structPages: 262144, structPagesInitialized: 128, vmemmapPages: 2, savedPages: 4094 });
  });

  it('x86 v6.6 vs v5.10 on 1 TiB of 2 MiB compounds: 4 GiB vs 16 GiB ("lose 4G instead of 16G")', async () => {
    expect((await json(['vmemmap', '--arch', 'x86', '--size', '1TiB', '--align', '2MiB', '--kernel', 'v6.6'])).report.vmemmapBytes).toBe(4 * GiB);
    expect((await json(['vmemmap', '--arch', 'x86', '--size', '1TiB', '--align', '2MiB', '--kernel', 'v5.10'])).report).toMatchObject({ optimized: false, vmemmapBytes: 16 * GiB, structPagesInitialized: 268435456 });
  });

  it('--feature overrides the preset: vmemmap-optimize=off on v6.6', async () => {
    const { report } = await json(['vmemmap', '--arch', 'x86', '--size', '2GiB', '--align', '2MiB', '--kernel', 'v6.6', '--feature', 'vmemmap-optimize=off']);
    expect(report).toMatchObject({ optimized: false, vmemmapBytes: 32 * MiB, kernel: { version: 'v6.6', features: { 'vmemmap-optimize': 'off' } } });
  });

  it('--altmap lays the memmap out as nd_pfn_init(): x86 2 GiB at 2 MiB, reserve 2, free 8702, all 8192 pages on the device', async () => {
    const { report } = await json(['vmemmap', '--arch', 'x86', '--size', '2GiB', '--align', '2MiB', '--altmap']);
    expect(report).toMatchObject({ altmap: true, optimized: false, vmemmapPages: 8192, vmemmapBytes: 32 * MiB, structPagesInitialized: 524286, altmapLayout: { reserve: 2, free: 8702 }, ramPages: 0, altmapPages: 8192, altmapAlignPages: 510 });
  });

  it('arm64 per page size: 64K 2 GiB at 512 MiB costs 32 pages; unguarded v6.3 optimises 4K 2 MiB compounds', async () => {
    expect((await json(['vmemmap', '--arch', 'arm64', '--page-size', '64KiB', '--size', '2GiB', '--align', '512MiB'])).report).toMatchObject({ pageSize: 65536, optimized: false, vmemmapPages: 32, vmemmapBytes: 2 * MiB, structPagesInitialized: 32768 });
    expect((await json(['vmemmap', '--arch', 'arm64', '--size', '2GiB', '--align', '2MiB', '--kernel', 'v6.3'])).report).toMatchObject({ optimized: true, vmemmapPages: 2048, structPagesInitialized: 131072 });
    expect((await json(['vmemmap', '--arch', 'arm64', '--size', '2GiB', '--align', '2MiB', '--kernel', 'v6.6'])).report).toMatchObject({ optimized: false, vmemmapPages: 8192 });
  });

  it('64 TiB answers by arithmetic (no loop over pages or sections): 1 TiB of struct pages at 4K, 2 pages per 1 GiB compound', async () => {
    expect((await json(['vmemmap', '--arch', 'x86', '--size', '64TiB', '--align', '4KiB'])).report).toMatchObject({ vmemmapBytes: TiB, sections: 524288, structPages: 2 ** 34 });
    expect((await json(['vmemmap', '--arch', 'x86', '--size', '64TiB', '--align', '1GiB'])).report).toMatchObject({ vmemmapPages: 2 * 65536, savedPages: 4094 * 65536 });
  });

  it('an alignment the arch does not offer still answers, flagged (arm64 4K has no 1 GiB devdax)', async () => {
    expect((await json(['vmemmap', '--arch', 'arm64', '--size', '2GiB', '--align', '1GiB'])).report).toMatchObject({ alignOffered: false, optimized: false, vmemmapPages: 8192 });
  });
});

describe('daxlab vmemmap table, oops and errors', () => {
  it('--help says what the shared kernel flags mean here', async () => {
    const r = await cli(['vmemmap', '--help']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/--arch <name> +architecture \(required\)/);
    expect(r.out).toMatch(/--fs <name> +ignored/);
  });

  it('prints a table by default', async () => {
    const r = await cli(['vmemmap', '--arch', 'x86', '--size', '1GiB', '--align', '1GiB']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^arch +x86 \(PAGE_SIZE 4KiB, struct page 64 B\)$/m);
    expect(r.out).toMatch(/^saved pages +4,094$/m);
    expect(r.out).toMatch(/^initialised +128 \(compound_nr_pages 128\)$/m);
  });

  it('an arch whose vmemmap is not in init_mm oopses on the unguarded compound path: the oops is printed, exit 1', async () => {
    const noInitMm: ArchPlugin = {
      ...x86(),
      name: '@test/no-init-mm',
      arch: 'bolted',
      mmu: { ...X86_MMU, arch: 'bolted' },
      populator: vmemmapPopulator({ vmemmapInInitMm: false, optsInToDaxVmemmapOptimization: () => false, backing: () => ({ blockSize: 16 * MiB, useAltmap: true, onAltmapFailure: 'ram', via: 'bolted blocks' }) }),
    };
    const base = builtinCatalog();
    const catalog: PluginCatalog = { ...base, arch: { ...base.arch, bolted: () => noInitMm } };
    const bad = await cli(['vmemmap', '--arch', 'bolted', '--size', '2GiB', '--align', '2MiB', '--kernel', 'v6.3'], catalog);
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/^outcome +kernel oops$/m);
    expect(bad.out).toMatch(/vmemmap_populate_compound_pages/);
    const fixed = await cli(['vmemmap', '--arch', 'bolted', '--size', '2GiB', '--align', '2MiB', '--kernel', 'v6.6', '--json'], catalog);
    expect(fixed.code).toBe(0);
    expect(JSON.parse(fixed.out)).toMatchObject({ outcome: 'completed', optimized: false, vmemmapBytes: 32 * MiB, via: ['bolted blocks'] });
  });

  it('bad flags: one line naming the flag and the fix, exit 2', async () => {
    const cases: [string[], RegExp][] = [
      [['vmemmap', '--size', '1GiB', '--align', '2MiB'], /^error: --arch is required\nhint: arches: x86, arm64/],
      [['vmemmap', '--arch', 'x86', '--align', '2MiB'], /^error: --size is required\n/],
      [['vmemmap', '--arch', 'x86', '--size', '1GiB'], /^error: --align is required\n/],
      [['vmemmap', '--arch', 'sparc', '--size', '1GiB', '--align', '2MiB'], /^error: --arch: unknown value 'sparc'/],
      [['vmemmap', '--arch', 'x86', '--size', 'lots', '--align', '2MiB'], /^error: --size: 'lots' is not a size/],
      [['vmemmap', '--arch', 'x86', '--size', '1GiB', '--align', '3MiB'], /^error: --align 3MiB: an alignment is a power of two/],
      [['vmemmap', '--arch', 'x86', '--size', '3MiB', '--align', '2MiB'], /^error: --size 3MiB: a device-dax range is a whole number of its alignment \(2MiB\)/],
      [['vmemmap', '--arch', 'x86', '--size', '0', '--align', '2MiB'], /^error: --size 0B: a device has a positive size/],
      [['vmemmap', '--arch', 'arm64', '--page-size', '8KiB', '--size', '1GiB', '--align', '2MiB'], /^error: --page-size 8KiB: .*use 4KiB, 16KiB or 64KiB/],
      [['vmemmap', '--arch', 'x86', '--size', '1GiB', '--align', '2MiB', '--feature', 'vmemmap-optimize=always'], /^error: --feature.vmemmap-optimize: 'always' is not a value/],
    ];
    for (const [args, err] of cases) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err, args.join(' ')).toMatch(err);
      expect(r.err).not.toMatch(/\n {4}at /);
    }
  });

  it('an altmap too small for the range: nd_pfn_init has no room, exit 1 with the reason', async () => {
    // 2 MiB namespace at 2 MiB alignment: info block + memmap round up to 2 MiB = the whole namespace
    const r = await cli(['vmemmap', '--arch', 'x86', '--size', '2MiB', '--align', '2MiB', '--altmap']);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^error +ENXIO: nd_pfn_init: a 2MiB namespace has no room for data/m);
  });

  it('an arch loaded with --plugin answers through its own populator (figures without core\'s detail)', async () => {
    const toy = join(import.meta.dirname, 'fixtures', 'toy-arch.mjs');
    const r = await cli(['vmemmap', '--plugin', toy, '--arch', 'toy', '--size', '1GiB', '--align', '2MiB', '--json']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    // toy-arch.mjs: one 64-byte struct page per 4 KiB page, all initialised, never optimised
    expect(JSON.parse(r.out)).toMatchObject({ arch: 'toy', optimized: false, structPages: 262144, structPagesInitialized: 262144, vmemmapPages: 4096, vmemmapBytes: 16 * MiB, sections: null, via: [] });
  });

  it('vmemmapReport works on any arch plugin object (the docs table and the bench use it)', () => {
    const r = vmemmapReport(arm64({ pageSize: '16KiB' }), { size: 128 * GiB, align: 32 * MiB, version: 'latest' });
    // 128 GiB of 16K pages = 8 Mi struct pages = 512 MiB = 32768 pages of 16 KiB
    expect(r).toMatchObject({ vmemmapPages: 32768, vmemmapBytes: 512 * MiB, structPagesInitialized: 8388608, sections: 1024 });
  });
});

describe('check: { vmemmap } reads the model\'s figures', () => {
  const scenario = (name: string, kernel: string, probe: string, equals: string) =>
    `name: ${name}\nkernel: ${kernel}\nsteps:\n  - probe: ${probe}\n  - check: { vmemmap: { device: d }, equals: ${equals} }\n`;
  it.each([
    // x86 PUD devdax: 2 compounds x 2 pages; 2 x 128 initialised
    ['x86-pud-devdax', '{ arch: x86, driver: devdax, version: latest }', '{ size: 2GiB, align: 1GiB, as: d }', '{ bytes: 16KiB, pages: 4, structPagesInitialized: 256 }'],
    // arm64 16K: base pages, never optimised after the fix: 2 GiB = 131072 struct pages = 512 x 16K
    ['arm64-16k-devdax', '{ arch: arm64, pageSize: 16KiB, driver: devdax, version: v6.6 }', '{ size: 2GiB, align: 32MiB, as: d }', '{ bytes: 8MiB, pages: 512, structPagesInitialized: 131072 }'],
    // arm64 4K on v6.3: the unguarded compound path, 2 of 8 pages per 2 MiB compound
    ['arm64-unguarded', '{ arch: arm64, driver: devdax, version: v6.3 }', '{ size: 2GiB, align: 2MiB, as: d }', '{ bytes: 8MiB, pages: 2048, structPagesInitialized: 131072 }'],
    // x86 pmem with the memmap on the device: 16 PMD blocks, all but the 2 info-block pfns initialised
    ['x86-pmem-altmap', '{ arch: x86, driver: nvdimm, version: latest }', '{ driver: nvdimm, size: 2GiB, altmap: true, as: d }', '{ bytes: 32MiB, pages: 8192, structPagesInitialized: 524286 }'],
    // arm64 64K pmem, memmap on the device: 32 base pages of the altmap; the info block is one 64K pfn
    ['arm64-64k-pmem-altmap', '{ arch: arm64, pageSize: 64KiB, driver: nvdimm, version: latest }', '{ driver: nvdimm, size: 2GiB, altmap: true, as: d }', '{ bytes: 2MiB, pages: 32, structPagesInitialized: 32767 }'],
  ])('%s', async (name, kernel, probe, equals) => {
    const dir = tempTree({ [`${name}.yaml`]: scenario(name, kernel, probe, equals) });
    const io = memoryIo(dir);
    const code = await main(['node', 'daxlab', 'run', join(dir, `${name}.yaml`)], io);
    expect(io.err()).toBe('');
    expect(io.out()).toMatch(/pass/);
    expect(code).toBe(0);
  });
});
