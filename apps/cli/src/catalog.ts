import type { PluginCatalog } from '@daxlab/core';
import { devdax } from '@daxlab/driver-devdax';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { xfs } from '@daxlab/fs-xfs';

/** The plugins that ship with the CLI, by the names scenarios and flags use. */
export function builtinCatalog(): PluginCatalog {
  return {
    arch: {},
    fs: { xfs: () => xfs() },
    driver: { nvdimm: () => nvdimm(), devdax: () => devdax() },
  };
}
