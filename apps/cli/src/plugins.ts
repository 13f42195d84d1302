import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { didYouMean, type ArchPlugin, type DriverPlugin, type FilesystemPlugin, type PluginCatalog } from '@daxlab/core';
import { UsageError } from './usage.js';

type AnyPlugin = ArchPlugin | FilesystemPlugin | DriverPlugin;

/** What each kind of plugin must have (core's ArchPlugin / FilesystemPlugin / DriverPlugin). */
const REQUIRED: Record<AnyPlugin['kind'], readonly (readonly [string, 'string' | 'object' | 'function'])[]> = {
  arch: [['name', 'string'], ['arch', 'string'], ['mmu', 'object'], ['populator', 'object']],
  fs: [['name', 'string'], ['fsName', 'string'], ['mount', 'function']],
  driver: [['name', 'string'], ['driverName', 'string'], ['probe', 'function'], ['unbind', 'function']],
};

const SHAPE_HELP = "a daxlab plugin is an object { kind: 'arch' | 'fs' | 'driver', name, … } (core's ArchPlugin, FilesystemPlugin or DriverPlugin), or a factory returning one, exported as default or as `plugin`";

/** Why `value` is not a plugin, or null. */
export function pluginShapeProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null) return `it is ${value === null ? 'null' : typeof value}, not an object`;
  const kind = (value as { kind?: unknown }).kind;
  if (kind !== 'arch' && kind !== 'fs' && kind !== 'driver') return `its kind is ${JSON.stringify(kind)}; expected 'arch', 'fs' or 'driver'`;
  for (const [field, type] of REQUIRED[kind]) {
    const v = (value as Record<string, unknown>)[field];
    if (typeof v !== type || v === null) return `a ${kind} plugin needs ${field} (${type}); it has ${v === undefined ? 'none' : typeof v}`;
  }
  if (kind === 'arch') {
    const mmu = (value as ArchPlugin).mmu as unknown as Record<string, unknown>;
    if (typeof mmu.basePageSize !== 'number') return 'its mmu has no basePageSize (number)';
    if (typeof (value as ArchPlugin).populator.populate !== 'function') return 'its populator has no populate() function';
  }
  return null;
}

/** Where `spec` resolves from the user's working directory (a path, or a package installed there). */
function resolveSpec(spec: string, cwd: string): string {
  if (spec.startsWith('.') || isAbsolute(spec)) return pathToFileURL(resolve(cwd, spec)).href;
  try {
    return pathToFileURL(createRequire(join(cwd, 'noop.js')).resolve(spec)).href;
  } catch {
    // ESM-only packages without a require condition: let import() resolve it from here
    return spec;
  }
}

export interface LoadedPlugin {
  readonly spec: string;
  readonly kind: AnyPlugin['kind'];
  /** the name scenarios and flags use: arch / fsName / driverName */
  readonly id: string;
  readonly factory: (o?: { pageSize?: number }) => AnyPlugin;
}

export type Importer = (specifier: string) => Promise<Record<string, unknown>>;

/** `--plugin pkg`: import the package and find its plugin (default export, `plugin`, or a factory of one). */
export async function loadPlugin(spec: string, cwd: string, importer: Importer = (s) => import(s) as Promise<Record<string, unknown>>): Promise<LoadedPlugin> {
  let mod: Record<string, unknown>;
  try {
    mod = await importer(resolveSpec(spec, cwd));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND' ? 'not found (is it installed?)' : (e as Error).message.split('\n')[0];
    throw new UsageError(`--plugin ${spec}: cannot import it: ${why}`, 'install the package next to your project, or give a path to its entry file');
  }
  const candidates: [string, unknown][] = [['the default export', mod.default], ['the export `plugin`', mod.plugin]];
  const problems: string[] = [];
  for (const [what, value] of candidates) {
    if (value === undefined) continue;
    let instance: unknown = value;
    if (typeof value === 'function') {
      try {
        instance = (value as (o?: object) => unknown)({});
      } catch (e) {
        throw new UsageError(`--plugin ${spec}: ${what} threw when called: ${(e as Error).message}`);
      }
    }
    const problem = pluginShapeProblem(instance);
    if (problem) {
      problems.push(`${what}: ${problem}`);
      continue;
    }
    const plugin = instance as AnyPlugin;
    checkCoreRange(spec, plugin);
    const id = plugin.kind === 'arch' ? plugin.arch : plugin.kind === 'fs' ? plugin.fsName : plugin.driverName;
    const factory = typeof value === 'function' ? (o: { pageSize?: number } = {}) => (value as (o: object) => AnyPlugin)(o) : () => plugin;
    return { spec, kind: plugin.kind, id, factory };
  }
  throw new UsageError(
    `--plugin ${spec}: no daxlab plugin found: ${problems.length ? problems.join('; ') : 'it has neither a default export nor an export named plugin'}`,
    SHAPE_HELP,
  );
}

