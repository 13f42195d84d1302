import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { PageStore } from '../src/index.js';

// PageStore keeps struct-page fields in typed arrays that slot() replaces when it grows. In
// `p.gup[p.slot(pfn)] += 1` JavaScript evaluates `p.gup` before the call, so when slot()
// materialises a new page into a full store the update lands in the array just thrown away.

const init = (pfn: number) => ({ rc: 0, flags: 0, order: 0, headPfn: pfn, pgmap: 0 });

describe('PageStore: a slot is taken before an array is named', () => {
  it('materialising a page into a full store replaces the arrays (so an array read before slot() is stale)', () => {
    const p = new PageStore(init);
    let i = 0;
    while (p.materialised === 0 || p.rc.length > p.materialised) p.slot(1000 + i++);
    const before = p.gup;
    const s = p.slot(5_000_000);
    expect(p.gup).not.toBe(before);
    p.gup[s]! += 1;
    expect(p.gup[p.slot(5_000_000)]).toBe(1);
  });

  it('no source file indexes a page-store array with a slot() call inside the brackets', () => {
    const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) walk(path);
        else if (path.endsWith('.ts') && !path.endsWith('.test.ts') && !path.endsWith('.d.ts')) {
          readFileSync(path, 'utf8').split('\n').forEach((line, n) => {
            // `x[….slot(…)]` unless the line first checks has(): then slot() cannot grow the store
            if (/\w\[[^\]]*\.slot\(/.test(line) && !/\.has\(/.test(line)) offenders.push(`${relative(root, path)}:${n + 1}`);
          });
        }
      }
    };
    for (const pkg of readdirSync(root)) {
      const src = join(root, pkg, 'src');
      try {
        if (statSync(src).isDirectory()) walk(src);
      } catch {
        // a package folder without src/
      }
    }
    expect(offenders).toEqual([]);
  });
});
