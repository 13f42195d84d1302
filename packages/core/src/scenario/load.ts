import { readFileSync } from 'node:fs';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import { z } from 'zod';
import { InputError } from '../errors.js';
import { didYouMean, OP_NAMES, OP_STEP_SCHEMAS, scenarioObject } from './schema.js';
import type { CheckArgs, ExpectRule, ExpectWhen, OpName, Scenario, ScenarioKernel, Step, StepExpect, Thread } from './types.js';

/**
 * Loading a scenario file: YAML (or JSON, which YAML reads too) → the zod schemas of schema.ts →
 * name resolution → `Scenario`. Every problem is one InputError naming the file, line:column,
 * the field path and how to fix it.
 */

type Path = readonly PropertyKey[];

/** A problem found in the parsed data, before it is placed in the source text. */
class Problem {
  constructor(
    readonly path: Path,
    readonly message: string,
    /** point at the key of the last path segment (an unknown or misplaced field), not its value */
    readonly atKey = false,
  ) {}
}

// ---------------------------------------------------------------------------------------------
// zod issues → one message

function show(v: unknown): string {
  if (v === null) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `'${v}'`;
  return String(v);
}

type ShapeOf = { _zod?: { def?: { shape?: Record<string, { _zod?: { optin?: string } }> } } } | undefined;

/** The field names of an object schema. */
function shapeKeys(inst: unknown): string[] {
  const shape = (inst as ShapeOf)?._zod?.def?.shape;
  return shape ? Object.keys(shape) : [];
}

/** `{ file, size, expect? }`: an object schema's fields, optional ones marked. */
function shapeText(inst: unknown): string {
  const shape = (inst as ShapeOf)?._zod?.def?.shape ?? {};
  return `{ ${Object.entries(shape).map(([k, v]) => (v._zod?.optin === 'optional' ? `${k}?` : k)).join(', ')} }`;
}

const TYPE_WORDS: Record<string, string> = { int: 'a whole number', number: 'a number', string: 'a string', boolean: 'true or false', array: 'a list', object: 'a mapping', record: 'a mapping' };

/** Messages for zod's issue codes (the field path is added by the caller). */
const errorMap: z.core.$ZodErrorMap = (iss) => {
  switch (iss.code) {
    case 'invalid_type': {
      if (iss.input === undefined) return 'missing';
      const fields = shapeKeys(iss.inst);
      if (iss.expected === 'object' && fields.length) return `expected a mapping ${shapeText(iss.inst)}; got ${show(iss.input)}`;
      return `expected ${TYPE_WORDS[iss.expected] ?? iss.expected}; got ${show(iss.input)}`;
    }
    case 'invalid_value': {
      const values = iss.values.map(String);
      if (iss.values.length === 1 && typeof iss.values[0] === 'boolean') return `only ${values[0]} is meaningful here; got ${show(iss.input)} (leave the field out instead)`;
      const near = typeof iss.input === 'string' ? didYouMean(iss.input, values) : undefined;
      return `${show(iss.input)} is not one of ${values.join(', ')}${near ? `; did you mean '${near}'?` : ''}`;
    }
    case 'unrecognized_keys': {
      const fields = shapeKeys(iss.inst);
      const key = iss.keys[0]!;
      const near = didYouMean(key, fields);
      return `unknown field '${key}'${near ? `; did you mean '${near}'?` : ''} (fields here: ${shapeText(iss.inst)})`;
    }
    case 'too_small':
      if (iss.origin === 'array') return `needs at least ${String(iss.minimum)} item${iss.minimum === 1 ? '' : 's'}`;
      return `must be ${iss.inclusive ? 'at least' : 'more than'} ${String(iss.minimum)}; got ${show(iss.input)}`;
    case 'too_big':
      return `must be ${iss.inclusive ? 'at most' : 'less than'} ${String(iss.maximum)}; got ${show(iss.input)}`;
    default:
      return undefined;
  }
};

/** How badly a union branch missed: a wrong type at its root is worst. */
function missScore(issues: readonly z.core.$ZodIssue[]): number {
  let s = 0;
  for (const i of issues) s += i.path.length > 0 ? 1 : i.code === 'invalid_type' ? 1000 : 100;
  return s;
}

