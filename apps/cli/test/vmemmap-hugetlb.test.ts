import { describe, expect, it } from 'vitest';
import { builtinCatalog } from '../src/catalog.js';
import { hugetlbVmemmapReport } from '../src/commands/vmemmap.js';
import { main } from '../src/main.js';
import { memoryIo } from './helpers.js';

// `daxlab vmemmap --hugetlb`: HVO per arch plugin, page size, huge page size and release, through
// the arch plugins of the CLI's catalog. Figures from Documentation/mm/vmemmap_dedup.rst (struct
// pages of a PMD-level page fill 8 vmemmap pages whatever the granule, a 4K PUD-level page 4096;
// HVO keeps 1 from v5.18); verdicts from each arch's Kconfig history (vmemmap/hugetlb.ts and the
// plugins' hugetlbVmemmapOptIn).

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const catalog = builtinCatalog();
const ON = { 'hugetlb-free-vmemmap': true };

async function cli(args: string[]) {
  const io = memoryIo(process.cwd());
  const code = await main(['node', 'daxlab', 'vmemmap', ...args], io, {});
  return { code, out: io.out(), err: io.err() };
}

/** hugetlbVmemmapReport() on a catalog arch, HVO switched on. */
const hvo = (arch: string, size: number, version: string, pageSize?: number) =>
  hugetlbVmemmapReport(catalog.arch[arch]!(pageSize ? { pageSize } : {}), { hugetlbSize: size, version, features: ON });

describe('daxlab vmemmap --hugetlb --json', () => {
  it('x86 2 MiB: 512 struct pages in 8 vmemmap pages; HVO is off by default, so nothing is freed but 7 could be', async () => {
    const r = await cli(['--arch', 'x86', '--hugetlb', '2MiB', '--pages', '4', '--json']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.out);
    expect(report).toMatchObject({ arch: 'x86', hugetlbSize: 2 * MiB, structPages: 512, vmemmapPages: 8, vmemmapBytes: 32 * KiB, optimizable: true, freeablePages: 7, enabled: false, optimized: false, freedPages: 0, keptPages: 8 });
    expect(report.pool).toEqual({ pages: 4, vmemmapPages: 32, vmemmapBytes: 128 * KiB, savedPages: 0, savedBytes: 0, pteTablePages: 0 });
  });

  it('x86 1 GiB with hugetlb_free_vmemmap=on: 4095 of 4096 freed ("free (PAGE_SIZE - 1) vmemmap pages"); 1024 of them free 16380 MiB', async () => {
    const r = await cli(['--arch', 'x86', '--hugetlb', '1GiB', '--pages', '1024', '--feature', 'hugetlb-free-vmemmap=true', '--json']);
    const report = JSON.parse(r.out);
    expect(report).toMatchObject({ vmemmapPages: 4096, reservePages: 1, optimized: true, freedPages: 4095, keptPages: 1, kernel: { version: 'latest', features: ON } });
    expect(report.pool).toMatchObject({ vmemmapPages: 1024, savedPages: 1024 * 4095, savedBytes: 16380 * MiB });
    // x86 maps RAM's memmap with 2 MiB PMDs: HVO splits each into a PTE table; 1024 x 16 MiB of
    // vmemmap is 8192 PMDs (the early cover letter's "8 pages for page tables" per 1GB page)
    expect(report.pool.pteTablePages).toBe(8192);
  });

  it('the table says why nothing is freed, and how to switch HVO on', async () => {
    const off = await cli(['--arch', 'x86', '--hugetlb', '2MiB']);
    expect(off.out).toContain('--feature hugetlb-free-vmemmap=true frees 7 pages per huge page');
    const ppc = await cli(['--arch', 'ppc-hash', '--hugetlb', '16MiB']);
    expect(ppc.out).toContain('not available: powerpc never selects ARCH_WANT_OPTIMIZE_HUGETLB_VMEMMAP');
    // 16 MiB of 64K pages: 256 struct pages = 16 KiB, a quarter of one vmemmap page
    expect(ppc.out).toContain('16KiB of vmemmap (0.25 pages)');
  });
});

