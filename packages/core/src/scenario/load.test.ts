import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '../errors.js';
import { loadScenarioFile, parseScenario } from './load.js';

const SPEC_EXAMPLE = `name: dma-vs-truncate            # required, kebab-case, unique in a library
description: map, pin for DMA, unmap, truncate, end DMA (seed 004)
kernel:
  arch: x86
  pageSize: 4KiB
  fs: xfs
  driver: nvdimm
  version: v6.6
  features: { fsdax-refcount: legacy }
setup:
  - probe:  { size: 1GiB, align: 2MiB, as: pmem0 }
  - mount:  { device: pmem0 }
  - create: { file: a, size: 2MiB }
  - mmap:   { file: a, length: 2MiB, shared: true, write: true, as: m }
  - write:  { map: m, page: 0, data: A }
  - pin:    { map: m, page: 0, write: true, as: dma }
threads:
  - name: app
    steps:
      - munmap: { map: m }
      - dma-write: { pin: dma, data: B }
      - unpin:  dma
  - name: trunc
    steps:
      - truncate: { file: a, size: 0 }
      - create: { file: b, size: 2MiB }
expect:
  - when: { features: { dax-busy-mapping-mapped-check: false } }
    violations: none
  - when: { features: { dax-busy-mapping-mapped-check: true } }
    violations: [block-freed-while-pinned, dma-to-foreign-block]
`;

/** The InputError message for a scenario text (fails the test if it parses). */
function errorOf(text: string, file = 's.yaml'): InputError {
  try {
    parseScenario(text, file);
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return e as InputError;
  }
  throw new Error(`expected an InputError for:\n${text}`);
}

const oneStep = (step: string, extra = '') => `name: t\n${extra}steps:\n  - ${step}\n`;

describe('parseScenario: the SCENARIOS.md example', () => {
  const s = parseScenario(SPEC_EXAMPLE, 'dma.yaml');

  it('keeps name, description, file and mode', () => {
    expect(s.name).toBe('dma-vs-truncate');
    expect(s.description).toMatch(/seed 004/);
    expect(s.file).toBe('dma.yaml');
    expect(s.mode).toBe('run');
  });

  it('normalises kernel sizes and features', () => {
    expect(s.kernel).toEqual({ arch: 'x86', pageSize: 4096, fs: 'xfs', driver: 'nvdimm', version: 'v6.6', features: { 'fsdax-refcount': 'legacy' } });
  });

  it('turns sizes into bytes and keeps each step path', () => {
    expect(s.setup[0]).toEqual({ op: 'probe', args: { size: 1 << 30, align: 2 << 20, as: 'pmem0' }, path: 'setup[0]' });
    expect(s.setup[3]!.args).toEqual({ file: 'a', length: 2 << 20, shared: true, write: true, as: 'm' });
    expect(s.threads.map((t) => t.name)).toEqual(['app', 'trunc']);
    expect(s.threads[1]!.steps[0]).toEqual({ op: 'truncate', args: { file: 'a', size: 0 }, path: 'threads[1].steps[0]' });
  });

  it('normalises `unpin: dma` to { name }', () => {
    expect(s.threads[0]!.steps[2]).toEqual({ op: 'unpin', args: { name: 'dma' }, path: 'threads[0].steps[2]' });
  });

  it('normalises expect rules: lists for when values, path kept', () => {
    expect(s.expect).toEqual([
      { path: 'expect[0]', when: { features: { 'dax-busy-mapping-mapped-check': [false] } }, violations: 'none' },
      { path: 'expect[1]', when: { features: { 'dax-busy-mapping-mapped-check': [true] } }, violations: ['block-freed-while-pinned', 'dma-to-foreign-block'] },
    ]);
  });
});

