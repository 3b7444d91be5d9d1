// Build every probe of this kit into a WebAssembly component with
// componentize-js (its node API; see README.md).
//
//   npm ci                          # once: installs the pinned componentize-js
//   npm run build [-- OUT_DIR]      # writes OUT_DIR/NAME.wasm (default: build/)

import { componentize } from '@bytecodealliance/componentize-js';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** The probe contract: the repository's wit/ folder. */
const WIT = resolve(here, '../../../wit');

/** Probe name -> source file. */
const PROBES = {
  'fs-readonly': 'fs_readonly.js',
};

const out = resolve(process.argv[2] ?? join(here, 'build'));
await mkdir(out, { recursive: true });
for (const [name, source] of Object.entries(PROBES)) {
  const { component } = await componentize({
    sourcePath: join(here, source),
    witPath: WIT,
    worldName: 'probe',
    // Probes get no HTTP: without this the component imports wasi:http,
    // which Watchpost does not provide.
    disableFeatures: ['http', 'fetch-event'],
  });
  const path = join(out, `${name}.wasm`);
  await writeFile(path, component);
  console.log(`built ${path} (${(component.length / 1048576).toFixed(1)} MiB)`);
}
