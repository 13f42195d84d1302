import { PRESETS, type PluginCatalog } from '@daxlab/core';
import { testArch } from '@daxlab/core/testing';
import { describe, expect, it } from 'vitest';
import { CLEAN, endSummary, exploreOn } from './explore-family.js';

// UFFDIO_MOVE racing a GUP-fast pin for DMA, under every interleaving
// (apps/cli/scenarios/explore/uffd-move-vs-pin.yaml; mm/uffdmove.ts move_present_pte()'s
// folio_maybe_dma_pinned() check). It must complete on every release with no invariant broken
// (pinned-page-diverged would be a pinned page moved away from under its pin).

const catalog: PluginCatalog = { arch: { x86: () => testArch() }, fs: {}, driver: {} };
const RELEASES = PRESETS.map((p) => p.name);

describe('UFFDIO_MOVE racing a pin', () => {
  for (const version of RELEASES) {
    it(`${version}: the pinned page never moves; every read sees the DMA`, () => {
      const r = exploreOn(catalog, 'uffd-move-vs-pin.yaml', null, null, version);
      expect(endSummary(r)).toEqual(CLEAN);
      // before v6.8 the ioctl is -EINVAL whenever it runs: one end state. From v6.8 three: the
      // pin first (the move is -EBUSY, D stays at buf), the move first (A moved to dst, the pin's
      // fault gives buf a new page that gets D), the move after the unpin (D moved to dst)
      expect(r.ends.completed).toBe(['v6.15', 'latest'].includes(version) ? 3 : 1);
    });
  }
});
