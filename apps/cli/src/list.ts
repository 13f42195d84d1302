import { FEATURES, INVARIANTS, PRESETS, type PluginCatalog } from '@daxlab/core';
import { collectScenarioFiles, loadScenarios } from './scenarios.js';

export const LIST_TOPICS = ['plugins', 'kernels', 'features', 'invariants', 'scenarios'] as const;
export type ListTopic = (typeof LIST_TOPICS)[number];

function table(rows: readonly (readonly string[])[], gap = 2): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]! + gap))).join('').trimEnd());
}

/** The plugins scenarios and flags can name, with the package that provides each. */
export function listPlugins(catalog: PluginCatalog): string[] {
  const rows: string[][] = [];
  const add = (kind: string, entries: Record<string, (o: object) => { name: string }>) => {
    const names = Object.keys(entries);
    if (names.length === 0) rows.push([kind, '(none installed)', '']);
    names.forEach((id, i) => {
      let pkg: string;
      try {
        pkg = entries[id]!({}).name;
      } catch (e) {
        pkg = `(fails to load: ${(e as Error).message})`;
      }
      rows.push([i === 0 ? kind : '', id, pkg]);
    });
  };
  add('arch', catalog.arch);
  add('fs', catalog.fs);
  add('driver', catalog.driver);
  return ['Plugins (--arch, --fs, --driver; add more with --plugin <package>):', '', ...table([['kind', 'name', 'package'], ...rows])];
}

/** Every preset with every feature's value, as a grid, then what each preset stands for. */
export function listKernels(): string[] {
  const header = ['feature', ...PRESETS.map((p) => p.name)];
  const rows = FEATURES.map((f) => [f.name, ...PRESETS.map((p) => String((p.features as Record<string, unknown>)[f.name]))]);
  return [
    "Kernel presets (--kernel NAME; change single features with --feature name=value, see 'daxlab list features'):",
    '',
    ...table([header, ...rows]),
    '',
    ...table(PRESETS.map((p) => [p.name, `${p.release}: ${p.notes}`])),
  ];
}

/** Each feature: its values, what it is about, and what each value means (kernel commit and release). */
export function listFeatures(): string[] {
  const out = ['Kernel features (--feature name=value; in scenarios: kernel.features and expect[].when.features):'];
  for (const f of FEATURES) {
    out.push('', `${f.name} = ${f.values.join(' | ')}`, `  ${f.summary}`);
    for (const v of f.values) out.push(`  ${String(v)}: ${(f.meaning as Readonly<Record<string, string>>)[String(v)] ?? ''}`);
  }
  return out;
}

export function listInvariants(): string[] {
  return ['Invariants (names used in expect[].violations and in reports); broken when:', '', ...table(INVARIANTS.map((i) => [i.name, i.brokenWhen]))];
}

/** The first sentence of a description, cut to fit a line. */
function short(text: string, max = 80): string {
  const first = text.replace(/\s+/g, ' ').trim().split(/(?<=\.) /)[0] ?? '';
  return first.length > max ? `${first.slice(0, max - 1)}…` : first;
}

/** The scenarios of the built-in library. */
export function listScenarios(cwd: string, libraryDir?: string): string[] {
  const loaded = loadScenarios(collectScenarioFiles([], cwd, libraryDir), cwd);
  const rows = loaded.map((l) => (l.ok ? [l.scenario.name, l.scenario.mode, l.file, short(l.scenario.description ?? '')] : [l.name, 'invalid', l.file, l.reason]));
  return [`Built-in scenarios (${loaded.length}; 'daxlab run' or 'daxlab matrix' with no arguments runs them all):`, '', ...table([['name', 'mode', 'file', 'description'], ...rows])];
}

export function list(topic: ListTopic | undefined, catalog: PluginCatalog, cwd: string, libraryDir?: string): string {
  const render = (t: ListTopic) => {
    switch (t) {
      case 'plugins': return listPlugins(catalog);
      case 'kernels': return listKernels();
      case 'features': return listFeatures();
      case 'invariants': return listInvariants();
      case 'scenarios': return listScenarios(cwd, libraryDir);
    }
  };
  const topics = topic ? [topic] : LIST_TOPICS;
  return `${topics.map((t) => render(t).join('\n')).join('\n\n')}\n`;
}
