import { createRequire } from 'node:module';
import { isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ArchPlugin, DriverPlugin, FilesystemPlugin, PluginCatalog } from '@daxlab/core';
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
    const id = plugin.kind === 'arch' ? plugin.arch : plugin.kind === 'fs' ? plugin.fsName : plugin.driverName;
    const factory = typeof value === 'function' ? (o: { pageSize?: number } = {}) => (value as (o: object) => AnyPlugin)(o) : () => plugin;
    return { spec, kind: plugin.kind, id, factory };
  }
  throw new UsageError(
    `--plugin ${spec}: no daxlab plugin found: ${problems.length ? problems.join('; ') : 'it has neither a default export nor an export named plugin'}`,
    SHAPE_HELP,
  );
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
