import type { PluginCatalog } from '@daxlab/core';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { ext4 } from '../src/index.js';
import { testArch } from '../../core/test/fixtures.js';
import { exploreSeed004Family } from '../../fs-xfs/test/explore-family.js';

// ext4_break_layouts / ext4_setattr ordering under every interleaving (issue 6)
const catalog: PluginCatalog = { arch: { x86: () => testArch() }, fs: { ext4: () => ext4() }, driver: { nvdimm: () => nvdimm() } };

exploreSeed004Family('ext4', catalog);