/** One problem out of zod's issues: an unknown key before what it makes missing, else the first. */
function problemFrom(issues: readonly z.core.$ZodIssue[], base: Path): Problem {
  const issue = issues.find((i) => i.code === 'unrecognized_keys') ?? issues.find((i) => !(i.code === 'invalid_type' && i.input === undefined)) ?? issues[0]!;
  const path = [...base, ...issue.path];
  if (issue.code === 'invalid_union' && issue.errors.length > 0) {
    const best = [...issue.errors].sort((a, b) => missScore(a) - missScore(b))[0]!;
    if (missScore(best) < 1000 && best.length > 0) return problemFrom(best, path);
    return new Problem(path, issue.message);
  }
  if (issue.code === 'unrecognized_keys') return new Problem([...path, issue.keys[0]!], issue.message, true);
  if (issue.code === 'invalid_type' && issue.input === undefined) {
    return new Problem(path, `missing required field '${String(path[path.length - 1])}'`);
  }
  return new Problem(path, issue.message);
}

function check<T extends z.ZodType>(schema: T, value: unknown, base: Path): z.output<T> {
  const r = schema.safeParse(value, { error: errorMap, reportInput: true });
  if (!r.success) throw problemFrom(r.error.issues, base);
  return r.data;
}

// ---------------------------------------------------------------------------------------------
// steps

const RawStep = z.record(z.string(), z.unknown(), {
  error: (iss) => {
    if (iss.input === undefined || iss.code !== 'invalid_type') return undefined;
    if (typeof iss.input === 'string' && (OP_NAMES as string[]).includes(iss.input)) return `'${iss.input}' needs its arguments: write '- ${iss.input}: { … }'`;
    return `expected a step: a mapping with one operation, e.g. '- munmap: { map: m }'; got ${show(iss.input)}`;
  },
});

const TopLevel = scenarioObject(RawStep);

function isOp(k: string): k is OpName {
  return (OP_NAMES as string[]).includes(k);
}

function parseStep(raw: Record<string, unknown>, path: Path): Step {
  const keys = Object.keys(raw).filter((k) => k !== 'expect' && k !== 'when');
  if (keys.length === 0) {
    throw new Problem(path, `a step needs an operation (one of ${OP_NAMES.join(', ')})${'expect' in raw || 'when' in raw ? ' besides expect and when' : ''}`);
  }
  const ops = keys.filter(isOp);
  if (keys.length > 1) {
    if (ops.length > 1) throw new Problem(path, `one operation per step: found ${ops.join(' and ')}; start each step with '- '`);
    const stray = keys.find((k) => !isOp(k))!;
    if (ops.length === 1) {
      throw new Problem([...path, stray], `unknown field '${stray}' next to '${ops[0]}': a step is '- ${ops[0]}: { … }' with optional expect and when; indent ${stray} under ${ops[0]}`, true);
    }
  }
  const op = keys[0]!;
  if (!isOp(op)) {
    const near = didYouMean(op, OP_NAMES);
    throw new Problem([...path, op], `unknown operation '${op}'${near ? `; did you mean '${near}'?` : ''} (operations: ${OP_NAMES.join(', ')})`, true);
  }
  const parsed = check(OP_STEP_SCHEMAS[op], raw, path) as Record<string, unknown>;
  const expect = parsed.expect as StepExpect | undefined;
  const when = parsed.when as ExpectWhen | undefined;
  return { op, args: parsed[op] as Record<string, unknown>, ...(expect ? { expect } : {}), ...(when ? { when } : {}), path: pathString(path) };
}

// ---------------------------------------------------------------------------------------------
// names

type Kind = 'process' | 'device' | 'file' | 'map' | 'pin' | 'dir' | 'fd' | 'pidfd' | 'shm' | 'thread';

