import { formatSize, type CellResult, type CellStatus } from '@daxlab/core';
import { featureList, kernelLabel, replayCommand, summarize, type Report } from './common.js';

/** Escape text for HTML content and attribute values (scenario names and data are user input). */
export const htmlEscape = (s: string): string => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
const esc = htmlEscape;

// ---------------------------------------------------------------------------------------------
// The timeline model: a kernel trace (core's formatEvent lines, `#seq type k=v …`) as rows, each
// in the column of the thread that emitted it, with the state of the pages that matter.

/** One event line split into its parts. */
export interface TraceEvent {
  readonly seq: number;
  readonly type: string;
  /** the `k=v …` part, as printed */
  readonly text: string;
  readonly fields: Readonly<Record<string, string>>;
}

/** Parse a trace line (`#12 page.ref pfn=5 rc=2 delta=1 why=map`); a line in another shape keeps its text. */
export function parseTraceLine(line: string, fallbackSeq: number): TraceEvent {
  const m = /^#(\d+) (\S+) ?(.*)$/.exec(line);
  if (!m) return { seq: fallbackSeq, type: '', text: line, fields: {} };
  const fields: Record<string, string> = {};
  for (const f of m[3]!.matchAll(/(?:^| )([A-Za-z][\w-]*)=(\S*)/g)) fields[f[1]!] = f[2]!;
  return { seq: Number(m[1]), type: m[2]!, text: m[3]!, fields };
}

/** What the timeline shows of one page: its _refcount, the PTE/PMD entries mapping it, its GUP references. */
export interface PageState {
  readonly ref: number | null;
  readonly ptes: number;
  readonly gup: number;
}

export interface TimelineRow {
  readonly seq: number;
  /** the last seq of a run of like events folded into this row */
  readonly lastSeq: number;
  readonly thread: string;
  readonly type: string;
  readonly text: string;
  /** how many events the row stands for (like events in a row are folded into one) */
  readonly count: number;
  /** the text of the last folded event */
  readonly lastText?: string;
  /** the tracked pages whose state this row changed: pfn → state after the row, and which fields changed */
  readonly pages: ReadonlyMap<number, { readonly state: PageState; readonly changed: ReadonlySet<keyof PageState> }>;
  /** why the row is highlighted (an invariant broke here, or the finding) */
  readonly mark?: string;
}

export interface Timeline {
  readonly threads: readonly string[];
  /** the pages with a state column (pinned pages first, then the busiest), at most MAX_PAGES */
  readonly pages: readonly number[];
  readonly rows: readonly TimelineRow[];
  /** events folded away at the end because the timeline reached MAX_ROWS */
  readonly omitted: number;
}

export interface TimelineInput {
  readonly trace: readonly string[];
  /** the thread of each event (explore knows it); otherwise taken from the `step` events */
  readonly threads?: readonly string[];
  /** seq of an event → why it is highlighted */
  readonly marks?: ReadonlyMap<number, string>;
}

/** Page state columns: enough to follow the pinned page and its neighbours without a wall of numbers. */
export const MAX_PAGES = 4;
/** Rows per timeline; the rest is summarised (the JSON report with --trace has every event). */
export const MAX_ROWS = 600;
/** Runs of at least this many like events (same type, same thread, nothing marked) fold into one row. */
const FOLD = 3;

const pfnsOf = (e: TraceEvent): number[] => {
  const f = e.fields;
  if (f.pfns !== undefined) return f.pfns.replace(/^\[|\]$/g, '').split(',').filter((x) => x !== '').map(Number);
  return f.pfn !== undefined && /^\d+$/.test(f.pfn) ? [Number(f.pfn)] : [];
};

/** Which pages get a column: every pinned (gup) page first, then pages by how often their refcount moves. */
function pickPages(events: readonly TraceEvent[]): number[] {
  const gup: number[] = [];
  const busy = new Map<number, number>();
  for (const e of events) {
    if (e.type === 'gup.pin') for (const p of pfnsOf(e)) if (!gup.includes(p)) gup.push(p);
    if (e.type === 'page.ref' || e.type === 'pte.set') for (const p of pfnsOf(e)) busy.set(p, (busy.get(p) ?? 0) + 1);
  }
  const rest = [...busy.entries()].filter(([p]) => !gup.includes(p)).sort((a, b) => b[1] - a[1] || a[0] - b[0]).map(([p]) => p);
  return [...gup, ...rest].slice(0, MAX_PAGES);
}

