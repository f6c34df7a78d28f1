/**
 * Runs every benchmark in bench/ one after another, each in its own process so
 * none warms the JIT for the next, and prints their JSON results as one object.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const only = process.argv.slice(2);
const benches = readdirSync(here)
  .filter((f) => f.endsWith('.js') && f !== 'run.js')
  .map((f) => f.slice(0, -3))
  .filter((b) => only.length === 0 || only.includes(b));
const results: Record<string, unknown> = {};
for (const name of benches) {
  const file = `${here}${name}.js`;
  const run = spawnSync(process.execPath, [file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    results[name] = JSON.parse(run.stdout);
  } catch {
    results[name] = { error: `exit ${run.status}`, output: run.stdout.slice(-500) };
  }
}
console.log(JSON.stringify(results, null, 2));
