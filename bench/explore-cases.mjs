// The issue-6 cases (the seed-004 family on xfs/ext4/fuse, GUP-fast racing fork, device-dax unbind
// racing a pin) explored breadth-first with the reduction, complete, in-process: the table of
// BENCHMARKS.md's "The cases". Run after `npm run build`: `node bench/explore-cases.mjs`.
import { join } from 'node:path';
import { daxlab } from './spin-vs-daxlab.mjs';

const ROOT = join(import.meta.dirname, '..');
const { core, exploreScenario, catalog } = await daxlab();
const file = (name) => core.loadScenarioFile(join(ROOT, 'apps/cli/scenarios/explore', name), `explore/${name}`);

const NO_B1 = { 'dax-busy-mapping-mapped-check': false };
const EHR = { 'fsdax-refcount': 'entry-holds-ref' };
const family = [
  ['legacy (v6.6, no early return)', 'truncate-vs-dma.yaml', 'v6.6', NO_B1],
  ['zero-based (v6.15)', 'truncate-vs-dma.yaml', 'v6.15', {}],
  ['entry-holds-ref', 'truncate-vs-dma.yaml', 'v6.15', EHR],
  ['B1 mapping_mapped() early return (v6.6)', 'truncate-vs-dma.yaml', 'v6.6', {}],
  ['B1 on zero-based', 'truncate-vs-dma.yaml', 'v6.15', { 'dax-busy-mapping-mapped-check': true }],
  ['B2 entries deleted before the wait', 'truncate-vs-dma.yaml', 'v6.15', { 'dax-delete-entries-before-wait': true }],
  ['B3 off-by-one idle wait, FOLL_GET', 'truncate-vs-get.yaml', 'v6.15', { 'dax-wait-refcount-one': true }],
  ['B3 off-by-one idle wait, pin', 'truncate-vs-dma.yaml', 'v6.15', { 'dax-wait-refcount-one': true }],
  ['liveness, legacy', 'truncate-refault.yaml', 'v6.6', NO_B1],
  ['liveness, zero-based', 'truncate-refault.yaml', 'v6.15', {}],
  ['liveness, entry-holds-ref', 'truncate-refault.yaml', 'v6.15', EHR],
  ['liveness + munmap, zero-based', 'truncate-refault-munmap.yaml', 'v6.15', {}],
];
const cases = [
  ...['xfs', 'ext4', 'fuse'].flatMap((fs) => family.map(([what, f, v, feat]) => [`${fs}: ${what}`, f, { arch: 'x86', fs, driver: 'nvdimm', version: v, features: feat }])),
  ...[['no early COW (v5.4)', 'v5.4', {}], ['early COW (v5.10)', 'v5.10', {}], ['v6.15', 'v6.15', {}], ['v6.15 without early COW', 'v6.15', { 'fork-cow-pinned': false }]].map(([what, v, feat]) => [`GUP-fast vs fork: ${what}`, 'gup-fast-vs-fork.yaml', { arch: 'x86', fs: null, driver: null, version: v, features: feat }]),
  ...['v5.10', 'v6.1', 'v6.15'].map((v) => [`devdax unbind vs DMA: ${v}`, 'unbind-vs-dma.yaml', { arch: 'x86', fs: null, driver: 'devdax', version: v, features: {} }]),
];

console.log('| case | scenario | verdict (violations / outcome) | complete | states | transitions | shortest schedule | ms |');
console.log('|---|---|---|---|---:|---:|---|---:|');
for (const [what, name, req] of cases) {
  const r = exploreScenario(file(name), req, catalog);
  const found = r.violations[0] ?? r.blocked;
  const schedule = found ? `${found.length} steps: ${core.describeSchedule(found.schedule)}` : '—';
  const violations = r.violations.length ? r.violations.map((v) => v.invariant).join(' + ') : 'none';
  console.log(`| ${what} | ${name} | ${violations} / ${r.outcome} (${r.status}) | ${r.complete ? 'yes' : r.limits.join(', ')} | ${r.states} | ${r.transitions} | ${schedule} | ${Math.round(r.ms)} |`);
}