describe('PTE tables of the PMD split (vmemmap_split_pmd())', () => {
  it('1 TiB of 2 MiB pages: 8192 tables (32 MiB) when contiguous, the early cover letter\'s best case; none where the memmap is PTE-mapped (arm64 64K)', () => {
    // "~11GB (2MB hugepage, the worst case is 10GB while the best is 12GB)": 524288 pages x 6 pages
    // = 12 GiB freed (v5.14), less 32 MiB of tables at best, less one table per page (2 GiB) at worst
    const x = hugetlbVmemmapReport(catalog.arch.x86!({}), { hugetlbSize: 2 * MiB, pages: 524288, version: 'latest', features: ON });
    expect(x.pool).toMatchObject({ savedBytes: 14 * GiB, pteTablePages: 8192 });
    const a = hugetlbVmemmapReport(catalog.arch.arm64!({ pageSize: 64 * KiB }), { hugetlbSize: 512 * MiB, pages: 64, version: 'v6.1', features: ON });
    expect(a.pool).toMatchObject({ savedPages: 64 * 7, pteTablePages: 0 });
    // arm64 4K and s390 (1 MiB segment frames) map it with PMD leaves
    expect(hugetlbVmemmapReport(catalog.arch.arm64!({}), { hugetlbSize: 2 * MiB, pages: 64, version: 'v6.1', features: ON }).pool.pteTablePages).toBe(1);
    // s390: 64 pages of 1 MiB = 1 MiB of vmemmap = one 1 MiB segment
    expect(hugetlbVmemmapReport(catalog.arch.s390!({}), { hugetlbSize: MiB, pages: 64, version: 'v6.6', features: ON }).pool.pteTablePages).toBe(1);
  });
});

