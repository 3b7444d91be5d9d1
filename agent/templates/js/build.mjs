// Build the probe into build/{{name}}.wasm with componentize-js.
//
//   npm install        # once: the pinned componentize-js
//   npm run build

import { componentize } from '@bytecodealliance/componentize-js';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const { component } = await componentize({
  sourcePath: join(here, 'probe.js'),
  witPath: join(here, 'wit'),
  worldName: 'probe',
  // Probes get no HTTP: without this the component imports wasi:http,
  // which Watchpost does not provide.
  disableFeatures: ['http', 'fetch-event'],
});
await mkdir(join(here, 'build'), { recursive: true });
const out = join(here, 'build', '{{name}}.wasm');
await writeFile(out, component);
console.log(`built ${out}`);
