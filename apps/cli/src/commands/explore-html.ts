import { isExploreResult, type CellResult, type Counterexample } from '@daxlab/core';
import { kernelLabel } from '../report/common.js';
import { scheduleText } from './explore.js';

const esc = (s: string): string => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

/** Event families get a colour in the timeline. */
const FAMILY: readonly [RegExp, string][] = [
  [/^(pte\.|tlb\.)/, 'pte'],
  [/^page\.(ref|free|wake)/, 'ref'],
  [/^(gup\.|dma\.)/, 'dma'],
  [/^block\./, 'block'],
  [/^dax\./, 'dax'],
  [/^(lock|step)$/, 'lock'],
  [/^(pgmap\.|oops|warn)/, 'bad'],
];

function family(line: string): string {
  const type = / ([a-z.-]+)/.exec(line)?.[1] ?? '';
  return FAMILY.find(([re]) => re.test(type))?.[1] ?? 'other';
}

/**
 * One counterexample as a timeline: a column per thread (setup first), one row per kernel event
 * in order, in the column of the thread that emitted it; the last row is the finding.
 */
function timeline(x: Counterexample): string {
  const threads = [...new Set(['setup', ...x.threads])];
  const head = threads.map((t) => `<th>${esc(t)}</th>`).join('');
  const rows = x.trace.map((line, i) => {
    const who = x.threads[i] ?? '';
    const cells = threads.map((t) => (t === who ? `<td class="ev ${family(line)}">${esc(line.replace(/^#\d+ /, ''))}</td>` : '<td></td>')).join('');
    const seq = /^#(\d+)/.exec(line)?.[1] ?? String(i + 1);
    return `<tr${i === x.trace.length - 1 ? ' class="hit"' : who === 'setup' ? ' class="setup"' : ''}><td class="seq">${seq}</td>${cells}</tr>`;
  });
  return `<p class="sched">schedule (${x.length} steps, ${x.preemptions} preemption${x.preemptions === 1 ? '' : 's'}): ${esc(scheduleText(x.schedule))}</p>
<table class="tl"><thead><tr><th>#</th>${head}</tr></thead><tbody>${rows.join('\n')}</tbody></table>`;
}

/** A self-contained HTML page: each explored cell's verdict and the timeline of each counterexample. */
export function renderExploreHtml(cells: readonly CellResult[], version: string): string {
  const sections = cells.map((cell) => {
    const title = `<h2 class="${cell.status}">${esc(cell.status.toUpperCase())} ${esc(cell.scenario)} <small>${esc(kernelLabel(cell.kernel))}</small></h2>`;
    if (!isExploreResult(cell)) return `<section>${title}<pre>${esc(cell.reason ?? '')}</pre></section>`;
    const facts = `<p>${cell.complete ? 'complete' : `bounded (${esc(cell.limits.join(', '))})`}: ${cell.states} states, ${cell.transitions} transitions, depth ${cell.depth}, ${cell.ms} ms (${esc(cell.reduction)}). Outcome <b>${esc(cell.outcome)}</b>; schedules ended ${cell.ends.completed} completed, ${cell.ends.blocked} blocked, ${cell.ends.oops} oops, ${cell.ends.failed} failed.</p>`;
    const failures = cell.failures.length ? `<ul class="fail">${cell.failures.map((f) => `<li>${esc(f)}</li>`).join('')}</ul>` : '';
    const findings: string[] = [];
    for (const v of cell.violations) findings.push(`<details open><summary><b>${esc(v.invariant)}</b>: ${esc(v.message)}</summary>${timeline(v)}</details>`);
    if (cell.blocked) findings.push(`<details open><summary><b>blocked</b>: ${esc(cell.blocked.messages.join('; '))}</summary>${timeline(cell.blocked)}</details>`);
    if (cell.oops) findings.push(`<details open><summary><b>oops</b>: ${esc(cell.oops.messages.join('; '))}</summary>${timeline(cell.oops)}</details>`);
    for (const f of cell.stepFailures) findings.push(`<details><summary><b>failed step</b>: ${esc(f.messages.join('; '))}</summary>${timeline(f)}</details>`);
    return `<section>${title}${facts}${failures}${findings.join('\n') || '<p>No interleaving breaks an invariant or waits forever.</p>'}</section>`;
  });
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>daxlab explore</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h2{font-size:1.1em;margin:1.5em 0 .3em} h2 small{font-weight:normal;color:#666}
h2.pass{color:#1a7f37} h2.fail{color:#cf222e} h2.error{color:#8250df} h2.unsupported{color:#9a6700}
.sched{font-family:monospace} .fail li{color:#cf222e}
table.tl{border-collapse:collapse;font:12px monospace;margin:.3em 0 1em}
table.tl th{position:sticky;top:0;background:#f6f8fa;border-bottom:1px solid #ccc;padding:2px 6px;text-align:left}
table.tl td{padding:1px 6px;vertical-align:top;border-left:1px solid #eee;max-width:32em}
td.seq{color:#999;text-align:right} tr.setup td.ev{opacity:.55} tr.hit td.ev{outline:2px solid #cf222e;font-weight:bold}
.ev.pte{background:#ddf4ff} .ev.ref{background:#fff8c5} .ev.dma{background:#ffebe9} .ev.block{background:#fbefff}
.ev.dax{background:#dafbe1} .ev.lock{background:#f6f8fa} .ev.bad{background:#ffcecb}
</style></head><body>
<h1>daxlab explore <small>${esc(version)}</small></h1>
${sections.join('\n')}
</body></html>
`;
}
