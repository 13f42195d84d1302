import { Subscription } from 'rxjs/internal/Subscription'; // not 'rxjs': see bus.ts
import type { Envelope } from '../bus.js';
import type { KernelEvents } from '../events.js';
import type { Violation } from '../invariants.js';
import type { Yield } from '../sched.js';
import { judge, ruleApplies, ScenarioSession, type CellKernelRequest, type PluginCatalog } from '../scenario/run.js';
import type { CellResult, Outcome, Scenario, ScheduleStep } from '../scenario/types.js';
import { Hash64, KeyTable } from './hash.js';
import { Memento } from './memento.js';
import { SharedVisited, workerOrder } from './shared.js';
import { StateWalker } from './state.js';
import type { Counterexample, ExploreEnds, ExploreFinding, ExploreOptions, ExploreResult, ExploreViolation, Reduction } from './types.js';

const DEFAULT_MAX_STATES = 1_000_000;
const DEFAULT_MAX_DEPTH = 10_000;
/**
 * Live sessions the next breadth-first layer may hold (a kernel and its snapshot: a few hundred
 * KB each): each saves one replay. Past that, a state keeps none and every step from it is
 * replayed. (At N = 1, K = 3: 256 gave 9.7 s, 1,024 11.0 s, 4,096 15.3 s and 1.8 GB; more
 * sessions alive cost more in garbage collection and new sessions than the replays they save.)
 */
const LIVE_SESSIONS = 256;
const PROGRESS_EVERY = 1000;
/**
 * Finished sessions kept to be put back to their post-setup snapshot for the next replay: as
 * many as two breadth-first layers hold, so none is thrown away to be opened again.
 */
const SPARE_SESSIONS = 2 * LIVE_SESSIONS;

/**
 * Explore every interleaving of a scenario's threads on one kernel (SCENARIOS.md, `daxlab
 * explore`). The threads' operations yield at the kernel's preemption points (sched.ts); one
 * transition runs one thread to its next point. Sessions cannot be copied (operations are live
 * generators), so a state is reached by replaying its schedule, on a finished session put back
 * to its post-setup snapshot (Memento; opening a kernel and running setup cost ten times more).
 *
 * `state-hash` (the default) is a breadth-first search: the first schedule that reaches a
 * violation, a blocked run or a failed step is a shortest one (fewest steps; among those, the
 * fewest preemptions). A state is the kernel's state (StateWalker) plus, per thread, its step,
 * the point it waits at, whether that wait is satisfied, what the point `holds`, and its
 * position in its current step (threadPosition: the events and points since the step began,
 * waits left out). Orders of steps that commute reach the same state
 * and are expanded once (why that is sound: threadPosition, docs/kernel-model.md). `none`
 * explores the tree of all schedules depth-first, without merging states. `search: 'dfs'` walks the hashed states
 * depth-first instead (fewer replays, deep violations sooner, counterexamples not shortest).
 *
 * With a preemption bound, only schedules with at most that many preemptions are explored
 * (iterative context bounding: bugs need few); the result is then complete only if no schedule
 * was cut.
 */
export function exploreScenario(scenario: Scenario, req: CellKernelRequest, catalog: PluginCatalog, options: ExploreOptions = {}): ExploreResult | CellResult {
  return new Explorer(scenario, req, catalog, options).run();
}

/**
 * One result from the parts of a shared search (ExploreOptions.share; one exploreScenario() per
 * worker): states, transitions and ends add up (each state was expanded by one worker), and each
 * finding keeps the shortest schedule any worker found (traced again here). `ms` is the slowest
 * part's plus the merge.
 */
export function mergeExploreResults(scenario: Scenario, req: CellKernelRequest, catalog: PluginCatalog, options: ExploreOptions, parts: readonly ExploreResult[]): ExploreResult | CellResult {
  const { share: _share, ...rest } = options;
  return new Explorer(scenario, req, catalog, rest).merge(parts);
}

/** What a table of visited states answers (KeyTable on one thread, SharedVisited across workers). */
interface Visited {
  visit(key: readonly [number, number], value?: number): 'new' | 'better' | 'seen';
}

