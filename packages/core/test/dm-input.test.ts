import { describe, expect, it } from 'vitest';
import { InputError } from '../src/index.js';
import { parseScenario } from '../src/scenario/load.js';
import { errorOf } from './vm-helpers.js';

// Scenario input of dm-create / dm-remove (dax/dm.ts): each bad field is named with its fix.

/** two 64 MiB fsdax namespaces, p0 and p1, then the steps */
const scenario = (steps: string) => `name: t\nsetup:\n  - probe: { size: 64MiB, as: p0 }\n  - probe: { size: 64MiB, as: p1 }\nsteps:\n${steps}`;
/** the InputError's message (the error itself when it is something else, which fails the match) */
const message = (steps: string): unknown => {
  const e = errorOf(() => parseScenario(scenario(steps), 't.yaml'));
  return e instanceof InputError ? e.message : e;
};

describe('scenario input: dm-create, dm-remove', () => {
  it('accepts ndctl dm.sh: a table over two namespaces, then mount, umount and dm-remove of the dm device', () => {
    const s = parseScenario(scenario('  - dm-create: { name: dm, table: [{ start: 0, length: 62MiB, device: p0 }, { start: 62MiB, length: 62MiB, device: p1, offset: 0 }] }\n  - mount: { device: dm }\n  - umount: { device: dm }\n  - dm-remove: { name: dm }\n'), 't.yaml');
    expect(s.threads[0]!.steps.map((st) => st.op)).toEqual(['dm-create', 'mount', 'umount', 'dm-remove']);
    expect(s.threads[0]!.steps[0]!.args).toEqual({ name: 'dm', table: [{ start: 0, length: 62 << 20, device: 'p0' }, { start: 62 << 20, length: 62 << 20, device: 'p1', offset: 0 }] });
  });

  it('names the target whose device is not defined, and an empty table', () => {
    expect(message('  - dm-create: { name: dm, table: [{ start: 0, length: 4MiB, device: p0 }, { start: 4MiB, length: 4MiB, device: p2 }] }\n')).toMatch(/steps\[0\]\.dm-create\.table\[1\]\.device: a device named 'p2' is used before it is defined/);
    expect(message('  - dm-create: { name: dm, table: [] }\n')).toMatch(/steps\[0\]\.dm-create\.table: table needs at least one target/);
    expect(message('  - dm-create: { name: dm, table: [{ start: 0, length: 4MiB }] }\n')).toMatch(/steps\[0\]\.dm-create\.table\[0\]\.device/);
  });

  it('the dm device is a device name: a mount of it before dm-create, a dm-remove of an unknown name', () => {
    expect(message('  - mount: { device: dm }\n  - dm-create: { name: dm, table: [{ start: 0, length: 4MiB, device: p0 }] }\n')).toMatch(/a device named 'dm' is used before it is defined; it is defined later/);
    expect(message('  - dm-remove: { name: nodm }\n')).toMatch(/steps\[0\]\.dm-remove\.name: a device named 'nodm' is used before it is defined/);
  });
});