describe('parseScenario: forms', () => {
  it('a single steps list is one thread named main', () => {
    const s = parseScenario(oneStep('spawn: { as: p }'), 'x.yaml');
    expect(s.threads).toEqual([{ name: 'main', steps: [{ op: 'spawn', args: { as: 'p' }, path: 'steps[0]' }] }]);
    expect(s.setup).toEqual([]);
    expect(s.expect).toEqual([]);
  });

  it('reads JSON files', () => {
    const s = parseScenario(JSON.stringify({ name: 'j', mode: 'explore', steps: [{ spawn: { as: 'p' } }, { put: { name: 'g' } }], setup: [{ spawn: { as: 'q' } }, { mmap: { anon: true, length: 4096, as: 'm', process: 'q' } }, { get: { map: 'm', page: 0, as: 'g' } }] }), 'j.json');
    expect(s.mode).toBe('explore');
    expect(s.threads[0]!.steps[1]!.args).toEqual({ name: 'g' });
  });

  it('step expect: error code, blocks as a string or as { blocks: true }', () => {
    const s = parseScenario(
      'name: t\nsteps:\n  - spawn: { as: p }\n    expect: { error: EBUSY }\n  - spawn: { as: q }\n    expect: blocks\n  - spawn: { as: r }\n    expect: { blocks: true }\n',
      'x.yaml',
    );
    expect(s.threads[0]!.steps.map((st) => st.expect)).toEqual([{ error: 'EBUSY' }, { blocks: true }, { blocks: true }]);
  });

  it('a step may carry when: (the same form as an expect rule)', () => {
    const s = parseScenario(oneStep('spawn: { as: p }\n    when: { features: { fsdax-refcount: [legacy, zero-based] }, arch: x86 }'), 'x.yaml');
    expect(s.threads[0]!.steps[0]).toEqual({ op: 'spawn', args: { as: 'p' }, when: { features: { 'fsdax-refcount': ['legacy', 'zero-based'] }, arch: ['x86'] }, path: 'steps[0]' });
    expect(errorOf(oneStep('spawn: { as: p }\n    when: { features: { fsdax-refcount: legcy } }')).message).toMatch(/steps\[0\]\.when\.features\.fsdax-refcount: 'legcy' is not one of legacy, zero-based, entry-holds-ref; did you mean 'legacy'\?/);
  });

  it('memory-failure names a device page or a mapped page (MADV_HWPOISON, with the calling process), never both', () => {
    const setup = 'setup:\n  - probe: { size: 1GiB, as: d }\n  - mount: { device: d }\n  - create: { file: f, size: 4KiB }\n  - mmap: { file: f, length: 4KiB, shared: true, as: m }\n  - spawn: { as: p }\n';
    const s = parseScenario(`name: t\n${setup}steps:\n  - memory-failure: { device: d, page: 3 }\n  - memory-failure: { map: m, page: 0, process: p }\n`, 'x.yaml');
    expect(s.threads[0]!.steps.map((st) => st.args)).toEqual([{ device: 'd', page: 3 }, { map: 'm', page: 0, process: 'p' }]);
    const bad = (step: string) => errorOf(`name: t\n${setup}steps:\n  - ${step}\n`).message;
    expect(bad('memory-failure: { device: d, map: m, page: 0 }')).toMatch(/steps\[0\]\.memory-failure: say which page fails: device: <name> \(a device page\) or map: <name>/);
    expect(bad('memory-failure: { page: 0 }')).toMatch(/say which page fails/);
    expect(bad('memory-failure: { device: d, page: 0, process: p }')).toMatch(/steps\[0\]\.memory-failure\.process: process goes with map:/);
    expect(bad('memory-failure: { map: mm, page: 0 }')).toMatch(/steps\[0\]\.memory-failure\.map: a mapping named 'mm' is used before it is defined/);
  });

  it('check forms normalise to { what, target, equals | min | max }', () => {
    const setup = 'setup:\n  - probe: { size: 1GiB, as: d }\n  - mount: { device: d }\n  - create: { file: f, size: 4KiB }\n  - mmap: { file: f, length: 4KiB, as: m }\n  - fork: { as: c }\n';
    const s = parseScenario(
      `name: t\n${setup}steps:\n` +
        '  - check: { refcount: { map: m, page: 0, process: c }, equals: 2 }\n' +
        '  - check: { mapcount: { file: f, page: 0 }, min: 1, max: 3 }\n' +
        '  - check: { pinned: { device: d, page: 5 }, equals: false }\n' +
        '  - check: { blockFree: { file: f, page: 0 }, equals: true }\n' +
        '  - check: { vmemmap: { device: d }, equals: { bytes: 16MiB, pages: 4096, structPagesInitialized: 262144 } }\n',
      'x.yaml',
    );
    expect(s.threads[0]!.steps.map((st) => st.args)).toEqual([
      { what: 'refcount', target: { map: 'm', page: 0, process: 'c' }, equals: 2 },
      { what: 'mapcount', target: { file: 'f', page: 0 }, min: 1, max: 3 },
      { what: 'pinned', target: { device: 'd', page: 5 }, equals: false },
      { what: 'blockFree', target: { file: 'f', page: 0 }, equals: true },
      { what: 'vmemmap', target: { device: 'd' }, equals: { bytes: 16 << 20, pages: 4096, structPagesInitialized: 262144 } },
    ]);
  });

  it('when values may be single or lists', () => {
    const s = parseScenario(oneStep('spawn: { as: p }', 'expect:\n  - when: { arch: [x86, arm64], version: v6.1, features: { fsdax-refcount: [legacy, zero-based] } }\n    outcome: oops\n  - unsupported: true\n'), 'x.yaml');
    expect(s.expect[0]).toEqual({ path: 'expect[0]', when: { arch: ['x86', 'arm64'], version: ['v6.1'], features: { 'fsdax-refcount': ['legacy', 'zero-based'] } }, outcome: 'oops' });
    expect(s.expect[1]).toEqual({ path: 'expect[1]', unsupported: true });
  });

  it('a thread may use a name another thread defines; setup names are visible everywhere', () => {
    const s = parseScenario(
      'name: t\nsetup:\n  - spawn: { as: p }\nthreads:\n  - name: a\n    steps:\n      - mmap: { process: p, anon: true, length: 4KiB, as: m }\n  - name: b\n    steps:\n      - write: { map: m, page: 0, data: x }\n',
      'x.yaml',
    );
    expect(s.threads[1]!.steps[0]!.args).toEqual({ map: 'm', page: 0, data: 'x' });
  });

  it('sizes accept bytes, K/M/G/T and KiB forms', () => {
    const s = parseScenario('name: t\nsteps:\n  - probe: { size: 4T, align: 2048KiB, as: d }\n  - probe: { size: 65536, as: e }\n', 'x.yaml');
    expect(s.threads[0]!.steps.map((st) => st.args.size)).toEqual([4 * 2 ** 40, 65536]);
    expect(s.threads[0]!.steps[0]!.args.align).toBe(2 << 20);
  });
});