interface Node {
  readonly prefix: Uint8Array;
  readonly runnable: readonly number[];
  /** two words per thread: hash of the points passed and events emitted in its current step */
  readonly hist: Uint32Array;
  readonly last: number;
  readonly preemptions: number;
  /** the state's key (only kept for ExploreOptions.onTransition) */
  key?: readonly [number, number];
  /** false: the root of a shared search that another worker claimed */
  readonly mine?: boolean;
  /** what the monitor had reported at this state (a muted replay reports nothing) */
  readonly violations: readonly Violation[];
  /** live sessions at this state: each can take one step from it without a replay */
  sessions: ScenarioSession[];
}

interface Child {
  readonly session: ScenarioSession;
  readonly prefix: Uint8Array;
  readonly runnable: readonly number[];
  readonly preemptions: number;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

const NONE: readonly Violation[] = [];

/** What a session's monitor has reported so far, kept with a state for its muted replays. */
function reported(s: ScenarioSession): readonly Violation[] {
  return s.monitor.violations.length === 0 ? NONE : s.monitor.violations.slice();
}

class Explorer {
  private readonly reduction: Reduction;
  private readonly maxStates: number;
  private readonly maxDepth: number;
  private readonly bound: number | null;
  private readonly t0 = performance.now();
  private states = 0;
  private transitions = 0;
  private depth = 0;
  private readonly limits = new Set<string>();
  private stopped = false;
  private readonly violations = new Map<string, ExploreViolation>();
  private blocked: ExploreFinding | null = null;
  private oops: ExploreFinding | null = null;
  private readonly failures = new Map<string, ExploreFinding>();
  /** steps that failed with the error their expect allows (maySucceed), by message */
  private readonly allowed = new Map<string, ExploreFinding>();
  private error: { reason: string; finding: ExploreFinding } | null = null;
  /** the schedule of each finding as thread indices, to replay it for its timeline */
  private readonly prefixes = new WeakMap<Counterexample, Uint8Array>();
  private readonly ends: Mutable<ExploreEnds> = { completed: 0, blocked: 0, oops: 0, failed: 0 };
  private threadCount = 0;
  /** the session whose events go into `ev` (the one taking the transition being hashed) */
  private capturing: ScenarioSession | null = null;
  private readonly ev = new Hash64();
  private readonly scratch = new Hash64();
  private readonly walkers = new WeakMap<ScenarioSession, StateWalker>();
  /** each session's post-setup snapshot (none when setup left an operation in flight) */
  private readonly mementos = new WeakMap<ScenarioSession, Memento>();
  private readonly spare: ScenarioSession[] = [];
  /** the shared table when this explorer is one worker of a shared search */
  private readonly shared: SharedVisited | null;

  constructor(
    private readonly scenario: Scenario,
    private readonly req: CellKernelRequest,
    private readonly catalog: PluginCatalog,
    private readonly options: ExploreOptions,
  ) {
    this.reduction = options.reduction ?? 'state-hash';
    this.maxStates = options.maxStates ?? DEFAULT_MAX_STATES;
    this.maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
    this.bound = options.preemptions ?? null;
    const share = options.share;
    if (share && (this.bound !== null || this.reduction !== 'state-hash' || options.search !== 'dfs')) {
      throw new Error('a shared search is depth-first over hashed states without a preemption bound');
    }
    this.shared = share ? new SharedVisited(share.buffer) : null;
  }

  run(): ExploreResult | CellResult {
    const root = this.open();
    if (!(root instanceof ScenarioSession)) return root;
    this.threadCount = root.threads.length;
    if (this.threadCount > 255) throw new Error('the explorer handles at most 255 threads');
    this.setup(root);
    const runnable = root.runnable();
    this.states = 1;
    const prefix = new Uint8Array(0);
    if (runnable.length === 0) {
      // with workers, the one that claims the root reports its one end state
      if (!this.shared || this.shared.visit(this.key(root, new Uint32Array(this.threadCount * 2), -1)) === 'new') this.end(root, prefix, 0);
      else this.states = 0;
    } else if (this.reduction === 'none') this.dfs(root, runnable, null);
    else if (this.options.search === 'dfs') this.dfs(root, runnable, this.shared ?? new KeyTable());
    else this.bfs(root, runnable);
    return this.result(root);
  }

