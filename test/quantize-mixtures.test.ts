/**
 * The tensor-type mixtures of `fuselm quantize` (planTensorTypes), against what llama.cpp's
 * llama-quantize makes: on Llama-2-7B's tensor list, the type counts llama.cpp's loader prints
 * for the published llama-2-7b Q4_K_M / Q5_K_M / Q4_0 / Q6_K / Q8_0 files (f32 65, q4_K 193,
 * q6_K 33 for Q4_K_M, …), the layers whose attn_v and ffn_down get Q6_K, the tied-head rule,
 * the fallbacks for rows that are not whole blocks, and the 8-expert rules.
 */
import assert from 'node:assert/strict';
import { GgmlType } from '../lib/formats/ggml-types.js';
import { type QuantizeType, FILE_TYPE, planTensorTypes, useMoreBits } from '../lib/tools/quantize.js';

/** A llama-family tensor list in llama.cpp's converter order (dims innermost first). */
function llamaTensors(o: { layers: number; dim: number; ffn: number; vocab: number; kv?: number; tied?: boolean }) {
  const kv = o.kv ?? o.dim;
  const t: Array<{ name: string; dims: number[] }> = [{ name: 'token_embd.weight', dims: [o.dim, o.vocab] }];
  for (let l = 0; l < o.layers; l++) {
    const b = `blk.${l}.`;
    t.push(
      { name: b + 'attn_norm.weight', dims: [o.dim] },
      { name: b + 'attn_q.weight', dims: [o.dim, o.dim] },
      { name: b + 'attn_k.weight', dims: [o.dim, kv] },
      { name: b + 'attn_v.weight', dims: [o.dim, kv] },
      { name: b + 'attn_output.weight', dims: [o.dim, o.dim] },
      { name: b + 'ffn_norm.weight', dims: [o.dim] },
      { name: b + 'ffn_gate.weight', dims: [o.dim, o.ffn] },
      { name: b + 'ffn_up.weight', dims: [o.dim, o.ffn] },
      { name: b + 'ffn_down.weight', dims: [o.ffn, o.dim] },
    );
  }
  t.push({ name: 'output_norm.weight', dims: [o.dim] });
  if (!o.tied) t.push({ name: 'output.weight', dims: [o.dim, o.vocab] });
  return t;
}

function counts(plan: Array<GgmlType | undefined>): Record<string, number> {
  const c: Record<string, number> = {};
  for (const t of plan) {
    const k = t === undefined ? 'kept' : GgmlType[t];
    c[k] = (c[k] ?? 0) + 1;
  }
  return c;
}

const llama2 = llamaTensors({ layers: 32, dim: 4096, ffn: 11008, vocab: 32000 });

