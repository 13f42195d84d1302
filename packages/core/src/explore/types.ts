import type { CellResult, ScheduleStep, ViolationReport } from '../scenario/types.js';
import type { ExploreShare } from './shared.js';

/**
 * How the explorer avoids exploring the same thing twice:
 * - `state-hash`: a breadth-first search over states; a state already reached (kernel state,
 *   every thread's position, see StateWalker and explorer.ts) is not expanded again, so
 *   independent steps taken in either order meet in one state and are explored once;
 * - `none`: every interleaving, as a tree (each prefix of each schedule is a state).
 */
export type Reduction = 'state-hash' | 'none';

export const REDUCTIONS: readonly Reduction[] = ['state-hash', 'none'];

export interface ExploreOptions {
  /** stop after this many states (the result is then bounded, not complete); default 1,000,000 */
  readonly maxStates?: number;
  /**
   * explore only schedules with at most this many preemptions (a switch away from a thread that
   * could have gone on); default: no bound
   */
  readonly preemptions?: number;
  /** default `state-hash` */
  readonly reduction?: Reduction;
  /**
   * with `state-hash`: `bfs` (default) finds shortest counterexamples first; `dfs` follows one
   * schedule down and replays only on backtracking, reaching deep violations sooner (with
   * stopAtFirst: a verdict like Spin's pan), but its counterexamples need not be shortest
   */
  readonly search?: 'bfs' | 'dfs';
  /** do not extend a schedule beyond this many steps; default 10,000 */
  readonly maxDepth?: number;
  /**
   * how a state is reached again: `restore` (default) puts a finished session back to its
   * post-setup snapshot and replays the schedule on it; `fresh` opens a new kernel and runs
   * setup every time (slower; the reference the snapshot is checked against)
   */
  readonly sessions?: 'restore' | 'fresh';
  /** stop at the first violation, blocked run, oops or failed step (a verdict, not the full space) */
  readonly stopAtFirst?: boolean;
  /** called about every 1,000 states */
  readonly progress?: (p: ExploreProgress) => void;
  /**
   * with `state-hash`: called for the root (`from` null, `thread` -1) and for every transition
   * taken, with the states' keys (the 64-bit state hash as two words) and the threads runnable at
   * `to`: the explored state graph, for analysis (bench/explore-sleep-ceiling.mjs)
   */
  readonly onTransition?: (from: readonly [number, number] | null, thread: number, to: readonly [number, number], runnable: readonly number[]) => void;
  /**
   * be one worker of a search split over threads (shared.ts; depth-first over hashed states, no
   * preemption bound): fold the workers' results with mergeExploreResults()
   */
  readonly share?: ExploreShare;
}

export interface ExploreProgress {
  readonly states: number;
  readonly transitions: number;
  readonly depth: number;
  readonly ms: number;
}

/** A schedule that reaches something, and what happened on the way. */
export interface Counterexample {
  /** thread and step at each switch, with the number of preemption points each slice ran */
  readonly schedule: readonly ScheduleStep[];
  /** the kernel's events from the start of the run (setup included) to the finding */
  readonly trace: readonly string[];
  /** the thread that emitted each event of `trace` ('setup' for the setup steps) */
  readonly threads: readonly string[];
  /** steps taken after setup (one per preemption point passed) */
  readonly length: number;
  /** switches away from a thread that could have gone on */
  readonly preemptions: number;
}

export interface ExploreViolation extends ViolationReport, Counterexample {
  readonly schedule: readonly ScheduleStep[];
}

/** A blocked run, an oops or a failed step, with the shortest schedule that leads to it. */
export interface ExploreFinding extends Counterexample {
  /** what the run reported: the waits that never end, the oops, the failed step */
  readonly messages: readonly string[];
}

/** How the explored schedules ended (counted per end state). */
export interface ExploreEnds {
  readonly completed: number;
  readonly blocked: number;
  readonly oops: number;
  /** ended early because a step failed (or a read/check did not match) */
  readonly failed: number;
}

/**
 * One scenario on one kernel, judged over all interleavings (SCENARIOS.md): a CellResult plus
 * the size of the search. `outcome` is the worst seen (error > oops > blocked > completed);
 * `violations` holds every invariant broken in some interleaving, each with the shortest
 * schedule that breaks it (fewest steps, then fewest preemptions).
 */
export interface ExploreResult extends CellResult {
  readonly mode: 'explore';
  /** every schedule within the bounds was explored (false: a bound or stopAtFirst cut it short) */
  readonly complete: boolean;
  readonly states: number;
  readonly transitions: number;
  /** the longest schedule explored, in steps */
  readonly depth: number;
  readonly reduction: Reduction;
  /** `bfs` or `dfs` (the `none` reduction always walks its tree depth-first) */
  readonly search: 'bfs' | 'dfs';
  readonly preemptionBound: number | null;
  /** why the search is not complete: 'max-states', 'max-depth', 'preemptions', 'stop-at-first' */
  readonly limits: readonly string[];
  readonly violations: readonly ExploreViolation[];
  /** some interleaving waits forever: the shortest such schedule */
  readonly blocked: ExploreFinding | null;
  readonly oops: ExploreFinding | null;
  /** steps that failed (or reads/checks that did not match) in some interleaving, one per message */
  readonly stepFailures: readonly ExploreFinding[];
  /**
   * steps that failed in some interleaving with the error their `expect` allows while they may
   * also succeed (`maySucceed`): the race exists. One per step and message, with the shortest
   * schedule that takes that way; not failures of the cell.
   */
  readonly allowedFailures: readonly ExploreFinding[];
  readonly ends: ExploreEnds;
}
