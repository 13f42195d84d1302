export * from './types.js';
export { describeSchedule, exploreScenario, isExploreResult, mergeExploreResults } from './explorer.js';
export { createExploreShare, exploreShareStates, MAX_SHARED_STATES, type ExploreShare } from './shared.js';
export { Hash64, KeyTable } from './hash.js';
export { StateWalker } from './state.js';
