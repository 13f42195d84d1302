import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { exploreScenario, loadScenarioFile, runScenario, type PluginCatalog, type ScheduleStep } from '@daxlab/core';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { xfs } from '@daxlab/fs-xfs';
import { describe, expect, it } from 'vitest';
import { exploreCommand, exploreOptions, type ExploreCommandOptions } from '../src/commands/explore.js';
import { testArch } from '@daxlab/core/testing';
import { BUILT, daxlab, memoryIo, tempTree } from './helpers.js';

const library = fileURLToPath(new URL('../scenarios/', import.meta.url));
const catalog: PluginCatalog = { arch: { x86: () => testArch() }, fs: { xfs: () => xfs() }, driver: { nvdimm: () => nvdimm() } };
const deps = { catalog, version: '9.9.9', libraryDir: library, explore: exploreScenario };

/** `daxlab explore …` through commander, as main.ts registers it (kernel flags included). */
async function explore(args: string[], cwd = library) {
  const io = memoryIo(cwd);
  let code = -1;
  const program = new Command('daxlab').exitOverride().configureOutput({ writeOut: io.stdout, writeErr: io.stderr });
  const cmd = program.command('explore').option('--arch <name>').option('--fs <name>').option('--driver <name>').option('--kernel <version>').option('--feature <name=value>', '', (v: string, p: string[] = []) => [...p, v]).option('--plugin <package>', '', (v: string, p: string[] = []) => [...p, v]);
  exploreOptions(cmd).action(async (scenarios: string[], o: ExploreCommandOptions) => {
    code = await exploreCommand(scenarios, o, io, deps);
  });
  await program.parseAsync(['node', 'daxlab', 'explore', ...args]);
  return { code, out: io.out(), err: io.err() };
}

describe('daxlab explore', () => {
  it('table: the verdict, the size of the search, each violation with its shortest schedule, trace and replay command', async () => {
    const r = await explore(['explore/truncate-vs-dma.yaml', '--kernel', 'v6.6']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^PASS   explore-truncate-vs-dma  x86 4KiB xfs nvdimm v6\.6\n/);
    // the time reads 850ms or 1.24s (formatMs) depending on how busy the machine is
    expect(r.out).toMatch(/complete: \d+ states, \d+ transitions, depth \d+, (\d+ms|\d+(\.\d+)?s) \(state-hash\)/);
    expect(r.out).toContain('block-freed-while-pinned: block ');
    expect(r.out).toContain('schedule (5 steps, 1 preemption): app×2 → trunc×3');
    expect(r.out).toMatch(/trunc +#\d+ block\.free /);
    expect(r.out).toContain("replay: daxlab run explore/truncate-vs-dma.yaml --arch x86 --page-size 4KiB --fs xfs --driver nvdimm --kernel v6.6 --schedule '[{\"thread\":\"app\",\"step\":0,\"slices\":2},{\"thread\":\"trunc\",\"step\":0,\"slices\":3}]'");
    expect(r.out).toMatch(/1 cell explored: 1 pass, 0 fail, 0 unsupported, 0 error in \d+ms\n$/);
  });

  it('the printed schedule replays the violation under run', async () => {
    const r = await explore(['explore/truncate-vs-dma.yaml', '--kernel', 'v6.6', '--reporter', 'json']);
    const doc = JSON.parse(r.out) as { cells: { violations: { invariant: string; schedule: ScheduleStep[] }[] }[] };
    const scenario = loadScenarioFile(join(library, 'explore/truncate-vs-dma.yaml'));
    for (const v of doc.cells[0]!.violations) {
      const again = runScenario(scenario, { arch: 'x86', fs: 'xfs', driver: 'nvdimm', version: 'v6.6', features: {} }, catalog, { schedule: v.schedule });
      expect(again.violations.map((x) => x.invariant)).toContain(v.invariant);
    }
  });

  it('json: SCENARIOS.md\'s cell plus complete, states, transitions, ms and per violation the schedule', async () => {
    const r = await explore(['explore/truncate-refault.yaml', '--kernel', 'v6.15', '--reporter', 'json']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.out);
    expect(doc).toMatchObject({ tool: 'daxlab', version: '9.9.9', kind: 'explore', summary: { pass: 1, fail: 0, unsupported: 0, error: 0 } });
    const cell = doc.cells[0];
    expect(cell).toMatchObject({ scenario: 'explore-truncate-refault', status: 'pass', outcome: 'blocked', complete: true, reduction: 'state-hash', violations: [] });
    expect(Object.keys(cell)).toEqual(expect.arrayContaining(['complete', 'states', 'transitions', 'ms']));
    expect(cell.blocked.messages).toEqual([expect.stringMatching(/wait for pfn \d+ of a to become idle/)]);
    expect(cell.blocked.threads).toHaveLength(cell.blocked.trace.length);
    expect(cell.blocked.schedule.every((s: ScheduleStep) => typeof s.slices === 'number')).toBe(true);
  });

  it('a kernel whose expectations do not hold fails with exit code 1, naming the failed rule', async () => {
    const dir = tempTree({
      'x.yaml': readFileSync(join(library, 'explore/truncate-vs-dma.yaml'), 'utf8').replace(/expect:[\s\S]*$/, 'expect:\n  - violations: none\n'),
    });
    const r = await explore(['x.yaml', '--kernel', 'v6.6'], dir);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^FAIL /);
    expect(r.out).toContain('expect[0]: violations [block-freed-while-pinned, dma-to-foreign-block], expected none');
  });

  it('bounds: --max-states and --preemptions make the result bounded, and say why', async () => {
    const r = await explore(['explore/truncate-vs-dma.yaml', '--kernel', 'v6.15', '--max-states', '5', '--preemptions', '1']);
    expect(r.out).toMatch(/bounded \((max-states|preemptions)(, (max-states|preemptions))?\): 5 states/);
    expect(r.out).toContain('at most 1 preemptions');
  });

  it('--search dfs --stop-at-first: a verdict from the first finding, flagged as not complete', async () => {
    const r = await explore(['explore/truncate-vs-dma.yaml', '--kernel', 'v6.6', '--search', 'dfs', '--stop-at-first', '--reporter', 'json']);
    const cell = JSON.parse(r.out).cells[0];
    expect(cell).toMatchObject({ complete: false, limits: ['stop-at-first'], search: 'dfs' });
    expect(cell.violations.map((v: { invariant: string }) => v.invariant)).toEqual(['block-freed-while-pinned']);
  });

  it('html: a self-contained page with a timeline per counterexample, one column per thread', async () => {
    const dir = tempTree({});
    const r = await explore(['--kernel', 'v6.6', '--reporter', 'table,html', '--out', dir, join(library, 'explore/truncate-vs-dma.yaml')]);
    expect(r.code).toBe(0);
    const file = join(dir, 'daxlab-explore.html');
    expect(existsSync(file)).toBe(true);
    const html = readFileSync(file, 'utf8');
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain('<th>setup</th><th>app</th><th>trunc</th>');
    expect(html).toContain('<b>block-freed-while-pinned</b>');
    expect(html).toMatch(/<tr class="hit">.*block\.free/);
    expect(html).not.toMatch(/<script/);
  });

  it('usage errors', async () => {
    await expect(explore(['explore/truncate-vs-dma.yaml', '--reporter', 'html'])).rejects.toThrow(/--reporter html writes a file: add --out DIR/);
    await expect(explore(['explore/truncate-vs-dma.yaml', '--max-states', '0'])).rejects.toThrow(/--max-states 0: expected a whole number of at least 1/);
    await expect(explore(['explore/truncate-vs-dma.yaml', '--reduction', 'dpor'])).rejects.toThrow(/Allowed choices are state-hash, none/);
    await expect(explore(['explore/truncate-vs-dma.yaml', '--search', 'random'])).rejects.toThrow(/Allowed choices are bfs, dfs/);
    await expect(explore(['explore/truncate-vs-dma.yaml', '--jobs', '2'])).rejects.toThrow(/--jobs splits a depth-first search over hashed states/);
    await expect(explore(['explore/truncate-vs-dma.yaml', '--jobs', '2', '--search', 'dfs', '--preemptions', '1'])).rejects.toThrow(/--jobs splits a depth-first search/);
    await expect(explore(['explore/truncate-vs-dma.yaml', '--jobs', '0'])).rejects.toThrow(/--jobs 0: expected a whole number of at least 1/);
    await expect(explore(['explore/truncate-vs-dma.yaml', '--jobs', '2', '--search', 'dfs', '--max-states', '100000000'])).rejects.toThrow(/--max-states 100000000 is more than a shared search holds \(67108864\)/);
  });
});