const KIND_WORD: Record<Kind, string> = { process: 'a process', device: 'a device', file: 'a file', map: 'a mapping', pin: 'a pin', dir: 'a directory', fd: 'an open file', pidfd: 'a pidfd', shm: 'a shared memory segment', thread: 'a thread' };
const HOW_TO_DEFINE: Record<Kind, string> = {
  process: 'spawn: { as: NAME } or fork: { as: NAME }',
  device: 'probe: { size: …, as: NAME }',
  file: 'create: { file: NAME, size: … }',
  map: 'mmap: { …, as: NAME }',
  pin: 'pin: { map: …, page: …, as: NAME } (an io_uring buffer: iouring-register: { map: …, page: …, as: NAME })',
  dir: 'mkdir: { dir: NAME }',
  fd: 'open: { file: …, as: NAME }',
  pidfd: 'pidfd-open: { target: …, as: NAME }',
  shm: 'shmget: { size: …, as: NAME }',
  thread: 'clone-thread: { as: NAME }',
};

interface NameRef {
  readonly name: string;
  readonly kind: Kind;
  /** where the name is written, for the message */
  readonly at: Path;
}

/** The names a step defines (`as`, create.file, reflink.to). */
function definitions(step: Step, at: Path): NameRef[] {
  const a = step.args;
  const ref = (field: string, kind: Kind): NameRef[] => (typeof a[field] === 'string' ? [{ name: a[field], kind, at: [...at, step.op, field] }] : []);
  switch (step.op) {
    case 'probe':
    case 'create-device':
    case 'create-namespace': return ref('as', 'device');
    case 'dm-create': return ref('name', 'device');
    case 'dax-region': return [{ name: `dax${typeof a.id === 'number' ? a.id : 0}.0`, kind: 'device', at: [...at, step.op, 'as'] }];
    // a label-less region's one namespace, enabled raw with the region
    case 'nd-region': return a.mappings === 0 ? [{ name: `namespace${typeof a.id === 'number' ? a.id : 0}.0`, kind: 'device', at: [...at, step.op, 'as'] }] : [];
    case 'create':
    case 'memfd-create':
    case 'memfd-secret':
    case 'tmpfile': return ref('file', 'file');
    case 'reflink': return ref('to', 'file');
    case 'mkdir': return ref('dir', 'dir');
    case 'open': return ref('as', 'fd');
    case 'pidfd-open': return ref('as', 'pidfd');
    case 'spawn':
    case 'fork': return ref('as', 'process');
    case 'mmap':
    case 'shmat':
    case 'mremap': return ref('as', 'map');
    case 'shmget': return ref('as', 'shm');
    case 'clone-thread': return ref('as', 'thread');
    case 'pin':
    case 'get':
    case 'iouring-register': return ref('as', 'pin');
    default: return [];
  }
}