  /** Fold the parts of a shared search into one result (mergeExploreResults). */
  merge(parts: readonly ExploreResult[]): ExploreResult | CellResult {
    const root = this.open();
    if (!(root instanceof ScenarioSession)) return root;
    const index = new Map(root.threads.map((t, i) => [t.name, i]));
    // a finding's schedule back to thread indices: each slice is that many steps of one thread
    const own = <T extends Counterexample>(c: T): T => this.keep({ ...c }, Uint8Array.from(c.schedule.flatMap((x) => new Array<number>(x.slices ?? 1).fill(index.get(x.thread)!))));
    const shortest = <T extends Counterexample>(had: T | null | undefined, c: T): T => (had && !this.shorter(c, had) ? had : c);
    this.states = 0;
    for (const p of parts) {
      this.states += p.states;
      this.transitions += p.transitions;
      this.depth = Math.max(this.depth, p.depth);
      for (const l of p.limits) this.limits.add(l);
      for (const key of Object.keys(this.ends) as (keyof ExploreEnds)[]) this.ends[key] += p.ends[key];
      for (const v of p.violations) this.violations.set(v.invariant, shortest(this.violations.get(v.invariant), own(v)));
      if (p.blocked) this.blocked = shortest(this.blocked, own(p.blocked));
      if (p.oops) this.oops = shortest(this.oops, own(p.oops));
      for (const f of p.stepFailures) this.failures.set(f.messages[0]!, shortest(this.failures.get(f.messages[0]!), own(f)));
      for (const f of p.allowedFailures) this.allowed.set(f.messages[0]!, shortest(this.allowed.get(f.messages[0]!), own(f)));
      if (p.outcome === 'error' && !this.error) {
        const reason = p.reason ?? 'error';
        this.error = { reason, finding: own({ ...this.counterexample(0, 0), schedule: p.schedule ?? [], messages: [reason] }) };
      }
    }
    const r = this.result(root);
    const slowest = Math.max(0, ...parts.map((p) => p.ms));
    return { ...r, ms: Math.round((slowest + r.ms) * 1000) / 1000 };
  }

  // ---- sessions ---------------------------------------------------------------------------

  private open(): ScenarioSession | CellResult {
    // no trace while searching: a finding's trace comes from one replay of its schedule (traced)
    const s = ScenarioSession.open(this.scenario, this.req, this.catalog, { trace: false });
    if (s instanceof ScenarioSession && this.reduction === 'state-hash') {
      // the events of the transition being taken, for the acting thread's position
      s.kernel.bus.listenAll((e) => {
        if (this.capturing === s) this.mixEvent(e);
      }, new Subscription());
    }
    return s;
  }

  /** Run setup on a new session and snapshot it there (see Memento), unless told not to. */
  private setup(s: ScenarioSession): void {
    s.runSetup();
    if (this.options.sessions === 'fresh') return;
    const m = Memento.take(s, [this.scenario, s.kernel.container]);
    if (m) this.mementos.set(s, m);
  }

  /**
   * A session at `node`: a finished one put back to its post-setup snapshot, or a new one (open,
   * setup), then one step per entry of its schedule. The steps run with the bus muted (their
   * events and invariant checks were seen when the node was first reached: a third of a step's
   * cost); the monitor is then given the violations the node had.
   */
  private replay(node: Node): ScenarioSession {
    let s = this.spare.pop();
    if (s) this.mementos.get(s)!.restore();
    else {
      s = this.open() as ScenarioSession;
      this.setup(s);
    }
    const bus = s.kernel.bus;
    bus.muted = true;
    try {
      for (const i of node.prefix) s.step(i);
    } finally {
      bus.muted = false;
    }
    s.monitor.restoreViolations(node.violations);
    return s;
  }

  /** A session no state needs any more: kept for a later replay if it can be put back. */
  private release(s: ScenarioSession | null): void {
    if (s && this.spare.length < SPARE_SESSIONS && this.mementos.has(s)) this.spare.push(s);
  }

