import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadScenarioFile, runScenario, type CellResult } from '@daxlab/core';
import { describe, expect, it } from 'vitest';
import { builtinCatalog } from '../src/catalog.js';
import { main } from '../src/main.js';
import type { Report } from '../src/report/index.js';
import { buildTimeline, parseTraceLine, renderHtml, renderTimeline } from '../src/report/html.js';
import { memoryIo, tempTree } from './helpers.js';

const library = fileURLToPath(new URL('../scenarios/', import.meta.url));

describe('parseTraceLine', () => {
  it("splits core's formatEvent lines; values with spaces stay in the text", () => {
    const e = parseTraceLine('#523 page.ref pfn=16777728 rc=1 delta=1 why=dax_fault_iter: folio_ref_inc (temporary)', 9);
    expect(e).toEqual({ seq: 523, type: 'page.ref', text: 'pfn=16777728 rc=1 delta=1 why=dax_fault_iter: folio_ref_inc (temporary)', fields: { pfn: '16777728', rc: '1', delta: '1', why: 'dax_fault_iter:' } });
    expect(parseTraceLine('not an event', 4)).toEqual({ seq: 4, type: '', text: 'not an event', fields: {} });
  });
});

describe('timeline of a real run: seed 004 dma-vs-truncate with the mapping_mapped() early return', () => {
  // latest preset (zero-based fs-dax refcounts, v6.15+), early return forced back on: the pin
  // outlives the mapping, truncate does not wait, the block is freed and reused, the DMA lands in b.
  const scenario = loadScenarioFile(join(library, 'seed-004/dma-vs-truncate.yaml'));
  const cell = runScenario(scenario, { arch: 'x86', fs: 'xfs', driver: 'nvdimm', version: 'latest', features: { 'dax-busy-mapping-mapped-check': true } }, builtinCatalog(), { trace: true });
  const marks = new Map(cell.violations.map((v) => [parseTraceLine(v.trace.at(-1)!, 0).seq, v.invariant]));
  const t = buildTimeline({ trace: cell.trace!, marks });
  const pinned = Number(/pfns=\[(\d+)\]/.exec(cell.trace!.find((l) => / gup\.pin /.test(l))!)![1]);
  /** the state of the pinned page after the last row at or before `seq` that changed it */
  const stateAt = (seq: number) => [...t.rows].reverse().find((r) => r.lastSeq <= seq && r.pages.has(pinned))!.pages.get(pinned)!.state;
  const seqOf = (re: RegExp) => parseTraceLine(cell.trace!.find((l) => re.test(l))!, 0).seq;

  it('has the threads of the run and the pinned page as the first state column', () => {
    expect(cell.violations.map((v) => v.invariant)).toEqual(['block-freed-while-pinned', 'dma-to-foreign-block']);
    expect(t.threads).toEqual(['setup', 'main']);
    expect(t.pages[0]).toBe(pinned);
  });

  it('follows the pinned page: mapped (ref 1, one PMD), pinned (ref 2), unmapped (ref 1, the pin remains), unpinned at the end', () => {
    // zero-based convention: the PMD mapping holds one reference, pin_user_pages adds one
    // (mm/gup.c try_grab_folio), munmap drops the mapping's after the TLB flush.
    expect(stateAt(seqOf(/ gup\.pin /))).toEqual({ ref: 2, ptes: 1, gup: 1 });
    expect(stateAt(seqOf(/ block\.free .*file=a/))).toEqual({ ref: 1, ptes: 0, gup: 1 });
    // file b maps the reused block (one reference), and the unpin drops the pin's
    expect(stateAt(Infinity)).toEqual({ ref: 1, ptes: 1, gup: 0 });
  });

  it('highlights the violating events and folds runs of block allocations', () => {
    expect(t.rows.filter((r) => r.mark).map((r) => [r.type, r.mark])).toEqual([
      ['block.free', 'block-freed-while-pinned'],
      ['dma.write', 'dma-to-foreign-block'],
    ]);
    // a 2 MiB file is 512 blocks of 4 KiB: 512 block.alloc events in one row
    const alloc = t.rows.find((r) => r.type === 'block.alloc')!;
    expect(alloc.count).toBe(512);
    expect(alloc.text).toBe('device=pmem0 block=0 file=a index=0');
    expect(alloc.lastText).toBe('device=pmem0 block=511 file=a index=511');
    expect(t.rows.length).toBeLessThan(cell.trace!.length / 5);
    expect(t.omitted).toBe(0);
  });

  it('renders one column per thread and per tracked page', () => {
    const html = renderTimeline({ trace: cell.trace!, marks });
    expect(html).toContain(`<th>#</th><th>setup</th><th>main</th><th class="pg">pfn ${pinned}</th>`);
    expect(html).toMatch(/<tr class="hit"><td class="seq" title="block-freed-while-pinned">\d+<\/td><td><\/td><td class="ev block">block\.free /);
    expect(html).toContain('block.alloc ×512');
  });
});

