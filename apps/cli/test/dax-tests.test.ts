import { createKernel, KernelError, PRESETS, runScenario, type ArchPlugin, type CellKernelRequest, type Scenario } from '@daxlab/core';
import { arm64 } from '@daxlab/arch-arm64';
import { ppcHash } from '@daxlab/arch-ppc-hash';
import { x86 } from '@daxlab/arch-x86';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { builtinCatalog } from '../src/catalog.js';
import { kernelsFor } from '../src/kernel.js';
import { LIBRARY_DIR, loadScenarios } from '../src/scenarios.js';

// Conformance with ndctl's and xfstests' DAX tests (docs/dax-tests.md). The two verdict tables
// of that page are the specification: every row names its scenarios, filesystems, feature
// overrides and the verdict per preset, and this test runs each of those cells on x86 (where
// nfit_test and the xfstests runs are) and asserts the verdict, so the page cannot drift from
// the model. A verdict is what the kernel test would report, judged apart from the scenario's
// own `expect` rules: pass = the scenario holds with its rules and also with them removed
// (completed, no invariant broken); FAIL = it does not hold with them removed; n/a = the kernel
// cannot run it (unsupported cell).

const DOC = fileURLToPath(new URL('../../../docs/dax-tests.md', import.meta.url));
const RELEASES = PRESETS.map((p) => p.name);
const catalog = builtinCatalog();

interface Row {
  readonly kase: string;
  readonly scenarios: readonly string[];
  readonly fs: readonly (string | null)[];
  readonly features: Readonly<Record<string, string | boolean>>;
  /** preset -> pass | FAIL | n/a */
  readonly verdicts: Readonly<Record<string, string>>;
}

/** The markdown table under `heading`, as rows of trimmed cells keyed by the header's names. */
function table(doc: string, heading: string): Record<string, string>[] {
  const at = doc.indexOf(`\n## ${heading}\n`);
  if (at < 0) throw new Error(`${DOC}: no section '## ${heading}'`);
  const lines = doc.slice(at).split('\n').slice(2);
  const start = lines.findIndex((l) => l.startsWith('|'));
  const rows = lines.slice(start).filter((l, i, all) => all.slice(0, i + 1).every((x) => x.startsWith('|')));
  const cells = (l: string) => l.split('|').slice(1, -1).map((c) => c.trim());
  const header = cells(rows[0]!);
  return rows.slice(2).map((l) => {
    const c = cells(l);
    if (c.length !== header.length) throw new Error(`${DOC}: row '${l.slice(0, 40)}…' has ${c.length} cells, the header ${header.length}`);
    return Object.fromEntries(header.map((h, i) => [h, c[i]!]));
  });
}

function parseRow(r: Record<string, string>): Row {
  const scenarios = [...(r['scenario(s)'] ?? r.scenario ?? '').matchAll(/`([\w./-]+\.yaml)`/g)].map((m) => m[1]!);
  const fs = (r.fs ?? '').split(',').map((x) => x.trim()).map((x) => (x === 'none' ? null : x));
  const features = Object.fromEntries(
    (r.features ?? '')
      .split(',')
      .filter((x) => x.includes('='))
      .map((x) => x.trim().split('='))
      .map(([k, v]) => [k!, v === 'true' ? true : v === 'false' ? false : v!]),
  );
  return { kase: r.case!, scenarios, fs, features, verdicts: Object.fromEntries(RELEASES.map((v) => [v, r[v] ?? '—'])) };
}

const doc = readFileSync(DOC, 'utf8');
const coverage = table(doc, 'Coverage and verdicts');
const overrides = table(doc, 'Verdicts under feature overrides');
// rows with verdicts; "not covered" rows have none
const judged = [...coverage, ...overrides].map(parseRow).filter((r) => Object.values(r.verdicts).some((v) => v !== '—'));

const cache = new Map<string, Scenario>();
function scenario(rel: string): Scenario {
  let s = cache.get(rel);
  if (!s) {
    const [l] = loadScenarios([join(LIBRARY_DIR, rel)], LIBRARY_DIR);
    if (!l?.ok) throw new Error(`${rel}: ${l ? l.reason : 'not loaded'}`);
    s = l.scenario;
    cache.set(rel, s);
  }
  return s;
}

/** A verdict cell for one filesystem: one verdict for all, or one per filesystem (`xfs pass, ext4 n/a`). */
function verdictOn(cell: string, fs: string | null): string {
  const per = [...cell.matchAll(/(\w+) (pass|FAIL|n\/a)/g)];
  return per.find((m) => m[1] === fs)?.[2] ?? cell;
}

