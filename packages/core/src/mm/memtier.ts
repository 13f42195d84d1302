import type { Kernel } from '../kernel.js';
import { KernelError } from '../errors.js';
import { kernelAtLeast } from '../features.js';
import { MAX_NUMNODES } from './mempolicy.js';

/**
 * Memory tiers and demotion targets (mm/memory-tiers.c, v6.1: "mm/demotion: add support for
 * explicit memory tiers" and the series with it). Every memory node has a memory type with an
 * abstract distance (adistance); a tier covers MEMTIER_CHUNK_SIZE of it and is the sysfs device
 * memory_tier<adistance >> MEMTIER_CHUNK_BITS> under /sys/devices/virtual/memory_tiering/, with
 * a nodelist (%*pbl of the nodes of its types in N_MEMORY). A node joins its tier when it gets
 * memory (memtier_hotplug_callback() MEM_ONLINE with status_change_nid: set_node_memory_tier())
 * and leaves it when its last block goes offline (MEM_OFFLINE: clear_node_memory_tier()); a
 * tier with no node left is unregistered (destroy_memory_tier()). Each change recomputes the
 * demotion targets (establish_demotion_targets()).
 *
 * Boot nodes get the default DRAM type (memory_tier_init(); memory_tier_late_init() from v6.11).
 * kmem gives its node the type MEMTIER_DEFAULT_DAX_ADISTANCE at probe (drivers/dax/kmem.c
 * init_node_memory_type(), 7b88bda3761b, v6.1) and takes it back only when every range went
 * (clear_node_memory_type() after a full hot-remove; a leaked range keeps it). From v6.7 kmem
 * asks mt_calc_adistance() first (HMAT / CDAT performance); the model has no HMAT, so the
 * default stays. Not modelled: v5.15-v6.0's migrate.c targets (no preset covers them), promotion
 * and node_is_toptier(), and demotion itself: the model's only reclaim is MADV_PAGEOUT
 * (reclaim_pages(), mm/swap.ts), whose scan_control sets no_demotion (26aa2d199d6f, v5.15).
 */

/** include/linux/memory-tiers.h: each tier covers 1 << 7 = 128 of abstract distance (v6.1). */
export const MEMTIER_CHUNK_BITS = 7;
export const MEMTIER_CHUNK_SIZE = 1 << MEMTIER_CHUNK_BITS;
/** DRAM sits half a chunk into tier 4, so slightly faster memory shares its tier: 576. */
export const MEMTIER_ADISTANCE_DRAM = 4 * MEMTIER_CHUNK_SIZE + (MEMTIER_CHUNK_SIZE >> 1);
/** drivers/dax/kmem.c: five times DRAM's, 2880. */
export const MEMTIER_DEFAULT_DAX_ADISTANCE = MEMTIER_ADISTANCE_DRAM * 5;

/** node_demotion[node].preferred and its tier's lower_tier_mask (the dmesg line of dump_demotion_targets(), v6.9). */
export interface DemotionTargets {
  readonly preferred: readonly number[];
  readonly fallback: readonly number[];
}

/** memory_tier_init() is a subsys_initcall from v6.1; before, no memory_tiering bus exists. */
function requireTiers(k: Kernel, what: string): void {
  if (!kernelAtLeast(k.version, 6, 1)) throw new KernelError('ENOENT', `${what}: no memory tiers before v6.1 ("mm/demotion: add support for explicit memory tiers")`);
}

/** The abstract distance of a memory node's type: kmem's while it holds (or leaked) memory there. */
function nodeAdistance(k: Kernel, node: number): number {
  for (const m of k.hotplug.added.values()) if (m.node === node) return MEMTIER_DEFAULT_DAX_ADISTANCE;
  return MEMTIER_ADISTANCE_DRAM;
}

/**
 * /sys/devices/virtual/memory_tiering/memory_tierN/nodelist: tier id (round_down(adistance,
 * MEMTIER_CHUNK_SIZE) >> MEMTIER_CHUNK_BITS, find_create_memory_tier()) -> its memory nodes,
 * fastest tier first (the memory_tiers list is sorted by adistance_start).
 */
