import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, extname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError, loadScenarioFile, type Scenario } from '@daxlab/core';
import { UsageError } from './usage.js';

/** The built-in scenario library shipped with the CLI (apps/cli/scenarios). */
export const LIBRARY_DIR = fileURLToPath(new URL('../scenarios/', import.meta.url));

const EXTENSIONS = ['.yaml', '.yml', '.json'];

function scenarioFilesIn(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...scenarioFilesIn(p));
    else if (EXTENSIONS.includes(extname(entry.name).toLowerCase())) out.push(p);
  }
  return out;
}

/** How a path is shown: relative to the working directory when below it, else absolute. */
export function displayPath(abs: string, cwd: string): string {
  const rel = relative(cwd, abs);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : abs;
}

/**
 * The scenario files the arguments name: files as given, directories expanded to their
 * .yaml/.yml/.json files (recursively, sorted); no arguments → the built-in library.
 */
export function collectScenarioFiles(args: readonly string[], cwd: string, libraryDir = LIBRARY_DIR): string[] {
  const roots = args.length ? args.map((a) => resolve(cwd, a)) : [libraryDir];
  const files: string[] = [];
  for (const [i, root] of roots.entries()) {
    if (!existsSync(root)) {
      throw new UsageError(args.length ? `no such file or directory: ${args[i]}` : `the built-in scenario library is missing (${root})`, args.length ? 'give scenario files (.yaml, .yml, .json) or directories' : 'reinstall @daxlab/cli');
    }
    if (statSync(root).isDirectory()) {
      const found = scenarioFilesIn(root).sort();
      if (found.length === 0) throw new UsageError(`no scenario files (.yaml, .yml, .json) in ${args[i] ?? root}`);
      files.push(...found);
    } else {
      files.push(root);
    }
  }
  return [...new Set(files)];
}

export type LoadedScenario =
  | { readonly ok: true; readonly scenario: Scenario; readonly file: string }
  | { readonly ok: false; readonly name: string; readonly file: string; readonly reason: string };

/**
 * Load every file; a file that does not parse, or reuses a name already taken in this run,
 * becomes a problem (reported as an `error` cell), not an exception.
 */
export function loadScenarios(files: readonly string[], cwd: string): LoadedScenario[] {
  const byName = new Map<string, string>();
  return files.map((abs): LoadedScenario => {
    const file = displayPath(abs, cwd);
    const fallbackName = basename(abs, extname(abs));
    try {
      const scenario = loadScenarioFile(abs, file);
      const other = byName.get(scenario.name);
      if (other !== undefined) {
        return { ok: false, name: scenario.name, file, reason: `${file}: name: '${scenario.name}' is already the name of ${other}; scenario names must be unique` };
      }
      byName.set(scenario.name, file);
      return { ok: true, scenario, file };
    } catch (e) {
      if (e instanceof InputError) return { ok: false, name: fallbackName, file, reason: e.message };
      throw e;
    }
  });
}
