export * from './types.js';
export { describeSchedule, exploreScenario, isExploreResult } from './explorer.js';
export { Hash64, KeyTable } from './hash.js';
export { StateWalker } from './state.js';
