import type { CellResult, ScheduleStep } from '@daxlab/core';
import { summarize, type PlanInfo, type Report } from './common.js';

const schedule = (s: readonly ScheduleStep[]) => s.map((x) => ({ thread: x.thread, step: x.step }));

/** One cell with a fixed key order (SCENARIOS.md "Reports", plus file, seed, schedule and trace). */
export function cellJson(c: CellResult): Record<string, unknown> {
  const k = c.kernel;
  const features: Record<string, string | boolean> = {};
  for (const name of Object.keys(k.features).sort()) features[name] = k.features[name]!;
  return {
    scenario: c.scenario,
    ...(c.file !== undefined ? { file: c.file } : {}),
    kernel: { arch: k.arch, pageSize: k.pageSize, fs: k.fs, driver: k.driver, version: k.version, features },
    status: c.status,
    outcome: c.outcome,
    violations: c.violations.map((v) => ({
      invariant: v.invariant,
      message: v.message,
      trace: [...v.trace],
      ...(v.schedule ? { schedule: schedule(v.schedule) } : {}),
    })),
    failures: [...c.failures],
    reason: c.reason,
    ...(c.seed !== undefined ? { seed: c.seed } : {}),
    ...(c.schedule ? { schedule: schedule(c.schedule) } : {}),
    ...(c.trace ? { trace: [...c.trace] } : {}),
    ms: c.ms,
  };
}

/** `plan` with a fixed key order; `shard` only in a shard's report. */
export function planJson(p: PlanInfo): Record<string, unknown> {
  return { id: p.id, cells: p.cells, ...(p.shard ? { shard: { index: p.shard.index, count: p.shard.count } } : {}) };
}

/** The machine report: `{ tool, version, kind, plan?, plugins?, cells, summary }`, stable key order, 2-space indent. */
export function renderJson(report: Report): string {
  const s = summarize(report.cells);
  const doc = {
    tool: 'daxlab',
    version: report.version,
    kind: report.kind,
    ...(report.plan ? { plan: planJson(report.plan) } : {}),
    ...(report.plugins?.length ? { plugins: [...report.plugins] } : {}),
    cells: report.cells.map(cellJson),
    summary: { pass: s.pass, fail: s.fail, unsupported: s.unsupported, error: s.error },
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}
