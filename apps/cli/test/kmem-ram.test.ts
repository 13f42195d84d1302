import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createKernel, exploreScenario, isExploreResult, parseScenario, PRESETS, type Kernel, type Op, type PluginCatalog } from '@daxlab/core';
import { x86 } from '@daxlab/arch-x86';
import { devdax } from '@daxlab/driver-devdax';
import { describe, expect, it } from 'vitest';
import { CLEAN, endSummary, EXPLORE_DIR, exploreOn } from './explore-family.js';
import { errnoOf } from './selftest-api.js';

// kmem memory given to the RAM allocator (core mm/hotplug.ts, mm/ram.ts): the node and zone a
// page of an online block has, offline_pages() migrating what is in use and sleeping on a pin,
// and FOLL_LONGTERM moving a page off ZONE_MOVABLE (v5.13+) instead of pinning it there.

const MiB = 1024 * 1024;
const PAGE = 4096;

/**
 * A 256 MiB device-dax instance without an altmap (data from the 1 GiB-aligned start: two whole
 * 128 MiB blocks) in system-ram mode on a one-node machine: kmem's node defaults to node 1.
 */
function boot(version: string, a: { movable?: boolean; memmapOnMemory?: boolean } = {}): { k: Kernel; firstPfn: number } {
  const k = createKernel({ arch: x86(), driver: devdax(), kernel: version });
  k.run(k.probe({ size: 256 * MiB, align: 2 * MiB, altmap: false, as: 'dax0' }));
  const firstPfn = k.device('dax0').pgmap.startPfn;
  k.run(k.reconfigure({ device: 'dax0', mode: 'system-ram', ...a }));
  return { k, firstPfn };
}

/** An anonymous page written after mbind(MPOL_BIND, {node}): the fault allocates it there. */
function boundPage(k: Kernel, node: number, name = 'buf', data = 'A'): number {
  k.run(k.mmap({ anon: true, length: 2 * PAGE, write: true, as: name }));
  k.run(k.mbind({ map: name, policy: 'bind', nodes: [node] }));
  k.run(k.write({ map: name, page: 0, data }));
  return k.pfnOf({ map: name, page: 0 })!;
}

/** Run an operation until it sleeps on a wait nothing has satisfied; true when it completed instead. */
function runUntilAsleep<T>(op: Op<T>): boolean {
  for (;;) {
    const r = op.next();
    if (r.done) return true;
    if (r.value.kind === 'block' && !r.value.ready()) return false;
  }
}

