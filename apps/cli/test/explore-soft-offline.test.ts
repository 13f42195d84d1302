import { PRESETS, type PluginCatalog } from '@daxlab/core';
import { testArch } from '@daxlab/core/testing';
import { describe, expect, it } from 'vitest';
import { CLEAN, endSummary as clean, exploreOn } from './explore-family.js';

// Soft offline racing CPU writes and fork, under every interleaving (apps/cli/scenarios/explore/
// soft-offline-*.yaml; mm/softoffline.ts over the NUMA migration of mm/mempolicy.ts, hugetlb
// migration in mm/hugetlb.ts). Each must complete on every release with no invariant broken and
// every read as written; the end-state counts show the race is explored, not one order of it.

const catalog: PluginCatalog = { arch: { x86: () => testArch() }, fs: {}, driver: {} };
const RELEASES = PRESETS.map((p) => p.name);
const explore = (file: string, version: string) => exploreOn(catalog, file, null, null, version);

describe('soft offline racing writes and fork', () => {
  for (const version of RELEASES) {
    it(`${version}: an anonymous page: no write lost; the poisoned old page keeps whatever it held when copied`, () => {
      const r = explore('soft-offline-vs-write.yaml', version);
      expect(clean(r)).toEqual(CLEAN);
      // the old page is never freed (PG_hwpoison keeps its struct page and contents): it ends
      // holding A, B or C, as the copy came before the first write, between them or after both
      expect(r.ends.completed).toBe(3);
    });

    it(`${version}: a shared hugetlb page: fork copies its migration entry or waits on the folio lock; both processes end on the new folio`, () => {
      const r = explore('soft-offline-hugetlb-vs-fork.yaml', version);
      expect(clean(r)).toEqual(CLEAN);
      // up to v6.0 remove_migration_pte() maps the new folio clean (no dirty bit in the entry until
      // 2e3468778dbe, v6.1): the child's write before or after the migration leaves the PMD dirty
      // or clean, two end states; from v6.1 one (the old huge page is dissolved: no contents left)
      expect(r.ends.completed).toBe(['v5.4', 'v5.10'].includes(version) ? 2 : 1);
    });
  }
});
