import { readFileSync } from 'node:fs';
import { Argument, Command, CommanderError, Option } from 'commander';
import { InputError, runScenario, scenarioJsonSchema } from '@daxlab/core';
import { builtinCatalog } from './catalog.js';
import { exploreCommand, exploreOptions, type ExploreCommandOptions } from './commands/explore.js';
import { vmemmapCommand, vmemmapOptions, type VmemmapCommandOptions } from './commands/vmemmap.js';
import { mergeCommand, type MergeCommandOptions } from './commands/merge.js';
import { workerExecutor, workersAvailable } from './matrix/pool.js';
import { DEFAULT_WORKERS_MIN_CELLS, defaultJobs, runCommand, REPORT_FILES, REPORTERS, type Deps, type RunCommandOptions } from './execute.js';
import { processIo, type CliIo } from './io.js';
import { list, LIST_TOPICS, type ListTopic } from './list.js';
import { catalogWithPlugins, CONFIG_FILES, pluginSpecs } from './plugins.js';
import { UsageError } from './usage.js';

/** The @daxlab/cli version (package.json next to src/ and dist/). */
export const VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const collect = (value: string, previous: string[] = []) => [...previous, value];
const CONFIG_HELP = `a config file whose 'plugins' list is loaded as --plugin (default: ${CONFIG_FILES.join(', ')} in the working directory)`;

function kernelOptions(cmd: Command, multi: boolean): Command {
  const list = multi ? ' (a list a,b or all)' : '';
  return cmd
    .option(`--arch <${multi ? 'names' : 'name'}>`, `architecture${list}; default: the scenario's, else ${multi ? 'all' : 'x86'}`)
    .option(`--page-size <${multi ? 'sizes' : 'size'}>`, `base page size for arches with a choice (arm64: 4KiB, 16KiB, 64KiB)${multi ? '; a list a,b tries each (an arch without that size: unsupported); all: each arch\'s own sizes' : ''}`)
    .option(`--fs <${multi ? 'names' : 'name'}>`, `filesystem${list}; default: the scenario's, else ${multi ? 'all' : 'xfs'} (scenarios that never mount run without one)`)
    .option(`--driver <${multi ? 'names' : 'name'}>`, `device driver${list}; default: the scenario's, else nvdimm (scenarios that never probe run without one)`)
    .option(`--kernel <${multi ? 'versions' : 'version'}>`, `kernel preset${list}; default: the scenario's, else ${multi ? 'all' : 'latest'} (daxlab list kernels)`)
    .option(`--feature <name=value${multi ? '[,value]' : ''}>`, `override a kernel feature (repeatable${multi ? '; a list or all tries each value' : ''})`, collect)
    .option('--plugin <package>', 'load a third-party arch, fs or driver plugin (repeatable)', collect)
    .option('--config <file>', CONFIG_HELP);
}

function runOptions(cmd: Command): Command {
  return cmd
    .option('--seed <n>', 'schedule seed: 0 runs threads in order until they block; N > 0 switches at random, reproducibly')
    .option('--trace', "print each cell's event trace")
    .option('--schedule <json|file>', 'replay a schedule: [{"thread":"app","step":0}, …] (from a report)')
    .option('--reporter <names>', `${REPORTERS.join(', ')} (several: a,b; machine reports go to --out)`, 'table')
    .option('--out <dir>', `write machine reports here (${Object.values(REPORT_FILES).join(', ')}; the JSON one always), and each cell to DIR/cells.ndjson as it finishes`)
    .option('--quiet', 'no progress bar: a line per cell that did not pass (matrix); the table shows only those');
}

/**
 * The daxlab command line. `argv` is process.argv-shaped. Returns the exit code: 0 all cells
 * pass, 1 a cell failed or errored, 2 the command line was wrong.
 */