describe('kmem memory in the page allocator', () => {
  it('an online block is node 1 (the target node) in ZONE_MOVABLE: a page bound to node 1 is the first pfn of the first block', () => {
    const { k, firstPfn } = boot('v6.6');
    const mem = k.hotplug.memoryOf('dax0')!;
    expect(mem.node).toBe(1);
    // the 1 GiB-aligned range starts on a block boundary: block 0 of the device is [firstPfn, +32768)
    expect(mem.start / PAGE).toBe(firstPfn);
    const pfn = boundPage(k, 1);
    expect(pfn).toBe(firstPfn);
    expect(k.nodeOf(pfn)).toBe(1);
    expect(k.ram.zoneOf(pfn)).toBe('Movable');
    expect(k.run(k.read({ map: 'buf', page: 0 }))).toBe('A');
    // a page the process writes without a policy stays on node 0 (local allocation)
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'plain' }));
    k.run(k.write({ map: 'plain', page: 0, data: 'P' }));
    expect(k.nodeOf(k.pfnOf({ map: 'plain', page: 0 })!)).toBe(0);
  });

  it('--no-movable onlines to ZONE_NORMAL; with memmap_on_memory (kmem: v6.8+) the first 512 pfns of the block are its memmap', () => {
    const normal = boot('v6.6', { movable: false });
    expect(normal.k.ram.zoneOf(boundPage(normal.k, 1))).toBe('Normal');
    // 32768 struct pages x 64 B = 2 MiB = 512 pages of memmap, PMD-aligned: on the block itself
    const mom = boot('v6.15', { memmapOnMemory: true });
    expect(mom.k.hotplug.memoryOf('dax0')!.memmapOnMemory).toBe(true);
    expect(boundPage(mom.k, 1)).toBe(mom.firstPfn + 512);
  });

  it('node 1 has memory only while a block is online: mbind to it is EINVAL offline, and the target node may be named', () => {
    const k = createKernel({ arch: x86(), driver: devdax(), kernel: 'v6.6' });
    k.run(k.probe({ size: 256 * MiB, align: 2 * MiB, altmap: false, as: 'dax0' }));
    k.run(k.reconfigure({ device: 'dax0', mode: 'system-ram', online: false, node: 3 }));
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'buf' }));
    expect(errnoOf(() => k.run(k.mbind({ map: 'buf', policy: 'bind', nodes: [3] })))).toBe('EINVAL');
    k.run(k.memoryState({ device: 'dax0', online: true }));
    k.run(k.mbind({ map: 'buf', policy: 'bind', nodes: [3] }));
    k.run(k.write({ map: 'buf', page: 0, data: 'A' }));
    expect(k.nodeOf(k.pfnOf({ map: 'buf', page: 0 })!)).toBe(3);
    // a node with boot RAM is refused (the model keeps kmem memory on a node of its own)
    const k2 = createKernel({ arch: x86(), driver: devdax(), kernel: 'v6.6' });
    k2.run(k2.probe({ size: 256 * MiB, align: 2 * MiB, altmap: false, as: 'dax0' }));
    expect(() => k2.run(k2.reconfigure({ device: 'dax0', mode: 'system-ram', node: 0 }))).toThrow(/node 0 has boot RAM/);
  });

  it('on a two-node machine the default target node is node 2; numa-nodes may not grow over a kmem node afterwards', () => {
    const k = createKernel({ arch: x86(), driver: devdax(), kernel: 'v6.6' });
    k.run(k.numaNodes({ nodes: 2 }));
    k.run(k.probe({ size: 256 * MiB, align: 2 * MiB, altmap: false, as: 'dax0' }));
    k.run(k.reconfigure({ device: 'dax0', mode: 'system-ram' }));
    expect(k.hotplug.memoryOf('dax0')!.node).toBe(2);
    // node 1 is boot RAM (its own pfn range), node 2 the kmem blocks
    expect(k.nodeOf(boundPage(k, 1, 'r1'))).toBe(1);
    expect(k.nodeOf(boundPage(k, 2, 'r2'))).toBe(k.hotplug.memoryOf('dax0')!.node);
    expect(() => k.run(k.numaNodes({ nodes: 3 }))).toThrow(/which dax0's kmem memory joined/);
  });
});

