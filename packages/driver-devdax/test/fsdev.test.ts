import { createKernel, daxctlMode, devicePfn, InputError, parseScenario, PG, type Kernel } from '@daxlab/core';
import { errnoOf } from '@daxlab/core/testing';
import { x86 } from '@daxlab/arch-x86';
import { describe, expect, it } from 'vitest';
import { devdax } from '../src/index.js';

// fsdev_dax (drivers/dax/fsdev.c, v7.1 [M]; feature fsdev-dax) behind daxctl reconfigure-device
// -m famfs (ndctl test/daxctl-famfs.sh). Layout: daxctl-devices.sh's 256 MiB devdax namespace at
// -a 2M with its memmap on the device: data from 6 MiB, 250 MiB = 64000 pages, 125 leaves of 2 MiB.
// device_dax lays the data out as compound folios of order_base_2(2 MiB / 4 KiB) = 9 (v5.17+);
// fsdev_dax_probe() asks for vmemmap_shift 0, so the same pfns are order-0 folios.

const MiB = 1 << 20;

function namespace(version = 'latest', features: Record<string, unknown> = {}): Kernel {
  const k = createKernel({ arch: x86(), driver: devdax(), kernel: version, features });
  k.run(k.probe({ size: 256 * MiB, align: 2 * MiB, altmap: true, as: 'dax0' }));
  return k;
}

const mode = (k: Kernel) => daxctlMode(k, k.device('dax0'));
const order = (k: Kernel, page: number) => k.folioOrderIn({ device: 'dax0', page });
const poisoned = (k: Kernel, page: number) => (k.folios.flags(k.folios.folio(devicePfn(k.device('dax0'), page))) & PG.hwpoison) !== 0;
const famfs = (k: Kernel) => k.run(k.reconfigure({ device: 'dax0', mode: 'famfs' }));
const toDevdax = (k: Kernel, force = false) => k.run(k.reconfigure({ device: 'dax0', mode: 'devdax', force }));

describe('fsdev_dax_probe(): the pgmap and folios of an instance in famfs mode', () => {
  it('devdax -> famfs: MEMORY_DEVICE_FS_DAX with vmemmap_shift 0, every folio order 0; back to devdax: order 9 again', () => {
    const k = namespace();
    expect(k.device('dax0').pgmap).toMatchObject({ type: 'generic', vmemmapShift: 9 });
    // a head, a tail and the last page of the last leaf: one order-9 folio each
    for (const p of [0, 1, 511, 63999]) expect(order(k, p)).toBe(9);
    famfs(k);
    expect(mode(k)).toBe('famfs');
    expect(k.device('dax0').pgmap).toMatchObject({ type: 'fsdax', vmemmapShift: 0 });
    for (const p of [0, 1, 511, 63999]) expect(order(k, p)).toBe(0);
    // the same physical range: fsdev binds the range device_dax had
    toDevdax(k);
    expect(mode(k)).toBe('devdax');
    expect(k.device('dax0').pgmap).toMatchObject({ type: 'generic', vmemmapShift: 9 });
    for (const p of [0, 511, 63999]) expect(order(k, p)).toBe(9);
  });

  it('the data range is the one device_dax had, and the media keeps what devdax mode wrote', () => {
    const k = namespace();
    const { dataPfn, dataPages } = k.device('dax0');
    k.run(k.mmap({ device: 'dax0', length: 2 * MiB, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 3, data: 'kept' }));
    famfs(k);
    expect(k.device('dax0')).toMatchObject({ dataPfn, dataPages });
    toDevdax(k);
    k.run(k.mmap({ device: 'dax0', length: 2 * MiB, shared: true, as: 'again' }));
    expect(k.run(k.read({ map: 'again', page: 3 }))).toBe('kept');
  });

  it('no mmap in fsdev_fops: mmap of the chardev is ENODEV, shared or private, whatever the length', () => {
    const k = namespace();
    famfs(k);
    expect(errnoOf(() => k.run(k.mmap({ device: 'dax0', length: 2 * MiB, shared: true, write: true, as: 'a' })))).toBe('ENODEV');
    // device_dax would say EINVAL for these two (private; not a multiple of the 2 MiB align)
    expect(errnoOf(() => k.run(k.mmap({ device: 'dax0', length: 2 * MiB, shared: false, as: 'b' })))).toBe('ENODEV');
    expect(errnoOf(() => k.run(k.mmap({ device: 'dax0', length: 4096, shared: true, as: 'c' })))).toBe('ENODEV');
  });

  it('reconfigure zaps a devdax-mode mapping (kill_dev_dax()) before fsdev_dax binds', () => {
    const k = namespace();
    k.run(k.mmap({ device: 'dax0', length: 2 * MiB, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'x' }));
    expect(k.isMappedIn({ map: 'm', page: 0 })).toBe(true);
    famfs(k);
    expect(k.isMappedIn({ map: 'm', page: 0 })).toBe(false);
  });
});