/**
 * The state change an event makes to a page (core's events.ts): page.ref carries the new
 * refcount; pte.set / pte.clear add and remove a mapping entry; gup.pin / gup.unpin (FOLL_PIN or
 * FOLL_GET) add and drop a GUP reference per page.
 */
function apply(e: TraceEvent, pfn: number, s: PageState): [PageState, keyof PageState] | null {
  switch (e.type) {
    case 'page.ref':
      return e.fields.rc !== undefined ? [{ ...s, ref: Number(e.fields.rc) }, 'ref'] : null;
    case 'pte.set':
      return [{ ...s, ptes: s.ptes + 1 }, 'ptes'];
    case 'pte.clear':
      return [{ ...s, ptes: Math.max(0, s.ptes - 1) }, 'ptes'];
    case 'gup.pin':
      return [{ ...s, gup: s.gup + pfnsOf(e).filter((p) => p === pfn).length }, 'gup'];
    case 'gup.unpin':
      return [{ ...s, gup: Math.max(0, s.gup - pfnsOf(e).filter((p) => p === pfn).length) }, 'gup'];
    default:
      return null;
  }
}

/** Build the rows of a timeline from a trace. */
export function buildTimeline(input: TimelineInput): Timeline {
  const events = input.trace.map((l, i) => parseTraceLine(l, i + 1));
  // a run's `step thread=… index=… op=…` event says which thread the following events belong to
  let current = 'setup';
  const who = events.map((e, i) => {
    if (input.threads?.[i] !== undefined) return input.threads[i]!;
    if (e.type === 'step' && e.fields.thread) current = e.fields.thread;
    return current;
  });
  const threads = [...new Set(['setup', ...who])];
  const pages = pickPages(events);
  const state = new Map<number, PageState>(pages.map((p) => [p, { ref: null, ptes: 0, gup: 0 }]));
  const rows: TimelineRow[] = [];
  let omitted = 0;
  for (let i = 0; i < events.length; ) {
    const e = events[i]!;
    const mark = input.marks?.get(e.seq);
    // fold a run of like, unmarked events
    let j = i + 1;
    if (mark === undefined) {
      while (j < events.length && events[j]!.type === e.type && who[j] === who[i] && input.marks?.get(events[j]!.seq) === undefined) j++;
      if (j - i < FOLD) j = i + 1;
    }
    const changed = new Map<number, { state: PageState; changed: Set<keyof PageState> }>();
    for (let k = i; k < j; k++) {
      const ev = events[k]!;
      for (const pfn of pfnsOf(ev)) {
        const s = state.get(pfn);
        if (!s) continue;
        const next = apply(ev, pfn, s);
        if (!next) continue;
        state.set(pfn, next[0]);
        const c = changed.get(pfn) ?? { state: next[0], changed: new Set<keyof PageState>() };
        c.state = next[0];
        c.changed.add(next[1]);
        changed.set(pfn, c);
      }
    }
    if (rows.length < MAX_ROWS) {
      const last = events[j - 1]!;
      rows.push({
        seq: e.seq,
        lastSeq: last.seq,
        thread: who[i]!,
        type: e.type,
        text: e.text,
        count: j - i,
        ...(j - i > 1 ? { lastText: last.text } : {}),
        pages: changed,
        ...(mark !== undefined ? { mark } : {}),
      });
    } else omitted += j - i;
    i = j;
  }
  return { threads, pages, rows, omitted };
}

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
const family = (type: string): string => FAMILY.find(([re]) => re.test(type))?.[1] ?? 'other';

function pageCell(p: { state: PageState; changed: ReadonlySet<keyof PageState> } | undefined): string {
  if (!p) return '<td class="pg"></td>';
  const part = (k: keyof PageState, label: string) => {
    const v = p.state[k] === null ? '?' : String(p.state[k]);
    return p.changed.has(k) ? `<b>${label} ${v}</b>` : `${label} ${v}`;
  };
  return `<td class="pg">${part('ref', 'ref')} · ${part('ptes', 'pte')} · ${part('gup', 'gup')}</td>`;
}

/**
 * A trace as an HTML table: a column per thread (setup first) holding the thread's events in
 * order, then a column per tracked page with its refcount, mapping entries and GUP references
 * where an event changed them. Marked rows (a violation, the finding) are highlighted.
 */
