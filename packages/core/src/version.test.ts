import { describe, expect, it } from 'vitest';
import { releaseAtLeast } from './version.js';

describe('releaseAtLeast', () => {
  it('compares presets with mainline releases numerically (v6.15 is after v6.6), latest after all', () => {
    expect(releaseAtLeast('v6.15', 'v6.6')).toBe(true);
    expect(releaseAtLeast('v6.6', 'v6.13')).toBe(false);
    expect(releaseAtLeast('v6.6', 'v6.6')).toBe(true);
    expect(releaseAtLeast('latest', 'v6.17')).toBe(true);
    expect(releaseAtLeast('v5.10', 'v6.1')).toBe(false);
  });
  it('refuses a version that is no preset, and a release that is not vX.Y', () => {
    expect(() => releaseAtLeast('v9.9', 'v6.1')).toThrow(/unknown kernel version/);
    expect(() => releaseAtLeast('v6.1', '6.1')).toThrow(/vMAJOR.MINOR/);
  });
});
