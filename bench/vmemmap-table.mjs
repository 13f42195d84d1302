// Generates docs/vmemmap.md from the model, so the table cannot drift from the code: every row is
// vmemmapReport() (the function behind `daxlab vmemmap`) on an arch plugin of the CLI's catalog.
// Every arch in the catalog appears, with every page size its plugin accepts (4K, 16K, 64K tried)
// and every device-dax alignment its Mmu offers. Run after `npm run build`:
//
//   node bench/vmemmap-table.mjs            # rewrite docs/vmemmap.md
//   node bench/vmemmap-table.mjs --check    # exit 1 if docs/vmemmap.md differs from the model
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { builtinCatalog, vmemmapReport } from '@daxlab/cli';
import { formatSize, hugetlbVmemmapFigures } from '@daxlab/core';

const KiB = 1024;
const GiB = 1024 ** 3;
const OUT = join(import.meta.dirname, '..', 'docs', 'vmemmap.md');
const SIZES = [2 * GiB, 128 * GiB, 1024 * GiB];
const catalog = builtinCatalog();

/** the page sizes an arch plugin accepts, each once */
function pageSizes(name) {
  const seen = new Map();
  for (const pageSize of [4 * KiB, 16 * KiB, 64 * KiB]) {
    try {
      const plugin = catalog.arch[name]({ pageSize });
      if (!seen.has(plugin.mmu.basePageSize)) seen.set(plugin.mmu.basePageSize, plugin);
    } catch {
      // not a page size of this arch
    }
  }
  return [...seen.values()];
}

const n = (v) => (v === null ? '-' : v.toLocaleString('en-US'));
const bytes = (v) => (v === null ? '-' : formatSize(v));

function row(plugin, size, align, altmap, version) {
  const r = vmemmapReport(plugin, { size, align, altmap, version });
  const opt = r.outcome === 'oops' ? '**oops**' : r.outcome === 'error' ? `error` : r.optimized ? 'yes' : 'no';
  const memmap = r.outcome === 'completed' ? (altmap ? `${n(r.altmapPages)} dev + ${n(r.ramPages)} RAM` : `${n(r.ramPages)} RAM`) : (r.oops ?? r.error ?? '').slice(0, 60);
  return { r, cells: [formatSize(size), formatSize(align), altmap ? 'yes' : 'no', opt, n(r.structPages), n(r.structPagesInitialized), n(r.vmemmapPages), bytes(r.vmemmapBytes), n(r.savedPages), memmap] };
}

const HEAD = '| size | align | altmap | optimised | struct pages | initialised | vmemmap pages | vmemmap bytes | saved pages | where |\n|---:|---:|:---:|:---:|---:|---:|---:|---:|---:|---|';

function archSection(version, onlyCompound) {
  const out = [];
  for (const name of Object.keys(catalog.arch)) {
    for (const plugin of pageSizes(name)) {
      const mmu = plugin.mmu;
      const aligns = mmu.devdaxAlignments.length ? mmu.devdaxAlignments : [mmu.basePageSize];
      const rows = [];
      for (const size of SIZES) {
        for (const align of aligns) {
          if (size % align !== 0) continue;
          for (const altmap of [false, true]) {
            if (onlyCompound && (align === mmu.basePageSize || altmap)) continue;
            rows.push(`| ${row(plugin, size, align, altmap, version).cells.join(' | ')} |`);
          }
        }
      }
      if (rows.length === 0) continue;
      const unsupported = vmemmapReport(plugin, { size: SIZES[0], align: aligns[0], version }).unsupported;
      out.push(
        `### ${name}, ${formatSize(mmu.basePageSize)} pages`,
        '',
        `PAGE_SIZE ${formatSize(mmu.basePageSize)}, struct page ${mmu.structPageSize} B, section ${formatSize(mmu.sectionSize)} (current SECTION_SIZE_BITS), subsection ${formatSize(mmu.subsectionSize)}, PMD ${formatSize(mmu.pmdSize)}, device-dax alignments ${aligns.map(formatSize).join(', ')}; vmemmap in init_mm: ${plugin.populator.vmemmapInInitMm ? 'yes' : 'no'}; opts in to the DAX vmemmap optimisation in ${version}: ${plugin.populator.optsInToDaxVmemmapOptimization(version) ? 'yes' : 'no'}.`,
        ...(unsupported ? ['', `Unsupported in ${version} (the arithmetic still answers): ${unsupported}`] : []),
        '',
        HEAD,
        ...rows,
        '',
      );
    }
  }
  return out;
}

