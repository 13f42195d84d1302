import type { CellResult, CellStatus } from '@daxlab/core';
import type { PlanInfo, Report, ReportKind } from './common.js';

/** A report or cell log that cannot be read back: names the file (and line) and what is wrong. */
export class ReportReadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReportReadError';
  }
}

const STATUSES: readonly CellStatus[] = ['pass', 'fail', 'unsupported', 'error'];

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A cell as renderJson/cellJson wrote it, back as a CellResult (the JSON form is the CellResult
 * with a fixed key order, so extra fields are kept as they are). `where` names the place for errors.
 */
export function parseCell(value: unknown, where: string): CellResult {
  const problem = (what: string) => new ReportReadError(`${where}: ${what}; it was not written by daxlab (or was edited)`);
  if (!isObject(value)) throw problem('a cell is an object');
  if (typeof value.scenario !== 'string') throw problem('cell.scenario is not a string');
  if (!STATUSES.includes(value.status as CellStatus)) throw problem(`cell.status ${JSON.stringify(value.status)} is not one of ${STATUSES.join(', ')}`);
  const k = value.kernel;
  if (!isObject(k) || typeof k.arch !== 'string' || typeof k.version !== 'string' || typeof k.pageSize !== 'number' || !isObject(k.features)) throw problem('cell.kernel is not { arch, pageSize, fs, driver, version, features }');
  if (!Array.isArray(value.violations) || !Array.isArray(value.failures)) throw problem('cell.violations and cell.failures are lists');
  if (typeof value.ms !== 'number') throw problem('cell.ms is not a number');
  return value as unknown as CellResult;
}

/** The `plan` object of a report or cell log, or undefined when absent. */
export function parsePlan(value: unknown, where: string): PlanInfo | undefined {
  if (value === undefined) return undefined;
  const bad = () => new ReportReadError(`${where}: plan is not { id, cells, shard? }; it was not written by daxlab (or was edited)`);
  if (!isObject(value) || typeof value.id !== 'string' || !Number.isSafeInteger(value.cells)) throw bad();
  const shard = value.shard;
  if (shard === undefined) return { id: value.id, cells: value.cells as number };
  if (!isObject(shard) || !Number.isSafeInteger(shard.index) || !Number.isSafeInteger(shard.count)) throw bad();
  return { id: value.id, cells: value.cells as number, shard: { index: shard.index as number, count: shard.count as number } };
}

/** A JSON report (renderJson's output) back as a Report; `file` is how errors name it. */
export function parseJsonReport(text: string, file: string): Report {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new ReportReadError(`${file}: not valid JSON (${(e as Error).message}); give daxlab-report.json files written by 'daxlab matrix --reporter json'`);
  }
  if (!isObject(doc) || doc.tool !== 'daxlab' || !Array.isArray(doc.cells)) {
    throw new ReportReadError(`${file}: not a daxlab JSON report (expected { "tool": "daxlab", …, "cells": [ … ] }); give daxlab-report.json files written by 'daxlab matrix --reporter json'`);
  }
  const kind = doc.kind;
  if (kind !== 'run' && kind !== 'matrix') throw new ReportReadError(`${file}: kind ${JSON.stringify(kind)} is neither "run" nor "matrix"`);
  const plugins = Array.isArray(doc.plugins) ? doc.plugins.filter((p): p is string => typeof p === 'string') : [];
  const plan = parsePlan(doc.plan, file);
  return {
    kind: kind as ReportKind,
    version: typeof doc.version === 'string' ? doc.version : '',
    cells: doc.cells.map((c, i) => parseCell(c, `${file}: cells[${i}]`)),
    plugins,
    ...(plan ? { plan } : {}),
  };
}
