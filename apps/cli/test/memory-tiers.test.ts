import { fileURLToPath } from 'node:url';
import {
  createKernel, demotionTargets, formatNodelist, loadScenarioFile, memoryTiers, MEMTIER_ADISTANCE_DRAM, MEMTIER_CHUNK_BITS, MEMTIER_CHUNK_SIZE, MEMTIER_DEFAULT_DAX_ADISTANCE,
  parseNodelist, parseScenario, PRESETS, runScenario, type Kernel, type PluginCatalog,
} from '@daxlab/core';
import { x86 } from '@daxlab/arch-x86';
import { devdax } from '@daxlab/driver-devdax';
import { describe, expect, it } from 'vitest';
import { errnoOf } from './selftest-api.js';

// Memory tiers of kmem memory (core mm/memtier.ts; mm/memory-tiers.c and drivers/dax/kmem.c,
// v6.1). The tier ids are arithmetic on the kernel's constants (include/linux/memory-tiers.h):
// a tier is memory_tier<adistance >> MEMTIER_CHUNK_BITS>.

const MiB = 1024 * 1024;
const RELEASES = PRESETS.map((p) => p.name);
const catalog: PluginCatalog = { arch: { x86: () => x86() }, fs: {}, driver: { devdax: () => devdax() } };

/** `dram` boot nodes, and one 256 MiB device-dax instance per entry of `kmem` onlined by kmem on that node. */
function machine(version: string, dram: number, kmem: readonly number[]): Kernel {
  const k = createKernel({ arch: x86(), driver: devdax(), kernel: version });
  k.run(k.numaNodes({ nodes: dram }));
  kmem.forEach((node, i) => {
    k.run(k.probe({ size: 256 * MiB, align: 2 * MiB, as: `dax${i}` }));
    k.run(k.reconfigure({ device: `dax${i}`, mode: 'system-ram', node }));
  });
  return k;
}
/** tier id -> nodelist, as cat memory_tier* /nodelist shows them */
const sysfs = (k: Kernel) => Object.fromEntries([...memoryTiers(k)].map(([id, nodes]) => [`memory_tier${id}`, formatNodelist(nodes)]));
/** node -> the line dump_demotion_targets() prints (v6.9) */
const dmesg = (k: Kernel) => Object.fromEntries([...demotionTargets(k)].map(([n, t]) => [n, t.preferred.length ? `preferred: ${formatNodelist(t.preferred)}, fallback: ${formatNodelist(t.fallback)}` : 'null']));

describe('memory tier constants (include/linux/memory-tiers.h, drivers/dax/kmem.c)', () => {
  it('DRAM is 4 * 128 + 128 / 2 = 576 (tier 576 >> 7 = 4), kmem 5 * 576 = 2880 (tier 2880 >> 7 = 22)', () => {
    expect(MEMTIER_CHUNK_SIZE).toBe(128);
    expect(MEMTIER_ADISTANCE_DRAM).toBe(576);
    expect(MEMTIER_DEFAULT_DAX_ADISTANCE).toBe(2880);
    expect(MEMTIER_ADISTANCE_DRAM >> MEMTIER_CHUNK_BITS).toBe(4);
    // 22 * 128 = 2816 <= 2880 < 2944 = 23 * 128
    expect(MEMTIER_DEFAULT_DAX_ADISTANCE >> MEMTIER_CHUNK_BITS).toBe(22);
  });

  it('a nodelist reads and prints as %*pbl does', () => {
    expect(formatNodelist([3, 0, 1, 2, 5])).toBe('0-3,5');
    expect(formatNodelist([])).toBe('');
    expect(parseNodelist('0-1,3')).toEqual([0, 1, 3]);
    expect(parseNodelist(2)).toEqual([2]);
    expect(parseNodelist('1-0')).toBeNull();
    expect(parseNodelist('two')).toBeNull();
  });
});

