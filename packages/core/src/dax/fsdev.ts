import type { Kernel } from '../kernel.js';
import type { Device } from '../types.js';

/**
 * The fsdev_dax driver of the DAX bus (drivers/dax/fsdev.c, DAXDRV_FSDEV_TYPE; feature fsdev-dax):
 * the ProbeRequest.kind that makes the device-dax plugin probe an instance as fsdev_dax_probe()
 * does instead of dev_dax_probe(), and the Device.state key that says which of the two is bound.
 * dax_match_type() (drivers/dax/bus.c) never picks it on its own: only an explicit bind
 * (daxctl reconfigure-device -m famfs writes new_id / bind) does, so every other probe path
 * (enable-namespace, enable-device, back from kmem) binds device_dax.
 */
export const FSDEV_DAX = 'fsdev_dax';

const DAX_DRIVER = 'daxDriver';

/** The Device.state of an instance fsdev_dax_probe() bound. */
export function fsdevState(): Record<string, unknown> {
  return { [DAX_DRIVER]: FSDEV_DAX };
}

export function boundToFsdev(device: Device): boolean {
  return device.bound && device.state[DAX_DRIVER] === FSDEV_DAX;
}

export type DaxctlMode = 'devdax' | 'system-ram' | 'famfs';

/**
 * The "mode" field of daxctl list (daxctl/json.c util_daxctl_dev_to_json() with the famfs
 * patch): system-ram when kmem holds it (daxctl_dev_get_memory()), famfs when bound to fsdev_dax
 * (daxctl_dev_is_famfs_mode(): the driver symlink), else devdax (an unbound instance too).
 */
export function daxctlMode(k: Kernel, device: Device): DaxctlMode {
  if (k.hotplug.memoryOf(device.name)) return 'system-ram';
  return boundToFsdev(device) ? 'famfs' : 'devdax';
}
