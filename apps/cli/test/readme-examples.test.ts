import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * Every package's README documents its options and shows a createKernel example that runs: the
 * first ```js block under "## Example" (the CLI's: under "## In code") is run with node against
 * the built packages, and asserts its own results (node:assert) before printing "ok".
 */
const REPO = join(import.meta.dirname, '..', '..', '..');
const READMES = [
  ...readdirSync(join(REPO, 'packages')).map((d) => join('packages', d)),
  join('apps', 'cli'),
].filter((d) => existsSync(join(REPO, d, 'package.json')));
const unbuilt = READMES.filter((d) => !existsSync(join(REPO, d, 'dist', 'index.js')));
if (unbuilt.length > 0) console.warn(`readme-examples: skipped, not built: ${unbuilt.join(', ')} (run 'npm run build')`);

/** The example of a README: the first js block after the heading. */
function readmeExample(text: string, heading: string): string | null {
  const at = text.indexOf(`\n## ${heading}\n`);
  if (at < 0) return null;
  const m = /\n```js\n([\s\S]*?)\n```/.exec(text.slice(at));
  return m ? m[1]! : null;
}

describe('package READMEs', () => {
  it.each(READMES)('%s/README.md: options and an example', (dir) => {
    const file = join(REPO, dir, 'README.md');
    expect(existsSync(file), `${dir} has no README.md`).toBe(true);
    const text = readFileSync(file, 'utf8');
    expect(text).toMatch(/\n## (Options|createKernel options|Options of run and matrix)\n/);
    const example = readmeExample(text, dir === join('apps', 'cli') ? 'In code' : 'Example');
    expect(example, `${dir}/README.md: no \`\`\`js block under its example heading`).not.toBeNull();
    expect(example).toMatch(/createKernel\(/);
  });

  // node resolves @daxlab/* from a directory inside the workspace's node_modules
  const scratch = join(REPO, 'node_modules', '.cache', 'daxlab-readme-examples');
  it.skipIf(unbuilt.length > 0).each(READMES)('%s/README.md: the example runs and its assertions hold', (dir) => {
    const text = readFileSync(join(REPO, dir, 'README.md'), 'utf8');
    const example = readmeExample(text, dir === join('apps', 'cli') ? 'In code' : 'Example')!;
    mkdirSync(scratch, { recursive: true });
    const file = join(scratch, `${dir.replace(/[\\/]/g, '-')}.mjs`);
    writeFileSync(file, example);
    const r = spawnSync(process.execPath, [file], { cwd: scratch, encoding: 'utf8', timeout: 60_000 });
    expect({ code: r.status, out: r.stdout, err: r.stderr }).toEqual({ code: 0, out: 'ok\n', err: '' });
  }, 60_000);
});
