import type { CellResult } from '@daxlab/core';
import { describe, expect, it } from 'vitest';
import { kernelLabel, renderJson, renderJunit, renderTable, replayCommand, xmlEscape, type Report } from '../src/report/index.js';

const kernel = { arch: 'x86', pageSize: 4096, fs: 'xfs', driver: 'nvdimm', version: 'v6.6', features: { 'pte-devmap': true, 'fsdax-refcount': 'legacy' } } as const;

const CELLS: CellResult[] = [
  { scenario: 'dma-vs-truncate', file: 'scenarios/dma.yaml', kernel: { ...kernel, version: 'v6.15', features: {} }, status: 'pass', outcome: 'completed', violations: [], failures: [], reason: null, seed: 0, ms: 0.8 },
  {
    scenario: 'dma-vs-truncate',
    file: 'scenarios/dma.yaml',
    kernel,
    status: 'fail',
    outcome: 'completed',
    violations: [
      { invariant: 'block-freed-while-pinned', message: 'block 3 freed while pfn 0x100 has 1 pin', trace: Array.from({ length: 15 }, (_, i) => `event ${i} <&>`) },
      { invariant: 'dma-to-foreign-block', message: 'DMA into b', trace: ['x'] },
    ],
    failures: ['expect[0]: violations [block-freed-while-pinned, dma-to-foreign-block], expected none'],
    reason: null,
    seed: 7,
    schedule: [{ thread: 'trunc', step: 0 }, { thread: 'app', step: 0 }],
    ms: 1.25,
  },
  { scenario: 'probe-crash', kernel: { arch: 's390', pageSize: 4096, fs: null, driver: 'devdax', version: 'v6.3', features: {} }, status: 'unsupported', outcome: 'unsupported', violations: [], failures: [], reason: 'no device-dax on s390 "here"', ms: 0.1 },
  { scenario: 'bad', file: 'bad.yaml', kernel: { arch: 'x86', pageSize: 0, fs: null, driver: null, version: 'latest', features: {} }, status: 'error', outcome: 'error', violations: [], failures: [], reason: "bad.yaml:3:5: steps[0].trunc: unknown operation 'trunc'; did you mean 'truncate'?", ms: 0 },
];
const REPORT: Report = { kind: 'matrix', version: '1.2.3', cells: CELLS };