const verdicts = new Map<string, string>();
/** The verdict of one cell (see the header comment); a scenario several rows name runs once per kernel. */
function verdict(s: Scenario, k: CellKernelRequest): string {
  const key = JSON.stringify([s.file, k]);
  const known = verdicts.get(key);
  if (known !== undefined) return known;
  const v = judge(s, k);
  verdicts.set(key, v);
  return v;
}

function judge(s: Scenario, k: CellKernelRequest): string {
  const own = runScenario(s, k, catalog);
  if (own.status === 'unsupported') return 'n/a';
  const bare = runScenario({ ...s, expect: [] }, k, catalog);
  if (bare.status === 'pass') return own.status === 'pass' ? 'pass' : `scenario ${own.status}: ${own.failures.join('; ')} ${own.reason ?? ''}`;
  return own.status === 'pass' || bare.status === 'fail' ? 'FAIL' : `scenario ${own.status}: ${own.reason ?? ''}`;
}

describe('docs/dax-tests.md', () => {
  it('has a row for every case E01-E36 and F01-F24, in order', () => {
    const cases = coverage.map((r) => r.case);
    const want = [...Array.from({ length: 36 }, (_, i) => `E${String(i + 1).padStart(2, '0')}`), ...Array.from({ length: 24 }, (_, i) => `F${String(i + 1).padStart(2, '0')}`)];
    expect(cases).toEqual(want);
  });

  it('says why for every case it does not cover, and names a scenario for every case it does', () => {
    for (const r of coverage.map((x) => ({ raw: x, row: parseRow(x) }))) {
      if (r.row.scenarios.length === 0) expect(r.raw.notes, r.row.kase).toMatch(/^not covered: \S/);
      else expect(Object.values(r.row.verdicts), r.row.kase).not.toContain('—');
    }
  });

  it('names every scenario file of apps/cli/scenarios/ndctl and /xfstests', () => {
    const named = new Set(judged.flatMap((r) => r.scenarios));
    const files = ['ndctl', 'xfstests'].flatMap((d) => readdirSync(join(LIBRARY_DIR, d)).map((f) => `${d}/${f}`));
    expect(files.filter((f) => !named.has(f))).toEqual([]);
  });
});

describe('ndctl and xfstests DAX verdicts per preset (x86)', () => {
  for (const row of judged) {
    const label = `${row.kase} ${Object.entries(row.features).map(([k, v]) => `${k}=${v}`).join(' ')}`.trim();
    for (const rel of row.scenarios) {
      it(`${label}: ${rel} on ${row.fs.map((f) => f ?? 'no fs').join(', ')}`, () => {
        const s = scenario(rel);
        for (const fs of row.fs) {
          const cells = kernelsFor(s, { arch: ['x86'], ...(fs ? { fs: [fs] } : {}), version: RELEASES, features: Object.entries(row.features).map(([k, v]) => [k, [v]] as const) }, catalog, true);
          expect(cells.map((k) => k.version)).toEqual(RELEASES);
          // a scenario without a filesystem must be listed with fs "none", and one with a filesystem with its names
          expect(cells.every((k) => k.fs === fs), `${rel}: fs ${fs}`).toBe(true);
          const got = Object.fromEntries(cells.map((k) => [k.version, verdict(s, k)]));
          const want = Object.fromEntries(Object.entries(row.verdicts).map(([v, cell]) => [v, verdictOn(cell, fs)]));
          expect({ fs, ...got }).toEqual({ fs, ...want });
        }
      });
    }
  }
});

// ---- the namespace layout behind E22 and E23, through the kernel API ----------------------

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

function probe(arch: ArchPlugin, version: string, size: number, align?: number, altmap = false) {
  const k = createKernel({ arch, driver: nvdimm(), kernel: version });
  return k.run(k.probe({ size, ...(align !== undefined ? { align } : {}), altmap, as: 'pmem0' }));
}

function refusal(f: () => unknown): { code: string; unsupported: boolean } | null {
  try {
    f();
    return null;
  } catch (e) {
    if (e instanceof KernelError) return { code: e.code, unsupported: e.unsupported !== null };
    throw e;
  }
}