/** Load plugin packages in order (each resolved from cwd) and add them to the catalog. */
export async function catalogWithPlugins(base: PluginCatalog, specs: readonly string[], cwd: string, importer?: Importer): Promise<PluginCatalog> {
  const plugins: LoadedPlugin[] = [];
  for (const spec of specs) plugins.push(await loadPlugin(spec, cwd, importer));
  return withPlugins(base, plugins);
}

/** The catalog with the loaded plugins added (a plugin may replace a built-in of the same name). */
export function withPlugins(base: PluginCatalog, plugins: readonly LoadedPlugin[]): PluginCatalog {
  const arch = { ...base.arch };
  const fs = { ...base.fs };
  const driver = { ...base.driver };
  for (const p of plugins) {
    if (p.kind === 'arch') arch[p.id] = (o) => p.factory(o) as ArchPlugin;
    else if (p.kind === 'fs') fs[p.id] = () => p.factory() as FilesystemPlugin;
    else driver[p.id] = () => p.factory() as DriverPlugin;
  }
  return { arch, fs, driver };
}

// ---------------------------------------------------------------------------------------------
// daxlab.config.{json,yaml,yml}: the plugins a project always loads. Only the command line and
// this file can name code to import; scenario files name arches, filesystems and drivers only
// by the names of plugins already loaded (an unknown name is an input error, never an import).

/** The config files looked for in the working directory, in this order. */
export const CONFIG_FILES = ['daxlab.config.json', 'daxlab.config.yaml', 'daxlab.config.yml'] as const;
const CONFIG_KEYS = ['plugins', '$schema'];

export interface DaxlabConfig {
  /** the file it came from */
  readonly file: string;
  /**
   * plugin specs as `--plugin` takes them: package names as written (resolved from the working
   * directory), paths made absolute against the config file's directory
   */
  readonly plugins: readonly string[];
}

/** `--config FILE`, else the first of CONFIG_FILES in `cwd`, else none. */
export function findConfig(cwd: string, explicit?: string): string | null {
  if (explicit !== undefined) {
    const file = resolve(cwd, explicit);
    if (!existsSync(file)) throw new UsageError(`--config ${explicit}: no such file`, `give a daxlab.config.json or .yaml file, e.g. { "plugins": ["daxlab-plugin-riscv64"] }`);
    return file;
  }
  for (const name of CONFIG_FILES) if (existsSync(join(cwd, name))) return join(cwd, name);
  return null;
}

/** Read and check a config file; every problem names the file, the field and the fix. */
export function readConfig(file: string, cwd: string): DaxlabConfig {
  const shown = relative(cwd, file) || file;
  const fix = 'write { "plugins": ["package-name", "./path/to/plugin.mjs"] }';
  let data: unknown;
  try {
    const text = readFileSync(file, 'utf8');
    data = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new UsageError(`${shown}: cannot read it: ${(e as Error).message.split('\n')[0]}`, fix);
  }
  if (data === null || data === undefined) return { file, plugins: [] };
  if (typeof data !== 'object' || Array.isArray(data)) throw new UsageError(`${shown}: expected a mapping with a 'plugins' list, got ${Array.isArray(data) ? 'a list' : typeof data}`, fix);
  for (const key of Object.keys(data)) {
    if (!CONFIG_KEYS.includes(key)) {
      const near = didYouMean(key, CONFIG_KEYS);
      throw new UsageError(`${shown}: ${key}: unknown field${near ? `; did you mean '${near}'?` : ''} (fields: plugins)`, fix);
    }
  }
  const list = (data as { plugins?: unknown }).plugins;
  if (list === undefined || list === null) return { file, plugins: [] };
  if (!Array.isArray(list)) throw new UsageError(`${shown}: plugins: expected a list of package names or paths, got ${typeof list}`, fix);
  const plugins = list.map((spec, i) => {
    if (typeof spec !== 'string' || spec.trim() === '') throw new UsageError(`${shown}: plugins[${i}]: expected a package name or a path (a non-empty string), got ${JSON.stringify(spec)}`, fix);
    return spec.startsWith('.') ? resolve(dirname(file), spec) : spec;
  });
  return { file, plugins };
}

/**
 * The plugin specs a command loads: the config file's (when there is one), then the command
 * line's `--plugin`s; a spec given twice is loaded once.
 */
