/**
 * `fuselm run` on encoder-decoder models: the text is the encoder's input and the output the
 * decoder's tokens, streamed, with --beams, and as --json, equal to transformers' (the T5
 * fixture's 16-token greedy and 4-beam outputs, and BART's first 8 greedy ids, from ../shared's
 * oracles, made with EOS stopping off: the CLI stops at EOS, and these outputs come out the
 * same with it). Skipped, saying so, without ../shared.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { loadModel } from '../../lib/index.js';
import { readSharedJson, requireShared, sharedPath } from '../helpers/shared.js';

const entry = fileURLToPath(new URL('../../lib/cli/run.ts', import.meta.url));
const fuselm = async (...args: string[]) => (await promisify(execFile)(process.execPath, ['--import', 'tsx', entry, ...args], { env: process.env })).stdout;

interface Prompt { text: string; greedy_16: number[]; beam4_16: number[] }

describe('CLI run on encoder-decoder models', function () {
  this.timeout(120_000);
  it("T5 (folder and GGUF): streams transformers' greedy text; --beams prints the best hypothesis", async function () {
    requireShared(this, 'models/oracles/t5/oracle.json', 'models/oracles/t5/hf', 'models/oracles/t5/t5.f32.gguf');
    const [p] = readSharedJson<{ prompts: Prompt[] }>('models/oracles/t5/oracle.json').prompts;
    const m = await loadModel(sharedPath('models/oracles/t5/hf'), { device: 'cpu' });
    const text = (ids: number[]) => m.tokenizer.decode(ids.slice(1));
    try {
      for (const model of ['hf', 't5.f32.gguf']) {
        const path = sharedPath('models/oracles/t5', model);
        assert.equal(await fuselm('run', '-m', path, '-n', '16', '--device', 'cpu', p.text), text(p.greedy_16) + '\n');
        assert.equal(await fuselm('run', '-m', path, '-n', '16', '--beams', '4', '--device', 'cpu', p.text), text(p.beam4_16) + '\n');
      }
    } finally {
      await m.dispose();
    }
  });

  it("BART: --json gives transformers' greedy ids", async function () {
    requireShared(this, 'models/oracles/bart/oracle.json', 'models/oracles/bart/hf');
    const [p] = readSharedJson<{ prompts: Prompt[] }>('models/oracles/bart/oracle.json').prompts;
    const r = JSON.parse(await fuselm('run', '-m', sharedPath('models/oracles/bart/hf'), '-n', '8', '--json', '--device', 'cpu', p.text));
    assert.deepEqual(r.ids, p.greedy_16.slice(1, 9));
    assert.equal(r.finishReason, 'maxTokens');
  });
});
