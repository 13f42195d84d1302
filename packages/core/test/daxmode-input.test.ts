import { describe, expect, it } from 'vitest';
import { InputError } from '../src/index.js';
import { parseScenario } from '../src/scenario/load.js';
import { errorOf } from './vm-helpers.js';

// Scenario input of the DAX-mode steps (fs/daxmode.ts): each bad field is named with its fix.

const setup = 'setup:\n  - probe: { size: 1GiB, as: d }\n  - mount: { device: d, dax: inode }\n  - mkdir: { dir: top }\n  - create: { file: f, size: 4KiB, dir: top }\n';
const scenario = (steps: string) => `name: t\n${setup}steps:\n${steps}`;
const message = (steps: string): string => {
  const e = errorOf(() => parseScenario(scenario(steps), 't.yaml'));
  expect(e).toBeInstanceOf(InputError);
  return (e as Error).message;
};

describe('scenario input: dax mount options, chattr, open/close, dax checks', () => {
  it('accepts the steps of generic/608', () => {
    const s = parseScenario(scenario('  - open: { file: f, as: fd }\n  - chattr: { file: f, dax: true }\n  - close: fd\n  - drop-caches: {}\n  - check: { dax: { file: f }, equals: true }\n  - check: { daxFlag: { dir: top }, equals: false }\n  - umount: { device: d }\n  - mount: { device: d, dax: false }\n'), 't.yaml');
    expect(s.threads[0]!.steps.map((st) => st.op)).toEqual(['open', 'chattr', 'close', 'drop-caches', 'check', 'check', 'umount', 'mount']);
  });

  it('names a dax option that is not one', () => {
    expect(message('  - umount: { device: d }\n  - mount: { device: d, dax: sometimes }\n')).toMatch(/steps\[1\]\.mount\.dax: dax is true \(-o dax, the default\), false \(no dax option\), always, never or inode/);
  });

  it('chattr takes one file or one directory', () => {
    expect(message('  - chattr: { file: f, dir: top, dax: true }\n')).toMatch(/steps\[0\]\.chattr: chattr one file or one directory/);
  });

  it('dax looks at a file, daxFlag at a file or a directory, neither at a page', () => {
    expect(message('  - check: { dax: { dir: top }, equals: true }\n')).toMatch(/dax is a property of an inode: write \{ file \}/);
    expect(message('  - check: { daxFlag: { file: f, page: 0 }, equals: true }\n')).toMatch(/daxFlag is a property of an inode: write \{ file \} or \{ dir \}/);
    expect(message('  - check: { refcount: { dir: top, page: 0 }, equals: 1 }\n')).toMatch(/dir names a directory, which only daxFlag looks at/);
  });

  it('names used before they are defined: a directory, an open file', () => {
    expect(message('  - create: { file: g, size: 4KiB, dir: nodir }\n')).toMatch(/a directory named 'nodir' is used before it is defined; .*mkdir: \{ dir: NAME \}/);
    expect(message('  - close: nofd\n')).toMatch(/an open file named 'nofd' is used before it is defined/);
  });

  it('MAP_SYNC comes with a shared file mapping', () => {
    expect(message('  - mmap: { file: f, length: 4KiB, sync: true, as: m }\n')).toMatch(/steps\[0\]\.mmap\.sync: MAP_SYNC comes with MAP_SHARED_VALIDATE/);
  });
});
