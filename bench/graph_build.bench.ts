/**
 * What a new step layout costs the server: building the graph of a 64-span step (what the
 * scheduler's forwardSpans makes whenever the mix of prompt chunks and decode tokens changes).
 * The model has TinyLlama-1.1B's 22 layers at a tiny width (dim 64, 4 heads, 2 KV heads, paged
 * cache in blocks of 16), so the step's math is small and its time is the graph's: node objects
 * made in JS, handed to the addon and checked there.
 *
 * Each rep is a layout never seen before (span k of 64 reads two tokens, the others one: 65
 * row ranges), run once (build + run) and then again at the next positions (run only); the
 * build's time is the difference, median over REPS, in wall time and in the process's CPU time
 * (process.cpuUsage: on a shared host less disturbed by other jobs than the wall clock). nodes = 3 + 22 x (13 + 5 x 65): per layer
 * norm, q/k/v, o, add, norm, gate, up, swiglu, down, add, and per row range rope q/k, K/V
 * store, attention.
 */
import { loadModel } from '../lib/model/model.js';
import { benchModel } from '../lib/tools/bench-models.js';
import { writeSyntheticLlama } from '../lib/tools/synthetic.js';
import { type BenchResult, median } from './util.js';

const SHAPE = { vocabSize: 300, dim: 64, nLayers: 22, nHeads: 4, nKvHeads: 2, ffnDim: 96, contextLength: 256 };
const SPANS = 64;
const REPS = 9;
const NODES = 3 + SHAPE.nLayers * (13 + 5 * (SPANS + 1));

export async function run(): Promise<BenchResult[]> {
  const file = await benchModel('synthetic-graph-22x64-f32.gguf', (f) => writeSyntheticLlama(f, SHAPE, 'f32'));
  const model = await loadModel(file, { contextSize: SHAPE.contextLength, threads: 1 });
  const blocksPer = SHAPE.contextLength / 16;
  const slots = await model.openSlots(SPANS, { paged: { blockSize: 16, blocks: SPANS * blocksPer } });
  try {
    for (let s = 0; s < SPANS; s++) slots.setBlocks(s, Array.from({ length: blocksPer }, (_, i) => s * blocksPer + i));
    const pos = new Array<number>(SPANS).fill(0);
    // one step of every slot: slot `two` reads two tokens, the others one
    /** Wall and CPU milliseconds of one step of every slot: slot `two` reads two tokens, the others one. */
    const step = async (two: number) => {
      const spans = pos.map((p, s) => ({ slot: s, ids: s === two ? [1, 2] : [1], pos: p }));
      const t0 = performance.now(), c0 = process.cpuUsage();
      await slots.step(spans);
      const c = process.cpuUsage(c0), wall = performance.now() - t0;
      spans.forEach((sp, s) => (pos[s] += sp.ids.length));
      return { wall, cpu: (c.user + c.system) / 1000 };
    };
    await step(-1); // the all-one-token layout, and the first run's allocations
    const builds: number[] = [], buildsCpu: number[] = [], runs: number[] = [];
    for (let r = 0; r < REPS; r++) {
      const first = await step(r), again = await step(r);
      builds.push(first.wall - again.wall);
      buildsCpu.push(first.cpu - again.cpu);
      runs.push(again.wall);
    }
    const build = median(builds) / 1000, buildCpu = median(buildsCpu) / 1000;
    const ms = (xs: number[]) => xs.map((x) => x.toFixed(1)).join(' ');
    process.stderr.write(`graph_build: builds ${ms(builds)} ms wall, ${ms(buildsCpu)} ms CPU; runs ${ms(runs)} ms\n`);
    return [{
      name: `${SPANS}-span step, ${SHAPE.nLayers} layers (${NODES} nodes)`,
      seconds: build,
      cpuSeconds: buildCpu,
      nodes: NODES,
      cpuMicrosecondsPerNode: (buildCpu * 1e6) / NODES,
      runSeconds: median(runs) / 1000,
    }];
  } finally {
    slots.close();
    await model.dispose();
  }
}
