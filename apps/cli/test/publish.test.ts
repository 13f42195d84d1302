import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * Publishing end to end, as a release would do it and a user would consume it:
 * `changeset version` and `changeset publish` put every package on a local Verdaccio (127.0.0.1,
 * a free port, storage in a temporary directory, started and stopped here); an empty project
 * installs @daxlab/cli with an arch and an fs plugin from it and runs a scenario with the
 * installed `daxlab` bin; a third-party arch plugin (test/fixtures/daxlab-plugin-riscv64) is
 * compiled against the published @daxlab/core, published, installed and run in a matrix through
 * `--plugin` and through daxlab.config.json. Third-party dependencies come from the default
 * registry (the scoped `@daxlab:registry=` / `@acme:registry=` lines send only ours to Verdaccio).
 *
 * It needs the built packages (dist/): `npm test` and .ci/run build first. Without them it skips
 * locally and fails under CI.
 */
const REPO = join(import.meta.dirname, '..', '..', '..');
const FIXTURES = join(import.meta.dirname, 'fixtures');
const GROUPS = ['packages', 'apps'] as const;
const packageDirs = GROUPS.flatMap((g) => readdirSync(join(REPO, g)).map((d) => join(REPO, g, d)).filter((d) => existsSync(join(d, 'package.json'))));
const unbuilt = packageDirs.filter((d) => !existsSync(join(d, 'dist', 'index.js')));
const inCi = Boolean(process.env.CI);
if (unbuilt.length > 0 && !inCi) console.warn(`publish.test: skipped: not built (${unbuilt.map((d) => d.slice(REPO.length + 1)).join(', ')}); run 'npm run build' first`);

const STEP_TIMEOUT = 180_000;