export function renderTimeline(input: TimelineInput): string {
  const t = buildTimeline(input);
  const head = [...t.threads.map((x) => `<th>${esc(x)}</th>`), ...t.pages.map((p) => `<th class="pg">pfn ${p}</th>`)].join('');
  const rows = t.rows.map((r) => {
    const body = r.count > 1 ? `${esc(r.type)} ×${r.count} <i>${esc(r.text)}</i> … <i>${esc(r.lastText ?? '')}</i>` : `${esc(r.type)} ${esc(r.text)}`;
    const cells = t.threads.map((x) => (x === r.thread ? `<td class="ev ${family(r.type)}">${body}</td>` : '<td></td>')).join('');
    const seq = r.count > 1 ? `${r.seq}–${r.lastSeq}` : String(r.seq);
    const cls = r.mark !== undefined ? ' class="hit"' : r.thread === 'setup' ? ' class="setup"' : '';
    const title = r.mark !== undefined ? ` title="${esc(r.mark)}"` : '';
    return `<tr${cls}><td class="seq"${title}>${seq}</td>${cells}${t.pages.map((p) => pageCell(r.pages.get(p))).join('')}</tr>`;
  });
  if (t.omitted > 0) rows.push(`<tr><td class="seq">…</td><td colspan="${t.threads.length + t.pages.length}">${t.omitted} more events (the JSON report with --trace has every event)</td></tr>`);
  return `<table class="tl"><thead><tr><th>#</th>${head}</tr></thead><tbody>${rows.join('\n')}</tbody></table>`;
}

/** The stylesheet of daxlab's HTML pages (the explore page and the run/matrix report). */
export const HTML_STYLE = `body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1 small,h2 small{font-weight:normal;color:#666}
h2{font-size:1.1em;margin:1.5em 0 .3em}
h2.pass,.st.pass{color:#1a7f37} h2.fail,.st.fail{color:#cf222e} h2.error,.st.error{color:#8250df} h2.unsupported,.st.unsupported{color:#9a6700}
.sched{font-family:monospace} .fail li{color:#cf222e}
table.tl{border-collapse:collapse;font:12px monospace;margin:.3em 0 1em}
table.tl th{position:sticky;top:0;background:#f6f8fa;border-bottom:1px solid #ccc;padding:2px 6px;text-align:left}
table.tl td{padding:1px 6px;vertical-align:top;border-left:1px solid #eee;max-width:32em}
table.tl td.pg,table.tl th.pg{white-space:nowrap;color:#555;background:#fafafa}
td.seq{color:#999;text-align:right;white-space:nowrap} tr.setup td.ev{opacity:.55} tr.hit td.ev{outline:2px solid #cf222e;font-weight:bold}
.ev.pte{background:#ddf4ff} .ev.ref{background:#fff8c5} .ev.dma{background:#ffebe9} .ev.block{background:#fbefff}
.ev.dax{background:#dafbe1} .ev.lock{background:#f6f8fa} .ev.bad{background:#ffcecb}`;

// ---------------------------------------------------------------------------------------------
// The run / matrix report page.

const GLYPH: Record<CellStatus, string> = { pass: '✓', fail: '✗', unsupported: '–', error: '!' };
const STATUSES: readonly CellStatus[] = ['pass', 'fail', 'unsupported', 'error'];

/** A grid row: one scenario on one backend (arch, page size, fs, driver). */
const backendLabel = ({ kernel: k }: CellResult): string => [k.arch, ...(k.pageSize > 0 ? [formatSize(k.pageSize)] : []), k.fs ?? 'no-fs', k.driver ?? 'no-driver'].join(' ');
/** A grid column: a kernel (preset plus feature overrides). */
const kernelColumn = (c: CellResult): string => [c.kernel.version, ...featureList(c.kernel)].join(' ');

/** The seq of the event each violation broke on, with the invariant's name and message. */
function violationMarks(c: CellResult): Map<number, string> {
  const marks = new Map<number, string>();
  for (const v of c.violations) {
    const last = v.trace[v.trace.length - 1];
    if (last === undefined) continue;
    const seq = parseTraceLine(last, v.trace.length).seq;
    marks.set(seq, [marks.get(seq), `${v.invariant}: ${v.message}`].filter(Boolean).join('; '));
  }
  return marks;
}