// HVO: releases where some arch's verdict or the reserve changes (any 'vX.Y' works, not only presets)
const HVO_RELEASES = ['v5.13', 'v5.14', 'v5.18', 'v5.19', 'v6.2', 'v6.3', 'v6.17', 'v6.18', 'latest'];

/** One table per arch and page size: for each hugetlb size the arch offers, the vmemmap pages HVO frees per page in each release. */
function hvoSection() {
  const out = [];
  for (const name of Object.keys(catalog.arch)) {
    for (const plugin of pageSizes(name)) {
      const mmu = plugin.mmu;
      const sizes = [...(mmu.hugetlbSizes ?? [])].sort((a, b) => a - b);
      if (sizes.length === 0) continue;
      const reasons = new Map();
      const rows = sizes.map((size) => {
        const cells = HVO_RELEASES.map((version) => {
          const f = hugetlbVmemmapFigures(mmu, plugin.populator.hugetlbVmemmapOptIn, { hugetlbSize: size, version, enabled: true });
          if (f.optimizable) return `${n(f.freedPages)} (keeps ${f.reservePages})`;
          if (!reasons.has(f.refusal)) reasons.set(f.refusal, reasons.size + 1);
          return `- [${reasons.get(f.refusal)}]`;
        });
        const f = hugetlbVmemmapFigures(mmu, plugin.populator.hugetlbVmemmapOptIn, { hugetlbSize: size, version: 'latest', enabled: false });
        const vm = f.vmemmapPages >= 1 ? n(f.vmemmapPages) : `${formatSize(f.vmemmapBytes)} (${f.vmemmapPages} page)`;
        return `| ${formatSize(size)} | ${n(f.structPages)} | ${vm} | ${cells.join(' | ')} |`;
      });
      out.push(
        `### ${name}, ${formatSize(mmu.basePageSize)} pages`,
        '',
        `hugetlb sizes (arch_hugetlb_valid_size()): ${sizes.map(formatSize).join(', ')}; struct page ${mmu.structPageSize} B.`,
        '',
        `| hugetlb page | struct pages | vmemmap pages | ${HVO_RELEASES.join(' | ')} |`,
        `|---:|---:|---:|${HVO_RELEASES.map(() => ':---:').join('|')}|`,
        ...rows,
        '',
        ...[...reasons].map(([why, i]) => `${i}. ${why}`),
        '',
      );
    }
  }
  return out;
}