describe('parseScenario: errors name file, line:column, field and fix', () => {
  it('unknown operation, with a suggestion', () => {
    const e = errorOf(oneStep('trunc: { file: a, size: 0 }'), 'bad.yaml');
    expect(e.message).toMatch(/^bad\.yaml:3:5: steps\[0\]\.trunc: unknown operation 'trunc'; did you mean 'truncate'\?/);
    expect(e.file).toBe('bad.yaml');
    expect(e.field).toBe('steps[0].trunc');
  });

  it('unknown field, with a suggestion and the allowed fields', () => {
    const e = errorOf('name: t\nsetup:\n  - create: { file: a, sise: 0 }\nsteps:\n  - spawn: { as: p }\n');
    expect(e.message).toBe("s.yaml:3:24: setup[0].create.sise: unknown field 'sise'; did you mean 'size'? (fields here: { file, size, device?, dir?, inline? })");
  });

  it('bad size in a deep thread path', () => {
    const e = errorOf('name: t\nsetup:\n  - probe: { size: 1G, as: d }\n  - mount: { device: d }\n  - create: { file: a, size: 1M }\nthreads:\n  - name: x\n    steps:\n      - spawn: { as: p }\n  - name: y\n    steps:\n      - truncate: { file: a, size: lots }\n');
    expect(e.message).toMatch(/^s\.yaml:12:36: threads\[1\]\.steps\[0\]\.truncate\.size: 'lots' is not a size: write bytes or a number with K, M, G or T/);
    expect(e.field).toBe('threads[1].steps[0].truncate.size');
  });

  it('too many alias uses: a located input error, not the YAML library\'s ReferenceError', () => {
    const steps = Array.from({ length: 120 }, (_, i) => `  - spawn: { as: p${i} }\n    when: ${i === 0 ? '&w ' : '*'}${i === 0 ? '{ arch: [x86] }' : 'w'}\n`).join('');
    const e = errorOf(`name: t\nsteps:\n${steps}`);
    expect(e.message).toMatch(/^s\.yaml: too many uses of YAML aliases \(\*name\) for the loader \(at most 100 expanded\): write the repeated values out/);
  });

  it('missing required field', () => {
    expect(errorOf(oneStep('spawn: {}')).message).toBe("s.yaml:3:12: steps[0].spawn.as: missing required field 'as'");
  });

  it('an operation without arguments', () => {
    expect(errorOf(oneStep('munmap')).message).toMatch(/steps\[0\]: 'munmap' needs its arguments/);
    expect(errorOf(oneStep('spawn:')).message).toMatch(/steps\[0\]\.spawn: expected a mapping \{ as \}; got nothing/);
  });

  it('two operations in one step', () => {
    expect(errorOf(oneStep('spawn: { as: p }\n    exit: { process: p }')).message).toMatch(/one operation per step: found spawn and exit/);
  });

  it('negative and fractional page numbers', () => {
    expect(errorOf(oneStep('read: { map: m, page: -1 }', 'setup:\n  - mmap: { anon: true, length: 4KiB, as: m }\n')).message).toMatch(/steps\[0\]\.read\.page: must be at least 0; got -1/);
    expect(errorOf(oneStep('read: { map: m, page: 1.5 }', 'setup:\n  - mmap: { anon: true, length: 4KiB, as: m }\n')).message).toMatch(/steps\[0\]\.read\.page: expected a whole number; got 1\.5/);
  });

  it('bad errno, with a suggestion', () => {
    expect(errorOf(oneStep('spawn: { as: p }\n    expect: { error: EBSY }')).message).toMatch(/steps\[0\]\.expect\.error: 'EBSY' is not one of .*; did you mean 'EBUSY'\?/);
  });

  it('scenario name must be kebab-case', () => {
    expect(errorOf('name: DmaTest\nsteps:\n  - spawn: { as: p }\n').message).toMatch(/^s\.yaml:1:7: name: 'DmaTest' is not kebab-case/);
  });

  it('unknown version and feature value, with suggestions', () => {
    expect(errorOf(oneStep('spawn: { as: p }', 'kernel: { version: v6.16 }\n')).message).toMatch(/kernel\.version: 'v6\.16' is not one of v5\.4, .*latest; did you mean 'v6\.15'\?/);
    expect(errorOf(oneStep('spawn: { as: p }', 'kernel: { features: { fsdax-refcount: zero } }\n')).message).toMatch(/kernel\.features\.fsdax-refcount: 'zero' is not one of legacy, zero-based, entry-holds-ref; did you mean 'zero-based'\?/);
    expect(errorOf(oneStep('spawn: { as: p }', 'kernel: { features: { pte-devmp: true } }\n')).message).toMatch(/kernel\.features\.pte-devmp: unknown field 'pte-devmp'; did you mean 'pte-devmap'\?/);
    expect(errorOf(oneStep('spawn: { as: p }', 'kernel: { pageSize: 3000 }\n')).message).toMatch(/kernel\.pageSize: a page size is a power of two/);
  });

  it('unknown invariant in violations', () => {
    expect(errorOf(oneStep('spawn: { as: p }', 'expect:\n  - violations: [block-freed-while-pined]\n')).message).toMatch(/expect\[0\]\.violations\[0\]: 'block-freed-while-pined' is not one of .*; did you mean 'block-freed-while-pinned'\?/);
  });

  it('a rule that says nothing', () => {
    expect(errorOf(oneStep('spawn: { as: p }', 'expect:\n  - when: { arch: x86 }\n')).message).toMatch(/expect\[0\]: a rule needs violations, outcome or unsupported/);
  });

  it('threads and steps: exactly one', () => {
    expect(errorOf('name: t\n').message).toMatch(/add steps: \(one thread\) or threads:/);
    expect(errorOf('name: t\nsteps:\n  - spawn: { as: p }\nthreads:\n  - name: a\n    steps:\n      - spawn: { as: q }\n').message).toMatch(/use either steps .* or threads .*, not both/);
    expect(errorOf('name: t\nsteps: []\n').message).toMatch(/steps: a thread needs at least one step/);
  });

  it('duplicate thread names', () => {
    expect(errorOf('name: t\nthreads:\n  - name: a\n    steps: [ { spawn: { as: p } } ]\n  - name: a\n    steps: [ { spawn: { as: q } } ]\n').message).toMatch(/threads\[1\]\.name: thread name 'a' is already used by threads\[0\]/);
  });

  it('check: one thing, a target that fits, a comparison of the right type', () => {
    const pre = 'setup:\n  - mmap: { anon: true, length: 4KiB, as: m }\n';
    expect(errorOf(oneStep('check: { equals: 1 }', pre)).message).toMatch(/steps\[0\]\.check: say what to check: one of refcount/);
    expect(errorOf(oneStep('check: { refcount: { map: m, page: 0 }, pinned: { map: m, page: 0 }, equals: 1 }', pre)).message).toMatch(/check one thing at a time/);
    expect(errorOf(oneStep('check: { refcount: { map: m }, equals: 1 }', pre)).message).toMatch(/steps\[0\]\.check\.refcount: add page/);
    expect(errorOf(oneStep('check: { pinned: { map: m, page: 0 }, equals: 1 }', pre)).message).toMatch(/steps\[0\]\.check\.equals: pinned compares with a boolean/);
    expect(errorOf(oneStep('check: { refcount: { map: m, page: 0 } }', pre)).message).toMatch(/say what to expect: equals, or min and\/or max/);
    expect(errorOf(oneStep('check: { blockFree: { map: m, page: 0 }, equals: true }', pre)).message).toMatch(/blockFree looks at a file's block/);
    expect(errorOf(oneStep('check: { refcount: { map: m, page: 0 }, equal: 1 }', pre)).message).toMatch(/unknown field 'equal'; did you mean 'equals'\?/);
  });

  it('mmap must say what it maps', () => {
    expect(errorOf(oneStep('mmap: { length: 4KiB, as: m }')).message).toMatch(/steps\[0\]\.mmap: say what to map: file: <name>, device: <name> or anon: true/);
  });

  it('YAML syntax errors carry line:column', () => {
    expect(errorOf('name: t\nsteps:\n  - spawn: { as: p\n').message).toMatch(/^s\.yaml:\d+:\d+: not valid YAML\/JSON: /);
    expect(errorOf('name: t\nname: u\nsteps: []\n').message).toMatch(/^s\.yaml:2:1: not valid YAML\/JSON: Map keys must be unique/);
  });

  it('empty file and non-mapping top level', () => {
    expect(errorOf('').message).toBe('s.yaml: the file is empty: a scenario needs a name and steps (see docs/scenarios.md)');
    expect(errorOf('- a\n- b\n').message).toMatch(/expected a mapping with name, steps or threads/);
  });

  it('strict at the top level too', () => {
    expect(errorOf('name: t\ndescripton: x\nsteps:\n  - spawn: { as: p }\n').message).toMatch(/^s\.yaml:2:1: descripton: unknown field 'descripton'; did you mean 'description'\?/);
  });
});

describe('parseScenario: names are defined before they are used', () => {
  it('a name used before any step defines it', () => {
    expect(errorOf(oneStep('truncate: { file: b, size: 0 }')).message).toBe("s.yaml:3:23: steps[0].truncate.file: a file named 'b' is used before it is defined; define it first with create: { file: NAME, size: … }");
  });

  it('suggests a defined name of the right kind', () => {
    const e = errorOf('name: t\nsteps:\n  - mmap: { anon: true, length: 4KiB, as: buf }\n  - write: { map: bfu, page: 0, data: x }\n');
    expect(e.message).toMatch(/steps\[1\]\.write\.map: a mapping named 'bfu' is used before it is defined; did you mean 'buf'\?/);
  });

  it('says when the definition comes later in the same thread', () => {
    const e = errorOf('name: t\nsteps:\n  - unpin: dma\n  - mmap: { anon: true, length: 4KiB, as: m }\n  - pin: { map: m, page: 0, as: dma }\n');
    expect(e.message).toMatch(/^s\.yaml:3:12: steps\[0\]\.unpin: a pin named 'dma' is used before it is defined; it is defined later \(steps\[2\]\)/);
  });

  it('setup may not use names that only threads define', () => {
    const e = errorOf('name: t\nsetup:\n  - exit: { process: p }\nsteps:\n  - spawn: { as: p }\n');
    expect(e.message).toMatch(/setup\[0\]\.exit\.process: a process named 'p' is used before it is defined/);
  });

  it('a name of the wrong kind', () => {
    const e = errorOf('name: t\nsteps:\n  - mmap: { anon: true, length: 4KiB, as: m }\n  - unpin: m\n');
    expect(e.message).toMatch(/steps\[1\]\.unpin: 'm' is a mapping, not a pin/);
  });

  it('one name for two kinds of object', () => {
    const e = errorOf('name: t\nsteps:\n  - spawn: { as: x }\n  - mmap: { anon: true, length: 4KiB, as: x }\n');
    expect(e.message).toMatch(/steps\[1\]\.mmap\.as: 'x' already names a process \(steps\[0\]\); give this mapping another name/);
  });

  it('init always exists and cannot be redefined', () => {
    expect(parseScenario(oneStep('fork: { process: init, as: c }'), 'x.yaml').threads[0]!.steps[0]!.args).toEqual({ process: 'init', as: 'c' });
    expect(errorOf(oneStep('spawn: { as: init }')).message).toMatch(/'init' is the first process and always exists/);
  });

  it('check targets and migrate destinations are resolved', () => {
    expect(errorOf(oneStep('check: { vmemmap: { device: pmem }, equals: { pages: 1 } }')).message).toMatch(/steps\[0\]\.check\.vmemmap\.device: a device named 'pmem' is used before it is defined/);
    expect(errorOf(oneStep('migrate: { map: m, page: 0, to: gpu }', 'setup:\n  - mmap: { anon: true, length: 4KiB, as: m }\n')).message).toMatch(/steps\[0\]\.migrate\.to: a device named 'gpu' is used/);
    expect(parseScenario(oneStep('migrate: { map: m, page: 0, to: ram }', 'setup:\n  - mmap: { anon: true, length: 4KiB, as: m }\n'), 'x.yaml').threads[0]!.steps[0]!.args.to).toBe('ram');
  });
});

describe('loadScenarioFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'daxlab-load-'));

  it('reads a file from disk and names it in the result', () => {
    const f = join(dir, 'ok.yaml');
    writeFileSync(f, SPEC_EXAMPLE);
    expect(loadScenarioFile(f).file).toBe(f);
  });

  it('a missing file is an InputError naming it', () => {
    const f = join(dir, 'nope.yaml');
    expect(() => loadScenarioFile(f)).toThrow(expect.objectContaining({ message: `${f}: cannot read the scenario: no such file`, file: f }));
  });

  it('can name the file differently in messages and in the result', () => {
    const f = join(dir, 'bad.yaml');
    writeFileSync(f, 'name: t\nsteps:\n  - spawn: { as: 1 }\n');
    expect(() => loadScenarioFile(f, 'scenarios/bad.yaml')).toThrow(expect.objectContaining({ message: expect.stringMatching(/^scenarios\/bad\.yaml:3:18: steps\[0\]\.spawn\.as: expected a string; got 1$/), file: 'scenarios/bad.yaml' }));
    writeFileSync(f, SPEC_EXAMPLE);
    expect(loadScenarioFile(f, 'scenarios/ok.yaml').file).toBe('scenarios/ok.yaml');
  });

  it('a byte-order mark is ignored', () => {
    const f = join(dir, 'bom.yaml');
    writeFileSync(f, `\uFEFF${oneStep('spawn: { as: p }')}`);
    expect(loadScenarioFile(f).name).toBe('t');
  });
});

