// {{name}}: a Watchpost probe.
//
// It reports the host's memory use and goes warning or critical above the
// `warning` and `critical` percentages of its config (90 and 95 unless
// set). Replace `check` with what you want to watch; `wit/` is the
// contract it implements (world `probe`). WIT names map to JavaScript as
// componentize-js does it: records are objects with camelCase fields,
// enums are their kebab-case names as strings ('ok', 'warning', ...).

import { get } from 'watchpost:probe/config@0.1.0';
import { hostname, memory } from 'watchpost:probe/host@0.1.0';
import { log } from 'watchpost:probe/log@0.1.0';

/** A percentage from the probe's config, or `fallback`. Throwing a string
 * ends the run as `unknown` with that message. */
function percent(key, fallback) {
  const text = get(key);
  if (text === undefined) {
    return fallback;
  }
  const value = Number(text.trim());
  if (text.trim() === '' || Number.isNaN(value)) {
    throw `config \`${key}\` = "${text}" is not a number (a percentage)`;
  }
  return value;
}

export function describe() {
  return {
    name: '{{name}}',
    version: '0.1.0',
    kind: 'host',
    description: 'memory use of the host',
    measurements: [
      { name: 'system.memory.utilization', unit: '1', description: 'fraction of memory in use' },
    ],
  };
}

export function check() {
  const warning = percent('warning', 90);
  const critical = percent('critical', 95);
  const mem = memory();
  const used = Number(mem.usedBytes) / Math.max(Number(mem.totalBytes), 1);
  let status = 'ok';
  if (used * 100 >= critical) {
    status = 'critical';
  } else if (used * 100 >= warning) {
    status = 'warning';
  }
  const message = `${(used * 100).toFixed(1)}% of memory in use`;
  if (status !== 'ok') {
    log('warn', message);
  }
  return {
    status,
    message,
    measurements: [
      {
        name: 'system.memory.utilization',
        value: used,
        unit: '1',
        attributes: [{ key: 'host', value: hostname() }],
      },
    ],
  };
}