  private mixEvent(e: Envelope<KernelEvents>): void {
    if (e.type === 'step') return;
    const h = this.ev;
    h.str(e.type);
    const d = e.data as unknown as Record<string, unknown>;
    for (const key in d) {
      // absolute counts depend on what other threads did; the event's own identity does not
      if (key === 'rc' || key === 'mapcount') continue;
      const v = d[key];
      if (v === undefined) continue;
      h.str(key);
      if (typeof v === 'number') h.num(v);
      else if (typeof v === 'string') h.str(v);
      else if (typeof v === 'boolean') h.bool(v);
      else if (Array.isArray(v)) for (const x of v) h.num(Number(x));
      else if (v === null) h.u32(0);
    }
  }

  /** Take thread i's next step on `s` (which is at `from`). */
  private step(s: ScenarioSession, from: { prefix: Uint8Array; runnable: readonly number[]; last: number; preemptions: number; mine?: boolean }, i: number): Child & { fresh: ExploreViolation[] } {
    const before = s.monitor.violations.length;
    const allowedBefore = s.threads[i]!.allowedFailures.length;
    s.step(i);
    // every worker of a shared search steps from the root; its steps count for the one that claimed it
    if (from.mine !== false) this.transitions++;
    const prefix = new Uint8Array(from.prefix.length + 1);
    prefix.set(from.prefix);
    prefix[from.prefix.length] = i;
    const preemptions = from.preemptions + (this.preempts(from, i) ? 1 : 0);
    const fresh = s.monitor.violations.slice(before).map((v) => this.keep({ ...this.counterexample(prefix.length, preemptions), invariant: v.invariant, message: v.message }, prefix));
    // no copy of the list per transition (this is the search's hot path): most steps add nothing
    const allowedNow = s.threads[i]!.allowedFailures;
    for (let n = allowedBefore; n < allowedNow.length; n++) {
      const message = allowedNow[n]!;
      const f = this.keep({ ...this.counterexample(prefix.length, preemptions), messages: [message] }, prefix);
      const had = this.allowed.get(message);
      if (!had || this.shorter(f, had)) this.allowed.set(message, f);
    }
    const runnable = s.runnable();
    return { session: s, prefix, runnable, preemptions, fresh };
  }

  private preempts(from: { runnable: readonly number[]; last: number }, i: number): boolean {
    return from.last >= 0 && i !== from.last && from.runnable.includes(from.last);
  }

  /**
   * A finding, known by its schedule as thread indices (`keep`); its schedule in the report's
   * form, its trace and threads come from `traced` once the search ends (searching sessions
   * keep no trace).
   */
  private counterexample(length: number, preemptions: number): Counterexample {
    return { schedule: [], trace: [], threads: [], length, preemptions };
  }

  private keep<T extends Counterexample>(c: T, prefix: Uint8Array): T {
    this.prefixes.set(c, prefix);
    return c;
  }

  /**
   * Replay a finding's schedule once with the trace on: its events up to the finding (for a
   * violation, up to the event that broke the invariant) and the thread that emitted each.
   */
  private traced<T extends Counterexample>(c: T): T {
    const prefix = this.prefixes.get(c);
    if (!prefix) return c;
    const s = ScenarioSession.open(this.scenario, this.req, this.catalog) as ScenarioSession;
    const names = ['setup', ...s.threads.map((t) => t.name)];
    const threads: string[] = [];
    s.kernel.bus.listenAll(() => threads.push(names[s.kernel.currentThread] ?? '?'), new Subscription());
    s.runSetup();
    for (const i of prefix) s.step(i);
    s.runnable(); // settles an end state (a blocked run's waits)
    const invariant = (c as Partial<ExploreViolation>).invariant;
    const trace = invariant !== undefined ? (s.monitor.violations.find((v) => v.invariant === invariant)?.trace ?? []) : [...s.monitor.trace];
    return { ...c, schedule: s.schedule.map((x) => ({ ...x })), trace, threads: threads.slice(0, trace.length) };
  }

  // ---- the searches ----------------------------------------------------------------------

