import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/main.js';
import { memoryIo } from './helpers.js';

/**
 * The HTML report in a real headless browser (Debian's chromium, driven by playwright-core):
 * it opens without fetching anything, the grid has one button per cell, and clicking a cell
 * opens that cell's timeline. Locally without chromium the test skips (and says how to get
 * it); under CI a missing browser fails (.ci/run installs it).
 */
const CHROMIUM = process.env.DAXLAB_CHROMIUM ?? '/usr/bin/chromium';
const haveBrowser = existsSync(CHROMIUM);
const inCi = Boolean(process.env.CI);
if (!haveBrowser && !inCi) {
  console.warn(`html-browser.test: skipped: no browser at ${CHROMIUM}. Install one with 'apt-get install -y chromium' (Debian), or point DAXLAB_CHROMIUM at a Chromium binary.`);
}

const library = fileURLToPath(new URL('../scenarios/', import.meta.url));
// flags that work in this container and in CI: no sandbox (root), no GPU, nothing phoned home
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

describe.skipIf(!haveBrowser && !inCi)('html report in headless Chromium', () => {
  let dir = '';
  let html = '';
  let cells: { status: string; violations: unknown[] }[] = [];
  let browser: import('playwright-core').Browser | undefined;

  beforeAll(async () => {
    if (!haveBrowser) throw new Error(`CI=true but there is no browser at ${CHROMIUM}: .ci/run installs Debian's chromium (apt-get install -y chromium); or set DAXLAB_CHROMIUM`);
    dir = mkdtempSync(join(tmpdir(), 'daxlab-html-'));
    // an anonymous page mapped once has refcount 1, so this check fails on every kernel
    const failing = join(dir, 'always-fails.yaml');
    writeFileSync(failing, 'name: always-fails\nsteps:\n  - mmap: { anon: true, length: 4KiB, write: true, as: m }\n  - write: { map: m, page: 0, data: A }\n  - check: { refcount: { map: m, page: 0 }, equals: 99 }\n');
    const io = memoryIo(library);
    // two seed scenarios and a failing one on three kernels, with a feature both ways
    const code = await main(['node', 'daxlab', 'matrix', 'seed-004/dma-vs-truncate.yaml', 'seed-002/gup-after-fork.yaml', failing, '--arch', 'x86', '--fs', 'xfs', '--kernel', 'v5.10,v6.6,latest', '--feature', 'dax-busy-mapping-mapped-check=true,false', '--reporter', 'json,html', '--out', join(dir, 'out'), '--quiet', '--jobs', '1'], io, { libraryDir: library });
    expect(code, io.err()).toBeLessThan(2);
    html = join(dir, 'out', 'daxlab-report.html');
    cells = (JSON.parse(readFileSync(join(dir, 'out', 'daxlab-report.json'), 'utf8')) as { cells: typeof cells }).cells;
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, timeout: 30_000 });
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('opens with no request but the file itself, a grid cell per matrix cell, a legend with the counts', async () => {
    const page = await browser!.newPage();
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(pathToFileURL(html).href, { timeout: 30_000 });
    expect(requests).toEqual([pathToFileURL(html).href]);
    expect(errors).toEqual([]);
    // 3 scenarios × 3 kernels × 2 feature values (x86; xfs and nvdimm where the scenario mounts and probes)
    expect(cells).toHaveLength(18);
    expect(cells.filter((c) => c.status === 'fail')).toHaveLength(6);
    expect(await page.locator('td.cell button').count()).toBe(18);
    for (const status of ['pass', 'fail', 'unsupported', 'error']) {
      const n = cells.filter((c) => c.status === status).length;
      expect(await page.locator(`td.cell.${status} button`).count()).toBe(n);
      expect(await page.locator(`.key.${status} b`).textContent()).toBe(String(n));
    }
    expect(await page.locator('#detail').isHidden()).toBe(true);
    // 'only rows with a failed or erroneous cell' hides the rows whose cells all passed (or were unsupported)
    await page.locator('#only-bad').check();
    // the failing scenario: its header row and one backend row, 6 cells in it
    expect(await page.locator('table.grid tbody tr:visible').count()).toBe(2);
    expect(await page.locator('td.cell button:visible').count()).toBe(6);
    await page.locator('#only-bad').uncheck();
    expect(await page.locator('td.cell button:visible').count()).toBe(18);
    await page.close();
  });

  it('clicking a cell opens its timeline, with each violation highlighted; another click replaces it', async () => {
    const page = await browser!.newPage();
    await page.goto(pathToFileURL(html).href, { timeout: 30_000 });
    const withViolations = cells.findIndex((c) => c.violations.length === 2);
    expect(withViolations).toBeGreaterThanOrEqual(0);
    await page.locator(`button[data-cell="${withViolations}"]`).click();
    const detail = page.locator('#detail');
    expect(await detail.isVisible()).toBe(true);
    expect(await detail.locator('h2').textContent()).toContain('dma-vs-truncate');
    expect(await detail.locator('table.tl tbody tr').count()).toBeGreaterThan(10);
    // block-freed-while-pinned and dma-to-foreign-block: one highlighted row each
    expect(await detail.locator('table.tl tr.hit').count()).toBe(2);
    expect(await page.locator(`button[data-cell="${withViolations}"]`).getAttribute('aria-pressed')).toBe('true');
    expect(page.url()).toMatch(new RegExp(`#cell-${withViolations}$`));

    const other = cells.findIndex((c) => c.violations.length === 0 && c.status === 'pass');
    await page.locator(`button[data-cell="${other}"]`).click();
    expect(await detail.locator('table.tl tr.hit').count()).toBe(0);
    expect(await detail.locator('table.tl').count()).toBe(1);
    expect(await page.locator(`button[data-cell="${withViolations}"]`).getAttribute('aria-pressed')).toBe('false');
    await page.close();
  });
});
