import { fileURLToPath } from 'node:url';
import { exploreScenario, isExploreResult, loadScenarioFile, PRESETS, type PluginCatalog } from '@daxlab/core';
import { testArch } from '@daxlab/core/testing';
import { describe, expect, it } from 'vitest';
import { CLEAN, endSummary as clean, exploreOn } from './explore-family.js';

// NUMA migration racing other threads, under every interleaving (apps/cli/scenarios/explore/
// move-pages-vs-*.yaml; mm/mempolicy.ts migrateFolio, mm/migrate.ts). Each scenario must complete
// on every release with no invariant broken and no read or status that differs from what the
// scenario says, and the search must reach each of the end states the kernel allows (so the race
// is really explored, not one order of it).

const catalog: PluginCatalog = { arch: { x86: () => testArch() }, fs: {}, driver: {} };
const RELEASES = PRESETS.map((p) => p.name);
const explore = (file: string, version: string) => exploreOn(catalog, file, null, null, version);

describe('move_pages() racing GUP, fork and CPU writes', () => {
  for (const version of RELEASES) {
    it(`${version}: a pin or a get either keeps the page where it is or waits and takes the new one -- two end states, never a pin of the old page after the copy`, () => {
      for (const file of ['move-pages-vs-pin.yaml', 'move-pages-vs-get.yaml']) {
        const r = explore(file, version);
        expect({ file, ...clean(r) }).toEqual({ file, ...CLEAN });
        // the page stayed on node 0 with the pin (move_pages() returned 1), or moved to node 1 and
        // the pin is of the new page: the DMA's D is read back in both
        expect({ file, ends: r.ends.completed }).toEqual({ file, ends: 2 });
      }
    });

    it(`${version}: a private hugetlb folio: fork reads each entry when its turn comes (a migration entry is copied as one) and the child's COW holds the old folio and re-checks the entry, so its write never reaches the parent`, () => {
      const r = explore('move-pages-htlb-vs-fork.yaml', version);
      expect(clean(r)).toEqual(CLEAN);
      // the child's COW copies the old folio before the migration unmaps it, or the new one after
      // the remap: different folios end up mapped
      expect(r.ends.completed).toBeGreaterThanOrEqual(2);
    });

    it(`${version}: fork copies the migration entry, the child's write copies the new page, no write is lost`, () => {
      const fork = explore('move-pages-vs-fork.yaml', version);
      expect(clean(fork)).toEqual(CLEAN);
      // at least two ends: the child's write copies the old page before the migration unmaps it
      // (then only the parent's mapping moves) or the new page after both entries were remapped
      // (the child's copy is made from the node-1 page): different pages end up mapped
      expect(fork.ends.completed).toBeGreaterThanOrEqual(2);
      const write = explore('move-pages-vs-write.yaml', version);
      expect(clean(write)).toEqual(CLEAN);
      // up to v6.0 remove_migration_pte() maps the new page clean (the dirty bit is not carried in
      // the entry until 2e3468778dbe, v6.1): the last write before or after the migration leaves the
      // PTE clean or dirty, two end states; from v6.1 the entry keeps it and they are one
      const dirtyKept = !['v5.4', 'v5.10'].includes(version);
      expect(write.ends.completed).toBe(dirtyKept ? 1 : 2);
    });

    it(`${version}: munmap drops the migration entry or the page; nothing is freed while mapped, nothing waits forever`, () => {
      expect(clean(explore('move-pages-vs-munmap.yaml', version))).toEqual(CLEAN);
    });

    it(`${version}: two move_pages() of one page: a folio is isolated once (-EBUSY, -ENOENT for the other), no reference lost or doubled`, () => {
      const r = explore('move-pages-vs-move-pages.yaml', version);
      expect(clean(r)).toEqual(CLEAN);
      // whoever moves last moves it to node 1 (thread two's last call, or thread one's after it):
      // every order ends with the page on node 1, mapped once -- one end state
      expect(r.ends.completed).toBe(1);
    });
  }
});

describe('selftests/mm/migration.c under every interleaving', () => {
  const selftest = (name: string, version: string) => {
    const file = fileURLToPath(new URL(`../scenarios/selftests/migration/${name}`, import.meta.url));
    const r = exploreScenario(loadScenarioFile(file, `selftests/migration/${name}`), { arch: 'x86', fs: null, driver: null, version, features: {} }, catalog);
    if (!isExploreResult(r)) throw new Error(`${name} on ${version}: ${r.status}`);
    return r;
  };
  for (const version of RELEASES) {
    it(`${version}: private_anon, shared_anon and private_anon_thp: the readers wait on the entries and every move returns 0 in every interleaving`, () => {
      for (const name of ['private-anon.yaml', 'shared-anon.yaml', 'private-anon-thp.yaml']) expect({ name, ...clean(selftest(name, version)) }).toEqual({ name, ...CLEAN });
    });

    it(`${version}: shared_anon_thp, private_anon_htlb and shared_anon_htlb: hugetlb readers wait in migration_entry_wait_huge(), every move returns 0 in every interleaving`, () => {
      for (const name of ['shared-anon-thp.yaml', 'private-anon-htlb.yaml', 'shared-anon-htlb.yaml']) expect({ name, ...clean(selftest(name, version)) }).toEqual({ name, ...CLEAN });
    });
  }
});