/** The environment for npm and friends: ours, minus whatever an outer `npm run` put in npm_* variables. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && k !== 'INIT_CWD') env[k] = v;
  return { ...env, NO_COLOR: '1', npm_config_update_notifier: 'false', npm_config_audit: 'false', npm_config_fund: 'false', ...extra };
}

/** Run a command; a failure shows its output (the test names what broke). */
function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeout = STEP_TIMEOUT): { code: number | null; out: string; err: string } {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout });
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function ok(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeout?: number): string {
  const r = run(cmd, args, cwd, env, timeout);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) exited ${r.code}\n${r.out}\n${r.err}`);
  return r.out;
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolvePort(port));
    });
  });
}

const readJson = <T>(file: string): T => JSON.parse(readFileSync(file, 'utf8')) as T;

describe.skipIf(unbuilt.length > 0 && !inCi)('publishing to a local registry', () => {
  let tmp = '';
  let registry = '';
  let token = '';
  let verdaccio: ChildProcess | undefined;
  /** name → version after `changeset version` */
  const published = new Map<string, string>();
  let consumer = '';
  let pluginVersion = '';

  beforeAll(async () => {
    if (unbuilt.length > 0) throw new Error(`CI: the packages are not built (${unbuilt.join(', ')}); .ci/run builds before testing`);
    tmp = mkdtempSync(join(tmpdir(), 'daxlab-publish-'));
    const port = await freePort();
    registry = `http://127.0.0.1:${port}/`;
    const home = join(tmp, 'verdaccio');
    mkdirSync(home);
    copyFileSync(join(import.meta.dirname, 'publish', 'verdaccio.yaml'), join(home, 'config.yaml'));
    const log = openSync(join(home, 'verdaccio.log'), 'w');
    verdaccio = spawn(process.execPath, [join(REPO, 'node_modules', 'verdaccio', 'bin', 'verdaccio'), '--config', join(home, 'config.yaml'), '--listen', `127.0.0.1:${port}`], { cwd: home, env: cleanEnv(), stdio: ['ignore', log, log] });
    closeSync(log);
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (verdaccio.exitCode !== null) throw new Error(`verdaccio exited ${verdaccio.exitCode}: ${readFileSync(join(home, 'verdaccio.log'), 'utf8')}`);
      try {
        if ((await fetch(`${registry}-/ping`)).ok) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`verdaccio did not answer on ${registry} within 60 s: ${readFileSync(join(home, 'verdaccio.log'), 'utf8')}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    // a publishing user (Verdaccio's htpasswd plugin creates it on first PUT)
    const res = await fetch(`${registry}-/user/org.couchdb.user:daxlab-ci`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'daxlab-ci', password: 'daxlab-ci-password' }) });
    token = ((await res.json()) as { token?: string }).token ?? '';
    expect(token, 'verdaccio gave no token').not.toBe('');
  }, 90_000);

  afterAll(async () => {
    if (verdaccio && verdaccio.exitCode === null) {
      const exited = new Promise((r) => verdaccio!.once('exit', r));
      verdaccio.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (verdaccio.exitCode === null) verdaccio.kill('SIGKILL');
    }
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }, 120_000);

  /** An .npmrc that sends our scopes to Verdaccio (with the token) and leaves the rest to the default registry. */
  const scopedNpmrc = () => `@daxlab:registry=${registry}\n@acme:registry=${registry}\n//${registry.replace(/^http:\/\//, '')}:_authToken=${token}\n`;

  /**
   * The versions the registry has of a package: one HTTP request on a fresh connection (no npm
   * process; no keep-alive socket left idle while spawnSync blocks, which the server may close).
   */
  const versionsOf = (name: string): Promise<string[]> =>
    new Promise((resolveVersions, reject) => {
      httpGet(`${registry}${name.replace('/', '%2f')}`, { agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolveVersions(res.statusCode === 200 ? Object.keys((JSON.parse(body) as { versions?: Record<string, unknown> }).versions ?? {}) : []));
      }).on('error', reject);
    });

  it('changeset version, then changeset publish puts every package on the registry', async () => {
    // a copy of the workspace as a release checkout has it: manifests, built dist, READMEs, changesets
    const ws = join(tmp, 'workspace');
    mkdirSync(ws);
    cpSync(join(REPO, '.changeset'), join(ws, '.changeset'), { recursive: true });
    writeFileSync(join(ws, 'package.json'), JSON.stringify({ name: 'daxlab-release', private: true, workspaces: ['packages/*', 'apps/*'] }, null, 2));
    for (const dir of packageDirs) {
      const dst = join(ws, dir.slice(REPO.length + 1));
      mkdirSync(dst, { recursive: true });
      for (const f of ['package.json', 'README.md', 'CHANGELOG.md', 'LICENSE', 'dist', 'scenarios']) if (existsSync(join(dir, f))) cpSync(join(dir, f), join(dst, f), { recursive: true });
    }
    // changesets resolves its changelog generator from the workspace's node_modules
    symlinkSync(join(REPO, 'node_modules'), join(ws, 'node_modules'), 'dir');
    const npmrc = join(tmp, 'publish.npmrc');
    writeFileSync(npmrc, `registry=${registry}\n//${registry.replace(/^http:\/\//, '')}:_authToken=${token}\n`);
    const env = cleanEnv({ npm_config_userconfig: npmrc, npm_config_registry: registry });
    const changeset = join(REPO, 'node_modules', '@changesets', 'cli', 'bin.js');

    ok(process.execPath, [changeset, 'version'], ws, env);
    const names: string[] = [];
    for (const dir of packageDirs) {
      const before = readJson<{ name: string; version: string; private?: boolean }>(join(dir, 'package.json'));
      const after = readJson<{ name: string; version: string; dependencies?: Record<string, string> }>(join(ws, dir.slice(REPO.length + 1), 'package.json'));
      if (before.private) continue;
      names.push(after.name);
      published.set(after.name, after.version);
      // a version never goes down; pending changesets move it up
      expect(after.version.localeCompare(before.version, undefined, { numeric: true }), after.name).toBeGreaterThanOrEqual(0);
    }
    // internal dependency ranges follow the new versions, so they resolve in the registry
    const cli = readJson<{ dependencies: Record<string, string> }>(join(ws, 'apps', 'cli', 'package.json'));
    for (const [dep, range] of Object.entries(cli.dependencies)) if (dep.startsWith('@daxlab/')) expect(range, dep).toBe(`^${published.get(dep)}`);

    ok(process.execPath, [changeset, 'publish', '--no-git-tag'], ws, env, 240_000);
    for (const name of names) expect(await versionsOf(name), name).toEqual([published.get(name)]);
    expect(names).toContain('@daxlab/core');
    expect(names).toContain('@daxlab/cli');
    // a second publish finds nothing new
    const again = run(process.execPath, [changeset, 'publish', '--no-git-tag'], ws, env, 120_000);
    expect(again.code).toBe(0);
    expect(again.out + again.err).not.toMatch(/Publishing "/);
  }, 420_000);

  it('a third-party arch plugin compiles against the published @daxlab/core and publishes', async () => {
    const dir = join(tmp, 'daxlab-plugin-riscv64');
    cpSync(join(FIXTURES, 'daxlab-plugin-riscv64'), dir, { recursive: true });
    writeFileSync(join(dir, '.npmrc'), scopedNpmrc());
    const env = cleanEnv();
    ok('npm', ['install', '--no-audit', '--no-fund', '--no-package-lock'], dir, env);
    const core = readJson<{ version: string }>(join(dir, 'node_modules', '@daxlab', 'core', 'package.json'));
    expect(core.version).toBe(published.get('@daxlab/core'));
    // the repo's TypeScript, checking the plugin against the published type declarations
    ok(process.execPath, [join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], dir, env);
    const dts = readFileSync(join(dir, 'dist', 'index.d.ts'), 'utf8');
    expect(dts).toMatch(/from '@daxlab\/core'/);
    expect(dts).toContain('export default function riscv64(options?: Riscv64Options): ArchPlugin;');
    ok('npm', ['publish', '--registry', registry], dir, env);
    pluginVersion = readJson<{ version: string }>(join(dir, 'package.json')).version;
    expect(await versionsOf('@acme/daxlab-plugin-riscv64')).toEqual([pluginVersion]);
  }, STEP_TIMEOUT);

  it('an empty project installs @daxlab/cli with an arch and an fs plugin, and the daxlab bin runs a scenario', () => {
    consumer = join(tmp, 'consumer');
    mkdirSync(consumer);
    writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }, null, 2));
    writeFileSync(join(consumer, '.npmrc'), scopedNpmrc());
    const env = cleanEnv();
    ok('npm', ['install', '--no-audit', '--no-fund', '@daxlab/cli', '@daxlab/arch-x86', '@daxlab/fs-xfs', `@acme/daxlab-plugin-riscv64@${pluginVersion}`], consumer, env);
    for (const name of ['@daxlab/cli', '@daxlab/core', '@daxlab/arch-x86', '@daxlab/fs-xfs']) {
      expect(readJson<{ version: string }>(join(consumer, 'node_modules', name, 'package.json')).version, name).toBe(published.get(name));
    }
    const bin = join(consumer, 'node_modules', '.bin', 'daxlab');
    expect(ok(bin, ['--version'], consumer, env).trim()).toBe(published.get('@daxlab/cli'));
    // seed 004 on v6.6 (the mapping_mapped() early return): the pin outlives the mapping, the
    // block is freed and reused, and the DMA corrupts file b — exactly what the scenario expects
    const scenario = join(consumer, 'node_modules', '@daxlab', 'cli', 'scenarios', 'seed-004', 'dma-vs-truncate.yaml');
    const r = run(bin, ['run', scenario, '--arch', 'x86', '--fs', 'xfs', '--kernel', 'v6.6', '--reporter', 'json'], consumer, env);
    expect(r.code, r.err).toBe(0);
    const doc = JSON.parse(r.out) as { version: string; cells: { status: string; violations: { invariant: string }[] }[] };
    expect(doc.version).toBe(published.get('@daxlab/cli'));
    expect(doc.cells.map((c) => [c.status, c.violations.map((v) => v.invariant)])).toEqual([['pass', ['block-freed-while-pinned', 'dma-to-foreign-block']]]);

    // the published @daxlab/core README's createKernel example runs against the installed packages
    const readme = readFileSync(join(consumer, 'node_modules', '@daxlab', 'core', 'README.md'), 'utf8');
    const example = /\n## Example\n[\s\S]*?\n```js\n([\s\S]*?)\n```/.exec(readme)?.[1];
    expect(example, 'the published README has its example').toBeDefined();
    writeFileSync(join(consumer, 'example.mjs'), example!);
    expect(ok(process.execPath, ['example.mjs'], consumer, env)).toBe('ok\n');
  }, STEP_TIMEOUT);

  it('the installed CLI runs a matrix with the third-party plugin, by --plugin and by daxlab.config.json', () => {
    const env = cleanEnv();
    const bin = join(consumer, 'node_modules', '.bin', 'daxlab');
    // device-dax on riscv64: ZONE_DEVICE from v6.11 (216e04bf1e4d), and with it the DAX vmemmap
    // optimisation (4705c1571ad3): a 1 GiB instance at the default 2 MiB alignment is 512
    // compound pages; each keeps 2 vmemmap pages (head and first tails) and the other 6 of its
    // 8 reuse the second, so 1024 pages (4 MiB) back the memmap and 512 × 128 struct pages are
    // written — the figures x86-64 has since v5.17 (seed 003).
    writeFileSync(
      join(consumer, 'riscv.yaml'),
      `name: devdax-pin-riscv
kernel: { driver: devdax }
steps:
  - probe: { driver: devdax, size: 1GiB, as: dax0 }
  - check: { vmemmap: { device: dax0 }, equals: { bytes: 4MiB, pages: 1024, structPagesInitialized: 65536 } }
  - mmap: { device: dax0, length: 2MiB, shared: true, write: true, as: m }
  - write: { map: m, page: 0, data: A }
  - pin: { map: m, page: 0, write: true, as: dma }
  - check: { pinned: { map: m, page: 0 }, equals: true }
  - unpin: dma
  - read: { map: m, page: 0, expect: A }
`,
    );
    const byFlag = run(bin, ['matrix', 'riscv.yaml', '--plugin', '@acme/daxlab-plugin-riscv64', '--arch', 'x86,riscv64', '--kernel', 'v6.6,v6.15', '--reporter', 'json', '--quiet'], consumer, env);
    expect(byFlag.code, byFlag.err).toBe(0);
    type Doc = { plugins?: string[]; cells: { status: string; reason: string | null; kernel: { arch: string; version: string } }[] };
    const cells = (JSON.parse(byFlag.out) as Doc).cells.map((c) => [c.kernel.arch, c.kernel.version, c.status]);
    expect(cells).toEqual([
      ['x86', 'v6.6', 'pass'],
      ['x86', 'v6.15', 'pass'],
      ['riscv64', 'v6.6', 'unsupported'],
      ['riscv64', 'v6.15', 'pass'],
    ]);
    expect((JSON.parse(byFlag.out) as Doc).cells[2]!.reason).toMatch(/^@acme\/daxlab-plugin-riscv64: riscv64 has no ZONE_DEVICE before v6\.11 \(ZONE_DEVICE depends on ARCH_HAS_PTE_DEVMAP/);

    writeFileSync(join(consumer, 'daxlab.config.json'), JSON.stringify({ plugins: ['@acme/daxlab-plugin-riscv64'] }, null, 2));
    const listed = ok(bin, ['list', 'plugins'], consumer, env);
    expect(listed).toMatch(/riscv64\s+@acme\/daxlab-plugin-riscv64/);
    const byConfig = run(bin, ['matrix', 'riscv.yaml', '--arch', 'riscv64', '--kernel', 'v6.15,latest', '--reporter', 'json', '--quiet'], consumer, env);
    expect(byConfig.code, byConfig.err).toBe(0);
    const doc = JSON.parse(byConfig.out) as Doc;
    expect(doc.plugins).toEqual(['@acme/daxlab-plugin-riscv64']);
    expect(doc.cells.map((c) => [c.kernel.arch, c.kernel.version, c.status])).toEqual([
      ['riscv64', 'v6.15', 'pass'],
      ['riscv64', 'latest', 'pass'],
    ]);
  }, STEP_TIMEOUT);
});
