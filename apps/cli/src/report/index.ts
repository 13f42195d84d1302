export { failed, kernelLabel, replayCommand, summarize, type Report, type ReportKind, type Summary } from './common.js';
export { renderJson } from './json.js';
export { renderJunit, xmlEscape } from './junit.js';
export { renderTable, type TableOptions } from './table.js';