/** The names a step refers to. */
function references(step: Step, at: Path, raw: Record<string, unknown>): NameRef[] {
  const a = step.args;
  const out: NameRef[] = [];
  const ref = (field: string, kind: Kind, value = a[field], where: Path = [...at, step.op, field]) => {
    if (typeof value === 'string') out.push({ name: value, kind, at: where });
  };
  switch (step.op) {
    case 'unbind': case 'mount': case 'bind': case 'inject-error': case 'clear-error': case 'reconfigure': case 'reconfigure-namespace': case 'online-memory': case 'offline-memory': ref('device', 'device'); break;
    case 'destroy-device': case 'resize-device': case 'enable-device': case 'disable-device': case 'dax-list': case 'destroy-namespace': ref('device', 'device'); break;
    case 'memory-failure':
    case 'soft-offline': ref('device', 'device'); ref('map', 'map'); ref('process', 'process'); break;
    case 'create': ref('device', 'device'); ref('dir', 'dir'); break;
    case 'umount': case 'remount': ref('device', 'device'); break;
    case 'mkdir': ref('in', 'dir'); ref('device', 'device'); break;
    case 'chattr': ref('file', 'file'); ref('dir', 'dir'); break;
    case 'rename': ref('file', 'file'); ref('dir', 'dir'); if (a.into !== '/') ref('into', 'dir'); break;
    case 'fsverity-enable': ref('file', 'file'); break;
    case 'fsync': ref('file', 'file'); break;
    case 'msync': ref('map', 'map'); ref('process', 'process'); break;
    case 'log-mark': case 'log-replay': ref('device', 'device'); break;
    case 'dm-create': (a.table as { device: string }[]).forEach((t, i) => ref('device', 'device', t.device, [...at, step.op, 'table', i, 'device'])); break;
    case 'dm-remove': ref('name', 'device'); break;
    case 'open': ref('file', 'file'); break;
    case 'close': ref('name', 'fd', a.name, typeof raw[step.op] === 'string' ? [...at, step.op] : [...at, step.op, 'name']); break;
    case 'truncate': case 'punch-hole': case 'fallocate': case 'add-seals': ref('file', 'file'); break;
    case 'reflink': ref('from', 'file'); break;
    case 'pread': case 'pwrite': ref('file', 'file'); ref('device', 'device'); ref('extentOf', 'file'); ref('map', 'map'); ref('process', 'process'); break;
    case 'set-badblocks': ref('device', 'device'); ref('extentOf', 'file'); break;
    case 'mmap': ref('process', 'process'); ref('file', 'file'); ref('device', 'device'); ref('devmem', 'device'); ref('map', 'map', (a.fixed as { map?: string } | undefined)?.map, [...at, step.op, 'fixed', 'map']); break;
    case 'read': case 'write': case 'execute': ref('map', 'map'); ref('process', 'process'); ref('thread', 'thread'); break;
    case 'signal': case 'sigreturn': ref('stack', 'map'); ref('process', 'process'); ref('thread', 'thread'); break;
    case 'clone-thread': ref('process', 'process'); ref('thread', 'thread'); break;
    case 'munmap': case 'pin': case 'get': case 'iouring-register': case 'mprotect': case 'madvise': case 'proc-mem-write': case 'remote-read': case 'mlock': case 'munlock': case 'mbind': case 'move-pages': case 'mseal': case 'pagemap-scan': ref('map', 'map'); ref('process', 'process'); break;
    case 'uffd-register': case 'uffd-unregister': case 'uffd-copy': case 'uffd-zeropage': case 'uffd-continue': case 'uffd-poison': case 'uffd-writeprotect': ref('map', 'map'); ref('process', 'process'); break;
    case 'uffd-api': case 'uffd-close': ref('process', 'process'); break;
    case 'pidfd-open': ref('process', 'process'); ref('target', 'process'); break;
    case 'process-madvise':
      ref('process', 'process');
      ref('pidfd', 'pidfd');
      (a.ranges as { map: string }[]).forEach((r, i) => ref('map', 'map', r.map, [...at, step.op, 'ranges', i, 'map']));
      break;
    case 'uffd-read': {
      const e = a.expect as { map?: unknown; child?: unknown } | undefined;
      ref('process', 'process');
      ref('map', 'map', e?.map, [...at, step.op, 'expect', 'map']);
      ref('child', 'process', e?.child, [...at, step.op, 'expect', 'child']);
      break;
    }
    case 'fork': case 'exit': case 'exec': case 'clear-refs': case 'prctl': case 'mlockall': case 'munlockall': case 'setrlimit': case 'migrate-pages': case 'set-mempolicy': ref('process', 'process'); break;
    case 'pkey-free': ref('process', 'process'); break;
    case 'pkey-alloc': case 'pkey-set': ref('process', 'process'); ref('thread', 'thread'); break;
    case 'unpin': case 'put': case 'iouring-unregister': ref('name', 'pin', a.name, typeof raw[step.op] === 'string' ? [...at, step.op] : [...at, step.op, 'name']); break;
    case 'dma-write': case 'dma-read': ref('pin', 'pin'); break;
    case 'mremap': ref('map', 'map'); ref('to', 'map'); ref('process', 'process'); break;
    case 'shmat': ref('shm', 'shm'); ref('process', 'process'); break;
    case 'shmdt': ref('map', 'map'); ref('process', 'process'); break;
    case 'shmctl': ref('shm', 'shm'); break;
    case 'cgroup-attach': case 'shmget': ref('process', 'process'); break;
    case 'migrate': ref('map', 'map'); ref('process', 'process'); if (a.to !== 'ram' && a.to !== 'device') ref('to', 'device'); break;
    case 'device-read': case 'device-write': case 'device-snapshot': case 'device-exclusive': case 'device-check-exclusive': ref('device', 'device'); ref('map', 'map'); ref('process', 'process'); break;
    case 'check': {
      const c = a as unknown as CheckArgs;
      // cgroupFile's file is a cgroup control file, no file of the scenario
      if (c.what === 'cgroupFile') break;
      for (const k of ['map', 'file', 'device', 'process', 'dir'] as const) ref(k, k === 'map' ? 'map' : k, c.target[k], [...at, 'check', c.what, k]);
      break;
    }
    default: break;
  }
  return out;
}