describe('offline_pages() of a block in use', () => {
  it('migrates the page to node 0 (the nearest other memory node): data and mapping kept, refcount 1, both blocks offline, node 1 empty', () => {
    const { k, firstPfn } = boot('v6.6');
    const pfn = boundPage(k, 1);
    expect(k.run(k.memoryState({ device: 'dax0', online: false }))).toBe(2);
    const now = k.pfnOf({ map: 'buf', page: 0 })!;
    expect(now).not.toBe(pfn);
    expect(k.nodeOf(now)).toBe(0);
    expect(k.folios.rc(now)).toBe(1);
    expect(k.folios.mapcount(now)).toBe(1);
    expect(k.run(k.read({ map: 'buf', page: 0 }))).toBe('A');
    expect(k.ram.live.has(firstPfn)).toBe(false);
    expect(k.hotplug.memoryOf('dax0')!.blocks.map((b) => b.state)).toEqual(['offline', 'offline']);
    // node 1 left N_MEMORY: a new bind to it is EINVAL; the device can go back to devdax
    k.run(k.mmap({ anon: true, length: PAGE, write: true, as: 'other' }));
    expect(errnoOf(() => k.run(k.mbind({ map: 'other', policy: 'bind', nodes: [1] })))).toBe('EINVAL');
    k.run(k.reconfigure({ device: 'dax0', mode: 'devdax' }));
    expect(k.device('dax0').bound).toBe(true);
  });

  it('a THP bound to node 1 is a naturally aligned 512-page folio of block 0; offline migrates it whole to node 0', () => {
    const { k, firstPfn } = boot('v6.6');
    // cow.c's do_run_with_thp(): 4 MiB, MADV_HUGEPAGE on the PMD-aligned second half, one write there
    k.run(k.mmap({ anon: true, length: 4 * MiB, write: true, as: 'mem' }));
    k.run(k.madvise({ map: 'mem', advice: 'hugepage', offset: 2 * MiB, length: 2 * MiB }));
    k.run(k.mbind({ map: 'mem', policy: 'bind', nodes: [1] }));
    k.run(k.write({ map: 'mem', page: 512, data: 'T' }));
    const head = k.pfnOf({ map: 'mem', page: 512 })!;
    // the block starts 1 GiB-aligned, so its first pfn is 512-aligned: the folio is [firstPfn, +512)
    expect(head).toBe(firstPfn);
    expect(k.folios.order(head)).toBe(9);
    expect(k.run(k.memoryState({ device: 'dax0', online: false }))).toBe(2);
    const now = k.pfnOf({ map: 'mem', page: 512 })!;
    expect(k.nodeOf(now)).toBe(0);
    expect(k.folios.order(now)).toBe(9);
    expect(k.run(k.read({ map: 'mem', page: 512 }))).toBe('T');
  });

  it('a short (not long-term) pin: the write to memoryN/state sleeps, retrying, until the unpin; then the page moves', () => {
    const { k, firstPfn } = boundAndPinned('v6.6', false);
    const op = k.memoryState({ device: 'dax0', online: false });
    expect(runUntilAsleep(op)).toBe(false);
    // still where it was, pinned (refcount 1 + GUP_PIN_COUNTING_BIAS 1024), the block still online
    expect(k.pfnOf({ map: 'buf', page: 0 })).toBe(firstPfn);
    expect(k.folios.rc(firstPfn)).toBe(1025);
    expect(k.hotplug.memoryOf('dax0')!.blocks[0]!.state).toBe('online');
    k.run(k.unpin({ name: 'dma' }));
    expect(runUntilAsleep(op)).toBe(true);
    expect(k.nodeOf(k.pfnOf({ map: 'buf', page: 0 })!)).toBe(0);
    expect(k.hotplug.memoryOf('dax0')!.blocks.map((b) => b.state)).toEqual(['offline', 'offline']);
  });

  it('while offline_pages() waits on block 0, node 1 allocates from block 1 only (block 0\'s pageblocks are isolated)', () => {
    const { k, firstPfn } = boundAndPinned('v6.6', false);
    const op = k.memoryState({ device: 'dax0', online: false });
    expect(runUntilAsleep(op)).toBe(false);
    // daxctl writes the blocks' state files one by one: block 0 is isolated, block 1 still
    // online; page 1 of the VMA bound to node 1 is not block 0's next pfn but block 1's first
    expect(errnoOf(() => k.run(k.write({ map: 'buf', page: 1, data: 'B' })))).toBe('ok');
    expect(k.pfnOf({ map: 'buf', page: 1 })).toBe(firstPfn + 32768);
    // the unpin lets block 0 go; block 1 then migrates page 1 as well: both pages on node 0
    k.run(k.unpin({ name: 'dma' }));
    expect(runUntilAsleep(op)).toBe(true);
    expect([0, 1].map((page) => k.nodeOf(k.pfnOf({ map: 'buf', page })!))).toEqual([0, 0]);
    expect(k.run(k.read({ map: 'buf', page: 1 }))).toBe('B');
  });
});