/** The timeline of one cell: its whole trace when recorded, else the longest violation trace (which ends at the violation). */
function cellTimeline(c: CellResult): string {
  const byLength = [...c.violations].sort((a, b) => b.trace.length - a.trace.length);
  const longest = byLength[0] as (CellResult['violations'][number] & { threads?: readonly string[] }) | undefined;
  const trace = c.trace ?? longest?.trace;
  if (!trace || trace.length === 0) return '<p class="none">No events recorded for this cell.</p>';
  const threads = c.trace ? undefined : longest?.threads;
  const note = c.trace ? '' : '<p>The events up to the last violation (run with <code>--trace</code> or <code>--reporter html</code> for the whole run).</p>';
  return `${note}${renderTimeline({ trace, ...(threads ? { threads } : {}), marks: violationMarks(c) })}`;
}

function cellDetail(c: CellResult, i: number, plugins: readonly string[]): string {
  const facts = [
    `outcome <b>${esc(c.outcome)}</b>`,
    // numbers in a report read back by `daxlab merge` are escaped like any other field
    ...(c.seed !== undefined ? [`seed ${esc(String(c.seed))}`] : []),
    `${esc(String(c.ms))} ms`,
    ...(c.file ? [`file <code>${esc(c.file)}</code>`] : []),
  ];
  const parts = [
    `<h2 class="${c.status}">${esc(c.status.toUpperCase())} ${esc(c.scenario)} <small>${esc(kernelLabel(c.kernel))}</small></h2>`,
    `<p>${facts.join(', ')}</p>`,
  ];
  if (c.reason) parts.push(`<pre class="reason">${esc(c.reason)}</pre>`);
  if (c.failures.length) parts.push(`<ul class="fail">${c.failures.map((f) => `<li>${esc(f)}</li>`).join('')}</ul>`);
  if (c.violations.length) parts.push(`<ul class="viol">${c.violations.map((v) => `<li><b>${esc(v.invariant)}</b>: ${esc(v.message)}</li>`).join('')}</ul>`);
  const replay = replayCommand(c, plugins);
  if (replay) parts.push(`<p>replay: <code>${esc(replay)}</code></p>`);
  if (c.status !== 'unsupported' && c.status !== 'error') parts.push(cellTimeline(c));
  return `<template id="cell-${i}">${parts.join('\n')}</template>`;
}

/**
 * `--reporter html`: one self-contained page (inline CSS and a few lines of JS, nothing fetched).
 * The cells as a grid: a row per scenario and backend (arch, page size, fs, driver), a column per
 * kernel (preset and feature overrides), coloured by status, with a legend. Clicking a cell opens
 * its details and the timeline of its events, refcounts, mappings and pins up to any violation.
 */