const doc = [
  '# vmemmap figures per arch',
  '',
  '<!-- Generated by `node bench/vmemmap-table.mjs` from the model (packages/core/src/vmemmap and each arch',
  '     plugin). Do not edit by hand: change the model and regenerate. -->',
  '',
  'What the memmap (`struct page` array) of one device-dax range costs, as `daxlab vmemmap --arch A',
  '[--page-size P] --size S --align X [--altmap] --json` reports it. The device starts at 64 GiB (where the',
  "first probe lands); with `--altmap` the memmap is on the device, laid out as `nd_pfn_init()` lays out a",
  'pmem namespace (`ALIGN(8K, PAGE_SIZE)` info block as the altmap reserve, memmap rounded up to the',
  'namespace alignment, at least `memremap_compat_align()`).',
  '',
  '- **struct pages**: one per base page of the range (the altmap pfns included).',
  '- **initialised**: struct pages `memmap_init_zone_device()` and `memmap_init_range()` write: all of them,',
  '  `compound_nr_pages()` per compound page when tail pages are reused, all but the altmap reserve with an',
  '  altmap.',
  '- **vmemmap pages / bytes**: memory that backs struct pages, from RAM or from the device (`where`), in',
  '  PAGE_SIZE pages, not counting the page tables that map it; arch blocks (PMD blocks, hash pages, s390',
  '  frames) count whole.',
  '- **saved pages**: vmemmap PTEs that map the reused tail page instead of a page of their own',
  '  (`vmemmap_populate_compound_pages()`).',
  '',
  '## Kernel `latest` (vmemmap-optimize = arch-opt-in)',
  '',
  ...archSection('latest', false),
  '## Kernel v6.3 (vmemmap-optimize = unguarded), compound alignments without altmap',
  '',
  'Before 87a7ae75d738 (v6.4) the generic compound path ran on every arch: arches with vmemmap in init_mm',
  'page tables were optimised whether they opted in or not; ppc64 hash oopsed (seed 003).',
  '',
  ...archSection('v6.3', true),
  '## HugeTLB Vmemmap Optimization (HVO)',
  '',
  'What `daxlab vmemmap --arch A [--page-size P] --hugetlb S [--pages N] --feature hugetlb-free-vmemmap=true`',
  'reports for hugetlb pages (packages/core/src/vmemmap/hugetlb.ts and each arch plugin\'s `hugetlbVmemmapOptIn`).',
  'Each cell is the number of vmemmap pages HVO frees per huge page when it is switched on',
  '(`hugetlb_free_vmemmap=on`, or `vm.hugetlb_optimize_vmemmap=1` from v5.19; off by default in every',
  'release), and how many it keeps (`HUGETLB_VMEMMAP_RESERVE_SIZE`: 2 pages before v5.18, 1 after);',
  '`-` is no HVO, with the reason below the table. Releases marked [M] in the reasons were dated from',
  'the commits. Every hugetlb size the arch offers is listed, also those the scenario model maps only',
  'as PMD/PUD leaves (the contiguous-bit sizes of arm64 and ppc64 hash are figures here, refused as',
  'not modelled by `hugetlb-pool`). Not in the cells: the PTE table page HVO allocates when it splits a',
  'PMD-mapped vmemmap (x86-64, arm64 4K, s390: one per PMD of vmemmap, never merged back), which',
  'depends on where the pages lie; `--pages N` reports it for N contiguous pages (`pool.pteTablePages`).',
  '',
  ...hvoSection(),
  '## Published figures and what the model says about them',
  '',
  '| figure | source | model | test |',
  '|---|---|---|---|',
  '| 2 MiB compound (4K pages, 64-byte struct page): 6 of 8 vmemmap pages saved | 4917f55b4ef9 "mm/sparse-vmemmap: improve memory savings for compound devmaps" | exact | packages/core/src/vmemmap/model.test.ts, packages/arch-x86/test/x86.test.ts, apps/cli/test/vmemmap.test.ts |',
  '| 1 GiB compound: 4094 vmemmap pages saved | 4917f55b4ef9 | exact (2 pages in the first section, the other 7 sections reuse the first tail page) | same |',
  '| 128 struct pages initialised per compound instead of 512 (2 MiB) / 262144 (1 GiB) | 6fd3620b3428 "mm/page_alloc: reuse tail struct pages for compound devmaps" | exact | same |',
  '| per 1 TiB: 4G instead of 16G with 2M pages | cover letter "[PATCH v7 0/5] sparse-vmemmap: memory savings for compound devmaps" | exact (4 GiB; 32 MiB of PTE tables on top are not vmemmap bytes) | x86.test.ts |',
  '| per 1 TiB: 40MB with 1G pages | same cover letter | 8 MiB of struct-page memory; the other 32 MiB are PTE-table pages (one per 128 MiB section, the optimised path maps with PTEs), which `vmemmapBytes` does not count by definition | x86.test.ts |',
  '| "0.0014%", "3.8x", "1071x" | same cover letter | **not derivable** from the code: 40 MiB/1 TiB is 0.0038 %, and the ratios do not follow from the formulas; quoted, not reproduced | - |',
  '| "initializing 32768 pages when it only needs to initialize 128" | 6fd3620b3428 | 32768 is PAGES_PER_SECTION on x86, not a per-compound count; per 2 MiB compound the model gives 512 → 128 | - |',
  '| 64K pages: only 1G-class alignments deduplicate | Documentation/arch/powerpc/vmemmap_dedup.rst; `VMEMMAP_RESERVE_NR` check (v6.6) | exact: a 2 MiB compound of 64K pages has 2 KiB of struct pages, under the 2-page minimum | model.test.ts |',
  '| HVO: a 2 MiB page (x86-64) has 8 vmemmap pages, a 1 GiB page 4096; "free the remaining 7 pages", "(PAGE_SIZE - 1) vmemmap pages" | Documentation/mm/vmemmap_dedup.rst | exact (v5.18+) | packages/core/src/vmemmap/hugetlb.test.ts, apps/cli/test/vmemmap-hugetlb.test.ts |',
  '| HVO before the second page was freed: 6 of 8, "for the 1GB HugeTLB page, we can save 4094 pages"; 1024 GB of hugetlb: "~16GB (1G hugepage)/~12GB (2MB hugepage)" | cover letter "Free some vmemmap pages of HugeTLB page" (v5.14) | exact: 16376 MiB and 12 GiB (v5.14-v5.17); 16380 MiB and 14 GiB from v5.18 | hugetlb.test.ts |',
  '| HVO on arm64 granules: PMD-level pages always 8 vmemmap pages; contiguous-bit pages "can be optimized only when its size of the struct page structs is greater than 1 page" | vmemmap_dedup.rst (its size table: 4K 64K/2M/32M/1G, 16K 2M/32M/1G, 64K 2M/512M/16G) | exact: 4K 64K and 16K/64K 2M pages fit in the reserve (nothing to free) | vmemmap-hugetlb.test.ts |',
  '| early cover letter: "8 pages for page tables" per 1 GiB page; 1024 GB of 2 MiB pages: "~11GB ... the worst case is 10GB while the best is 12GB" | v1-v10 of the HVO series (the PMD-mapped vmemmap is split on demand from 3bc2b6a72596 "mm: sparsemem: split the huge PMD mapping of vmemmap pages", v5.14 [M]) | the tables are counted apart (`pteTablePages`): 8 per 1 GiB page (16 MiB of vmemmap = 8 PMDs); 1 TiB of contiguous 2 MiB pages splits 8192 PMDs (32 MiB: the best case), one table per page (2 GiB) is the worst | packages/core/test/hugetlb-vmemmap.test.ts, vmemmap-hugetlb.test.ts |',
  '',
  '## What is not modelled',
  '',
  '- Page-table pages (PTE/PMD tables) are not counted in vmemmap bytes (SCENARIOS.md); they are listed only in the notes above.',
  '- Early (boot) sections, whose memmap `section_activate()` reuses, and the April 2026 mm-new fix of `compound_nr_pages()` for them.',
  '- `/proc/vmstat` `nr_memmap_pages` accounting (which over-reports optimised DAX before the 2026 accounting fix).',
  "- The 2026 series that shares one tail vmemmap page between compounds and drops the extra DAX tail page (in linux-next, not in a release): `VMEMMAP_RESERVE_NR` is 2 here.",
  '- RAM allocation failures: `vmemmap_populate_hugepages()` falls back to base pages when RAM has no free PMD block; the model assumes RAM always has one (the altmap, which can run out, is modelled).',
  '- x86 reuse of a partly populated PMD across sections (faf1c0008a33): it only matters for vmemmap smaller than a PMD next to an existing one, which full sections never are on x86.',
  '- Neighbours: this table is one device alone. In scenarios `memremap_pages()` passes the live pgmaps, and a block a neighbour already populated is not allocated again (two devices in one ppc64 hash 16 GiB window share a bolted 16 MiB page); the compound path does not consult them (section-aligned devices never share its PTEs).',
  "- `memremap_pages()`'s `vmemmap_shift > MAX_FOLIO_ORDER` refusal (2025): it depends on the config's maximum folio order.",
  '- HVO: the ENOMEM of the PMD split (`vmemmap_split_pmd()`: the page stays unoptimised), the new head page `vmemmap_remap_free()` allocates in place of the old one (the count is the same), pre-HVO of boot-time gigantic pages (`ARCH_WANT_HUGETLB_VMEMMAP_PREINIT`, x86-64 v6.14 [M]), HVO of demoted or migrated pages, and the 2025-2026 series that maps every tail to one shared page per zone and size (no fake heads; linux-next as read, not in a release).',
  '',
].join('\n');

if (process.argv.includes('--check')) {
  const now = readFileSync(OUT, 'utf8');
  if (now !== doc) {
    console.error('docs/vmemmap.md differs from the model: run node bench/vmemmap-table.mjs');
    process.exit(1);
  }
  console.log('docs/vmemmap.md matches the model');
} else {
  writeFileSync(OUT, doc);
  console.log(`wrote ${OUT}`);
}
