import { describe, expect, it } from 'vitest';
import { PRESETS, versionAtLeast } from '../src/index.js';

describe('versionAtLeast', () => {
  it('compares presets as mainline releases; latest is newer than every numbered one', () => {
    expect(versionAtLeast('v6.1', 6, 0)).toBe(true);
    expect(versionAtLeast('v6.1', 6, 1)).toBe(true);
    expect(versionAtLeast('v6.1', 6, 2)).toBe(false);
    expect(versionAtLeast('v5.10', 5, 9)).toBe(true);
    expect(versionAtLeast('v5.10', 6, 0)).toBe(false);
    // minor numbers compare as numbers, not text: 5.10 is after 5.9
    expect(versionAtLeast('v5.9', 5, 10)).toBe(false);
    expect(versionAtLeast('latest', 99, 0)).toBe(true);
    expect(versionAtLeast('not-a-version', 0, 0)).toBe(false);
  });

  it('every preset name parses', () => {
    for (const p of PRESETS) expect(versionAtLeast(p.name, 5, 4)).toBe(true);
  });
});