export function renderHtml(report: Report): string {
  const cells = report.cells;
  const columns = [...new Set(cells.map(kernelColumn))];
  const rows = new Map<string, { scenario: string; backend: string; at: Map<string, number> }>();
  cells.forEach((c, i) => {
    const key = `${c.scenario}\u0000${backendLabel(c)}`;
    const row = rows.get(key) ?? { scenario: c.scenario, backend: backendLabel(c), at: new Map<string, number>() };
    // a cell per (row, column): a repeated tuple (the same scenario twice) gets its own row
    if (row.at.has(kernelColumn(c))) {
      const again = { scenario: c.scenario, backend: backendLabel(c), at: new Map([[kernelColumn(c), i]]) };
      rows.set(`${key}\u0000${i}`, again);
      return;
    }
    row.at.set(kernelColumn(c), i);
    rows.set(key, row);
  });
  const bySeen = [...rows.values()];
  // keep each scenario's rows together, in first-seen order, under a header row of its own
  const order = [...new Set(bySeen.map((r) => r.scenario))];
  const bad = (st: CellStatus) => st === 'fail' || st === 'error';
  const body = order.flatMap((scenario) => {
    const mine = bySeen.filter((r) => r.scenario === scenario);
    const rowBad = mine.map((r) => [...r.at.values()].some((i) => bad(cells[i]!.status)));
    const head = `<tr class="sc ${rowBad.some(Boolean) ? 'bad' : 'ok'}"><th colspan="${columns.length + 1}" scope="rowgroup">${esc(scenario)}</th></tr>`;
    const lines = mine.map((r, n) => {
      const tds = columns.map((col) => {
        const i = r.at.get(col);
        if (i === undefined) return '<td class="empty"></td>';
        const c = cells[i]!;
        const label = `${c.status} ${c.scenario} ${kernelLabel(c.kernel)}`;
        return `<td class="cell ${c.status}"><button type="button" data-cell="${i}" title="${esc(label)}" aria-label="${esc(label)}">${GLYPH[c.status]}</button></td>`;
      });
      return `<tr class="${rowBad[n] ? 'bad' : 'ok'}"><th class="be" scope="row">${esc(r.backend)}</th>${tds.join('')}</tr>`;
    });
    return [head, ...lines];
  });
  const s = summarize(cells);
  const legend = STATUSES.map((st) => `<span class="key ${st}"><span class="sw">${GLYPH[st]}</span> ${st} <b>${s[st]}</b></span>`).join(' ');
  const title = `daxlab ${report.kind}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(title)}</title>
<style>
${HTML_STYLE}
table.grid{border-collapse:collapse;font-size:12px}
table.grid th{padding:2px 8px;text-align:left;font-weight:normal;white-space:nowrap}
table.grid thead th{vertical-align:bottom}
table.grid thead th.k{font-family:monospace;writing-mode:vertical-rl;transform:rotate(180deg)}
table.grid tr.sc th{font-weight:bold;padding-top:.6em;border-bottom:1px solid #ddd}
table.grid th.be{font-family:monospace;color:#555;padding-left:1.2em}
body.only-bad table.grid tr.ok{display:none}
table.grid td{padding:1px;border:1px solid #fff}
td.cell button{width:2.2em;height:1.6em;border:0;border-radius:3px;cursor:pointer;font:bold 12px monospace;color:#fff}
td.cell button[aria-pressed=true]{outline:3px solid #0969da}
.pass button,.key.pass .sw{background:#2da44e} .fail button,.key.fail .sw{background:#cf222e}
.unsupported button,.key.unsupported .sw{background:#bf8700} .error button,.key.error .sw{background:#8250df}
td.empty{background:#f6f8fa}
.key{margin-right:1.2em} .key .sw{display:inline-block;width:1.6em;text-align:center;color:#fff;border-radius:3px;font:bold 12px monospace}
.layout{display:flex;flex-wrap:wrap;align-items:flex-start;gap:1.5em}
.gridwrap{flex:none}
#detail{flex:1 1 40em;min-width:0;position:sticky;top:0;max-height:100vh;overflow:auto;border-left:2px solid #ddd;padding-left:1em}
.hint{color:#666}
</style></head><body>
<h1>${esc(title)} <small>${esc(report.version)}</small></h1>
<p class="legend">${cells.length} cell${cells.length === 1 ? '' : 's'}: ${legend}</p>
<p><label><input type="checkbox" id="only-bad"> only rows with a failed or erroneous cell</label></p>
<div class="layout"><div class="gridwrap">
<table class="grid"><thead><tr><th scope="col">scenario / backend</th>${columns.map((c) => `<th class="k" scope="col">${esc(c)}</th>`).join('')}</tr></thead>
<tbody>
${body.join('\n')}
</tbody></table>
<p class="hint">Click a cell for its details and timeline.</p>
</div>
<section id="detail" hidden></section>
</div>
${cells.map((c, i) => cellDetail(c, i, report.plugins ?? [])).join('\n')}
<script>
(() => {
  const detail = document.getElementById('detail');
  const open = (id) => {
    const t = document.getElementById('cell-' + id);
    if (!t) return;
    detail.replaceChildren(t.content.cloneNode(true));
    detail.hidden = false;
    for (const b of document.querySelectorAll('[data-cell]')) b.setAttribute('aria-pressed', String(b.dataset.cell === id));
    history.replaceState(null, '', '#cell-' + id);
  };
  document.getElementById('only-bad').addEventListener('change', (e) => document.body.classList.toggle('only-bad', e.target.checked));
  document.addEventListener('click', (e) => {
    const b = e.target.closest('[data-cell]');
    if (b) open(b.dataset.cell);
  });
  const m = /^#cell-(\\d+)$/.exec(location.hash);
  if (m) open(m[1]);
})();
</script>
</body></html>
`;
}
