/**
 * Weights mapped from the file (LoadModelOptions.useMmap, the default; native/mapped_file.h):
 * a model gives the same logits, bit for bit, with the mapping on and off (stories260K and
 * random-weight files of the block formats, fused-qkv row slices included); weights kept as
 * stored are read-only views into the mapping, which lives while any view does and is gone after
 * dispose() (on CUDA, once the upload is done); an offset the kernels cannot read in place gives
 * a copy; a split GGUF maps each of its parts; and a file truncated after its header was read is an E_FORMAT before anything is
 * mapped.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GgmlType } from '../../lib/formats/ggml-types.js';
import { encodeGguf, readGguf } from '../../lib/formats/gguf.js';
import { loadEmbeddingModel, loadModel } from '../../lib/index.js';
import { configFromGguf } from '../../lib/model/config.js';
import { disposeLlamaWeights, loadLlamaWeights } from '../../lib/model/llama.js';
import { ggufWeightItems } from '../../lib/model/memory.js';
import { CPU_BLOCK_DTYPES, GgufMappings, loadGgufTensor } from '../../lib/model/weights.js';
import { native } from '../../lib/native.js';
import { type SyntheticArch, type WeightType, writeSyntheticModel } from '../../lib/tools/synthetic.js';
import { loadOnCuda } from '../helpers/cuda.js';
import { requireShared, sharedPath } from '../helpers/shared.js';
import { writeBertGguf } from './gguf-from-hf.js';
import { writeSplitGguf } from '../helpers/split-gguf.js';

const SHAPE = { vocabSize: 300, dim: 256, nLayers: 2, nHeads: 4, nKvHeads: 2, ffnDim: 512, contextLength: 64 };
const PROMPT = [1, 17, 42, 99, 7, 250, 3, 64];

/** All logits of PROMPT with the model loaded with useMmap on, then off; and the bytes mapped while it was loaded. */
async function logitsBothWays(file: string, threads = 1): Promise<{ on: Float32Array; off: Float32Array; mappedWhileLoaded: number }> {
  const before = native().mappedFileBytes();
  const on = await loadModel(file, { threads, contextSize: 32 });
  const mappedWhileLoaded = native().mappedFileBytes() - before;
  const a = await on.evaluate(PROMPT, { allLogits: true });
  await on.dispose();
  assert.equal(native().mappedFileBytes(), before, 'dispose() unmaps the file');
  const off = await loadModel(file, { threads, contextSize: 32, useMmap: false });
  assert.equal(native().mappedFileBytes(), before, 'useMmap: false maps nothing');
  const b = await off.evaluate(PROMPT, { allLogits: true });
  await off.dispose();
  return { on: a, off: b, mappedWhileLoaded };
}