export function memoryTiers(k: Kernel): Map<number, number[]> {
  requireTiers(k, '/sys/devices/virtual/memory_tiering');
  const tiers = new Map<number, number[]>();
  for (let n = 0; n < MAX_NUMNODES; n++) {
    if (!k.numa.hasMemory(n)) continue;
    const id = nodeAdistance(k, n) >> MEMTIER_CHUNK_BITS;
    tiers.set(id, [...(tiers.get(id) ?? []), n]);
  }
  return new Map([...tiers].sort(([a], [b]) => a - b));
}

/**
 * establish_demotion_targets() for every memory node: preferred is the nearest nodes of the next
 * lower tier (find_next_best_node() while node_distance() stays the best; the model's remote
 * nodes are all REMOTE_DISTANCE away, so the whole next tier), fallback every node of every
 * lower tier (lower_tier_mask); a node of the last tier has none (both empty).
 */
export function demotionTargets(k: Kernel): Map<number, DemotionTargets> {
  const tiers = [...memoryTiers(k).values()];
  const targets = new Map<number, DemotionTargets>();
  tiers.forEach((nodes, i) => {
    const preferred = tiers[i + 1] ?? [];
    const fallback = tiers.slice(i + 1).flat().sort((a, b) => a - b);
    for (const n of nodes) targets.set(n, { preferred, fallback });
  });
  return new Map([...targets].sort(([a], [b]) => a - b));
}

/** A nodemask as the kernel prints it with %*pbl (bitmap_print_to_pagebuf(list=true)): "0-1,3", "" when empty. */
export function formatNodelist(nodes: readonly number[]): string {
  const sorted = [...new Set(nodes)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/** A nodelist as a scenario writes it ("0-1,3", 2, [0, 1]): its nodes, or null when malformed. */
export function parseNodelist(v: string | number | readonly number[]): number[] | null {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 && v < MAX_NUMNODES ? [v] : null;
  if (Array.isArray(v)) return v.every((n) => Number.isInteger(n) && n >= 0 && n < MAX_NUMNODES) ? [...v] : null;
  const text = (v as string).trim();
  if (text === '') return [];
  const nodes: number[] = [];
  for (const part of text.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) return null;
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo || hi >= MAX_NUMNODES) return null;
    for (let n = lo; n <= hi; n++) nodes.push(n);
  }
  return nodes;
}

/** What a `memory-tiers` step expects: tier id -> nodelist, node -> its targets (null: "null"). */
export interface MemoryTiersExpect {
  readonly tiers?: Readonly<Record<string, string>>;
  readonly demotion?: Readonly<Record<string, { preferred: string; fallback: string } | null>>;
}

/**
 * cat /sys/devices/virtual/memory_tiering/memory_tier* /nodelist and the demotion targets: the
 * differences from `want` (the tiers must be exactly those named; nodes not named in demotion
 * are not looked at). ENOENT before v6.1.
 */
export function memoryTiersMismatches(k: Kernel, want: MemoryTiersExpect): string[] {
  const out: string[] = [];
  const tiers = memoryTiers(k);
  if (want.tiers) {
    const got = [...tiers].map(([id, nodes]) => `memory_tier${id}: ${formatNodelist(nodes)}`).join('; ') || 'none';
    const expected = Object.entries(want.tiers).sort(([a], [b]) => Number(a) - Number(b)).map(([id, list]) => `memory_tier${id}: ${list}`).join('; ') || 'none';
    if (got !== expected) out.push(`memory tiers are ${got}, expected ${expected}`);
  }
  const targets = demotionTargets(k);
  for (const [node, w] of Object.entries(want.demotion ?? {})) {
    const t = targets.get(Number(node));
    if (!t) {
      out.push(`node ${node} has no memory tier (no memory), expected demotion targets ${w ? `preferred ${w.preferred}` : 'null'}`);
      continue;
    }
    const got = t.preferred.length === 0 ? 'null' : `preferred: ${formatNodelist(t.preferred)}, fallback: ${formatNodelist(t.fallback)}`;
    const expected = w === null ? 'null' : `preferred: ${w.preferred}, fallback: ${w.fallback}`;
    if (got !== expected) out.push(`demotion targets for node ${node} are ${got}, expected ${expected}`);
  }
  return out;
}
