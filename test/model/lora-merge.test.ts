/**
 * `fuselm lora merge` (lib/tools/lora-merge.ts) against ../shared/models/oracles/lora: adapter1
 * merged into the llama3-ropefreqs base gives transformers+peft's merge_and_unload greedy tokens
 * (from the GGUF base and GGUF adapter, through the command line, and from the HF folder and
 * PEFT folder), at scale 0.5 the scaled adapter's; llama.cpp loads the merged GGUF and gives the
 * same tokens; beam search with the adapter unmerged finds the merged model's beams; --type q8_0 writes the merged projections in q8_0 and the rest as they were.
 * And the adapter applied unmerged on the base quantized to f16, q8_0 and q4_0 gives the greedy
 * tokens llama.cpp gives with it (node-llama-cpp's context `lora`) on the same file.
 * Skipped, saying so, without ../shared (or without the llama.cpp peer, its part).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { GgmlType } from '../../lib/formats/ggml-types.js';
import { readGguf } from '../../lib/formats/gguf.js';
import { loadModel } from '../../lib/index.js';
import { mergeLora } from '../../lib/tools/lora-merge.js';
import { quantizeGguf } from '../../lib/tools/quantize.js';
import { llamaCppGreedy, openLlamaCpp, requireLlamaCpp } from '../helpers/llama-cpp.js';
import { readSharedJson, requireShared, sharedPath } from '../helpers/shared.js';

interface Prompt {
  ids_with_special: number[];
  hf_greedy: number[];
}
const LORA = 'models/oracles/lora';
const HF_BASE = sharedPath('models', 'oracles', 'llama3-ropefreqs', 'hf');
const GGUF_BASE = sharedPath('models', 'oracles', 'llama3-ropefreqs', 'llama3-ropefreqs.f32.gguf');
const entry = fileURLToPath(new URL('../../lib/cli/run.ts', import.meta.url));

async function greedyOf(file: string, prompts: Prompt[]): Promise<number[][]> {
  await using m = await loadModel(file, { device: 'cpu', kvType: 'f32', contextSize: 256 });
  const out = [];
  for (const p of prompts) out.push((await m.generate(p.ids_with_special, { maxTokens: 24, ignoreEog: true })).ids);
  return out;
}

describe('fuselm lora merge', function () {
  this.timeout(120_000);
  let dir: string;
  let merged: Prompt[], half: Prompt[];
  before(function () {
    requireShared(this, `${LORA}/oracle.json`);
    const o = readSharedJson(`${LORA}/oracle.json`);
    merged = o.adapters.adapter1.merged;
    half = o.adapters.adapter1['scale_0.5'];
    dir = mkdtempSync(path.join(tmpdir(), 'fuselm-lora-merge-'));
  });
  after(() => dir && rmSync(dir, { recursive: true, force: true }));

  it('GGUF base + GGUF adapter, by the command line: merge_and_unload’s greedy tokens, and llama.cpp’s', async function () {
    const out = path.join(dir, 'merged.gguf');
    const r = await promisify(execFile)(process.execPath, ['--import', 'tsx', entry, 'lora', 'merge', GGUF_BASE, sharedPath(LORA, 'adapter1', 'adapter1.f32.gguf'), out]);
    assert.match(r.stdout, /14 of \d+ tensors merged/);
    assert.deepEqual(await greedyOf(out, merged), merged.map((p) => p.hf_greedy));
    const llama = await requireLlamaCpp(this);
    const s = await openLlamaCpp(llama, out, 256);
    try {
      for (const p of merged) assert.deepEqual(await llamaCppGreedy(s.seq, p.ids_with_special, 24), p.hf_greedy);
    } finally {
      await s.dispose();
    }
  });

  it('beam search with the adapter unmerged equals beam search on the merged model', async () => {
    const out = path.join(dir, 'beams.gguf');
    const adapter = sharedPath(LORA, 'adapter1', 'adapter1.f32.gguf');
    await mergeLora(GGUF_BASE, adapter, out);
    await using m = await loadModel(out, { device: 'cpu', kvType: 'f32', contextSize: 256 });
    await using b = await loadModel(GGUF_BASE, { device: 'cpu', kvType: 'f32', contextSize: 256 });
    const a = await b.loadAdapter(adapter);
    for (const p of merged) {
      const o = { numBeams: 3, maxTokens: 10, ignoreEog: true, numReturnSequences: 3 };
      const want = (await m.beamSearch(p.ids_with_special, o)).sequences.map((h) => h.ids);
      const got = (await b.beamSearch(p.ids_with_special, { ...o, adapters: [{ adapter: a }] })).sequences.map((h) => h.ids);
      assert.deepEqual(got, want);
    }
  });

  it('HF folder + PEFT folder; scale 0.5; --type q8_0', async () => {
    const out = path.join(dir, 'from-hf.gguf');
    await mergeLora(HF_BASE, sharedPath(LORA, 'adapter1'), out);
    assert.deepEqual(await greedyOf(out, merged), merged.map((p) => p.hf_greedy));
    const halfOut = path.join(dir, 'half.gguf');
    await mergeLora(GGUF_BASE, sharedPath(LORA, 'adapter1'), halfOut, { scale: 0.5 });
    assert.deepEqual(await greedyOf(halfOut, half), half.map((p) => p.hf_greedy));
    const q = path.join(dir, 'q8.gguf');
    await mergeLora(GGUF_BASE, sharedPath(LORA, 'adapter1', 'adapter1.f32.gguf'), q, { type: 'q8_0' });
    const f = await readGguf(q);
    for (const t of f.tensors) assert.equal(t.type, /attn_(q|k|v|output)\.weight|ffn_(gate|up|down)\.weight/.test(t.name) ? GgmlType.Q8_0 : GgmlType.F32, t.name);
    await assert.rejects(mergeLora(GGUF_BASE, sharedPath(LORA, 'adapter1'), q, { type: 'q9' }), { code: 'E_INVALID_ARG', message: /type must be f32 or one of/ });
  });
});

describe('LoRA on quantized bases (f16, q8_0, q4_0) beside llama.cpp', function () {
  this.timeout(180_000);
  it('the GGUF adapter on each: the same greedy tokens as llama.cpp with the adapter', async function () {
    requireShared(this, `${LORA}/oracle.json`);
    const llama = await requireLlamaCpp(this);
    const o = readSharedJson(`${LORA}/oracle.json`);
    const adapter = sharedPath(LORA, 'adapter1', 'adapter1.f32.gguf');
    const prompts: Prompt[] = o.adapters.adapter1['scale_1.0'];
    const dir = mkdtempSync(path.join(tmpdir(), 'fuselm-lora-quant-'));
    try {
      for (const type of ['f16', 'q8_0', 'q4_0'] as const) {
        const file = path.join(dir, `${type}.gguf`);
        await quantizeGguf(GGUF_BASE, file, type);
        const s = await openLlamaCpp(llama, file, 256, { lora: [{ filePath: adapter, scale: 0.5 }] });
        await using m = await loadModel(file, { device: 'cpu', kvType: 'f32', contextSize: 256 });
        const a = await m.loadAdapter(adapter);
        try {
          for (const p of prompts) {
            const ours = (await m.generate(p.ids_with_special, { maxTokens: 24, ignoreEog: true, adapters: [{ adapter: a, scale: 0.5 }] })).ids;
            assert.deepEqual(ours, await llamaCppGreedy(s.seq, p.ids_with_special, 24), `${type}`);
          }
        } finally {
          await s.dispose();
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