interface Located {
  readonly step: Step;
  readonly raw: Record<string, unknown>;
  readonly at: Path;
}

function resolveNames(setup: readonly Located[], threads: readonly (readonly Located[])[]): void {
  /** every definition in file order, to catch one name used for two kinds of object */
  const kindOf = new Map<string, { kind: Kind; at: Path }>([['init', { kind: 'process', at: [] }]]);
  const all = [...setup, ...threads.flat()];
  for (const l of all) {
    for (const d of definitions(l.step, l.at)) {
      const prev = kindOf.get(d.name);
      if (prev && prev.kind !== d.kind) {
        const where = prev.at.length ? ` (${pathString(prev.at.slice(0, -2))})` : ' (it always exists)';
        throw new Problem(d.at, `'${d.name}' already names ${KIND_WORD[prev.kind]}${where}; give this ${d.kind === 'map' ? 'mapping' : d.kind} another name`);
      }
      if (!prev) kindOf.set(d.name, { kind: d.kind, at: d.at });
      else if (d.name === 'init') throw new Problem(d.at, "'init' is the first process and always exists; give this process another name");
    }
  }
  const definedIn = (ls: readonly Located[]) => ls.flatMap((l) => definitions(l.step, l.at));
  const checkUses = (steps: readonly Located[], known: Map<string, Kind>) => {
    for (const l of steps) {
      for (const r of references(l.step, l.at, l.raw)) {
        const k = known.get(r.name);
        if (k === r.kind) continue;
        if (k !== undefined) throw new Problem(r.at, `'${r.name}' is ${KIND_WORD[k]}, not ${KIND_WORD[r.kind]}`);
        const later = kindOf.get(r.name);
        const names = [...known].filter(([, kind]) => kind === r.kind).map(([n]) => n);
        const near = didYouMean(r.name, names);
        const hint = near ? `did you mean '${near}'?` : later?.kind === r.kind ? `it is defined later (${pathString(later.at.slice(0, -2))}); move that step before this one` : `define it first with ${HOW_TO_DEFINE[r.kind]}`;
        throw new Problem(r.at, `${KIND_WORD[r.kind]} named '${r.name}' is used before it is defined; ${hint}`);
      }
      for (const d of definitions(l.step, l.at)) known.set(d.name, d.kind);
    }
  };
  const base = new Map<string, Kind>([['init', 'process']]);
  checkUses(setup, base);
  threads.forEach((steps, t) => {
    // a thread may use what setup, its own earlier steps or any other thread defines
    const known = new Map(base);
    threads.forEach((other, o) => {
      if (o !== t) for (const d of definedIn(other)) known.set(d.name, d.kind);
    });
    checkUses(steps, known);
  });
}

// ---------------------------------------------------------------------------------------------
// the file

function pathString(path: Path): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s === '' ? String(p) : `.${String(p)}`;
  return s;
}

/** Byte offset of the node at `path` (or of its key, or of its deepest existing ancestor). */
function offsetOf(doc: Document, path: Path, atKey: boolean): number | undefined {
  let node: unknown = doc.contents;
  let offset = (node as { range?: [number, number, number] } | null)?.range?.[0];
  for (const [i, seg] of path.entries()) {
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === seg);
      if (!pair) break;
      const keyOff = (pair.key as { range?: [number, number, number] } | null)?.range?.[0];
      const valOff = (pair.value as { range?: [number, number, number] } | null)?.range?.[0];
      offset = i === path.length - 1 && atKey ? (keyOff ?? offset) : (valOff ?? keyOff ?? offset);
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg] as { range?: [number, number, number] } | undefined;
      if (!item) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return offset;
}

