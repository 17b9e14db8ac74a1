// The CommonJS entry (dist/index.cjs): lib/ bundled by esbuild, dependencies left external.
// import.meta.url (used to find the package root and the addon) maps to the bundle's own file.
import { build } from 'esbuild';

await build({
  entryPoints: ['lib/index.ts'],
  outfile: 'dist/index.cjs',
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  define: { 'import.meta.url': '__fuselm_import_meta_url' },
  banner: { js: "const __fuselm_import_meta_url = require('node:url').pathToFileURL(__filename).href;" },
  logLevel: 'warning',
});