  /**
   * Take thread i's step from `node`. With a visited table, the new state is hashed and looked
   * up; `expand` says whether it is a state to expand (new or reached more cheaply, not an end,
   * not too deep), and `node` is it either way (with the session now at it when it is to be
   * expanded; otherwise the session is released).
   */
  private expand(from: Node, i: number, visited: Visited | null, donate?: (key: [number, number], s: ScenarioSession) => boolean): { node: Node; key: [number, number] | null; seen: 'new' | 'better' | 'seen'; expand: boolean } {
    const s = from.sessions.pop() ?? this.replay(from);
    if (visited) {
      // the acting thread's position stream goes on where its last step left it
      if (s.threads[i]!.op !== null) this.ev.resume(from.hist, 2 * i);
      else this.ev.reset();
      this.capturing = s;
    }
    const child = this.step(s, from, i);
    this.capturing = null;
    for (const v of child.fresh) this.violation(v);
    const hist = visited ? this.threadPosition(s, from.hist, i) : from.hist;
    const key = visited ? this.key(s, hist, i) : null;
    const seen = visited ? visited.visit(key!, this.cost(child)) : 'new';
    const node: Node = { prefix: child.prefix, runnable: child.runnable, hist, last: i, preemptions: child.preemptions, violations: reported(s), sessions: [s] };
    if (this.options.onTransition && key) {
      node.key = key;
      this.options.onTransition(from.key ?? null, i, key, child.runnable);
    }
    const done = (): { node: Node; key: [number, number] | null; seen: 'new' | 'better' | 'seen'; expand: boolean } => {
      this.release(s);
      node.sessions = [];
      return { node, key, seen, expand: false };
    };
    if (seen === 'seen') {
      if (donate?.(key!, s)) {
        node.sessions = [];
        return { node, key, seen, expand: false };
      }
      return done();
    }
    if (seen === 'new') this.countState(child.prefix.length);
    if (child.runnable.length === 0) {
      // an end state reached again with fewer preemptions: only its schedule may improve
      this.end(s, child.prefix, child.preemptions, seen === 'new');
      return done();
    }
    if (child.prefix.length >= this.maxDepth) {
      this.limits.add('max-depth');
      return done();
    }
    return { node, key, seen, expand: true };
  }

  private root(root: ScenarioSession, runnable: readonly number[], visited: Visited | null): Node {
    const hist = new Uint32Array(visited ? this.threadCount * 2 : 0);
    // in a shared search the root counts for the worker that claims it first
    const key = visited ? this.key(root, hist, -1) : undefined;
    const mine = !visited || visited.visit(key!, 0) !== 'seen';
    if (!mine) this.states = 0;
    if (key) this.options.onTransition?.(null, -1, key, runnable);
    return { prefix: new Uint8Array(0), runnable, hist, last: -1, preemptions: 0, mine, violations: reported(root), sessions: [root], ...(key ? { key } : {}) };
  }

  /**
   * Breadth-first over states, merging states already reached. A step that reaches a state of
   * the next layer already found (the other order of two steps that commute, mostly) gives its
   * session to that state: any session in a state can take its next steps, since the state is
   * all that decides them (the key: kernel graph, thread positions; threadPosition), so each such
   * arrival saves one replay. Depth-first search stepping each state from the schedule it was
   * found by must find the same states (explore-reduction.test.ts checks it).
   */
  private bfs(root: ScenarioSession, runnable: readonly number[]): void {
    const visited = new KeyTable();
    let frontier: Node[] = [this.root(root, runnable, visited)];
    while (frontier.length > 0 && !this.stopped) {
      const next: Node[] = [];
      let live = 0;
      // states first reached in this layer: they take the sessions of later arrivals, and a later
      // path with fewer preemptions takes over the schedule
      const layer = new Map<string, number>();
      const donate = (key: [number, number], s: ScenarioSession): boolean => {
        const at = layer.get(`${key[0]}:${key[1]}`);
        if (at === undefined || live >= LIVE_SESSIONS) return false;
        next[at]!.sessions.push(s);
        live++;
        return true;
      };
      for (const from of frontier) {
        for (const i of from.runnable) {
          if (this.stopped) break;
          if (!this.withinBound(from, i)) continue;
          const { node, key, seen, expand } = this.expand(from, i, visited, donate);
          const id = `${key![0]}:${key![1]}`;
          if (seen === 'seen') {
            // the same state at the same depth by a schedule with fewer preemptions: keep that one
            const at = layer.get(id);
            const had = at === undefined ? undefined : next[at];
            if (had && node.preemptions < had.preemptions) {
              node.sessions = had.sessions;
              next[at!] = node;
            }
            continue;
          }
          if (!expand) continue;
          if (seen === 'new') layer.set(id, next.length);
          if (live >= LIVE_SESSIONS) {
            for (const x of node.sessions) this.release(x);
            node.sessions = [];
          } else live += node.sessions.length;
          next.push(node);
        }
        // sessions the state did not need (it had more arrivals than steps)
        for (const x of from.sessions) this.release(x);
        from.sessions = [];
        if (this.stopped) break;
      }
      frontier = next;
    }
  }