describe('--memmap-on-memory: pages in memory hot-added with its vmemmap self-hosted', () => {
  it('from v6.0 such a page is not optimised (PageVmemmapSelfHosted: -ENOTSUPP), the others are; the table says why', async () => {
    const r = await cli(['--arch', 'x86', '--hugetlb', '2MiB', '--pages', '2', '--memmap-on-memory', '--feature', 'hugetlb-free-vmemmap=true', '--json']);
    expect(JSON.parse(r.out)).toMatchObject({ memmapOnMemory: true, optimizable: true, enabled: true, optimized: false, freedPages: 0, pool: { vmemmapPages: 16, savedPages: 0 } });
    const table = await cli(['--arch', 'x86', '--hugetlb', '2MiB', '--memmap-on-memory', '--feature', 'hugetlb-free-vmemmap=true']);
    expect(table.out).toContain('on, but not for these pages: its vmemmap is self-hosted');
  });

  it('is a usage error without --hugetlb', async () => {
    const r = await cli(['--arch', 'x86', '--size', '2GiB', '--align', '2MiB', '--memmap-on-memory']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('--memmap-on-memory places hugetlb pages: it goes with --hugetlb <size>');
  });
});

describe('per arch and release (HVO switched on)', () => {
  it('x86-64: every release from v5.14 (none of the v5.4 / v5.10 presets has hugetlb_vmemmap.c)', () => {
    for (const v of ['v5.4', 'v5.10']) expect(hvo('x86', 2 * MiB, v).refusal).toContain('no HVO before v5.14');
    for (const v of ['v6.1', 'v6.3', 'v6.6', 'v6.15', 'latest']) expect(hvo('x86', 2 * MiB, v)).toMatchObject({ optimized: true, freedPages: 7 });
  });

  it('arm64: from v5.19 (1e63ac088f20) until 060a2c92d1b6 removed it for break-before-make (v6.3): v6.1 optimises, v6.3 and later do not', () => {
    expect(hvo('arm64', 2 * MiB, 'v6.1')).toMatchObject({ optimized: true, freedPages: 7 });
    for (const v of ['v6.3', 'v6.6', 'latest']) expect(hvo('arm64', 2 * MiB, v).refusal).toContain('060a2c92d1b6');
    expect(hvo('arm64', 2 * MiB, 'v5.10').refusal).toContain('no HVO before v5.14');
    // the release check comes first, the arch's own history after: v5.14-v5.18 is x86-only
    expect(catalog.arch.arm64!({}).populator.hugetlbVmemmapOptIn!('v5.18')).toContain('only from v5.19');
  });

  it('arm64 v6.1, every size of vmemmap_dedup.rst\'s table: PMD-level 8 pages (7 freed), contiguous sizes by their struct-page size', () => {
    // 4K: 64K (cont-PTE: 1 KiB of struct pages), 2M (PMD), 32M (cont-PMD: 128 pages), 1G (PUD: 4096)
    expect([64 * KiB, 2 * MiB, 32 * MiB, GiB].map((s) => hvo('arm64', s, 'v6.1', 4 * KiB).freedPages)).toEqual([0, 7, 127, 4095]);
    // 16K: 2M (cont-PTE: 8 KiB, half a page), 32M (PMD), 1G (cont-PMD: 256 pages)
    expect([2 * MiB, 32 * MiB, GiB].map((s) => hvo('arm64', s, 'v6.1', 16 * KiB).freedPages)).toEqual([0, 7, 255]);
    // 64K: 2M (cont-PTE: 2 KiB), 512M (PMD), 16G (cont-PMD: 256 pages)
    expect([2 * MiB, 512 * MiB, 16 * GiB].map((s) => hvo('arm64', s, 'v6.1', 64 * KiB).freedPages)).toEqual([0, 7, 255]);
    expect(hvo('arm64', 2 * MiB, 'v6.1', 64 * KiB).refusal).toContain('nothing to free');
  });

  it('s390: from v6.2 (00a34d5a99c0) until the 2025 disable (v6.18): v6.3-v6.15 optimise, v6.1 and latest do not', () => {
    // 1 MiB (EDAT1 segment): 256 struct pages = 16 KiB = 4 vmemmap pages, 3 freed; 2 GiB: 8192, 8191 freed
    for (const v of ['v6.3', 'v6.6', 'v6.15']) expect([hvo('s390', MiB, v).freedPages, hvo('s390', 2 * GiB, v).freedPages]).toEqual([3, 8191]);
    expect(hvo('s390', MiB, 'v6.1').refusal).toContain('only from v6.2');
    expect(hvo('s390', MiB, 'latest').refusal).toContain('v6.18');
  });

  it('ppc64 hash: never (no powerpc Kconfig selects HVO; hash vmemmap has no init_mm page tables to remap)', () => {
    for (const v of ['v6.1', 'v6.6', 'latest']) for (const s of [16 * MiB, 16 * GiB]) expect(hvo('ppc-hash', s, v)).toMatchObject({ optimizable: false, freedPages: 0 });
  });
});

describe('bad input', () => {
  it('a size the arch does not offer, device flags with --hugetlb, --pages without it, a bad --pages: usage errors naming the flag', async () => {
    const cases: [string[], string][] = [
      [['--arch', 'x86', '--hugetlb', '4MiB'], '--hugetlb 4MiB: not a hugetlb page size of x86 with 4KiB pages (arch_hugetlb_valid_size(): 2MiB, 1GiB)'],
      [['--arch', 'x86', '--hugetlb', '2MiB', '--align', '2MiB'], '--hugetlb asks about hugetlb pages; --align describes a device-dax range'],
      [['--arch', 'x86', '--size', '2GiB', '--align', '2MiB', '--pages', '2'], '--pages counts hugetlb pages: it goes with --hugetlb <size>'],
      [['--arch', 'x86', '--hugetlb', '2MiB', '--pages', 'many'], '--pages many: nr_hugepages is a whole number of pages'],
      [['--arch', 'x86', '--hugetlb', 'big'], '--hugetlb'],
    ];
    for (const [args, message] of cases) {
      const r = await cli(args);
      expect(r.code).toBe(2);
      expect(r.err).toContain(message);
      expect(r.err).not.toMatch(/\n\s+at /); // no stack trace
    }
  });
});

describe('the library scenarios (apps/cli/scenarios/hugetlb)', () => {
  it('hvo-pool.yaml, hvo-sysctl.yaml and hvo-restore-enomem.yaml pass on every arch, page size, preset and hugetlb-free-vmemmap value', async () => {
    const io = memoryIo(process.cwd());
    const files = ['hvo-pool.yaml', 'hvo-sysctl.yaml', 'hvo-restore-enomem.yaml'].map((f) => new URL(`../scenarios/hugetlb/${f}`, import.meta.url).pathname);
    const code = await main(['node', 'daxlab', 'matrix', ...files, '--page-size', 'all', '--feature', 'hugetlb-free-vmemmap=all', '--jobs', '1', '--quiet'], io, {});
    // hvo-pool and hvo-sysctl: 7 presets x 2 values x 7 (x86, arm64 4K/16K/64K, s390, ppc-hash
    // 4K/64K) = 98 each; restore-enomem: x86 only, 14
    expect(io.out()).toContain('210 cells: 210 pass, 0 fail, 0 unsupported, 0 error');
    expect(code).toBe(0);
  });
});
