import type { PluginCatalog } from '@daxlab/core';
import { arm64 } from '@daxlab/arch-arm64';
import { ppcHash } from '@daxlab/arch-ppc-hash';
import { s390 } from '@daxlab/arch-s390';
import { x86 } from '@daxlab/arch-x86';
import { devdax } from '@daxlab/driver-devdax';
import { hmm } from '@daxlab/driver-hmm';
import { nvdimm } from '@daxlab/driver-nvdimm';
import { ext4 } from '@daxlab/fs-ext4';
import { fuse } from '@daxlab/fs-fuse';
import { xfs } from '@daxlab/fs-xfs';

/** The plugins that ship with the CLI, by the names scenarios and flags use. */
export function builtinCatalog(): PluginCatalog {
  return {
    arch: {
      x86: (o) => x86(o.pageSize !== undefined ? { pageSize: o.pageSize } : {}),
      arm64: (o) => arm64(o.pageSize !== undefined ? { pageSize: o.pageSize } : {}),
      'ppc-hash': (o) => ppcHash(o.pageSize !== undefined ? { pageSize: o.pageSize } : {}),
      s390: (o) => s390(o.pageSize !== undefined ? { pageSize: o.pageSize } : {}),
    },
    fs: { xfs: () => xfs(), ext4: () => ext4(), fuse: () => fuse() },
    driver: { nvdimm: () => nvdimm(), devdax: () => devdax(), hmm: () => hmm() },
  };
}