  /**
   * Depth-first: over hashed states (search `dfs`), or over every schedule without merging
   * (reduction `none`). One session follows the path down and only a backtrack replays, so a
   * violation deep in the space is reached sooner; the first counterexample found is not
   * necessarily a shortest one.
   */
  private dfs(root: ScenarioSession, runnable: readonly number[], visited: Visited | null): void {
    const worker = this.options.share?.worker ?? 0;
    // a frame points at its node (no copy of the node per state: this runs once per expanded state)
    const order = (node: Node): { node: Node; next: number; order: readonly number[] } => ({ node, next: 0, order: workerOrder(node.runnable, worker) });
    const stack = [order(this.root(root, runnable, visited))];
    while (stack.length > 0 && !this.stopped) {
      // another worker found something (stopAtFirst) or reached the state limit
      if (this.shared?.stopped) {
        this.stop();
        break;
      }
      const f = stack[stack.length - 1]!;
      if (f.next >= f.order.length) {
        stack.pop();
        continue;
      }
      const i = f.order[f.next++]!;
      if (!this.withinBound(f.node, i)) continue;
      const { node, expand } = this.expand(f.node, i, visited);
      if (expand) stack.push(order(node));
    }
  }

  /**
   * What a revisit must beat to be expanded again: under a preemption bound, a state reached
   * with fewer preemptions can reach more within the bound; without one, nothing.
   */
  private cost(child: { preemptions: number }): number {
    return this.bound === null ? 0 : child.preemptions;
  }

  private withinBound(from: { runnable: readonly number[]; last: number; preemptions: number }, i: number): boolean {
    if (this.bound === null || !this.preempts(from, i) || from.preemptions < this.bound) return true;
    this.limits.add('preemptions');
    return false;
  }

  private countState(depth: number): void {
    this.states++;
    if (depth > this.depth) this.depth = depth;
    if (this.options.progress && this.states % PROGRESS_EVERY === 0) {
      // a worker of a shared search reports the states all workers have claimed
      this.options.progress({ states: this.shared?.states ?? this.states, transitions: this.transitions, depth: this.depth, ms: performance.now() - this.t0 });
    }
    if ((this.shared?.states ?? this.states) >= this.maxStates) {
      this.limits.add('max-states');
      this.stopped = true;
      this.shared?.stop();
    }
  }

  // ---- state identity ---------------------------------------------------------------------

  /**
   * The acting thread's position after a transition, as the state of one hash stream over its
   * current step: the events it emitted and the preemption points it passed, in order, since
   * the step began. The stream is what stands for the values the operation keeps across a
   * yield (the pages a zap gathered, the page a GUP-fast grabbed, the busy page a truncate waits
   * for are in those events and points). Waits are left out: sleeping in waitUntil() returns to
   * the caller with its locals as they were, so a thread that had to wait and one that did not
   * are at the same position (the stream is one stream whichever slices it was emitted in:
   * nothing is mixed at a wait). A preemption point's `holds` (sched.ts) is hashed with the
   * state, live, like `ready()`. (Forgetting the stream at break layouts' idle wait, as if the
   * truncate kept nothing across it, was tried: it halved the states at K = 3 but made
   * breadth-first and depth-first disagree by 6 states in 30,160 at N = 3, K = 3, so some states
   * it merged do different things next; not kept.)
   */
  private threadPosition(s: ScenarioSession, parent: Uint32Array, i: number): Uint32Array {
    const hist = parent.slice();
    const t = s.threads[i]!;
    const p = t.pending;
    if (t.op === null) {
      hist[2 * i] = 0;
      hist[2 * i + 1] = 0;
      return hist;
    }
    if (p?.kind === 'preempt') this.ev.str(p.point);
    this.ev.save(hist, 2 * i);
    return hist;
  }

