import { ARCH_NAMES, didYouMean, DRIVER_NAMES, FS_NAMES } from './schema.js';
import type { ExpectWhen, Scenario, Step } from './types.js';

type Kind = 'arch' | 'fs' | 'driver';

const BUILT_IN: Readonly<Record<Kind, readonly string[]>> = { arch: ARCH_NAMES, fs: FS_NAMES, driver: DRIVER_NAMES };

/**
 * The first arch, fs or driver name a scenario uses that is neither a built-in plugin's nor one in
 * `loaded` (the catalog the cell runs with), as an error naming the file, the field and the fix;
 * null when every name is known. Scenario files may name third-party plugins, so the loader takes
 * any name; without this check a misspelt name in a `when` would be silent (the rule would just
 * never apply). A built-in name the catalog lacks is fine here: rules about it simply do not apply.
 */
export function unknownPluginName(scenario: Scenario, loaded: Readonly<Record<Kind, readonly string[]>>): string | null {
  const uses: { kind: Kind; name: string; field: string }[] = [];
  const fromWhen = (when: ExpectWhen | undefined, at: string): void => {
    for (const kind of ['arch', 'fs', 'driver'] as const) for (const name of when?.[kind] ?? []) uses.push({ kind, name, field: `${at}.when.${kind}` });
  };
  for (const kind of ['arch', 'fs', 'driver'] as const) {
    const name = scenario.kernel[kind];
    if (name !== undefined) uses.push({ kind, name, field: `kernel.${kind}` });
  }
  scenario.expect.forEach((r) => fromWhen(r.when, r.path));
  const steps: Step[] = [...scenario.setup, ...scenario.threads.flatMap((t) => t.steps)];
  for (const st of steps) {
    fromWhen(st.when, st.path);
    if (st.op === 'mount' && typeof st.args.fs === 'string') uses.push({ kind: 'fs', name: st.args.fs, field: `${st.path}.mount.fs` });
    if (st.op === 'probe' && typeof st.args.driver === 'string') uses.push({ kind: 'driver', name: st.args.driver, field: `${st.path}.probe.driver` });
  }
  for (const u of uses) {
    const names = [...new Set([...BUILT_IN[u.kind], ...loaded[u.kind]])];
    if (names.includes(u.name)) continue;
    const near = didYouMean(u.name, names);
    const where = scenario.file ? `${scenario.file}: ` : '';
    return `${where}${u.field}: no ${u.kind} plugin is named '${u.name}'${near ? `; did you mean '${near}'?` : ''} (known: ${names.join(', ')}; a third-party plugin must be in the catalog: daxlab --plugin or a config file's plugins list)`;
  }
  return null;
}
