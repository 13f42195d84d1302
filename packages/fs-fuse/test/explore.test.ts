import type { PluginCatalog } from '@daxlab/core';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { fuse } from '../src/index.js';
import { testArch } from '../../core/test/fixtures.js';
import { exploreSeed004Family } from '../../fs-xfs/test/explore-family.js';

// virtio-fs DAX (window ranges, FUSE_SETUPMAPPING/REMOVEMAPPING, range reclaim) under every interleaving (issue 6)
const catalog: PluginCatalog = { arch: { x86: () => testArch() }, fs: { fuse: () => fuse() }, driver: { nvdimm: () => nvdimm() } };

exploreSeed004Family('fuse', catalog);
