// fs-readonly: are the filesystems a database writes to mounted, and writable?
//
// Two classic ways a database node dies quietly: ext4 remounts a disk
// read-only after an I/O error, or the data volume failed to mount at boot
// and the server writes into the root filesystem instead. This probe turns
// both into a critical status, through the `host` capability only.
//
// Config (all optional):
//   mounts        comma-separated mount points that must be mounted and
//                 writable, e.g. "/,/var/lib/postgresql" (default: every
//                 mounted filesystem must be writable, none is required)
//   ignore_types  comma-separated filesystem types that are read-only by
//                 design and never alert (default "squashfs,iso9660,erofs")

import { get } from 'watchpost:probe/config@0.1.0';
import { filesystems } from 'watchpost:probe/host@0.1.0';
import { log } from 'watchpost:probe/log@0.1.0';

/** A comma-separated config value as a list (empty items dropped). */
function list(key, fallback) {
  const text = get(key) ?? fallback;
  return text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

/** Mount points compare without a trailing slash ("/data/" is "/data"). */
function normalize(mount) {
  return mount.length > 1 ? mount.replace(/\/+$/, '') : mount;
}

export function describe() {
  return {
    name: 'fs-readonly',
    version: '0.1.0',
    kind: 'host',
    description: 'required filesystems are mounted and no filesystem is read-only',
    measurements: [
      {
        name: 'system.filesystem.read_only',
        unit: '1',
        description: '1 if the filesystem is mounted read-only',
      },
      {
        name: 'system.filesystem.mounted',
        unit: '1',
        description: '1 if a required mount point is mounted',
      },
    ],
  };
}

export function check() {
  const required = list('mounts', '').map(normalize);
  const ignored = new Set(list('ignore_types', 'squashfs,iso9660,erofs'));
  const mounted = filesystems().filter((fs) => !ignored.has(fs.fsType));
  const byMount = new Map(mounted.map((fs) => [normalize(fs.mountPoint), fs]));

  const measurements = [];
  const problems = [];
  const checked = required.length > 0 ? required : [...byMount.keys()];
  for (const mount of checked) {
    const fs = byMount.get(mount);
    if (required.length > 0) {
      measurements.push({
        name: 'system.filesystem.mounted',
        value: fs ? 1 : 0,
        unit: '1',
        attributes: [{ key: 'mountpoint', value: mount }],
      });
    }
    if (!fs) {
      problems.push(`${mount} is not mounted`);
      continue;
    }
    measurements.push({
      name: 'system.filesystem.read_only',
      value: fs.readOnly ? 1 : 0,
      unit: '1',
      attributes: [
        { key: 'mountpoint', value: mount },
        { key: 'device', value: fs.device },
        { key: 'type', value: fs.fsType },
      ],
    });
    if (fs.readOnly) {
      problems.push(`${mount} (${fs.device}) is read-only`);
    }
  }

  if (problems.length > 0) {
    log('warn', problems.join('; '));
    return { status: 'critical', message: problems.join('; '), measurements };
  }
  return {
    status: 'ok',
    message: `${checked.length} filesystems mounted and writable`,
    measurements,
  };
}
