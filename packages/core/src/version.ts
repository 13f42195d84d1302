import { InputError } from './errors.js';
import { presetNamed } from './features.js';

/** A mainline release as [major, minor]; 'latest' is past every numbered release. */
function releaseOf(version: string): readonly [number, number] {
  if (version === 'latest') return [Infinity, Infinity];
  const m = /^v(\d+)\.(\d+)$/.exec(version);
  if (!m) throw new InputError(`'${version}' is not a kernel release; write vMAJOR.MINOR (e.g. v6.6) or latest`, undefined, 'version');
  return [Number(m[1]), Number(m[2])];
}

/**
 * Whether kernel `version` (a preset name: `v6.1`, `latest`, ...) includes a change merged in
 * mainline `release` (`v6.13`). Plugins use it for arch facts that changed at a release but
 * are no feature of their own (a section size, a Kconfig select).
 */
export function releaseAtLeast(version: string, release: string): boolean {
  presetNamed(version);
  const [a, b] = releaseOf(version);
  const [c, d] = releaseOf(release);
  return a > c || (a === c && b >= d);
}
