/**
 * npm run bench [-- filter...]: runs bench/<name>.bench.ts files (each exports run(filters))
 * whose name contains a filter (all when none), prints one JSON document and then a short
 * table. A filter naming an op of the op table (e.g. `rms_norm`, `matmul q8_0`) runs that op's
 * cases of the kernel benchmarks (kernels.bench.ts).
 */
import { readdirSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';
import os from 'node:os';
import { native } from '../lib/native.js';
import { OP_TABLE } from '../lib/ops/table.js';
import { measuredCopyBandwidth, type BenchResult } from './util.js';

const dir = path.dirname(fileURLToPath(import.meta.url));
const filters = process.argv.slice(2);
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x) || (f === 'kernels.bench.ts' && Object.keys(OP_TABLE).some((op) => x.startsWith(op)))))
  .sort();

const results: Record<string, BenchResult[]> = {};
for (const f of files) {
  const mod = (await import(pathToFileURL(path.join(dir, f)).href)) as { run: (filters: string[]) => Promise<BenchResult[]> };
  process.stderr.write(`bench ${f} ...\n`);
  results[f.replace('.bench.ts', '')] = await mod.run(filters);
}

const doc = {
  date: new Date().toISOString(),
  machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, cpu: native().cpuInfo(), copyBandwidthGBps: (await measuredCopyBandwidth()) / 1e9 },
  results,
};
console.log(JSON.stringify(doc, null, 2));
const rows: string[] = [];
for (const [k, rs] of Object.entries(results))
  for (const r of rs) {
    const extra = Object.entries(r)
      .filter(([key]) => !['name', 'seconds', 'bytes', 'flops'].includes(key))
      .map(([key, v]) => `${key}=${typeof v === 'number' ? +v.toPrecision(4) : JSON.stringify(v)}`)
      .join(' ');
    rows.push(`${k.padEnd(12)} ${r.name.padEnd(44)} ${(r.seconds * 1e6).toFixed(1).padStart(10)} us  ${extra}`);
  }
process.stderr.write('\n' + rows.join('\n') + '\n');