describe('memory tiers of DRAM and kmem nodes', () => {
  it('the layout published for a kmem node 3 next to DRAM nodes 0-2: memory_tier4 0-2, memory_tier22 3', () => {
    // virtio_pmem onlined through kmem in a qemu guest (lore, "virtio_pmem: add the missing
    // REQ_OP_WRITE for flush bio" thread): memory_tier22/nodelist 3, memory_tier4/nodelist 0-2
    expect(sysfs(machine('v6.6', 3, [3]))).toEqual({ memory_tier4: '0-2', memory_tier22: '3' });
  });

  it('two DRAM nodes and a kmem node 2: nodes 0 and 1 demote to 2 (preferred and fallback), node 2 to nothing', () => {
    const k = machine('v6.15', 2, [2]);
    expect(sysfs(k)).toEqual({ memory_tier4: '0-1', memory_tier22: '2' });
    expect(dmesg(k)).toEqual({ 0: 'preferred: 2, fallback: 2', 1: 'preferred: 2, fallback: 2', 2: 'null' });
  });

  it('a DRAM-only machine has one tier and no demotion target', () => {
    const k = machine('v6.1', 2, []);
    expect(sysfs(k)).toEqual({ memory_tier4: '0-1' });
    expect(dmesg(k)).toEqual({ 0: 'null', 1: 'null' });
  });

  it('two kmem nodes share memory_tier22; every node of it is a preferred target (all remote nodes are REMOTE_DISTANCE away)', () => {
    const k = machine('v6.6', 1, [1, 2]);
    expect(sysfs(k)).toEqual({ memory_tier4: '0', memory_tier22: '1-2' });
    expect(dmesg(k)).toEqual({ 0: 'preferred: 1-2, fallback: 1-2', 1: 'null', 2: 'null' });
    // node 1's last block offline: MEM_OFFLINE with status_change_nid 1 takes it out of the tier
    k.run(k.memoryState({ device: 'dax0', online: false }));
    expect(sysfs(k)).toEqual({ memory_tier4: '0', memory_tier22: '2' });
    expect(dmesg(k)).toEqual({ 0: 'preferred: 2, fallback: 2', 2: 'null' });
  });

  it('two instances on one node: the node stays in its tier until the last of its memory goes offline', () => {
    const k = machine('v6.6', 1, [1, 1]);
    expect(sysfs(k)).toEqual({ memory_tier4: '0', memory_tier22: '1' });
    k.run(k.memoryState({ device: 'dax0', online: false }));
    expect(sysfs(k)).toEqual({ memory_tier4: '0', memory_tier22: '1' });
    k.run(k.memoryState({ device: 'dax1', online: false }));
    expect(sysfs(k)).toEqual({ memory_tier4: '0' });
  });

  it('kmem unbound with its memory online: the range leaks and keeps its node in memory_tier22 (clear_node_memory_type() only after a full hot-remove)', () => {
    const k = machine('v6.6', 1, [1]);
    k.run(k.unbind({ device: 'dax0', force: true }));
    expect(sysfs(k)).toEqual({ memory_tier4: '0', memory_tier22: '1' });
  });

  it('v5.4 and v5.10 have no memory tiers: ENOENT', () => {
    for (const version of ['v5.4', 'v5.10']) expect(errnoOf(() => memoryTiers(machine(version, 2, [2])))).toBe('ENOENT');
  });
});

describe('memory-tiers scenarios', () => {
  for (const name of ['numa/kmem-memory-tiers.yaml', 'numa/kmem-memory-tiers-two-devices.yaml']) {
    it(`${name} passes on every preset`, () => {
      const s = loadScenarioFile(fileURLToPath(new URL(`../scenarios/${name}`, import.meta.url)), name);
      for (const version of RELEASES) {
        const r = runScenario(s, { arch: 'x86', fs: null, driver: 'devdax', version, features: {} }, catalog);
        expect({ version, status: r.status, failures: r.failures }).toEqual({ version, status: 'pass', failures: [] });
      }
    });
  }

  it('a wrong expectation fails the step with what sysfs and node_demotion[] hold', () => {
    const s = parseScenario(`name: t
kernel: { arch: x86, driver: devdax, pageSize: 4KiB }
setup:
  - probe: { driver: devdax, size: 256MiB, align: 2MiB, as: dax0 }
steps:
  - reconfigure: { device: dax0, mode: system-ram }
  - memory-tiers: { tiers: { 4: 0, 21: 1 }, demotion: { 0: null } }
`, 't.yaml');
    const r = runScenario(s, { arch: 'x86', fs: null, driver: 'devdax', version: 'v6.6', features: {} }, catalog);
    expect(r.status).toBe('fail');
    expect(r.failures).toEqual([
      'steps[1]: memory tiers are memory_tier4: 0; memory_tier22: 1, expected memory_tier4: 0; memory_tier21: 1',
      'steps[1]: demotion targets for node 0 are preferred: 1, fallback: 1, expected null',
    ]);
  });

  it('a malformed nodelist, tier id or node is an input error naming the field', () => {
    const load = (step: string) => () => parseScenario(`name: t\nsteps:\n  - memory-tiers: ${step}\n`, 't.yaml');
    expect(load('{ tiers: { 4: "0-x" } }')).toThrow(/memory-tiers\.tiers\.4: '0-x' is not a nodelist/);
    expect(load('{ tiers: { four: 0 } }')).toThrow(/memory-tiers\.tiers\.four: 'four': a tier is named by its id N/);
    expect(load('{ demotion: { node0: null } }')).toThrow(/memory-tiers\.demotion\.node0: 'node0': a demotion entry is keyed by a node number/);
    expect(load('{ demotion: { 0: { preferred: 1 } } }')).toThrow(/memory-tiers\.demotion\.0\.fallback: expected a nodelist/);
  });
});
