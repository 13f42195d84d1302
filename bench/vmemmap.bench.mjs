// vmemmap benchmarks (issue 3): run after `npm run build` with `npm run bench vmemmap` or directly.
//
// 1. probe: memremap_pages() of a 1 TiB device-dax range (PMD alignment) on every arch and page
//    size of the CLI's catalog (whichever arches exist when it runs), probes/s, as a ratio to x86
//    4K in the same run. An arch that cannot build device-dax in `latest` is listed with its reason.
// 2. `daxlab vmemmap` on 64 TiB: the model alone (vmemmapReport, in-process) per arch, and the whole
//    command in a fresh Node process (wall time and max RSS), against `node -e ''` in the same run.
import { spawnSync } from 'node:child_process';
import { builtinCatalog, vmemmapReport } from '@daxlab/cli';
import { createKernel, formatSize } from '@daxlab/core';
import { devdax } from '@daxlab/driver-devdax';

const KiB = 1024;
const GiB = 1024 ** 3;
const TiB = 1024 * GiB;
const catalog = builtinCatalog();

function timeLoop(fn, minMs = 300) {
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < minMs) {
    fn();
    n++;
  }
  return (n * 1000) / (performance.now() - t0);
}

function plugins() {
  const out = [];
  for (const name of Object.keys(catalog.arch)) {
    const seen = new Set();
    for (const pageSize of [4 * KiB, 16 * KiB, 64 * KiB]) {
      try {
        const p = catalog.arch[name]({ pageSize });
        if (seen.has(p.mmu.basePageSize)) continue;
        seen.add(p.mmu.basePageSize);
        out.push({ name, pageSize: p.mmu.basePageSize, make: () => catalog.arch[name]({ pageSize }) });
      } catch {
        // not a page size of this arch
      }
    }
  }
  return out;
}

console.log('## probe: memremap_pages() of 1 TiB of device-dax, PMD alignment, kernel latest\n');
console.log('| arch | page | align | probes/s | vs x86 4K | vmemmap bytes |');
console.log('|---|---:|---:|---:|---:|---:|');
let base = null;
for (const a of plugins()) {
  const mmu = a.make().mmu;
  const align = mmu.pmdSize;
  const probe = () => {
    const k = createKernel({ arch: a.make(), driver: devdax({ align }), kernel: 'latest' });
    return k.run(k.probe({ size: TiB, align, as: 'dax0' }));
  };
  let dev;
  try {
    dev = probe();
  } catch (e) {
    console.log(`| ${a.name} | ${formatSize(a.pageSize)} | ${formatSize(align)} | - | - | unsupported: ${e.message.split('\n')[0].slice(0, 90)} |`);
    continue;
  }
  const rate = timeLoop(probe);
  base ??= rate;
  console.log(`| ${a.name} | ${formatSize(a.pageSize)} | ${formatSize(align)} | ${Math.round(rate)} | ${(rate / base).toFixed(2)} | ${formatSize(dev.pgmap.vmemmap.vmemmapBytes)} |`);
}

console.log('\n## daxlab vmemmap, 64 TiB, in-process (the model alone), kernel latest\n');
console.log('| arch | page | align | reports/s | ms per report | vs x86 4K | vmemmap bytes |');
console.log('|---|---:|---:|---:|---:|---:|---:|');
base = null;
for (const a of plugins()) {
  const plugin = a.make();
  const aligns = plugin.mmu.devdaxAlignments.length ? plugin.mmu.devdaxAlignments : [plugin.mmu.basePageSize];
  for (const align of aligns) {
    const q = { size: 64 * TiB, align, version: 'latest' };
    const r = vmemmapReport(plugin, q);
    const rate = timeLoop(() => vmemmapReport(plugin, q), 200);
    base ??= rate;
    console.log(`| ${a.name} | ${formatSize(a.pageSize)} | ${formatSize(align)} | ${Math.round(rate)} | ${(1000 / rate).toFixed(3)} | ${(rate / base).toFixed(2)} | ${r.vmemmapBytes === null ? r.outcome : formatSize(r.vmemmapBytes)} |`);
  }
}

console.log('\n## daxlab vmemmap, 64 TiB, a fresh Node process each (5 runs, median)\n');
function child(code) {
  const runs = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
    const wall = performance.now() - t0;
    if (r.status !== 0) throw new Error(r.stderr);
    const m = JSON.parse(r.stderr.trim().split('\n').pop());
    runs.push({ wall, ...m });
  }
  runs.sort((x, y) => x.wall - y.wall);
  return runs[2];
}
const report = (extra) => `console.error(JSON.stringify({ maxRssKiB: process.resourceUsage().maxRSS${extra} }))`;
const empty = child(report(''));
console.log('| command | wall ms | vs node -e \'\' | max RSS MiB | vs node -e \'\' | command ms (in the process) |');
console.log('|---|---:|---:|---:|---:|---:|');
console.log(`| node -e '' (baseline) | ${empty.wall.toFixed(0)} | 1.00 | ${(empty.maxRssKiB / 1024).toFixed(1)} | 1.00 | - |`);
const loadOnly = child(`await import('@daxlab/cli'); ${report('')}`);
console.log(`| import('@daxlab/cli') only | ${loadOnly.wall.toFixed(0)} | ${(loadOnly.wall / empty.wall).toFixed(2)} | ${(loadOnly.maxRssKiB / 1024).toFixed(1)} | ${(loadOnly.maxRssKiB / empty.maxRssKiB).toFixed(2)} | - |`);
for (const [arch, page, align] of [['x86', '4KiB', '2MiB'], ['x86', '4KiB', '1GiB'], ['arm64', '64KiB', '512MiB'], ['ppc-hash', '64KiB', '16MiB']]) {
  if (!catalog.arch[arch]) continue;
  const args = JSON.stringify(['node', 'daxlab', 'vmemmap', '--arch', arch, '--page-size', page, '--size', '64TiB', '--align', align, '--json']);
  const code = `const { main } = await import('@daxlab/cli'); const io = { stdout() {}, stderr: (s) => process.stderr.write(s), stdoutIsTTY: false, stderrIsTTY: false, env: {}, cwd: process.cwd(), now: () => performance.now() }; const t = performance.now(); const rc = await main(${args}, io); const ms = performance.now() - t; ${report(', ms, rc')}`;
  const r = child(code);
  console.log(`| daxlab vmemmap --arch ${arch} --page-size ${page} --size 64TiB --align ${align} (exit ${r.rc}) | ${r.wall.toFixed(0)} | ${(r.wall / empty.wall).toFixed(2)} | ${(r.maxRssKiB / 1024).toFixed(1)} | ${(r.maxRssKiB / empty.maxRssKiB).toFixed(2)} | ${r.ms.toFixed(1)} |`);
}