export async function main(argv: readonly string[], io: CliIo = processIo(), deps: Partial<Deps> = {}): Promise<number> {
  // worker threads rebuild the built-in catalog by name: only for the built-in runner and catalog
  const builtins = deps.runScenario === undefined && deps.catalog === undefined;
  const d: Deps = { runScenario, catalog: builtinCatalog(), version: VERSION, ...(builtins && workersAvailable() ? { parallel: workerExecutor } : {}), ...deps };
  let code = 0;
  const program = new Command('daxlab')
    .description("an executable model of the Linux kernel's device-memory page lifecycle (ZONE_DEVICE, fs-dax, device-dax, GUP pins, fork/COW, vmemmap)")
    .version(d.version, '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .showSuggestionAfterError(true)
    // a config file's plugins join the command line's --plugin (plugins.ts: pluginSpecs)
    .hook('preAction', (_program, cmd) => {
      if (!cmd.options.some((opt) => opt.long === '--plugin')) return;
      const o = cmd.opts<{ plugin?: string[]; config?: string }>();
      const specs = pluginSpecs(io.cwd, o.plugin, o.config);
      if (specs.length > 0) cmd.setOptionValue('plugin', specs);
    });

  runOptions(kernelOptions(program.command('run'), false))
    .description('run scenarios, each once on one kernel (no scenario: the built-in library)')
    .argument('[scenario...]', 'scenario files or directories')
    .action(async (scenarios: string[], o: RunCommandOptions) => {
      code = await runCommand('run', scenarios, o, io, d);
    });

  runOptions(kernelOptions(program.command('matrix'), true))
    .description('run scenarios across arch × fs × driver × kernel (no scenario: the built-in library)')
    .argument('[scenario...]', 'scenario files or directories')
    .option('--jobs <n>', `cells in parallel on n worker threads (default: ${defaultJobs()}, one less than the cores; 1 runs them in the main thread; without --jobs, runs under ${DEFAULT_WORKERS_MIN_CELLS} cells stay there; results as with --jobs 1)`)
    .option('--shard <i/n>', "run only shard i of n (round-robin over the cell list); 'daxlab merge' joins the shards' reports")
    .option('--resume', 'with --out DIR: run only the cells missing from DIR/cells.ndjson (a killed run), then write the full reports')
    .action(async (scenarios: string[], o: RunCommandOptions) => {
      code = await runCommand('matrix', scenarios, o, io, d);
    });

  exploreOptions(kernelOptions(program.command('explore'), false)).action(async (scenarios: string[], o: ExploreCommandOptions) => {
    code = await exploreCommand(scenarios, o, io, { catalog: d.catalog, version: d.version, ...(d.libraryDir ? { libraryDir: d.libraryDir } : {}), ...(d.importer ? { importer: d.importer } : {}) });
  });

  vmemmapOptions(kernelOptions(program.command('vmemmap'), false)).action(async (o: VmemmapCommandOptions) => {
    code = await vmemmapCommand(o, io, { catalog: d.catalog, ...(d.importer ? { importer: d.importer } : {}) });
  });

  program
    .command('merge')
    .description("join the JSON reports of a run's shards (--shard i/n) into the report of the whole run")
    .argument('<results...>', `JSON reports, or --out directories holding ${REPORT_FILES.json}`)
    .option('--reporter <names>', `${REPORTERS.join(', ')} (several: a,b; machine reports go to --out)`, 'table')
    .option('--out <dir>', `write machine reports here (${Object.values(REPORT_FILES).join(', ')})`)
    .option('--quiet', 'the table shows only cells that did not pass')
    .action((results: string[], o: MergeCommandOptions) => {
      code = mergeCommand(results, o, io);
    });

  program
    .command('list')
    .description('list plugins, kernel presets, features, invariants or built-in scenarios')
    .addArgument(new Argument('[what]', 'what to list (default: everything)').choices(LIST_TOPICS))
    .addOption(new Option('--plugin <package>', 'also list this plugin (repeatable)').argParser(collect))
    .option('--config <file>', CONFIG_HELP)
    .action(async (what: ListTopic | undefined, o: { plugin?: string[] }) => {
      io.stdout(list(what, await catalogWithPlugins(d.catalog, o.plugin ?? [], io.cwd, d.importer), io.cwd, d.libraryDir));
    });

  program
    .command('schema')
    .description('print the JSON Schema (draft 2020-12) of scenario files, for editors')
    .action(() => {
      io.stdout(`${JSON.stringify(scenarioJsonSchema(), null, 2)}\n`);
    });

  try {
    await program.parseAsync([...argv], { from: 'node' });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.exitCode === 0) return 0;
      const sub = program.commands.find((c) => argv.slice(2).includes(c.name()));
      io.stderr(`hint: run 'daxlab ${sub ? `${sub.name()} ` : ''}--help' for usage\n`);
      return 2;
    }
    if (e instanceof UsageError || e instanceof InputError) {
      io.stderr(`error: ${e.message}\n`);
      if (e instanceof UsageError && e.hint) io.stderr(`hint: ${e.hint}\n`);
      return 2;
    }
    const err = e as Error;
    io.stderr(`error: internal error: ${err.message}\n${io.env.DAXLAB_DEBUG ? `${err.stack ?? ''}\n` : 'this is a bug in daxlab; DAXLAB_DEBUG=1 shows the stack\n'}`);
    return 1;
  }
}
