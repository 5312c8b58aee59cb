// Copies hls.js from node_modules into vendor/, which the page loads (vendor/hls.min.js).
// Run by `npm run build` after `npm ci`.
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const pkgDir = join(here, 'node_modules', 'hls.js');

let version;
try {
  version = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')).version;
} catch {
  console.error(`hls.js is not installed in ${pkgDir}: run \`npm ci\` first`);
  process.exit(1);
}

const out = join(here, 'vendor');
mkdirSync(out, { recursive: true });
copyFileSync(join(pkgDir, 'dist', 'hls.min.js'), join(out, 'hls.min.js'));
console.log(`hls.js ${version}: copied dist/hls.min.js to ${join(out, 'hls.min.js')}`);