  private key(s: ScenarioSession, hist: Uint32Array, last: number): [number, number] {
    let walker = this.walkers.get(s);
    if (!walker) this.walkers.set(s, (walker = new StateWalker(s.kernel)));
    const h = this.scratch.reset();
    walker.hashKernel(h);
    s.threads.forEach((t, j) => {
      h.u32(t.index).u32((t.done ? 1 : 0) | (t.parked ? 2 : 0) | (t.op ? 4 : 0));
      const p = t.pending;
      h.str(label(p));
      if (p?.kind === 'block') h.bool(p.ready());
      else if (p?.holds) {
        const v = p.holds();
        if (typeof v === 'number') h.num(v);
        else if (typeof v === 'string') h.str(v);
        else h.bool(v);
      }
      h.u32(hist[2 * j]!).u32(hist[2 * j + 1]!);
    });
    h.u32(s.failures.length);
    for (const f of s.failures) h.str(f);
    // (no array built and sorted per transition when, as almost always, nothing was violated)
    const violations = s.monitor.violations;
    if (violations.length > 0) for (const name of violations.map((v) => v.invariant).sort()) h.str(name);
    h.str(s.ended ?? '');
    // under a preemption bound, what a state can still reach depends on who ran last
    if (this.bound !== null) h.u32(last + 1);
    return h.digest();
  }

  // ---- findings ---------------------------------------------------------------------------

  private violation(v: ExploreViolation): void {
    const had = this.violations.get(v.invariant);
    if (!had || this.shorter(v, had)) this.violations.set(v.invariant, v);
    if (this.options.stopAtFirst) this.stop();
  }

  /** A run that cannot go on: completed, blocked, oops, or ended by a failed step. */
  private end(s: ScenarioSession, prefix: Uint8Array, preemptions: number, count = true): void {
    const outcome: Outcome = s.ended ?? 'completed';
    const n = count ? 1 : 0;
    const found = (messages: string[]): ExploreFinding => this.keep({ ...this.counterexample(prefix.length, preemptions), messages }, prefix);
    switch (outcome) {
      case 'blocked': {
        this.ends.blocked += n;
        // the waits that never end, from the threads themselves (the session lists them as
        // failures only when no rule expects the run to block)
        const waits = s.threads.filter((t) => !t.done && !t.parked).map((t) => `${t.steps[t.index]!.path}: blocked — ${t.pending?.kind === 'block' ? t.pending.reason : 'waiting'}`);
        const f = found(waits);
        if (!this.blocked || this.shorter(f, this.blocked)) this.blocked = f;
        this.recordFailures(s, f, waits);
        if (this.options.stopAtFirst) this.stop();
        return;
      }
      case 'oops': {
        this.ends.oops += n;
        const f = found(s.monitor.violations.filter((v) => v.invariant === 'kernel-oops').map((v) => v.message));
        if (!this.oops || this.shorter(f, this.oops)) this.oops = f;
        if (this.options.stopAtFirst) this.stop();
        return;
      }
      case 'error':
      case 'unsupported': {
        const reason = s.result().reason ?? outcome;
        if (!this.error) this.error = { reason, finding: found([reason]) };
        this.stop();
        return;
      }
      case 'completed':
        if (s.failures.length === 0) {
          this.ends.completed += n;
          return;
        }
        this.ends.failed += n;
        this.recordFailures(s, found(s.failures), []);
        if (this.options.stopAtFirst) this.stop();
    }
  }

  private recordFailures(s: ScenarioSession, f: ExploreFinding, except: readonly string[]): void {
    for (const message of s.failures) {
      if (except.includes(message)) continue;
      const had = this.failures.get(message);
      const mine = this.keep({ ...f, messages: [message] }, this.prefixes.get(f)!);
      if (!had || this.shorter(mine, had)) this.failures.set(message, mine);
    }
  }

