import { daxlabProject } from '../../vitest.shared.js';

export default daxlabProject('driver-hmm');
