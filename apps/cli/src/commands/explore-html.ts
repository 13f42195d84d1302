import { isExploreResult, type CellResult, type Counterexample } from '@daxlab/core';
import { kernelLabel } from '../report/common.js';
import { HTML_STYLE, htmlEscape, parseTraceLine, renderTimeline } from '../report/html.js';
import { scheduleText } from './explore.js';

const esc = htmlEscape;

/** One counterexample: its schedule, then the shared timeline (report/html.ts) with the finding highlighted. */
function timeline(x: Counterexample, finding: string): string {
  const last = x.trace[x.trace.length - 1];
  const marks = new Map(last !== undefined ? [[parseTraceLine(last, x.trace.length).seq, finding]] : []);
  return `<p class="sched">schedule (${x.length} steps, ${x.preemptions} preemption${x.preemptions === 1 ? '' : 's'}): ${esc(scheduleText(x.schedule))}</p>
${renderTimeline({ trace: x.trace, threads: x.threads, marks })}`;
}

/** A self-contained HTML page: each explored cell's verdict and the timeline of each counterexample. */
export function renderExploreHtml(cells: readonly CellResult[], version: string): string {
  const sections = cells.map((cell) => {
    const title = `<h2 class="${cell.status}">${esc(cell.status.toUpperCase())} ${esc(cell.scenario)} <small>${esc(kernelLabel(cell.kernel))}</small></h2>`;
    if (!isExploreResult(cell)) return `<section>${title}<pre>${esc(cell.reason ?? '')}</pre></section>`;
    const facts = `<p>${cell.complete ? 'complete' : `bounded (${esc(cell.limits.join(', '))})`}: ${cell.states} states, ${cell.transitions} transitions, depth ${cell.depth}, ${cell.ms} ms (${esc(cell.reduction)}). Outcome <b>${esc(cell.outcome)}</b>; schedules ended ${cell.ends.completed} completed, ${cell.ends.blocked} blocked, ${cell.ends.oops} oops, ${cell.ends.failed} failed.</p>`;
    const failures = cell.failures.length ? `<ul class="fail">${cell.failures.map((f) => `<li>${esc(f)}</li>`).join('')}</ul>` : '';
    const findings: string[] = [];
    for (const v of cell.violations) findings.push(`<details open><summary><b>${esc(v.invariant)}</b>: ${esc(v.message)}</summary>${timeline(v, `${v.invariant}: ${v.message}`)}</details>`);
    if (cell.blocked) findings.push(`<details open><summary><b>blocked</b>: ${esc(cell.blocked.messages.join('; '))}</summary>${timeline(cell.blocked, 'blocked')}</details>`);
    if (cell.oops) findings.push(`<details open><summary><b>oops</b>: ${esc(cell.oops.messages.join('; '))}</summary>${timeline(cell.oops, 'oops')}</details>`);
    for (const f of cell.stepFailures) findings.push(`<details><summary><b>failed step</b>: ${esc(f.messages.join('; '))}</summary>${timeline(f, 'failed step')}</details>`);
    for (const f of cell.allowedFailures) findings.push(`<details><summary><b>may fail</b> (allowed by its expect): ${esc(f.messages.join('; '))}</summary>${timeline(f, 'may fail')}</details>`);
    return `<section>${title}${facts}${failures}${findings.join('\n') || '<p>No interleaving breaks an invariant or waits forever.</p>'}</section>`;
  });
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>daxlab explore</title>
<style>
${HTML_STYLE}
</style></head><body>
<h1>daxlab explore <small>${esc(version)}</small></h1>
${sections.join('\n')}
</body></html>
`;
}
