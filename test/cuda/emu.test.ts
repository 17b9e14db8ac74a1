/**
 * The SIMT emulator (cuda/emu, ARCHITECTURE.md, "CUDA without a GPU") passes its own tests: the C++ program
 * fuselm_emu_tests, built next to the addon by the default build, runs block reductions,
 * shuffles and votes, the mma/ldmatrix/cp.async wrappers against scalar references, and
 * kernels with barrier and shared-memory bugs that must throw instead of hanging, and every
 * CUDA kernel's parity test against its CPU reference (cuda/emu/tests/*_test.cu). This test
 * runs it and asserts every test in its summary passed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const exe = process.platform === 'win32' ? 'fuselm_emu_tests.exe' : 'fuselm_emu_tests';

/** FUSELM_EMU_TESTS if set, else build/Release, else the newest build-*\/Release copy. */
function findExecutable(): string | undefined {
  const fromEnv = process.env.FUSELM_EMU_TESTS;
  if (fromEnv) return existsSync(fromEnv) ? fromEnv : undefined;
  const main = join(root, 'build', 'Release', exe);
  if (existsSync(main)) return main;
  const candidates = readdirSync(root)
    .filter((d) => d.startsWith('build'))
    .map((d) => join(root, d, 'Release', exe))
    .filter((p) => existsSync(p))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  return candidates[0];
}

interface Line { name: string; ok: boolean; ms: number; detail: string }

function parse(stdout: string): { tests: Line[]; passed: number; failed: number } {
  const tests: Line[] = [];
  for (const m of stdout.matchAll(/^(ok  |FAIL) (\S+) ([\d.]+) ms(?: \| (.*))?$/gm))
    tests.push({ ok: m[1] === 'ok  ', name: m[2], ms: Number(m[3]), detail: m[4] ?? '' });
  const s = /^summary: (\d+) passed, (\d+) failed/m.exec(stdout);
  assert.ok(s, `no summary line in the output:\n${stdout}`);
  return { tests, passed: Number(s[1]), failed: Number(s[2]) };
}

describe('cuda emulator (fuselm_emu_tests)', function () {
  const path = findExecutable();

  it('passes every emulator test', function () {
    if (!path) {
      console.log('      skipped: fuselm_emu_tests is not built (npm run build:native builds it)');
      this.skip();
    }
    const r = spawnSync(path!, [], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.error, undefined, `could not run ${path}: ${r.error}`);
    const { tests, passed, failed } = parse(r.stdout);
    const failures = tests.filter((t) => !t.ok).map((t) => `${t.name}: ${t.detail}`);
    assert.deepEqual(failures, [], `emulator test failures:\n${failures.join('\n')}\n${r.stderr}`);
    assert.equal(failed, 0);
    assert.equal(passed, tests.length);
    assert.equal(r.status, 0, `exit status ${r.status} (signal ${r.signal})\n${r.stderr}`);
    // the suite covers each area the emulator promises
    for (const area of ['block_reduce', 'warp_shuffles', 'warp_votes', 'error_', 'mma_m16n8k16_f16', 'mma_m16n8k16_bf16',
      'mma_m16n8k32_s8', 'ldmatrix', 'cp_async',
      // each kernel's parity test against its CPU reference
      'rms_norm_f32_parity', 'add_f32_parity', 'swiglu_f32_parity', 'rope_llama_f32_parity', 'rope_neox_f32_parity',
      'embedding_f32_parity', 'embedding_f16_parity', 'embedding_bf16_parity', 'embedding_q8_0_parity',
      'embedding_block_formats_parity',
      'gemv_f16_parity', 'gemv_bf16_parity', 'gemv_f32_parity',
      'rope_kv_store_f32_parity', 'rope_kv_store_f16_parity', 'rope_kv_store_bf16_parity', 'gemm_f16_parity',
      'gemm_bf16_parity', 'gemm_f32_parity', 'gemm_q8_0_parity', 'matmul_dispatch_', 'dp4a_signed_unsigned',
      ...['q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'iq4_nl', 'q2_k', 'q3_k', 'q4_k', 'q5_k', 'q6_k', 'iq4_xs'].flatMap((f) => [
        `gemv_quant_${f}_parity`, ...(f === 'q8_0' ? [] : [`gemm_quant_${f}_parity`])]),
      'gemv_quant_errors', 'gemv_quant_group_parity', 'gemv_quant_swiglu_parity', 'gemm_quant_errors', 'matmul_dispatch_q4_k', 'matmul_dispatch_q6_k', 'matmul_reuses_quantized_x',
      'attention_fa2_f16_parity', 'attention_fa2_bf16_parity', 'attention_fa2_supports',
      'attention_tiled_f32_parity', 'attention_tiled_half_parity', 'attention_tiled_routing', 'attention_tiled_supports',
      'layer_norm_f32_parity', 'add_norm_rms_f32_parity', 'add_norm_layer_norm_f32_parity',
      'add_bias_f32_parity', 'gelu_erf_f32_parity', 'gelu_tanh_f32_parity', 'argmax_f32_parity', 'argmax_workspace_too_small',
      'kv_store_',
      'attention_split_kv_'])
      assert.ok(tests.some((t) => t.name.startsWith(area)), `no test named ${area}*`);
    const reduce = tests.find((t) => t.name === 'block_reduce_256x128');
    console.log(`      ${path}: ${passed} passed; ${reduce?.detail ?? ''}`);
    // the kernels' parity tests state their measured errors beside the tolerances
    for (const t of tests.filter((t) => t.name.includes('_parity')))
      console.log(`      ${t.name} (${t.ms} ms): ${t.detail}`);
  });
});