  /** Fewer steps, then fewer preemptions, then fewer slices. */
  private shorter(a: Counterexample, b: Counterexample): boolean {
    if (a.length !== b.length) return a.length < b.length;
    if (a.preemptions !== b.preemptions) return a.preemptions < b.preemptions;
    return slices(this.prefixes.get(a)) < slices(this.prefixes.get(b));
  }

  private stop(): void {
    if (!this.stopped && this.options.stopAtFirst) this.limits.add('stop-at-first');
    this.stopped = true;
    this.shared?.stop();
  }

  // ---- the verdict ------------------------------------------------------------------------

  private result(root: ScenarioSession): ExploreResult {
    const features = root.kernel.features;
    const rules = this.scenario.expect.filter((r) => ruleApplies(r, { arch: this.req.arch, pageSize: root.kernel.desc.pageSize, fs: this.req.fs, driver: this.req.driver, version: this.req.version, features }));
    const expectsUnsupported = rules.some((r) => r.unsupported === true);
    const violations = [...this.violations.values()].sort((a, b) => a.invariant.localeCompare(b.invariant)).map((v) => this.traced(v));
    const stepFailures = [...this.failures.values()].map((f) => this.traced(f));
    const allowedFailures = [...this.allowed.values()].map((f) => this.traced(f));
    const blocked = this.blocked && this.traced(this.blocked);
    const oops = this.oops && this.traced(this.oops);
    const outcome: Outcome = this.error ? 'error' : oops ? 'oops' : blocked ? 'blocked' : 'completed';
    const failures: string[] = [];
    let status: CellResult['status'];
    if (this.error) status = 'error';
    else {
      if (expectsUnsupported) failures.push('expected this kernel to be unsupported, but it was built and ran');
      for (const f of stepFailures) failures.push(`${f.messages[0]} (schedule: ${describeSchedule(f.schedule)})`);
      judge(rules, outcome, violations.map((v) => v.invariant), failures);
      status = failures.length ? 'fail' : 'pass';
    }
    const first: Counterexample | undefined = violations[0] ?? blocked ?? oops ?? stepFailures[0] ?? (this.error ? this.traced(this.error.finding) : undefined);
    const limits = [...this.limits];
    return {
      scenario: this.scenario.name,
      ...(this.scenario.file ? { file: this.scenario.file } : {}),
      kernel: root.cellKernel,
      status,
      outcome,
      violations,
      failures,
      reason: this.error?.reason ?? null,
      ...(first ? { schedule: first.schedule } : {}),
      ms: Math.round((performance.now() - this.t0) * 1000) / 1000,
      mode: 'explore',
      complete: limits.length === 0,
      states: this.states,
      transitions: this.transitions,
      depth: this.depth,
      reduction: this.reduction,
      search: this.reduction === 'none' || this.options.search === 'dfs' ? 'dfs' : 'bfs',
      preemptionBound: this.bound,
      limits,
      blocked,
      oops,
      stepFailures,
      allowedFailures,
      ends: { ...this.ends },
    };
  }
}

function label(p: Yield | null): string {
  if (!p) return '';
  return p.kind === 'preempt' ? p.point : `block: ${p.reason}`;
}

/** How many slices (runs of one thread) a schedule of thread indices has. */
function slices(prefix: Uint8Array | undefined): number {
  if (!prefix) return 0;
  let n = 0;
  for (let j = 0; j < prefix.length; j++) if (j === 0 || prefix[j] !== prefix[j - 1]) n++;
  return n;
}

/** `trunc×3 → app → trunc×2`: who ran, for how many preemption points, in order. */
export function describeSchedule(schedule: readonly ScheduleStep[]): string {
  if (schedule.length === 0) return '(setup only)';
  return schedule.map((x) => `${x.thread}${(x.slices ?? 1) > 1 ? `×${x.slices}` : ''}`).join(' → ');
}

/** Whether a cell result came from the explorer. */
export function isExploreResult(r: CellResult): r is ExploreResult {
  return (r as Partial<ExploreResult>).mode === 'explore';
}
