import { describe, expect, it } from 'vitest';
import { PRESETS, kernelAtLeast } from '../src/index.js';

describe('kernelAtLeast', () => {
  it('compares presets as mainline releases; latest is newer than every numbered one', () => {
    expect(kernelAtLeast('v6.1', 6, 0)).toBe(true);
    expect(kernelAtLeast('v6.1', 6, 1)).toBe(true);
    expect(kernelAtLeast('v6.1', 6, 2)).toBe(false);
    expect(kernelAtLeast('v5.10', 5, 9)).toBe(true);
    expect(kernelAtLeast('v5.10', 6, 0)).toBe(false);
    // minor numbers compare as numbers, not text: 5.10 is after 5.9
    expect(kernelAtLeast('v5.9', 5, 10)).toBe(false);
    expect(kernelAtLeast('latest', 99, 0)).toBe(true);
    // a name that is not a release is an input error, not a silent answer either way
    expect(() => kernelAtLeast('not-a-version', 0, 0)).toThrow(/kernel version 'not-a-version' is not a release: use one of v5.4, /);
  });

  it('every preset name parses', () => {
    for (const p of PRESETS) expect(kernelAtLeast(p.name, 5, 4)).toBe(true);
  });
});
