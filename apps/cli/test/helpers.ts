import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { ArchPlugin, CellKernelRequest, CellResult, CellStatus, DriverPlugin, FilesystemPlugin, PluginCatalog, Scenario } from '@daxlab/core';
import type { Runner } from '../src/execute.js';
import type { CliIo } from '../src/io.js';

/** An in-memory CliIo: everything written is kept; not a terminal, no CI, a fixed clock. */
export function memoryIo(cwd: string, over: Partial<CliIo> = {}): CliIo & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  let t = 0;
  return {
    stdout: (s) => (out += s),
    stderr: (s) => (err += s),
    stdoutIsTTY: false,
    stderrIsTTY: false,
    env: {},
    cwd,
    now: () => (t += 5),
    ...over,
    out: () => out,
    err: () => err,
  };
}

/** A temporary directory with the given files (paths relative to it). */
export function tempTree(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'daxlab-cli-'));
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    writeFileSync(join(dir, rel), text);
  }
  return dir;
}

/** A catalog of named stubs: the CLI only looks names up; the fake runner never builds a kernel. */
export function namesCatalog(arch: string[] = ['x86', 'arm64'], fs: string[] = ['xfs', 'ext4'], driver: string[] = ['nvdimm', 'devdax']): PluginCatalog {
  const pkg = (n: string) => `@test/${n}`;
  return {
    arch: Object.fromEntries(arch.map((n) => [n, () => ({ name: pkg(n) }) as unknown as ArchPlugin])),
    fs: Object.fromEntries(fs.map((n) => [n, () => ({ name: pkg(n) }) as unknown as FilesystemPlugin])),
    driver: Object.fromEntries(driver.map((n) => [n, () => ({ name: pkg(n) }) as unknown as DriverPlugin])),
  };
}

export interface Call {
  readonly scenario: string;
  readonly kernel: CellKernelRequest;
  readonly seed?: number;
}

/** A runner that records its calls and answers with `status(scenario, kernel)`. */
export function fakeRunner(status: (s: Scenario, k: CellKernelRequest) => CellStatus = () => 'pass'): Runner & { calls: Call[] } {
  const calls: Call[] = [];
  const run = (s: Scenario, k: CellKernelRequest, _c: PluginCatalog, o: { seed?: number } = {}): CellResult => {
    calls.push({ scenario: s.name, kernel: k, ...(o.seed !== undefined ? { seed: o.seed } : {}) });
    const st = status(s, k);
    return {
      scenario: s.name,
      ...(s.file !== undefined ? { file: s.file } : {}),
      kernel: { arch: k.arch, pageSize: k.pageSize ?? 4096, fs: k.fs, driver: k.driver, version: k.version, features: { ...k.features } },
      status: st,
      outcome: st === 'unsupported' ? 'unsupported' : st === 'error' ? 'error' : 'completed',
      violations: st === 'fail' ? [{ invariant: 'block-freed-while-pinned', message: 'block 7 freed with 1 pin', trace: ['step app[0] munmap', 'block.free 7'] }] : [],
      failures: st === 'fail' ? ['expect[0]: violations [block-freed-while-pinned], expected none'] : [],
      reason: st === 'unsupported' ? 'fs-dax needs pte_devmap' : st === 'error' ? 'kernel build failed' : null,
      seed: o.seed ?? 0,
      ms: 1.5,
    };
  };
  return Object.assign(run, { calls });
}

export const SIMPLE = (name: string, extra = '') => `name: ${name}\n${extra}steps:\n  - spawn: { as: p }\n`;

export const FS_SCENARIO = (name: string, kernel = '') =>
  `name: ${name}\n${kernel}setup:\n  - probe: { size: 1GiB, as: pmem0 }\n  - mount: { device: pmem0 }\nsteps:\n  - create: { file: a, size: 4KiB }\n`;

export const CLI_DIR = join(import.meta.dirname, '..');
/** The built command (`npm run build`); end-to-end tests skip when it is missing. */
export const BIN = join(CLI_DIR, 'dist', 'bin.js');
export const BUILT = existsSync(BIN);

/** Run the built CLI as a user would: `node dist/bin.js …`, outside CI and without a terminal. */
export function daxlab(args: readonly string[], cwd = CLI_DIR, extraEnv: Record<string, string> = {}) {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', ...extraEnv };
  delete env.CI;
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, env, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, signal: r.signal, out: r.stdout, err: r.stderr };
}
