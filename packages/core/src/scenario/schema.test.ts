import { describe, expect, it } from 'vitest';
import { FEATURES, PRESETS } from '../features.js';
import { didYouMean, ERRNO_NAMES, INVARIANT_NAMES, OP_ARGS, OP_NAMES, scenarioJsonSchema } from './schema.js';
import { formatSnapshotFlags, parseSnapshotFlags } from '../driver.js';

/** Keywords of JSON Schema draft 2020-12 (core, applicator, validation, meta-data, format, content, unevaluated). */
const KEYWORDS = new Set([
  '$schema', '$id', '$ref', '$defs', '$comment', '$anchor', '$dynamicRef', '$dynamicAnchor', '$vocabulary',
  'allOf', 'anyOf', 'oneOf', 'not', 'if', 'then', 'else', 'dependentSchemas', 'prefixItems', 'items', 'contains',
  'properties', 'patternProperties', 'additionalProperties', 'propertyNames', 'unevaluatedItems', 'unevaluatedProperties',
  'type', 'enum', 'const', 'multipleOf', 'maximum', 'exclusiveMaximum', 'minimum', 'exclusiveMinimum', 'maxLength', 'minLength',
  'pattern', 'maxItems', 'minItems', 'uniqueItems', 'maxContains', 'minContains', 'maxProperties', 'minProperties', 'required',
  'dependentRequired', 'title', 'description', 'default', 'deprecated', 'readOnly', 'writeOnly', 'examples', 'format',
]);
const SCHEMA_MAPS = new Set(['properties', 'patternProperties', '$defs', 'dependentSchemas']);
const SCHEMA_LISTS = new Set(['allOf', 'anyOf', 'oneOf', 'prefixItems']);
const SCHEMA_ONE = new Set(['not', 'if', 'then', 'else', 'items', 'contains', 'additionalProperties', 'propertyNames', 'unevaluatedItems', 'unevaluatedProperties']);

/** Every problem with a (sub)schema: unknown keywords, dangling $refs, uncompilable patterns. */
function lint(schema: unknown, root: Record<string, unknown>, at: string, out: string[]): void {
  if (typeof schema === 'boolean') return;
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) {
    out.push(`${at}: not a schema`);
    return;
  }
  for (const [k, v] of Object.entries(schema)) {
    if (!KEYWORDS.has(k)) out.push(`${at}: unknown keyword ${k}`);
    if (SCHEMA_MAPS.has(k)) for (const [name, sub] of Object.entries(v as object)) lint(sub, root, `${at}/${k}/${name}`, out);
    if (SCHEMA_LISTS.has(k)) (v as unknown[]).forEach((sub, i) => lint(sub, root, `${at}/${k}/${i}`, out));
    if (SCHEMA_ONE.has(k)) lint(v, root, `${at}/${k}`, out);
    if (k === '$ref') {
      const m = /^#\/\$defs\/(.+)$/.exec(v as string);
      if (!m || !(root.$defs as Record<string, unknown> | undefined)?.[m[1]!]) out.push(`${at}: dangling $ref ${String(v)}`);
    }
    if (k === 'pattern') {
      try {
        new RegExp(v as string, 'u');
      } catch {
        out.push(`${at}: pattern ${String(v)} is not an ECMA-262 regex`);
      }
    }
    if (k === 'required' && !(Array.isArray(v) && v.every((x) => typeof x === 'string'))) out.push(`${at}: required must list strings`);
  }
}