describe('nd_pfn_init() namespace layout (drivers/nvdimm/pfn_devs.c)', () => {
  it('ndctl align.sh: 1 GiB + 8 KiB at -a 4K probes 1 GiB (end_trunc to the 2 MiB sub-section), data after a 2 MiB-aligned info block', () => {
    const d = probe(x86(), 'v6.6', GiB + 8 * KiB, 4 * KiB);
    // memremap_pages() maps ALIGN_DOWN(start + size, 2 MiB) - start = 1 GiB
    expect(d.pgmap.nrPages).toBe(GiB / 4096);
    // offset = ALIGN(start + 8K, max(4K, memremap_compat_align() = 2 MiB)) - start = 2 MiB
    expect((d.dataPfn - d.pgmap.startPfn) * 4096).toBe(2 * MiB);
    expect(d.dataPages).toBe((GiB - 2 * MiB) / 4096);
  });

  it('ppc64 hash aligns the layout to its 16 MiB linear-map page from v5.7 (memremap_compat_align()), to SUBSECTION_SIZE before', () => {
    const hash4k = ppcHash({ pageSize: '4KiB' });
    expect((probe(hash4k, 'v6.6', GiB, 4 * KiB).dataPfn - probe(hash4k, 'v6.6', GiB, 4 * KiB).pgmap.startPfn) * 4096).toBe(16 * MiB);
    const old = probe(hash4k, 'v5.4', GiB, 4 * KiB);
    expect((old.dataPfn - old.pgmap.startPfn) * 4096).toBe(2 * MiB);
    // a 16 MiB namespace is all layout there: "unable to satisfy requested alignment"
    expect(refusal(() => probe(hash4k, 'v6.6', 16 * MiB, 4 * KiB))).toEqual({ code: 'ENXIO', unsupported: false });
    expect(refusal(() => probe(hash4k, 'v5.4', 16 * MiB, 4 * KiB))).toBeNull();
  });

  it('nd_pfn_supported_alignments(): an alignment the arch does not map huge cannot be chosen (unsupported); the default is PMD_SIZE with THP, else PAGE_SIZE', () => {
    expect(refusal(() => probe(arm64(), 'v6.6', 2 * GiB, GiB))).toEqual({ code: 'EINVAL', unsupported: true });
    expect(refusal(() => probe(x86(), 'v6.6', 2 * GiB, GiB))).toBeNull();
    expect(refusal(() => probe(ppcHash({ pageSize: '4KiB' }), 'v6.6', GiB, 2 * MiB))).toEqual({ code: 'EINVAL', unsupported: true });
    // no THP on hash with 4 KiB pages: the default namespace alignment is PAGE_SIZE
    expect(probe(ppcHash({ pageSize: '4KiB' }), 'v6.6', GiB).align).toBe(4 * KiB);
    expect(probe(x86(), 'v6.6', GiB).align).toBe(2 * MiB);
  });
});

// ---- what the notes say about the other arches of the default matrix -------------------------

describe('docs/dax-tests.md notes on arm64 and ppc64 hash (4 KiB pages)', () => {
  const statuses = (rel: string, arch: string) => {
    const s = scenario(rel);
    return kernelsFor(s, { arch: [arch], pageSize: 4096, version: RELEASES, features: [] }, catalog, true).map((k) => `${k.fs ?? 'none'}/${k.version}:${runScenario(s, k, catalog).status}`);
  };
  const all = (fss: readonly string[], status: (v: string) => string) => fss.flatMap((fs) => RELEASES.map((v) => `${fs}/${v}:${status(v)}`));

  it('E09/E11/E14/E15: no 1 GiB device-dax on arm64 or ppc64 hash 4K (dax_align_valid()); arm64 has no ZONE_DEVICE before v5.7', () => {
    expect(statuses('ndctl/device-dax-1g.yaml', 'arm64')).toEqual(all(['none'], () => 'unsupported'));
    expect(statuses('ndctl/device-dax-1g.yaml', 'ppc-hash')).toEqual(all(['none'], () => 'unsupported'));
    expect(statuses('ndctl/device-dax-2m.yaml', 'arm64')).toEqual(all(['none'], (v) => (v === 'v5.4' ? 'unsupported' : 'pass')));
  });

  it('E22: ppc64 hash refuses the 16 MiB namespace from v5.7 and the scenario expects it; E23: align.sh cannot run where -a 1G or -a 2M is not offered', () => {
    expect(statuses('ndctl/sub-section.yaml', 'ppc-hash')).toEqual(all(['ext4'], () => 'pass'));
    expect(statuses('ndctl/align.yaml', 'arm64')).toEqual(all(['xfs'], () => 'unsupported'));
    expect(statuses('ndctl/align.yaml', 'ppc-hash')).toEqual(all(['xfs'], () => 'unsupported'));
  });

  it('E01: ppc64 hash with 4 KiB pages maps PTEs only, and the PMD-fault scenarios pass there by saying so', () => {
    // (FUSE DAX, virtio-fs, arrived in v5.10)
    expect(statuses('ndctl/dax-pmd-faults.yaml', 'ppc-hash')).toEqual([...all(['xfs', 'ext4'], () => 'pass'), ...all(['fuse'], (v) => (v === 'v5.4' ? 'unsupported' : 'pass'))]);
  });
});
