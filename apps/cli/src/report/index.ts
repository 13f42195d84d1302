export { failed, kernelLabel, replayCommand, summarize, type PlanInfo, type Report, type ReportKind, type Summary } from './common.js';
export { cellJson, planJson, renderJson } from './json.js';
export { renderHtml } from './html.js';
export { renderJunit, xmlEscape } from './junit.js';
export { renderTable, type TableOptions } from './table.js';
