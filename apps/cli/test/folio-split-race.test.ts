import { exploreScenario, isExploreResult, parseScenario, PRESETS, runScenario, type ExploreResult, type PluginCatalog } from '@daxlab/core';
import { x86 } from '@daxlab/arch-x86';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { builtinCatalog } from '../src/catalog.js';
import { LIBRARY_DIR } from '../src/scenarios.js';
import { CLEAN, endSummary, EXPLORE_DIR, inOrder } from './explore-family.js';

// tools/testing/selftests/mm/folio_split_race_test.c (docs/selftests.md, "Coverage:
// tools/testing/selftests/mm/folio_split_race_test.c"): a reader faulting a page of a PMD-sized
// shmem folio while MADV_REMOVE of pages 50-52 splits it. The expected pages come from the fix's
// own account (577a1f495fd7, "mm/huge_memory: fix a folio_split() race condition with
// folio_try_get()"): __split_unmapped_folio() halves the order-9 folio toward page 50, calling
// xas_try_split() with the folio being halved, so the upper half cut at each step keeps that
// folio's entry: [32, 64) is cut from the original, [48, 64) from the folio of [32, 64), [48, 56)
// and [48, 52) from that of [48, 64) -- which after the split is the order-1 folio of pages 48-49
// -- and [50, 52) from the folio of [50, 52), which becomes page 50's. So pages 52-63 are named by
// the folio of 48-49 and page 51 by page 50's; __folio_split() unfreezes those (address order,
// 48 before 50 before 52...) before __xa_store() of the folios that belong there. A reader of page
// 53 then gets folio_file_page(folio of 48-49, 53) = page 48 + (53 & 1) = 49 (the test's "expected
// idx 53, got 49"), of page 60 page 48 + 0 = 48. Pages whose entries name their own folio or the
// original (frozen to the end: 0-49, 64-511) are always right.

const catalog: PluginCatalog = { arch: { x86: () => x86() }, fs: {}, driver: {} };
const TEXT = readFileSync(join(EXPLORE_DIR, 'folio-split-race.yaml'), 'utf8');

/** The explore scenario with its reader on `page` (the file writes 'idx N' to pages 0, 49 and 53). */
function explore(version: string, features: Record<string, boolean> = {}, page = 53): ExploreResult {
  const text = page === 53 ? TEXT : TEXT.replace('name: explore-folio-split-race', `name: explore-folio-split-race-${page}`).replaceAll('page: 53 }', `page: ${page} }`).replace("page: 49, data: 'idx 49' }", `page: ${page}, data: 'idx ${page}' }`);
  const r = exploreScenario(parseScenario(text, `explore/folio-split-race.yaml (reader on page ${page})`), { arch: 'x86', fs: null, driver: null, version, features }, catalog);
  if (!isExploreResult(r)) throw new Error(`folio-split-race on ${version}: ${r.status}: ${r.reason}`);
  return r;
}

/** The page a reader was given, as [page mapped, page asked for], from the violation's message and the folio's first pfn. */
function misread(r: ExploreResult): [number, number] | null {
  const v = r.violations.find((x) => x.invariant === 'wrong-file-page-mapped');
  if (!v) return null;
  const head = Number(/pfn=(\d+) rc=1 delta=1 why=alloc_charge_folio\(order 9\)/.exec(v.trace.join('\n'))![1]);
  const m = /maps pfn (\d+) at page (\d+) .* holds pfn (\d+) there/.exec(v.message)!;
  expect(Number(m[3]) - head).toBe(Number(m[2]));
  return [Number(m[1]) - head, Number(m[2])];
}

describe('folio_split_race_test.c: a lockless shmem lookup racing a non-uniform folio_split()', () => {
  it('only v6.15 maps another page at page 53 (page 49); every other release completes every interleaving cleanly', () => {
    const got: Record<string, [number, number] | null> = {};
    for (const { name } of PRESETS) {
      const r = explore(name);
      expect(r.complete, name).toBe(true);
      got[name] = misread(r);
      if (name !== 'v6.15') expect(endSummary(r), name).toEqual(CLEAN);
    }
    expect(got).toEqual({ 'v5.4': null, 'v5.10': null, 'v6.1': null, 'v6.3': null, 'v6.6': null, 'v6.15': [49, 53], latest: null });
  });

  it('the feature alone decides it: v6.15 with the fix is clean, latest without it breaks', () => {
    expect(endSummary(explore('v6.15', { 'folio-split-misplaced-entries': false }))).toEqual(CLEAN);
    expect(misread(explore('latest', { 'folio-split-misplaced-entries': true }))).toEqual([49, 53]);
    // before v6.15 the hole punch splits uniformly (xas_split() of the original folio): nothing misplaced
    expect(endSummary(explore('v6.6', { 'folio-split-misplaced-entries': true }))).toEqual(CLEAN);
  });

  it('which pages a v6.15 reader can get wrong, and which page it gets', () => {
    const wrong: Record<number, [number, number] | null> = {};
    for (const page of [40, 48, 49, 53, 55, 56, 60, 63, 64, 100]) {
      const r = explore('v6.15', {}, page);
      expect(r.complete, `page ${page}`).toBe(true);
      wrong[page] = misread(r);
    }
    expect(wrong).toEqual({ 40: null, 48: null, 49: null, 53: [49, 53], 55: [49, 55], 56: [48, 56], 60: [48, 60], 63: [49, 63], 64: null, 100: null });
  });

  it('the wrong page comes from a fault inside the split, after the folio of pages 48-49 was unfrozen', () => {
    const r = explore('v6.15');
    const v = r.violations[0]!;
    expect(inOrder(v.trace, [/step thread=punch/, /__folio_split: page-cache folio of 'dev\/zero\(mem\)', order 9/, /step thread=reader/, /fault .*kind=pagecache/, /filemap_get_entry: folio_try_get/, /pte\.set .*level=pte/])).toBe(true);
    // the violating schedule replays to the same finding in run mode
    const again = runScenario(parseScenario(TEXT, 'explore/folio-split-race.yaml'), { arch: 'x86', fs: null, driver: null, version: 'v6.15', features: {} }, catalog, { schedule: v.schedule });
    expect(again.violations.map((x) => x.invariant)).toEqual(['wrong-file-page-mapped']);
  });
});

describe('folio_split_race_test.c run_iteration() without readers (selftests/folio-split-race)', () => {
  const file = join(LIBRARY_DIR, 'selftests', 'folio-split-race', 'punch-and-verify.yaml');
  const scenario = parseScenario(readFileSync(file, 'utf8'), 'selftests/folio-split-race/punch-and-verify.yaml');
  const all = builtinCatalog();
  for (const arch of ['x86', 'arm64', 's390', 'ppc-hash']) {
    it(`${arch}: fill, 52 (s390: 26) holes, every sampled page keeps its data, on every release`, () => {
      for (const { name } of PRESETS) {
        const r = runScenario(scenario, { arch, fs: null, driver: null, version: name, features: {} }, all);
        expect({ status: r.status, reason: r.reason, failures: r.failures, violations: r.violations.map((v) => v.message) }, `${arch} ${name}`).toEqual({ status: "pass", reason: null, failures: [], violations: [] });
      }
    });
  }
});