describe('device-snapshot steps', () => {
  const setup = 'setup:\n  - probe: { driver: hmm, size: 256MiB, as: d0 }\n  - mmap: { anon: true, length: 16KiB, as: m }\n';
  const snap = (args: string) => oneStep(`device-snapshot: { device: d0, map: m, ${args} }`, setup);

  it('turns each page\'s HMM_DMIRROR_PROT_* names into the byte test_hmm writes (lib/test_hmm_uapi.h)', () => {
    const s = parseScenario(snap('page: 1, expect: [ERROR, NONE, ZERO|READ, DEV_PRIVATE_REMOTE|WRITE, dev_coherent_local | write | pmd, 0x51]'), 's.yaml');
    // ERROR 0xff, NONE 0, ZERO 0x10|READ 1, DEV_PRIVATE_REMOTE 0x30|WRITE 2, 0x40|2|PMD 4, a raw byte
    expect(s.threads[0]!.steps[0]!.args).toEqual({ device: 'd0', map: 'm', page: 1, expect: [0xff, 0x00, 0x11, 0x32, 0x46, 0x51] });
  });

  it('names the page and the problem when the flags cannot be one snapshot byte', () => {
    expect(errorOf(snap('expect: [WRITE, ZEROO|READ]')).message).toMatch(/^s\.yaml:\d+:\d+: steps\[0\]\.device-snapshot\.expect\[1\]: 'ZEROO' is not a snapshot flag \(one of ERROR, NONE, READ/);
    expect(errorOf(snap('expect: [READ|WRITE]')).message).toMatch(/expect\[0\]: READ and WRITE exclude each other/);
    expect(errorOf(snap('expect: [ZERO|DEV_PRIVATE_LOCAL|READ]')).message).toMatch(/ZERO and DEV_PRIVATE_LOCAL exclude each other/);
    expect(errorOf(snap('expect: [ERROR|READ]')).message).toMatch(/ERROR stands alone/);
    expect(errorOf(snap('expect: [ZERO]')).message).toMatch(/a mapped page is READ or WRITE: add one of them to 'ZERO'/);
    expect(errorOf(snap('expect: [256]')).message).toMatch(/expect\[0\]/);
    expect(errorOf(snap('pages: 2, expect: [READ]')).message).toMatch(/device-snapshot\.pages: pages is 2 but expect lists 1 pages/);
    expect(errorOf(snap('expect: []')).message).toMatch(/list the flags expected for each page/);
  });

  it('checks the names it refers to', () => {
    expect(errorOf(oneStep('device-snapshot: { device: d0, map: nope, expect: [NONE] }', setup)).message).toMatch(/nope/);
  });
});