describe('scenarioJsonSchema', () => {
  const schema = scenarioJsonSchema();

  it('is a draft 2020-12 schema with an id and title', () => {
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(schema.$id).toMatch(/^https:\/\//);
    expect(schema.title).toBe('daxlab scenario');
  });

  it('uses only draft 2020-12 keywords, resolvable $refs and valid patterns', () => {
    const problems: string[] = [];
    lint(schema, schema, '#', problems);
    expect(problems).toEqual([]);
  });

  it('is plain JSON (survives a round trip)', () => {
    expect(JSON.parse(JSON.stringify(schema))).toEqual(schema);
  });

  it('requires name and exactly one of threads/steps; no other top-level keys', () => {
    expect(schema.required).toEqual(['name']);
    expect(schema.oneOf).toEqual([{ required: ['threads'] }, { required: ['steps'] }]);
    expect(schema.additionalProperties).toBe(false);
    expect(Object.keys(schema.properties as object).sort()).toEqual(['$schema', 'description', 'expect', 'kernel', 'mode', 'name', 'setup', 'steps', 'threads']);
  });

  it('offers one step form per operation, each requiring its operation key', () => {
    const step = (schema.$defs as Record<string, { anyOf: { required: string[]; properties: Record<string, unknown> }[] }>).Step!;
    expect(step.anyOf.map((s) => s.required[0])).toEqual(OP_NAMES);
    for (const s of step.anyOf) expect(Object.keys(s.properties).sort()).toEqual([s.required[0]!, 'expect', 'when'].sort());
  });

  it('lists every feature with its values, every preset and invariant', () => {
    const text = JSON.stringify(schema);
    for (const f of FEATURES) expect(text).toContain(`"${f.name}"`);
    for (const p of PRESETS) expect(text).toContain(`"${p.name}"`);
    for (const n of INVARIANT_NAMES) expect(text).toContain(`"${n}"`);
  });
});

describe('constants', () => {
  it('every operation of SCENARIOS.md has a schema', () => {
    expect(OP_NAMES).toEqual([
      'probe', 'unbind', 'mount', 'create', 'umount', 'remount', 'mkdir', 'chattr', 'rename', 'fsverity-enable', 'fsync', 'msync', 'log-mark', 'log-replay', 'dm-create', 'dm-remove', 'drop-caches', 'open', 'close', 'truncate', 'punch-hole', 'fallocate', 'reflink', 'spawn', 'memfd-create', 'memfd-secret', 'add-seals', 'tmpfile', 'hugetlb-pool', 'cgroup-mount', 'cgroup-mkdir', 'cgroup-rmdir', 'cgroup-attach', 'cgroup-write', 'shmem-enabled', 'thp-size', 'thp-enabled', 'sysctl', 'khugepaged-limits', 'khugepaged-scan', 'split-huge-pages', 'swapoff', 'mmap', 'munmap', 'shmget', 'shmat', 'shmdt', 'shmctl', 'read', 'write', 'pread', 'pwrite',
      'fork', 'exit', 'kill', 'process-mrelease', 'exec', 'pin', 'get', 'unpin', 'put', 'dma-write', 'dma-read', 'iouring-register', 'iouring-unregister', 'memory-failure', 'inject-error', 'scrub', 'set-badblocks', 'clear-error', 'soft-offline', 'migrate', 'device-read', 'device-write', 'device-snapshot', 'device-exclusive', 'device-check-exclusive', 'inject-fault',
      'mprotect', 'clear-refs', 'mremap', 'madvise', 'mseal', 'pidfd-open', 'process-madvise', 'mlock', 'munlock', 'mlockall', 'munlockall', 'ksm-merge', 'ksm-unmerge', 'prctl', 'proc-mem-write', 'remote-read', 'setrlimit', 'numa-nodes', 'pkey-alloc', 'pkey-free', 'pkey-set', 'clone-thread', 'execute', 'signal', 'sigreturn', 'mbind', 'move-pages', 'migrate-pages', 'set-mempolicy',
      'uffd-api', 'uffd-register', 'uffd-unregister', 'uffd-copy', 'uffd-zeropage', 'uffd-continue', 'uffd-poison', 'uffd-move', 'uffd-wake', 'uffd-read', 'uffd-close', 'uffd-writeprotect', 'pagemap-scan', 'bind', 'reconfigure-namespace', 'nd-region', 'create-namespace', 'destroy-namespace', 'nd-list', 'reconfigure', 'online-memory', 'offline-memory', 'auto-online-blocks',
      'dax-region', 'create-device', 'destroy-device', 'resize-device', 'enable-device', 'disable-device', 'dax-list', 'memory-tiers', 'check',
    ]);
    expect(Object.keys(OP_ARGS)).toEqual(OP_NAMES);
  });

  it('invariant names are the ten of DESIGN.md, plus dax-entry-zero-ref (seed 004), device-maps-freed-page (make_device_exclusive), devmem-write-to-claimed-range (ndctl revoke-devmem.c) and wrong-file-page-mapped (folio_split_race_test.c), documented in docs/scenarios.md', () => {
    expect(INVARIANT_NAMES).toEqual([
      'block-freed-while-pinned', 'dma-to-foreign-block', 'mapped-page-zero-ref', 'refcount-underflow', 'page-freed-while-mapped',
      'pgmap-teardown-while-referenced', 'pinned-page-diverged', 'longterm-pin-of-fsdax', 'dax-page-seen-as-anon', 'dax-entry-zero-ref', 'device-maps-freed-page', 'devmem-write-to-claimed-range', 'wrong-file-page-mapped', 'kernel-oops',
    ]);
  });

  it('errno names include the ones SCENARIOS.md mentions', () => {
    for (const e of ['EPERM', 'EFAULT', 'ENOMEM', 'EBUSY']) expect(ERRNO_NAMES).toContain(e);
  });
});

describe('didYouMean', () => {
  it('finds prefixes and near misspellings, not unrelated words', () => {
    expect(didYouMean('trunc', ['truncate', 'create'])).toBe('truncate');
    expect(didYouMean('sise', ['file', 'size'])).toBe('size');
    expect(didYouMean('EBSY', ['EBUSY', 'EIO'])).toBe('EBUSY');
    expect(didYouMean('xyzzy', ['truncate', 'create'])).toBeUndefined();
  });
});

describe('snapshot flags (lib/test_hmm_uapi.h HMM_DMIRROR_PROT_*)', () => {
  it('format the byte as test_hmm composes it: the kind (high nibble) then READ/WRITE and PMD/PUD', () => {
    // DEV_PRIVATE_REMOTE (0x30) has ZERO's bit (0x10) too: the kind is the whole nibble
    expect([0xff, 0x00, 0x01, 0x02, 0x11, 0x22, 0x31, 0x42, 0x52, 0x06, 0x09, 0x61].map(formatSnapshotFlags)).toEqual([
      'ERROR', 'NONE', 'READ', 'WRITE', 'ZERO|READ', 'DEV_PRIVATE_LOCAL|WRITE', 'DEV_PRIVATE_REMOTE|READ', 'DEV_COHERENT_LOCAL|WRITE', 'DEV_COHERENT_REMOTE|WRITE', 'WRITE|PMD', 'READ|PUD', '0x60|READ',
    ]);
  });

  it('parse back what they format', () => {
    for (const byte of [0xff, 0x00, 0x01, 0x02, 0x11, 0x22, 0x31, 0x42, 0x52, 0x06, 0x09]) expect(parseSnapshotFlags(formatSnapshotFlags(byte))).toBe(byte);
    expect(parseSnapshotFlags('HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ')).toBe(0x11);
  });
});
