/**
 * configFromHf / configFromGguf settings that change the numbers, checked value by value:
 * YaRN's per-pair divisors and attention factor (worked by hand from the YaRN paper's formulas),
 * LongRoPE's attention factor, Gemma-3's layer pattern and local rope base, Qwen's window
 * layers (max_window_layers), and the GGUF rope scaling type defaulting to linear as llama.cpp.
 */
import assert from 'node:assert/strict';
import { configFromGguf, configFromHf, yarnFactors } from '../../lib/model/config.js';
import { ropeFactors } from '../../lib/model/llama.js';
import { gv, parseGguf, encodeGguf } from '../../lib/formats/gguf.js';

const base = { hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: 6, intermediate_size: 96, vocab_size: 300 };

describe('model config: rope scaling and layer patterns', () => {
  it('YaRN: divisors 1 for fast pairs, factor for slow ones, the ramp between (theta 1e4, 16 dims, factor 4, original 1024)', () => {
    // correction dims: floor(16 ln(1024 / (32·2π)) / (2 ln 1e4)) = 1, ceil(16 ln(1024 / 2π) / (2 ln 1e4)) = 5
    const want = [1, 1, 1 / (0.25 / 4 + 0.75), 1 / (0.5 / 4 + 0.5), 1 / (0.75 / 4 + 0.25), 4, 4, 4];
    const got = yarnFactors(10000, 16, 4, 1024, 32, 1).factors;
    got.forEach((g, i) => assert.ok(Math.abs(g - want[i]) < 1e-12, `pair ${i}: ${g} vs ${want[i]}`));
    const c = configFromHf({ ...base, model_type: 'llama', rope_scaling: { type: 'yarn', factor: 4, original_max_position_embeddings: 1024 } }, 'c.json');
    assert.deepEqual(c.ropeFreqFactors, got);
    assert.ok(Math.abs(c.ropeMscale! - (1 + 0.1 * Math.log(4))) < 1e-12);
    const explicit = configFromHf({ ...base, model_type: 'qwen2', rope_parameters: { rope_type: 'yarn', factor: 4, attention_factor: 1.5, rope_theta: 1e6 } }, 'c.json');
    assert.equal(explicit.ropeMscale, 1.5);
    assert.equal(explicit.ropeTheta, 1e6);
  });

  it('LongRoPE: short factors up to the original context, long past it; attention factor sqrt(1 + ln(s) / ln(original))', () => {
    const short = [1, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7], long = [2, 3, 4, 5, 6, 7, 8, 9];
    const c = configFromHf({ ...base, model_type: 'phi3', max_position_embeddings: 131072, original_max_position_embeddings: 4096, rope_scaling: { type: 'longrope', short_factor: short, long_factor: long } }, 'c.json');
    assert.ok(Math.abs(c.ropeMscale! - Math.sqrt(1 + Math.log(32) / Math.log(4096))) < 1e-12);
    assert.deepEqual([...ropeFactors(c, 4096)!], [...Float32Array.from(short)]);
    assert.deepEqual([...ropeFactors(c, 4097)!], [...Float32Array.from(long)]);
  });

  it('Gemma-3: five sliding layers then a global one; the sliding ones rotate with rope_local_base_freq, unscaled', () => {
    const c = configFromHf({ ...base, num_hidden_layers: 12, model_type: 'gemma3_text', head_dim: 32, sliding_window: 512, rope_theta: 1e6, rope_local_base_freq: 1e4, rope_scaling: { rope_type: 'linear', factor: 8 } }, 'c.json');
    assert.deepEqual(c.slidingLayers, [true, true, true, true, true, false, true, true, true, true, true, false]);
    assert.deepEqual(c.ropeSliding, { theta: 1e4, freqScale: 1 });
    assert.equal(c.ropeTheta, 1e6);
    assert.equal(c.ropeFreqScale, 1 / 8);
    assert.equal(c.qkNorm, true);
    assert.equal(c.embedScale, Math.fround(8));
  });

  it("Qwen: with use_sliding_window, the window covers the layers from max_window_layers on", () => {
    const c = configFromHf({ ...base, model_type: 'qwen2', use_sliding_window: true, sliding_window: 64, max_window_layers: 4 }, 'c.json');
    assert.equal(c.slidingWindow, 64);
    assert.deepEqual(c.slidingLayers, [false, false, false, false, true, true]);
    assert.equal(configFromHf({ ...base, model_type: 'qwen2', sliding_window: 64 }, 'c.json').slidingWindow, 0);
  });

  it('GGUF: rope.scaling.factor without a type is linear (llama.cpp default); type none ignores it', () => {
    const gguf = (extra: Array<{ key: string; type: number; value: unknown }>) => {
      const bytes = encodeGguf({
        metadata: [
          { key: 'general.architecture', ...gv.str('llama') },
          { key: 'llama.embedding_length', ...gv.u32(64) },
          { key: 'llama.block_count', ...gv.u32(1) },
          { key: 'llama.feed_forward_length', ...gv.u32(96) },
          { key: 'llama.attention.head_count', ...gv.u32(4) },
          { key: 'tokenizer.ggml.tokens', ...gv.arrStr(['a', 'b']) },
          ...(extra as never[]),
        ],
        tensors: [],
      });
      return configFromGguf(parseGguf(bytes, { path: 'x.gguf', fileSize: bytes.length }));
    };
    assert.equal(gguf([{ key: 'llama.rope.scaling.factor', ...gv.f32(4) }]).ropeFreqScale, 0.25);
    assert.equal(gguf([{ key: 'llama.rope.scaling.factor', ...gv.f32(4) }, { key: 'llama.rope.scaling.type', ...gv.str('none') }]).ropeFreqScale, 1);
    const y = gguf([{ key: 'llama.rope.scaling.type', ...gv.str('yarn') }, { key: 'llama.rope.scaling.factor', ...gv.f32(4) }, { key: 'llama.rope.scaling.original_context_length', ...gv.u32(1024) }]);
    assert.deepEqual(y.ropeFreqFactors, yarnFactors(10000, 16, 4, 1024, 32, 1).factors);
    assert.throws(() => gguf([{ key: 'llama.rope.scaling.type', ...gv.str('su') }]), /rope scaling 'su' is not supported yet/);
    assert.throws(() => gguf([{ key: 'llama.logit_scale', ...gv.f32(0.5) }]), /llama\.logit_scale is not supported for llama/);
  });
});
