import { daxlabProject } from '../../vitest.shared.js';

export default daxlabProject('fs-xfs');