describe('FOLL_LONGTERM on ZONE_MOVABLE', () => {
  it('v5.13+: the page is migrated to node 0 first and pinned there, so offline never waits for it', () => {
    const { k, firstPfn } = boundAndPinned('v6.6', true);
    const now = k.pfnOf({ map: 'buf', page: 0 })!;
    expect(now).not.toBe(firstPfn);
    expect(k.nodeOf(now)).toBe(0);
    expect(k.folios.rc(now)).toBe(1025);
    expect(k.run(k.memoryState({ device: 'dax0', online: false }))).toBe(2);
  });

  it('v5.10 (before d1e153fea2a8): pinned in place on ZONE_MOVABLE, and offline sleeps until the unpin', () => {
    const { k, firstPfn } = boundAndPinned('v5.10', true);
    expect(k.pfnOf({ map: 'buf', page: 0 })).toBe(firstPfn);
    expect(k.folios.rc(firstPfn)).toBe(1025);
    const op = k.memoryState({ device: 'dax0', online: false });
    expect(runUntilAsleep(op)).toBe(false);
    k.run(k.unpin({ name: 'dma' }));
    expect(runUntilAsleep(op)).toBe(true);
  });

  it('v5.13+: a node with a ZONE_NORMAL block keeps the page: GFP_USER allocates on the folio\'s own node, from its ZONE_NORMAL block', () => {
    const k = createKernel({ arch: x86(), driver: devdax(), kernel: 'v6.6' });
    k.run(k.probe({ size: 256 * MiB, align: 2 * MiB, altmap: false, as: 'dax0' }));
    const firstPfn = k.device('dax0').pgmap.startPfn;
    k.run(k.reconfigure({ device: 'dax0', mode: 'system-ram', online: false }));
    const mem = k.hotplug.memoryOf('dax0')!;
    // block 0 online_movable, block 1 online_kernel: node 1 has both zones
    k.hotplug.onlineBlock(mem, mem.blocks[0]!, 'online_movable');
    k.hotplug.onlineBlock(mem, mem.blocks[1]!, 'online_kernel');
    // a user page takes ZONE_MOVABLE first (GFP_HIGHUSER_MOVABLE's zonelist): block 0's first pfn
    expect(boundPage(k, 1)).toBe(firstPfn);
    k.run(k.gup({ map: 'buf', page: 0, write: true, longterm: true, as: 'dma' }, true));
    // alloc_migration_target(): nid = folio_nid(src) = 1, highest zone ZONE_NORMAL: block 1's first pfn
    const now = k.pfnOf({ map: 'buf', page: 0 })!;
    expect(now).toBe(firstPfn + 32768);
    expect(k.ram.zoneOf(now)).toBe('Normal');
    expect(k.folios.rc(now)).toBe(1025);
    expect(k.run(k.read({ map: 'buf', page: 0 }))).toBe('A');
  });

  it('a ZONE_NORMAL kmem block (--no-movable) is long-term pinnable in place on every release', () => {
    const { k, firstPfn } = boundAndPinned('v6.6', true, false);
    expect(k.pfnOf({ map: 'buf', page: 0 })).toBe(firstPfn);
  });
});

function boundAndPinned(version: string, longterm: boolean, movable = true): { k: Kernel; firstPfn: number } {
  const b = boot(version, { movable });
  boundPage(b.k, 1);
  b.k.run(b.k.gup({ map: 'buf', page: 0, write: true, longterm, as: 'dma' }, true));
  return b;
}

describe('explore: daxctl offline-memory racing a short pin (scenarios/explore/kmem-offline-vs-pin.yaml)', () => {
  const catalog: PluginCatalog = { arch: { x86: () => x86() }, fs: {}, driver: { devdax: () => devdax() } };
  for (const version of PRESETS.map((p) => p.name)) {
    it(`${version}: every interleaving completes clean, in two end states: the pin was of the node-1 page (offline waited for the unpin) or of the node-0 page (the pin came after the migration)`, () => {
      const r = exploreOn(catalog, 'kmem-offline-vs-pin.yaml', null, 'devdax', version);
      expect(endSummary(r)).toEqual(CLEAN);
      expect(r.ends.completed).toBe(2);
    });
  }

  it('without the unpin, some interleaving waits forever: offline_pages() has no retry limit', () => {
    const text = readFileSync(join(EXPLORE_DIR, 'kmem-offline-vs-pin.yaml'), 'utf8').replace('      - unpin: dma\n      - read: { map: buf, page: 0, expect: D }\n', '');
    expect(text).not.toContain('unpin: dma');
    const r = exploreScenario(parseScenario(text, 'kmem-offline-vs-pin-no-unpin'), { arch: 'x86', fs: null, driver: 'devdax', version: 'latest', features: {} }, catalog);
    if (!isExploreResult(r)) throw new Error(`kmem-offline-vs-pin without the unpin: ${r.status} ${r.reason}`);
    // pin first: the offline sleeps in the loop (blocked); offline first: the pin takes the node-0 page (completed)
    expect(r.ends.blocked).toBeGreaterThan(0);
    expect(r.ends.completed).toBeGreaterThan(0);
  });
});
