// Bundles the command line (and the scan worker) with esbuild after tsc has type-checked
// and emitted dist/. One ESM bundle with code splitting starts about 300 ms faster than
// Node resolving and loading hundreds of module files (time to /readyz, bench/RESULTS.md);
// the lazily imported parts (HTTP stack, save/restore, demo) stay separate chunks.
import { readdirSync, rmSync } from 'node:fs';
import { build } from 'esbuild';

// esbuild names its chunks by content hash and never removes them: drop the previous build's
for (const f of readdirSync('dist', { withFileTypes: true }))
  if (f.isFile() && /^[\w-]+-[A-Z0-9]{8}\.js(\.map)?$/.test(f.name)) rmSync(`dist/${f.name}`);

await build({
  entryPoints: { cli: 'src/cli.ts', 'scan-worker': 'src/spool/scan-worker.ts' },
  outdir: 'dist',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  legalComments: 'none',
  logLevel: 'warning',
  banner: {
    js: "import { createRequire as __sgCreateRequire } from 'node:module'; const require = __sgCreateRequire(import.meta.url);",
  },
});