describe('memory failure of an fsdev_dax page', () => {
  it('devdax mode poisons a faulted page; famfs mode has no holder and no folio->mapping: EBUSY, nothing poisoned', () => {
    const k = namespace();
    k.run(k.mmap({ device: 'dax0', length: 4 * MiB, shared: true, write: true, as: 'm' }));
    k.run(k.write({ map: 'm', page: 0, data: 'x' }));
    k.run(k.write({ map: 'm', page: 512, data: 'y' }));
    // device_dax: dax_set_mapping() at the fault, so mf_generic_kill_procs() locks the folio,
    // sets PG_hwpoison on its head and unmaps the leaf
    k.run(k.memoryFailure({ device: 'dax0', page: 512 }));
    expect(poisoned(k, 512)).toBe(true);
    expect(k.isMappedIn({ map: 'm', page: 512 })).toBe(false);
    // page 0 was faulted in devdax mode too; fsdev_dax_probe() leaves order-0 folios without
    // ->mapping, and dax_holder_notify_failure() finds no holder (no famfs mounted)
    famfs(k);
    expect(errnoOf(() => k.run(k.memoryFailure({ device: 'dax0', page: 0 })))).toBe('EBUSY');
    expect(poisoned(k, 0)).toBe(false);
    // outside the data (the metadata's pfns before dataPfn): ENXIO as for device_dax
    expect(errnoOf(() => k.run(k.driverOf(k.device('dax0')).memoryFailure!(k, k.device('dax0'), k.device('dax0').dataPfn - 1)))).toBe('ENXIO');
  });
});

describe('daxctl reconfigure-device -m famfs: what daxctl refuses and what it does', () => {
  it('system-ram -> famfs is daxctl\'s own EINVAL even with every block offline (-N); -f devdax, then famfs binds', () => {
    const k = namespace();
    k.run(k.autoOnlineBlocks({ policy: 'offline' }));
    k.run(k.reconfigure({ device: 'dax0', mode: 'system-ram', online: false }));
    expect(mode(k)).toBe('system-ram');
    expect(errnoOf(() => famfs(k))).toBe('EINVAL');
    expect(mode(k)).toBe('system-ram');
    // with kmem holding the range no ZONE_DEVICE folio is there
    expect(order(k, 0)).toBe(-1);
    toDevdax(k, true);
    famfs(k);
    expect(mode(k)).toBe('famfs');
    expect(order(k, 0)).toBe(0);
  });

  it('famfs -> system-ram is allowed (reconfig_mode_system_ram(): disable_famfs_device(), then kmem)', () => {
    const k = namespace();
    k.run(k.autoOnlineBlocks({ policy: 'offline' }));
    famfs(k);
    k.run(k.reconfigure({ device: 'dax0', mode: 'system-ram', online: false }));
    expect(mode(k)).toBe('system-ram');
    toDevdax(k, true);
    expect(mode(k)).toBe('devdax');
  });

  it('famfs -> famfs re-binds fsdev_dax (a new pgmap over the same range); --no-online is refused like for devdax', () => {
    const k = namespace();
    famfs(k);
    const first = k.device('dax0').pgmap;
    famfs(k);
    const second = k.device('dax0').pgmap;
    expect(first.gone).toBe(true);
    expect(second.id).not.toBe(first.id);
    expect(second.startPfn).toBe(first.startPfn);
    expect(() => k.run(k.reconfigure({ device: 'dax0', mode: 'famfs', online: false }))).toThrow(InputError);
  });

  it('enable-namespace after a disable in famfs mode binds device_dax: dax_match_type() never picks fsdev_dax on its own', () => {
    const k = namespace();
    famfs(k);
    k.run(k.unbind({ device: 'dax0' }));
    k.run(k.bind({ device: 'dax0' }));
    expect(mode(k)).toBe('devdax');
    expect(order(k, 0)).toBe(9);
  });

  for (const v of ['v5.4', 'v6.6', 'v6.15']) {
    it(`${v}: no fsdev_dax, so famfs mode is unsupported (the script skips) and the instance stays in devdax mode`, () => {
      const k = namespace(v);
      expect(errnoOf(() => famfs(k))).toMatch(/^unsupported: /);
      expect(mode(k)).toBe('devdax');
      expect(k.device('dax0').bound).toBe(true);
    });
  }

  it('the switch, not the release: latest with fsdev-dax=false has no famfs mode, v6.15 with fsdev-dax=true has', () => {
    expect(errnoOf(() => famfs(namespace('latest', { 'fsdev-dax': false })))).toMatch(/^unsupported: /);
    const k = namespace('v6.15', { 'fsdev-dax': true });
    famfs(k);
    expect(mode(k)).toBe('famfs');
  });

  it('any mode but system-ram, devdax and famfs is refused when the scenario loads (daxctl: "unknown mode requested", EINVAL)', () => {
    const text = ['name: bad-mode', 'kernel: { arch: x86, driver: devdax }', 'setup:', '  - probe: { driver: devdax, size: 256MiB, align: 2MiB, as: dax0 }', 'steps:', '  - reconfigure: { device: dax0, mode: invalidmode }', ''].join('\n');
    expect(() => parseScenario(text, 'bad-mode.yaml')).toThrow(/mode is system-ram, devdax or famfs/);
  });
});
