export { builtinCatalog } from './catalog.js';
export { parseReporters, parseSchedule, REPORT_FILES, REPORTERS, runCommand, type Deps, type ReporterName, type RunCommandOptions, type Runner } from './execute.js';
export { processIo, type CliIo } from './io.js';
export { DEFAULT_KERNEL, kernelsFor, parseKernelFlags, parseShard, takeShard, type KernelAxes, type KernelOptions, type Shard } from './kernel.js';
export { main, VERSION } from './main.js';
export { loadPlugin, pluginShapeProblem, withPlugins, type LoadedPlugin } from './plugins.js';
export * from './report/index.js';
export { collectScenarioFiles, LIBRARY_DIR, loadScenarios, type LoadedScenario } from './scenarios.js';
export { UsageError } from './usage.js';
