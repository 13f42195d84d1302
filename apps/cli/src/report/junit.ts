import type { CellResult } from '@daxlab/core';
import { featureList, kernelLabel, replayCommand, summarize, type Report } from './common.js';

/** Escape text for XML attributes and content; drop characters XML 1.0 cannot carry. */
export function xmlEscape(s: string): string {
  return s
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

const seconds = (ms: number) => (ms / 1000).toFixed(3);

function attrs(a: Record<string, string | number>): string {
  return Object.entries(a).map(([k, v]) => ` ${k}="${xmlEscape(String(v))}"`).join('');
}

function testcase(c: CellResult, plugins: readonly string[]): string[] {
  const out = [`    <testcase${attrs({ classname: c.scenario, name: kernelLabel(c.kernel), time: seconds(c.ms) })}>`];
  const props: [string, string][] = [];
  if (c.file) props.push(['file', c.file]);
  if (c.seed !== undefined) props.push(['seed', String(c.seed)]);
  props.push(['outcome', c.outcome]);
  for (const f of featureList(c.kernel)) {
    const eq = f.indexOf('=');
    props.push([`feature:${f.slice(0, eq)}`, f.slice(eq + 1)]);
  }
  out.push('      <properties>', ...props.map(([name, value]) => `        <property${attrs({ name, value })}/>`), '      </properties>');
  if (c.status === 'fail') {
    const message = c.failures[0] ?? (c.violations[0] ? `${c.violations[0].invariant}: ${c.violations[0].message}` : 'failed');
    const body = [
      ...c.failures,
      ...c.violations.flatMap((v) => [`${v.invariant}: ${v.message}`, ...v.trace.map((t) => `  ${t}`)]),
      ...(c.reason ? [c.reason] : []),
      ...(replayCommand(c, plugins) ? [`replay: ${replayCommand(c, plugins)}`] : []),
    ];
    out.push(`      <failure${attrs({ message, type: c.violations[0]?.invariant ?? 'expectation' })}>${xmlEscape(body.join('\n'))}</failure>`);
  } else if (c.status === 'error') {
    out.push(`      <error${attrs({ message: c.reason ?? 'error', type: 'error' })}>${xmlEscape(c.reason ?? '')}</error>`);
  } else if (c.status === 'unsupported') {
    out.push(`      <skipped${attrs({ message: `unsupported: ${c.reason ?? ''}` })}/>`);
  }
  out.push('    </testcase>');
  return out;
}

/** JUnit XML: one <testsuite> per scenario, one <testcase> per cell (classname = scenario, name = kernel tuple). */
export function renderJunit(report: Report): string {
  const bySuite = new Map<string, CellResult[]>();
  for (const c of report.cells) bySuite.set(c.scenario, [...(bySuite.get(c.scenario) ?? []), c]);
  const counts = (cells: readonly CellResult[]) => {
    const s = summarize(cells);
    return { tests: cells.length, failures: s.fail, errors: s.error, skipped: s.unsupported, time: seconds(cells.reduce((t, c) => t + c.ms, 0)) };
  };
  const lines = ['<?xml version="1.0" encoding="UTF-8"?>', `<testsuites${attrs({ name: `daxlab ${report.kind}`, ...counts(report.cells) })}>`];
  for (const [name, cells] of bySuite) {
    lines.push(`  <testsuite${attrs({ name, ...counts(cells) })}>`, ...cells.flatMap((c) => testcase(c, report.plugins ?? [])), '  </testsuite>');
  }
  lines.push('</testsuites>');
  return `${lines.join('\n')}\n`;
}