describe('kernelLabel and replayCommand', () => {
  it('name the kernel tuple with sorted feature overrides', () => {
    expect(kernelLabel(kernel)).toBe('x86 4KiB xfs nvdimm v6.6 fsdax-refcount=legacy pte-devmap=true');
    expect(kernelLabel(CELLS[3]!.kernel)).toBe('x86 no-fs no-driver latest');
  });

  it('replay a cell with its kernel and seed', () => {
    expect(replayCommand(CELLS[1]!)).toBe('daxlab run scenarios/dma.yaml --arch x86 --page-size 4KiB --fs xfs --driver nvdimm --kernel v6.6 --feature fsdax-refcount=legacy --feature pte-devmap=true --seed 7');
    expect(replayCommand({ ...CELLS[1]!, file: 'my dir/it\'s.yaml' })).toMatch(/^daxlab run 'my dir\/it'\\''s\.yaml' /);
    expect(replayCommand(CELLS[2]!)).toBeNull();
    expect(replayCommand(CELLS[0]!, ['./toy.mjs', 'daxlab-plugin-x'])).toMatch(/ --seed 0 --plugin \.\/toy\.mjs --plugin daxlab-plugin-x$/);
  });
});

describe('table', () => {
  const plain = renderTable(REPORT, { color: false, elapsedMs: 1234 });

  it('one line per cell, details under the ones that did not pass, a summary', () => {
    const lines = plain.split('\n');
    expect(lines[0]).toBe('PASS   dma-vs-truncate  x86 4KiB xfs nvdimm v6.15');
    expect(lines[1]).toBe('FAIL   dma-vs-truncate  x86 4KiB xfs nvdimm v6.6 fsdax-refcount=legacy pte-devmap=true');
    expect(lines[2]).toBe('       expect[0]: violations [block-freed-while-pinned, dma-to-foreign-block], expected none');
    expect(lines[3]).toBe('       block-freed-while-pinned: block 3 freed while pfn 0x100 has 1 pin (+1 more violation)');
    expect(lines[4]).toBe('         … 3 earlier events');
    expect(lines[5]).toBe('         event 3 <&>');
    expect(lines[16]).toBe('         event 14 <&>');
    expect(lines[17]).toMatch(/^       replay: daxlab run scenarios\/dma\.yaml .* --seed 7$/);
    expect(plain).toContain('UNSUP  probe-crash      s390 4KiB no-fs devdax v6.3\n       no device-dax on s390 "here"\n');
    expect(plain).toContain("ERROR  bad              x86 no-fs no-driver latest\n       bad.yaml:3:5: steps[0].trunc: unknown operation 'trunc'");
    expect(plain.endsWith('\n4 cells: 1 pass, 1 fail, 1 unsupported, 1 error in 1.23s\n')).toBe(true);
  });

  it('no escape codes unless asked; colour when asked', () => {
    expect(plain).not.toMatch(/\x1b\[/);
    const colored = renderTable(REPORT, { color: true });
    expect(colored).toMatch(/\x1b\[32mPASS /);
    expect(colored).toMatch(/\x1b\[31mFAIL /);
  });

  it('quiet shows only cells that did not pass', () => {
    const q = renderTable(REPORT, { color: false, quiet: true });
    expect(q).not.toContain('PASS');
    expect(q).toContain('FAIL');
    expect(q).toContain('4 cells: 1 pass');
  });

  it('--trace prints the trace a cell carries', () => {
    const t = renderTable({ ...REPORT, cells: [{ ...CELLS[0]!, trace: ['probe pmem0', 'mount'] }] }, { color: false, trace: true });
    expect(t).toContain('       trace (2 events):\n         probe pmem0\n         mount\n');
  });

  it('an empty run says so', () => {
    expect(renderTable({ ...REPORT, cells: [] }, { color: false })).toBe('0 cells: 0 pass, 0 fail, 0 unsupported, 0 error\n');
  });
});

describe('json', () => {
  const text = renderJson(REPORT);
  const doc = JSON.parse(text) as Record<string, unknown> & { cells: Record<string, unknown>[] };

  it('has the shape of SCENARIOS.md, keys in a fixed order', () => {
    expect(Object.keys(doc)).toEqual(['tool', 'version', 'kind', 'cells', 'summary']);
    expect(doc.tool).toBe('daxlab');
    expect(doc.version).toBe('1.2.3');
    expect(doc.kind).toBe('matrix');
    expect(doc.summary).toEqual({ pass: 1, fail: 1, unsupported: 1, error: 1 });
    expect(Object.keys(doc.cells[1]!)).toEqual(['scenario', 'file', 'kernel', 'status', 'outcome', 'violations', 'failures', 'reason', 'seed', 'schedule', 'ms']);
    expect(doc.cells[1]!.kernel).toEqual({ arch: 'x86', pageSize: 4096, fs: 'xfs', driver: 'nvdimm', version: 'v6.6', features: { 'fsdax-refcount': 'legacy', 'pte-devmap': true } });
    expect(Object.keys((doc.cells[1]!.kernel as { features: object }).features)).toEqual(['fsdax-refcount', 'pte-devmap']);
    expect((doc.cells[1]!.violations as unknown[])[0]).toEqual({ invariant: 'block-freed-while-pinned', message: 'block 3 freed while pfn 0x100 has 1 pin', trace: CELLS[1]!.violations[0]!.trace });
    expect(doc.cells[2]).toEqual({ scenario: 'probe-crash', kernel: { arch: 's390', pageSize: 4096, fs: null, driver: 'devdax', version: 'v6.3', features: {} }, status: 'unsupported', outcome: 'unsupported', violations: [], failures: [], reason: 'no device-dax on s390 "here"', ms: 0.1 });
  });

  it('is byte-identical for the same cells, whatever order their objects were built in', () => {
    const shuffled = CELLS.map((c) => Object.fromEntries(Object.entries(c).reverse()) as unknown as CellResult);
    expect(renderJson({ ...REPORT, cells: shuffled })).toBe(text);
  });
});

/** A tiny XML well-formedness check: balanced tags, quoted attributes, only the five entities. */
function parseXml(xml: string): { name: string; attrs: Record<string, string>; text: string; children: unknown[] } {
  const decl = /^<\?xml version="1\.0" encoding="UTF-8"\?>\n/;
  if (!decl.test(xml)) throw new Error('missing XML declaration');
  const body = xml.replace(decl, '');
  const stack: { name: string; attrs: Record<string, string>; text: string; children: unknown[] }[] = [{ name: '#root', attrs: {}, text: '', children: [] }];
  const entity = (s: string) => {
    if (/&(?!(amp|lt|gt|quot|apos);)/.test(s)) throw new Error(`bad entity in ${s}`);
    return s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
  };
  const re = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|([^<]+)/gy;
  let m: RegExpExecArray | null;
  let pos = 0;
  while ((m = re.exec(body))) {
    pos = re.lastIndex;
    const top = stack[stack.length - 1]!;
    if (m[5] !== undefined) {
      top.text += entity(m[5]);
      continue;
    }
    const [, close, name, rawAttrs, selfClose] = m;
    if (close) {
      if (top.name !== name) throw new Error(`</${name}> closes <${top.name}>`);
      stack.pop();
      continue;
    }
    const attrs: Record<string, string> = {};
    for (const a of rawAttrs!.matchAll(/([\w:-]+)="([^"]*)"/g)) {
      if (a[1]! in attrs) throw new Error(`duplicate attribute ${a[1]}`);
      attrs[a[1]!] = entity(a[2]!);
    }
    const el = { name: name!, attrs, text: '', children: [] as unknown[] };
    top.children.push(el);
    if (!selfClose) stack.push(el);
  }
  if (pos !== body.length) throw new Error(`cannot parse at ${pos}: ${body.slice(pos, pos + 40)}`);
  if (stack.length !== 1) throw new Error(`unclosed <${stack[stack.length - 1]!.name}>`);
  const roots = stack[0]!.children.filter((c) => typeof c === 'object');
  if (roots.length !== 1) throw new Error('not exactly one root element');
  return roots[0] as { name: string; attrs: Record<string, string>; text: string; children: unknown[] };
}

type El = ReturnType<typeof parseXml>;
const kids = (e: El, name?: string) => (e.children as El[]).filter((c) => !name || c.name === name);

describe('junit', () => {
  const xml = renderJunit(REPORT);
  const root = parseXml(xml);

  it('is well-formed, with totals on <testsuites>', () => {
    expect(root.name).toBe('testsuites');
    expect(root.attrs).toEqual({ name: 'daxlab matrix', tests: '4', failures: '1', errors: '1', skipped: '1', time: '0.002' });
  });

  it('one <testsuite> per scenario and one <testcase> per cell (classname = scenario, name = kernel tuple)', () => {
    const suites = kids(root, 'testsuite');
    expect(suites.map((s) => [s.attrs.name, s.attrs.tests])).toEqual([['dma-vs-truncate', '2'], ['probe-crash', '1'], ['bad', '1']]);
    const cases = suites.flatMap((s) => kids(s, 'testcase'));
    expect(cases.map((c) => [c.attrs.classname, c.attrs.name, c.attrs.time])).toEqual([
      ['dma-vs-truncate', 'x86 4KiB xfs nvdimm v6.15', '0.001'],
      ['dma-vs-truncate', 'x86 4KiB xfs nvdimm v6.6 fsdax-refcount=legacy pte-devmap=true', '0.001'],
      ['probe-crash', 's390 4KiB no-fs devdax v6.3', '0.000'],
      ['bad', 'x86 no-fs no-driver latest', '0.000'],
    ]);
    const [pass, fail, unsup, error] = cases;
    expect(kids(pass!).map((c) => c.name)).toEqual(['properties']);
    const failure = kids(fail!, 'failure')[0]!;
    expect(failure.attrs.message).toBe('expect[0]: violations [block-freed-while-pinned, dma-to-foreign-block], expected none');
    expect(failure.attrs.type).toBe('block-freed-while-pinned');
    expect(failure.text).toContain('event 14 <&>');
    expect(kids(unsup!, 'skipped')[0]!.attrs.message).toBe('unsupported: no device-dax on s390 "here"');
    expect(kids(error!, 'error')[0]!.attrs.message).toMatch(/^bad\.yaml:3:5: steps\[0\]\.trunc: unknown operation 'trunc'/);
  });

  it('carries seed, file and features as properties', () => {
    const fail = kids(kids(root, 'testsuite')[0]!, 'testcase')[1]!;
    const props = kids(kids(fail, 'properties')[0]!, 'property').map((p) => [p.attrs.name, p.attrs.value]);
    expect(props).toEqual([['file', 'scenarios/dma.yaml'], ['seed', '7'], ['outcome', 'completed'], ['feature:fsdax-refcount', 'legacy'], ['feature:pte-devmap', 'true']]);
  });

  it('escapes markup and drops characters XML cannot carry', () => {
    expect(xmlEscape(`a<b>&"c"'d'\u0001\n`)).toBe('a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;\n');
    const nasty = renderJunit({ ...REPORT, cells: [{ ...CELLS[3]!, scenario: 'x"<y>', reason: 'a & b \u0007 </error>' }] });
    const r = parseXml(nasty);
    const err = kids(kids(kids(r, 'testsuite')[0]!, 'testcase')[0]!, 'error')[0]!;
    expect(err.attrs.message).toBe('a & b  </error>');
  });
});