describe('weights mapped from the file (useMmap)', function () {
  this.timeout(120_000);
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'fuselm-mmap-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('stories260K: the same logits mapped and read, the file mapped while loaded', async function () {
    requireShared(this, 'models/stories260K.gguf');
    const file = sharedPath('models/stories260K.gguf');
    const r = await logitsBothWays(file, 2);
    assert.equal(r.mappedWhileLoaded, statSync(file).size);
    assert.deepEqual(r.on, r.off);
  });

  const cases: Array<[SyntheticArch, WeightType]> = [
    ['llama', 'q4_k'], ['llama', 'q6_k'], ['llama', 'q5_k'], ['llama', 'q4_0'], ['llama', 'q8_0'], ['llama', 'f16'], ['llama', 'bf16'],
    ['llama', 'q3_k'], ['llama', 'iq4_xs'],
    // fused attn_qkv and gate/up: each part is a view at a row offset inside one tensor
    ['phi3', 'q8_0'], ['phi3', 'q4_k'],
  ];
  for (const [arch, dtype] of cases) {
    it(`${arch} ${dtype}: the same logits mapped and read`, async () => {
      const file = path.join(dir, `${arch}-${dtype}.gguf`);
      await writeSyntheticModel(file, { ...SHAPE, arch, dtype, seed: 7 });
      const r = await logitsBothWays(file);
      assert.equal(r.mappedWhileLoaded, statSync(file).size);
      assert.deepEqual(r.on, r.off);
      rmSync(file);
    });
  }

  it('a split GGUF (gguf-split layout): every part mapped, the logits of the whole file, refused when a part is wrong', async () => {
    const whole = path.join(dir, 'whole.gguf');
    await writeSyntheticModel(whole, { ...SHAPE, arch: 'llama', dtype: 'q4_k', seed: 11 });
    const [p1, p2] = await writeSplitGguf(whole, path.join(dir, 'split'), 2);
    const r = await logitsBothWays(p1);
    assert.equal(r.mappedWhileLoaded, statSync(p1).size + statSync(p2).size, 'both parts mapped');
    const m = await loadModel(whole, { threads: 1, contextSize: 32 });
    assert.deepEqual(r.on, await m.evaluate(PROMPT, { allLogits: true }));
    await m.dispose();
    assert.deepEqual(r.off, r.on);
    // the wrong part, a part missing, a first part without the parts' names
    await assert.rejects(loadModel(p2), { code: 'E_FORMAT', message: /this is part 2 of a split model of 2; load the first part/ });
    const renamed = path.join(dir, 'renamed.gguf');
    renameSync(p1, renamed);
    await assert.rejects(loadModel(renamed), { code: 'E_FORMAT', message: /not named <prefix>-00001-of-00002\.gguf/ });
    renameSync(renamed, p1);
    rmSync(p2);
    await assert.rejects(loadModel(p1), { code: 'E_IO', message: /split-00002-of-00002\.gguf/ });
  });

  it('a BERT GGUF (loadEmbeddingModel): the same embeddings mapped and read, unmapped by dispose', async function () {
    requireShared(this, 'models/hf/neural-api-tiny-bert/config.json');
    const file = path.join(dir, 'tiny-bert.gguf');
    await writeBertGguf(sharedPath('models/hf/neural-api-tiny-bert'), file);
    const before = native().mappedFileBytes();
    const on = await loadEmbeddingModel(file, { threads: 1 });
    assert.equal(native().mappedFileBytes() - before, statSync(file).size);
    const a = await on.embed(['a b c', 'd e f g'], { pooling: 'mean' });
    await on.dispose();
    assert.equal(native().mappedFileBytes(), before);
    const off = await loadEmbeddingModel(file, { threads: 1, useMmap: false });
    assert.equal(native().mappedFileBytes(), before);
    assert.deepEqual(await off.embed(['a b c', 'd e f g'], { pooling: 'mean' }), a);
    await off.dispose();
  });

  it('CUDA (emulated without a GPU) uploads from the mapping and keeps no host copy: the file is unmapped after the load', async () => {
    const file = path.join(dir, 'cuda.gguf');
    await writeSyntheticModel(file, { ...SHAPE, arch: 'llama', dtype: 'q4_k', seed: 2 });
    const before = native().mappedFileBytes();
    const onCuda = await loadOnCuda(file, { contextSize: 32 });
    assert.equal(native().mappedFileBytes(), before, 'no host view outlives the upload');
    const a = await onCuda.evaluate(PROMPT, { allLogits: true });
    await onCuda.dispose();
    const read = await loadOnCuda(file, { contextSize: 32, useMmap: false });
    assert.deepEqual(a, await read.evaluate(PROMPT, { allLogits: true }));
    await read.dispose();
  });

  it('weights kept as stored are read-only views holding the mapping; freeing them unmaps', async () => {
    const file = path.join(dir, 'views.gguf');
    await writeSyntheticModel(file, { ...SHAPE, arch: 'llama', dtype: 'q4_k', seed: 3 });
    const f = await readGguf(file);
    const before = native().mappedFileBytes();
    const mappings = new GgufMappings();
    const w = await loadLlamaWeights(f, configFromGguf(f), { contextSize: 32, mappings });
    await mappings.close();
    assert.equal(native().mappedFileBytes() - before, f.fileSize, 'the views keep the file mapped after the loader lets go');
    const all = [w.tokenEmbd, w.output, w.outputNorm, ...w.layers.flatMap((L) => Object.values(L))];
    assert.ok(all.every((t) => t.mapped), 'every weight of this file is kept as stored, so every one is a view');
    // a view's bytes are the file's, as a read gives them
    const read = await loadGgufTensor(f, 'blk.1.ffn_down.weight', [SHAPE.dim, SHAPE.ffnDim]);
    assert.equal(read.mapped, false);
    assert.deepEqual(new Uint8Array(w.layers[1].wDown!.read()), new Uint8Array(read.read()));
    read.free();
    // nothing may write a view: not a write, not an op's output
    assert.throws(() => w.outputNorm.write(new Float32Array(SHAPE.dim)), { code: 'E_INVALID_ARG', message: /read-only view of a mapped file/ });
    const x = new (native().Tensor)('f32', [1, SHAPE.dim]);
    const pool = new (native().Pool)(1);
    assert.throws(() => new (native().Graph)([{ op: 'scale', out: w.outputNorm, x, s: 2 }], { pool, maxRows: 1 }), {
      code: 'E_INVALID_ARG',
      message: /out is written by this op but is a read-only view of a mapped file/,
    });
    x.free();
    pool.free();
    disposeLlamaWeights(w);
    assert.equal(native().mappedFileBytes(), before, 'the last view freed, the file is unmapped');
  });

  it('an offset the kernels cannot read in place gives a copy; bytes outside the file are E_FORMAT', async () => {
    // a GGUF aligned to 1 byte: an i8 tensor of the right length puts the f32 one after it at an odd offset
    const data = Float32Array.from({ length: 8 }, (_, i) => i + 0.5);
    const file = path.join(dir, 'odd.gguf');
    const oddFile = async (n: number) => {
      writeFileSync(file, encodeGguf({
        alignment: 1,
        metadata: [],
        tensors: [
          { name: 'a', type: GgmlType.I8, dims: [n], data: new Uint8Array(n) },
          { name: 'b', type: GgmlType.F32, dims: [8], data: new Uint8Array(data.buffer) },
        ],
      }));
      return readGguf(file);
    };
    let f = await oddFile(1);
    if (f.tensorByName.get('b')!.offset % 2 === 0) f = await oddFile(2);
    const b = f.tensorByName.get('b')!;
    assert.equal(b.offset % 2, 1);
    const m = await native().mapFile(file, f.fileSize);
    try {
      const t = await m.tensor(b.offset, 'f32', [8]);
      assert.equal(t.mapped, false, 'a misaligned f32 tensor is copied');
      assert.deepEqual(new Float32Array(t.read()), data);
      t.free();
      const v = await m.tensor(b.offset + 1, 'f16', [2]);
      assert.equal(v.mapped, true, 'f16 needs 2-byte alignment only');
      v.free();
      await assert.rejects(m.tensor(b.offset, 'f32', [9]), { code: 'E_FORMAT', message: /runs past the end of the file/ });
      await assert.rejects(m.tensor(-4, 'f32', [1]), { code: 'E_FORMAT' });
      await assert.rejects(m.tensor(0, 'q4_k', [1, 100]), { code: 'E_FORMAT', message: /not whole blocks of 256/ });
    } finally {
      m.free();
    }
  });

  it('a file truncated after its header was read is E_FORMAT before anything is mapped', async () => {
    const file = path.join(dir, 'truncated.gguf');
    await writeSyntheticModel(file, { ...SHAPE, arch: 'llama', dtype: 'q8_0', seed: 5 });
    const f = await readGguf(file);
    truncateSync(file, f.fileSize - 100);
    const before = native().mappedFileBytes();
    const mappings = new GgufMappings();
    await assert.rejects(loadLlamaWeights(f, configFromGguf(f), { contextSize: 32, mappings }), {
      code: 'E_FORMAT',
      message: new RegExp(`truncated\\.gguf: the file is ${f.fileSize - 100} bytes but its header places tensor data up to byte ${f.fileSize}`),
    });
    await mappings.close();
    assert.equal(native().mappedFileBytes(), before);
    // truncated before the load: the header check refuses it
    await assert.rejects(loadModel(file), { code: 'E_FORMAT', message: /runs past the end of the file/ });
    assert.equal(native().mappedFileBytes(), before);
    await assert.rejects(native().mapFile(dir, 0), { code: 'E_IO', message: /not a regular file/ });
  });

  it('a load that fails half way leaves nothing mapped (nor held until GC)', async () => {
    const file = path.join(dir, 'short.gguf');
    await writeSyntheticModel(file, { ...SHAPE, arch: 'llama', dtype: 'q4_k', seed: 4 });
    const f = await readGguf(file);
    const before = native().mappedFileBytes();
    const mappings = new GgufMappings();
    // a config asking for a layer more than the file has: blk.2's first tensor is missing
    await assert.rejects(loadLlamaWeights(f, { ...configFromGguf(f), nLayers: 3 }, { contextSize: 32, mappings }), {
      code: 'E_FORMAT',
      message: /tensor 'blk\.2\.attn_norm\.weight' is missing/,
    });
    await mappings.close();
    assert.equal(native().mappedFileBytes(), before);
  });

  it('the memory plan counts mapped weights as file-backed, at their size in the file', async () => {
    const file = path.join(dir, 'plan.gguf');
    await writeSyntheticModel(file, { ...SHAPE, arch: 'llama', dtype: 'q4_k', seed: 9 });
    const f = await readGguf(file);
    const stored = f.tensors.reduce((n, t) => n + t.nbytes, 0);
    assert.deepEqual(ggufWeightItems(f, 'auto', CPU_BLOCK_DTYPES, true), [{ what: 'weights mapped from the file (file-backed)', bytes: stored }]);
    const [read] = ggufWeightItems(f, 'auto', CPU_BLOCK_DTYPES, false);
    assert.equal(read.what, 'weights');
    assert.ok(read.bytes >= stored && read.bytes < stored * 1.1, `read: ${read.bytes} for ${stored} stored`);
    // converted to q8_0: the matrices get memory of their own, the f32 norms stay mapped
    const norms = f.tensors.filter((t) => t.dims.length === 1).reduce((n, t) => n + t.nbytes, 0);
    const [mapped, own] = ggufWeightItems(f, 'q8_0', CPU_BLOCK_DTYPES, true);
    assert.deepEqual(mapped, { what: 'weights mapped from the file (file-backed)', bytes: norms });
    assert.equal(own.what, 'weights converted at load');
    const matrixValues = f.tensors.filter((t) => t.dims.length === 2).reduce((n, t) => n + t.nelements, 0);
    assert.ok(own.bytes >= (matrixValues * 34) / 32, `converted: ${own.bytes}`);
    await assert.rejects(loadModel(file, { maxMemory: 1e5 }), { code: 'E_OUT_OF_MEMORY', message: /weights mapped from the file \(file-backed\): / });
  });

  it('useMmap must be a boolean', async () => {
    await assert.rejects(loadModel('x.gguf', { useMmap: 'yes' as never }), { code: 'E_INVALID_ARG', message: /useMmap must be a boolean/ });
  });
});
