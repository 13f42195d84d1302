import { daxlabProject } from '../../vitest.shared.js';

export default daxlabProject('arch-ppc-hash');