describe('renderHtml', () => {
  const k = { arch: 'x86', pageSize: 4096, fs: 'xfs', driver: 'nvdimm', version: 'v6.6', features: {} };
  const evil = '<img src=x onerror=alert(1)>';
  const cells: CellResult[] = [
    { scenario: 'a', file: `dir/${evil}.yaml`, kernel: k, status: 'pass', outcome: 'completed', violations: [], failures: [], reason: null, trace: [`#1 step thread=setup index=0 op=probe`, `#2 dma.write name=dma pfn=5 data=${evil}`], ms: 1 },
    { scenario: 'a', kernel: { ...k, version: 'v6.15' }, status: 'fail', outcome: 'completed', violations: [{ invariant: 'block-freed-while-pinned', message: `freed ${evil}`, trace: ['#1 step thread=setup index=0 op=probe', '#2 block.free device=pmem0 block=0 pfn=5 file=a'] }], failures: ['expect[0]: violations [block-freed-while-pinned], expected none'], reason: null, ms: 1 },
    { scenario: 'a', kernel: { ...k, fs: 'ext4' }, status: 'unsupported', outcome: 'unsupported', violations: [], failures: [], reason: `no ${evil}`, ms: 0 },
    { scenario: 'b', kernel: { ...k, features: { 'fsdax-refcount': 'legacy' } }, status: 'error', outcome: 'error', violations: [], failures: [], reason: 'b.yaml:1:1: bad', ms: 0 },
  ];
  const report: Report = { kind: 'matrix', version: '1.0.0', cells };
  const html = renderHtml(report);

  it('escapes everything that came from scenarios and traces', () => {
    expect(html).not.toContain(evil);
    expect(html).toContain('&#60;img src=x onerror=alert(1)&#62;');
    // the only script is the page's own
    expect(html.match(/<script/g)).toHaveLength(1);
  });

  it('is a grid: rows per scenario and backend, columns per kernel, one button per cell, a legend with counts', () => {
    expect(html.match(/data-cell="\d+"/g)).toEqual(['data-cell="0"', 'data-cell="1"', 'data-cell="2"', 'data-cell="3"']);
    // columns: v6.6, v6.15, v6.6 with the feature override
    expect(html).toContain('<th class="k" scope="col">v6.6</th><th class="k" scope="col">v6.15</th><th class="k" scope="col">v6.6 fsdax-refcount=legacy</th>');
    // rows: a header row per scenario, then its backends: a on xfs (v6.6 and v6.15), a on ext4;
    // b on xfs. A row with a fail or error cell is 'bad' (the page can show only those)
    expect(html).toContain('<tr class="sc bad"><th colspan="4" scope="rowgroup">a</th></tr>\n<tr class="bad"><th class="be" scope="row">x86 4KiB xfs nvdimm</th><td class="cell pass">');
    expect(html).toContain('<tr class="ok"><th class="be" scope="row">x86 4KiB ext4 nvdimm</th><td class="cell unsupported">');
    expect(html).toContain('<tr class="sc bad"><th colspan="4" scope="rowgroup">b</th></tr>');
    // empty slots are marked empty: 3 rows × 3 columns, 4 cells
    expect(html.match(/<td class="empty"><\/td>/g)).toHaveLength(3 * 3 - 4);
    expect(html).toContain('4 cells: <span class="key pass"><span class="sw">✓</span> pass <b>1</b></span>');
    expect(html).toContain('<span class="key error"><span class="sw">!</span> error <b>1</b></span>');
  });

  it('gives each cell a template with its details; without a recorded trace the violation trace is the timeline', () => {
    expect(html.match(/<template id="cell-\d+">/g)).toHaveLength(4);
    const fail = /<template id="cell-1">([\s\S]*?)<\/template>/.exec(html)![1]!;
    expect(fail).toContain('<li><b>block-freed-while-pinned</b>: freed &#60;img');
    expect(fail).toContain('The events up to the last violation');
    expect(fail).toMatch(/<tr class="hit"><td class="seq" title="block-freed-while-pinned: freed [^"]*">2<\/td>/);
    const unsup = /<template id="cell-2">([\s\S]*?)<\/template>/.exec(html)![1]!;
    expect(unsup).not.toContain('<table');
  });

  it('escapes fields of a report read back from JSON, numbers included', () => {
    // daxlab merge keeps unknown field types as they were written: an edited report may carry markup anywhere
    const edited = { ...cells[0]!, seed: '<b>7</b>' as unknown as number, ms: '<i>1</i>' as unknown as number };
    const page = renderHtml({ kind: 'matrix', version: '<v>', cells: [edited] });
    expect(page).not.toMatch(/<b>7|<i>1|<v>/);
    expect(page).toContain('seed &#60;b&#62;7&#60;/b&#62;, &#60;i&#62;1&#60;/i&#62; ms');
  });

  it('is self-contained: nothing is loaded from elsewhere', () => {
    expect(html).not.toMatch(/(src|href)=["']?(https?:)?\/\//);
    expect(html).not.toMatch(/<link|@import|url\(/);
  });
});

describe('daxlab run/matrix --reporter html', () => {
  it('writes daxlab-report.html next to the JSON, with a timeline from the recorded trace', async () => {
    const dir = tempTree({});
    const io = memoryIo(library);
    const code = await main(['node', 'daxlab', 'matrix', 'seed-004/dma-vs-truncate.yaml', '--arch', 'x86', '--fs', 'xfs', '--kernel', 'v6.6,latest', '--reporter', 'json,html', '--out', dir, '--quiet'], io, { libraryDir: library });
    expect(io.err()).not.toContain('error');
    expect(code).toBe(0);
    const html = readFileSync(join(dir, 'daxlab-report.html'), 'utf8');
    const json = JSON.parse(readFileSync(join(dir, 'daxlab-report.json'), 'utf8')) as { cells: { trace?: string[] }[] };
    expect(json.cells).toHaveLength(2);
    expect(html.match(/data-cell="\d+"/g)).toHaveLength(2);
    // the html run records each cell's whole trace (the JSON of the same run carries it, for merge)
    // (creating the 2 MiB file alone allocates 512 blocks of 4 KiB: 512 block.alloc events)
    expect(json.cells.every((c) => (c.trace?.length ?? 0) > 512)).toBe(true);
    expect(html).toContain('block.alloc ×512');
  });
});
