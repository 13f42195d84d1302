// One mid-search state of the N = 1, K = 3 explore, reached as every replay reaches one: a session
// put back to its post-setup snapshot, then a fixed schedule of steps. Shared by
// explore-micro.bench.mjs and explore-ab.mjs (which loads it once per build root).
import { pathToFileURL } from 'node:url';

/** The schedule (thread indices) of the state both benches replay. */
export const PREFIX = [0, 0, 3, 3, 1, 3, 2, 1, 0, 0, 2, 3, 1, 2, 3, 3, 2, 1, 0];

/** Open the scenario on the build at `root`, run setup, snapshot it; `replay(muted)` goes back and steps PREFIX. */
export async function openReplay(root, version, name = 'scale-n1k3') {
  const url = (p) => pathToFileURL(`${root}/${p}`).href;
  const { daxlab } = await import(url('bench/spin-vs-daxlab.mjs'));
  const { core, catalog } = await daxlab();
  const ex = await import(url('packages/core/dist/explore/index.js'));
  const { Memento } = await import(url('packages/core/dist/explore/memento.js'));
  const scenario = core.loadScenarioFile(`${root}/apps/cli/scenarios/explore/spin/${name}.yaml`);
  const session = core.ScenarioSession.open(scenario, { arch: 'x86', fs: 'xfs', driver: 'nvdimm', version, features: {} }, catalog, { trace: false });
  session.runSetup();
  const memento = Memento.take(session, [scenario, session.kernel.container]);
  const replay = (muted = false) => {
    memento.restore();
    session.kernel.bus.muted = muted;
    for (const i of PREFIX) if (session.runnable().includes(i)) session.step(i);
    session.kernel.bus.muted = false;
  };
  return { ex, session, memento, replay, walker: new ex.StateWalker(session.kernel), hash: new ex.Hash64() };
}