describe('quantize mixtures (llama-quantize rules)', () => {
  it("Llama-2-7B: the type counts (q4_k_m, q4_k_s, q5_k_m, q5_k_s, q3_k_m, q4_0, q6_k, q8_0: those of llama.cpp's published files)", () => {
    const expect: Record<QuantizeType, Record<string, number>> = {
      q4_k_m: { kept: 65, Q4_K: 193, Q6_K: 33 },
      q3_k_m: { kept: 65, Q3_K: 129, Q4_K: 92, Q5_K: 4, Q6_K: 1 },
      // (rules without a published file to count against: attn_v, ffn_down, attn_output moved)
      q3_k_l: { kept: 65, Q3_K: 129, Q5_K: 96, Q6_K: 1 },
      q3_k_s: { kept: 65, Q3_K: 225, Q6_K: 1 },
      q2_k: { kept: 65, Q2_K: 129, Q3_K: 96, Q6_K: 1 },
      q5_k_m: { kept: 65, Q5_K: 193, Q6_K: 33 },
      q4_k_s: { kept: 65, Q4_K: 217, Q5_K: 8, Q6_K: 1 },
      q5_k_s: { kept: 65, Q5_K: 225, Q6_K: 1 },
      q4_0: { kept: 65, Q4_0: 225, Q6_K: 1 },
      q4_1: { kept: 65, Q4_1: 225, Q6_K: 1 },
      q5_0: { kept: 65, Q5_0: 225, Q6_K: 1 },
      q5_1: { kept: 65, Q5_1: 225, Q6_K: 1 },
      q6_k: { kept: 65, Q6_K: 226 },
      q8_0: { kept: 65, Q8_0: 226 },
      f16: { kept: 65, F16: 226 },
      f32: { kept: 65, F32: 226 },
    };
    for (const [type, c] of Object.entries(expect)) assert.deepEqual(counts(planTensorTypes(llama2, type as QuantizeType)), c, type);
  });

  it('q4_k_m / q5_k_m: Q6_K for attn_v and ffn_down in the first and last eighth of the layers and every third between', () => {
    const more = [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31];
    assert.deepEqual(Array.from({ length: 32 }, (_, l) => l).filter((l) => useMoreBits(l, 32)), more);
    // llama.cpp divides in integers: 22 layers (TinyLlama) give 22/8 = 2 and 7*22/8 = 19
    assert.deepEqual(Array.from({ length: 22 }, (_, l) => l).filter((l) => useMoreBits(l, 22)), [0, 1, 4, 7, 10, 13, 16, 19, 20, 21]);
    assert.deepEqual(Array.from({ length: 12 }, (_, l) => l).filter((l) => useMoreBits(l, 12)), [0, 3, 6, 9, 10, 11]);
    for (const type of ['q4_k_m', 'q5_k_m'] as const) {
      const plan = planTensorTypes(llama2, type);
      for (const kind of ['attn_v', 'ffn_down']) {
        const q6 = llama2.flatMap((t, i) => (t.name.endsWith(`.${kind}.weight`) && plan[i] === GgmlType.Q6_K ? [Number(t.name.split('.')[1])] : []));
        assert.deepEqual(q6, more, `${type} ${kind}`);
      }
      assert.equal(plan[llama2.findIndex((t) => t.name === 'output.weight')], GgmlType.Q6_K);
      assert.equal(plan[0], type === 'q4_k_m' ? GgmlType.Q4_K : GgmlType.Q5_K, 'token_embd keeps the file type');
      assert.equal(plan[llama2.findIndex((t) => t.name === 'blk.5.attn_q.weight')], type === 'q4_k_m' ? GgmlType.Q4_K : GgmlType.Q5_K);
    }
  });

  it('a tied head: token_embd takes the output rule', () => {
    const tied = llamaTensors({ layers: 2, dim: 256, ffn: 512, vocab: 1000, tied: true });
    assert.equal(planTensorTypes(tied, 'q4_k_m')[0], GgmlType.Q6_K);
    assert.equal(planTensorTypes(tied, 'q8_0')[0], GgmlType.Q8_0);
    assert.equal(planTensorTypes(llamaTensors({ layers: 2, dim: 256, ffn: 512, vocab: 1000 }), 'q4_k_m')[0], GgmlType.Q4_K);
  });

  it("rows that are not whole blocks fall back as llama.cpp's do", () => {
    // stories260K's shapes: rows of 64 (all but ffn_down) and 172 (ffn_down)
    const s = llamaTensors({ layers: 5, dim: 64, ffn: 172, vocab: 512, kv: 32 });
    const type = (plan: Array<GgmlType | undefined>, name: string) => plan[s.findIndex((t) => t.name === name)];
    const q4km = planTensorTypes(s, 'q4_k_m');
    assert.equal(type(q4km, 'blk.2.attn_q.weight'), GgmlType.Q5_0); // Q4_K -> Q5_0
    // (of 5 layers, llama.cpp's integer rule gives layers 2 and 4 more bits)
    assert.equal(type(q4km, 'blk.2.attn_v.weight'), GgmlType.Q8_0); // Q6_K -> Q8_0
    assert.equal(type(q4km, 'blk.0.attn_v.weight'), GgmlType.Q5_0); // Q4_K -> Q5_0
    assert.equal(type(q4km, 'blk.1.ffn_down.weight'), GgmlType.F16); // Q4_K -> Q5_0, 172 not whole 32-blocks -> F16
    assert.equal(type(q4km, 'output.weight'), GgmlType.Q8_0); // output rule: rows not whole 256-blocks
    assert.equal(type(planTensorTypes(s, 'q5_k_m'), 'blk.2.attn_q.weight'), GgmlType.Q5_1); // Q5_K -> Q5_1
    assert.equal(type(planTensorTypes(s, 'q6_k'), 'blk.2.attn_q.weight'), GgmlType.Q8_0);
    // the 32-block types: such a tensor is kept (llama.cpp refuses it)
    assert.equal(type(planTensorTypes(s, 'q4_0'), 'blk.2.ffn_down.weight'), undefined);
    assert.equal(type(planTensorTypes(s, 'q4_0'), 'blk.2.attn_q.weight'), GgmlType.Q4_0);
    assert.equal(type(planTensorTypes(s, 'f16'), 'blk.2.ffn_down.weight'), GgmlType.F16);
    // norms stay
    assert.equal(type(q4km, 'blk.2.attn_norm.weight'), undefined);
  });

  it('q2_k / q3_k_m: attn_v by GQA and by position, ffn_down by depth; IQ4_NL fallback', () => {
    const gqa = llamaTensors({ layers: 32, dim: 4096, ffn: 14336, vocab: 128256, kv: 1024 });
    const v = (plan: Array<GgmlType | undefined>) => plan.filter((_, i) => gqa[i].name.endsWith('attn_v.weight'));
    assert.ok(v(planTensorTypes(gqa, 'q2_k', { gqa: 4 })).every((t) => t === GgmlType.Q4_K));
    assert.ok(v(planTensorTypes(gqa, 'q2_k', { gqa: 2 })).every((t) => t === GgmlType.Q3_K));
    const m = v(planTensorTypes(gqa, 'q3_k_m'));
    assert.deepEqual([m[0], m[1], m[2], m[31]], [GgmlType.Q5_K, GgmlType.Q5_K, GgmlType.Q4_K, GgmlType.Q4_K]);
    const s = llamaTensors({ layers: 2, dim: 64, ffn: 172, vocab: 512 });
    const q2 = planTensorTypes(s, 'q2_k');
    assert.equal(q2[s.findIndex((t) => t.name === 'blk.0.attn_q.weight')], GgmlType.IQ4_NL); // Q2_K -> IQ4_NL
    assert.equal(q2[s.findIndex((t) => t.name === 'blk.0.ffn_down.weight')], GgmlType.F16); // Q3_K -> IQ4_NL -> F16 (172)
  });

  it('8 experts: attn_v and attn_k Q8_0, attn_output Q5_K in q4_k_m; fused attn_qkv counts as attn_v', () => {
    const t = llamaTensors({ layers: 8, dim: 256, ffn: 512, vocab: 1000 });
    const plan = planTensorTypes(t, 'q4_k_m', { expertCount: 8 });
    const of = (name: string) => plan[t.findIndex((x) => x.name === name)];
    assert.equal(of('blk.4.attn_v.weight'), GgmlType.Q8_0);
    assert.equal(of('blk.4.attn_k.weight'), GgmlType.Q8_0);
    assert.equal(of('blk.4.attn_output.weight'), GgmlType.Q5_K);
    const fused = [{ name: 'blk.0.attn_qkv.weight', dims: [256, 768] }, { name: 'blk.1.attn_qkv.weight', dims: [256, 768] }, { name: 'blk.2.attn_qkv.weight', dims: [256, 768] }];
    // of 3: 3/8 = 0 and 7*3/8 = 2 in integers, so only layer 2
    assert.deepEqual(planTensorTypes(fused, 'q4_k_m'), [GgmlType.Q4_K, GgmlType.Q4_K, GgmlType.Q6_K]);
  });

  it("general.file_type is llama.cpp's LLAMA_FTYPE", () => {
    assert.deepEqual(FILE_TYPE, { f32: 0, f16: 1, q4_0: 2, q4_1: 3, q8_0: 7, q5_0: 8, q5_1: 9, q2_k: 10, q3_k_s: 11, q3_k_m: 12, q3_k_l: 13, q4_k_s: 14, q4_k_m: 15, q5_k_s: 16, q5_k_m: 17, q6_k: 18 });
  });
});
