import { daxlabProject } from '../../vitest.shared.js';

export default daxlabProject('arch-s390');