/** Parse one scenario from YAML or JSON text; `file` is used in messages. */
export function parseScenario(text: string, file: string): Scenario {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text.replace(/^\uFEFF/, ''), { keepSourceTokens: true, lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number | undefined) => {
    if (offset === undefined) return file;
    const { line, col } = lineCounter.linePos(offset);
    return `${file}:${line}:${col}`;
  };
  const syntax = doc.errors[0];
  if (syntax) {
    const message = syntax.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
    throw new InputError(`${at(syntax.pos[0])}: not valid YAML/JSON: ${message}`, file);
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    // the yaml library's guard against alias bombs is a ReferenceError, not a syntax error
    if (!(e instanceof ReferenceError)) throw e;
    throw new InputError(`${file}: too many uses of YAML aliases (*name) for the loader (at most 100 expanded): write the repeated values out instead of aliasing them`, file);
  }
  try {
    return build(data, file);
  } catch (e) {
    if (!(e instanceof Problem)) throw e;
    const field = pathString(e.path);
    throw new InputError(`${at(offsetOf(doc, e.path, e.atKey))}: ${field ? `${field}: ` : ''}${e.message}`, file, field || undefined);
  }
}

function build(data: unknown, file: string): Scenario {
  if (data === null || data === undefined) throw new Problem([], 'the file is empty: a scenario needs a name and steps (see docs/scenarios.md)');
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw new Problem([], `expected a mapping with name, steps or threads, …; got ${show(data)}`);
  }
  const top = check(TopLevel, data, []);
  if (top.threads && top.steps) throw new Problem(['steps'], 'use either steps (one thread) or threads (several), not both');
  if (!top.threads && !top.steps) throw new Problem([], 'add steps: (one thread) or threads: (several, each with name and steps)');

  const locate = (list: readonly Record<string, unknown>[], base: Path): Located[] =>
    list.map((r, i) => {
      const p = [...base, i];
      return { step: parseStep(r, p), raw: r, at: p };
    });
  const setup = locate(top.setup ?? [], ['setup']);
  const threadSteps: Located[][] = top.threads
    ? top.threads.map((t, i) => locate(t.steps, ['threads', i, 'steps']))
    : [locate(top.steps!, ['steps'])];
  const threadNames = top.threads ? top.threads.map((t) => t.name) : ['main'];
  threadNames.forEach((n, i) => {
    const j = threadNames.indexOf(n);
    if (j !== i) throw new Problem(['threads', i, 'name'], `thread name '${n}' is already used by threads[${j}]; thread names must be unique`);
  });
  resolveNames(setup, threadSteps);

  const threads: Thread[] = threadSteps.map((steps, i) => ({ name: threadNames[i]!, steps: steps.map((l) => l.step) }));
  const kernel: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(top.kernel ?? {})) if (v !== undefined) kernel[k] = v;
  const expect: ExpectRule[] = (top.expect ?? []).map((r, i) => {
    const rule: Record<string, unknown> = { path: `expect[${i}]` };
    for (const [k, v] of Object.entries(r)) if (v !== undefined) rule[k] = v;
    return rule as unknown as ExpectRule;
  });
  return {
    name: top.name,
    ...(top.description !== undefined ? { description: top.description } : {}),
    file,
    kernel: kernel as ScenarioKernel,
    setup: setup.map((l) => l.step),
    threads,
    expect,
    mode: top.mode,
  };
}

/** Read and parse a scenario file (.yaml, .yml or .json); `shownAs` names it in messages and in `Scenario.file`. */
export function loadScenarioFile(path: string, shownAs: string = path): Scenario {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : code === 'EACCES' ? 'permission denied' : String((e as Error).message);
    throw new InputError(`${shownAs}: cannot read the scenario: ${why}`, shownAs);
  }
  return parseScenario(text, shownAs);
}