export function pluginSpecs(cwd: string, cli: readonly string[] = [], configFile?: string): string[] {
  const found = findConfig(cwd, configFile);
  const fromConfig = found ? readConfig(found, cwd).plugins : [];
  return [...new Set([...fromConfig, ...cli])];
}

// ---------------------------------------------------------------------------------------------
// A plugin says which @daxlab/core it was written against (`coreRange`, core's PluginBase); the
// CLI refuses to load it into another one, as Babel's api.assertVersion() and fastify-plugin do.

/** The @daxlab/core version this CLI runs with. */
export const CORE_VERSION: string = (createRequire(import.meta.url)('@daxlab/core/package.json') as { version: string }).version;

type Triple = [number, number, number];
const cmp = (a: Triple, b: Triple): number => a[0] - b[0] || a[1] - b[1] || a[2] - b[2];

/** One comparator (`>=1.2.0`, `^0.1`, `~1.2.3`, `1.x`, `*`) as the half-open interval [lo, hi) it allows. */
function interval(comparator: string): { lo: Triple; hi: Triple | null } | null {
  const m = /^(>=|<=|>|<|=|\^|~)?v?(\*|\d+)(?:\.(\*|x|X|\d+))?(?:\.(\*|x|X|\d+))?$/.exec(comparator);
  if (!m) return null;
  const op = m[1] ?? '';
  const parts = [m[2], m[3], m[4]].filter((p): p is string => p !== undefined && !/^[*xX]$/.test(p)).map(Number);
  const n = parts.length;
  const v: Triple = [parts[0] ?? 0, parts[1] ?? 0, parts[2] ?? 0];
  // the first version past a partial one: 1 -> 2.0.0, 1.2 -> 1.3.0, 1.2.3 -> 1.2.4
  const next = (k: number): Triple => (k <= 1 ? [v[0] + 1, 0, 0] : k === 2 ? [v[0], v[1] + 1, 0] : [v[0], v[1], v[2] + 1]);
  if (n === 0) return op === '<' || op === '>' ? { lo: [0, 0, 0], hi: [0, 0, 0] } : { lo: [0, 0, 0], hi: null };
  switch (op) {
    case '>=':
      return { lo: v, hi: null };
    case '>':
      return { lo: next(n), hi: null };
    case '<':
      return { lo: [0, 0, 0], hi: v };
    case '<=':
      return { lo: [0, 0, 0], hi: next(n) };
    case '^':
      // the left-most non-zero part may not change (^0.1.2: <0.2.0; ^0.0.3: <0.0.4)
      return { lo: v, hi: v[0] > 0 || n === 1 ? next(1) : v[1] > 0 || n === 2 ? next(2) : next(3) };
    case '~':
      return { lo: v, hi: n === 1 ? next(1) : next(2) };
    default:
      return { lo: v, hi: next(n) };
  }
}

/**
 * Whether `version` (x.y.z) satisfies an npm-style range: comparators joined by spaces (all
 * must hold) and by `||` (any set may). null when the range cannot be read.
 */
export function satisfiesRange(version: string, range: string): boolean | null {
  const vm = /^(\d+)\.(\d+)\.(\d+)/.exec(version);
  if (!vm) return null;
  const v: Triple = [Number(vm[1]), Number(vm[2]), Number(vm[3])];
  let any = false;
  for (const set of range.split('||')) {
    const comparators = set.trim().replace(/(>=|<=|>|<|=|\^|~)\s+/g, '$1').split(/\s+/).filter((c) => c !== '');
    let all = true;
    for (const c of comparators.length ? comparators : ['*']) {
      const i = interval(c);
      if (!i) return null;
      if (cmp(v, i.lo) < 0 || (i.hi !== null && cmp(v, i.hi) >= 0)) all = false;
    }
    any ||= all;
  }
  return any;
}

/** Refuse a plugin written for another @daxlab/core (its coreRange). */
function checkCoreRange(spec: string, plugin: AnyPlugin, coreVersion = CORE_VERSION): void {
  const range = plugin.coreRange;
  if (range === undefined) return;
  const ok = satisfiesRange(coreVersion, range);
  if (ok === null) throw new UsageError(`--plugin ${spec}: its coreRange '${range}' is not a version range`, "plugin authors: write an npm range such as '>=0.1.0 <1.0.0' or '^0.2.0'");
  if (!ok) throw new UsageError(`--plugin ${spec}: ${plugin.name} is written for @daxlab/core ${range}, and this daxlab runs @daxlab/core ${coreVersion}`, 'install a version of the plugin made for this @daxlab/core (or a daxlab whose core it supports)');
}