describe.skipIf(!BUILT)('daxlab explore --jobs (the built CLI: worker threads)', () => {
  const cell = (args: string[]) => {
    const r = daxlab(['explore', ...args, '--reporter', 'json'], library);
    expect(r.code, r.err).toBe(0);
    return JSON.parse(r.out).cells[0];
  };

  it('two threads sharing one table find the states and transitions one thread finds (N = 1, K = 2: 1,481 and 3,171)', () => {
    for (const jobs of ['1', '2', '3']) {
      const c = cell(['explore/spin/scale-n1k2.yaml', '--search', 'dfs', '--jobs', jobs]);
      expect({ jobs, states: c.states, transitions: c.transitions, complete: c.complete, status: c.status, outcome: c.outcome }).toEqual({ jobs, states: 1481, transitions: 3171, complete: true, status: 'pass', outcome: 'completed' });
    }
    // a search this thread finishes before the worker claims a state: the worker is not waited for
    const small = cell(['explore/spin/scale-n1k1.yaml', '--search', 'dfs', '--jobs', '2']);
    expect([small.states, small.transitions, small.complete]).toEqual([83, 120, true]);
  }, 120_000);

  it('with the bug (B1) both the complete and the stop-at-first search find the freed block, with a schedule that replays it', () => {
    const args = ['explore/spin/scale-n1k2.yaml', '--search', 'dfs', '--jobs', '2', '--feature', 'dax-busy-mapping-mapped-check=true'];
    const whole = cell(args);
    expect({ complete: whole.complete, violations: whole.violations.map((v: { invariant: string }) => v.invariant) }).toEqual({ complete: true, violations: ['block-freed-while-pinned'] });
    const first = cell([...args, '--stop-at-first']);
    expect({ complete: first.complete, limits: first.limits, status: first.status }).toEqual({ complete: false, limits: ['stop-at-first'], status: 'pass' });
    const schedule = first.violations[0].schedule as ScheduleStep[];
    const again = runScenario(loadScenarioFile(join(library, 'explore/spin/scale-n1k2.yaml')), { arch: 'x86', fs: 'xfs', driver: 'nvdimm', version: 'latest', features: { 'dax-busy-mapping-mapped-check': true } }, catalog, { schedule });
    expect(again.violations.map((v) => v.invariant)).toContain('block-freed-while-pinned');
  }, 120_000);
});
