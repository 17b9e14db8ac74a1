/**
 * LoRA adapters in `fuselm serve` (llama.cpp's server API) on the llama3-ropefreqs fixture with
 * ../shared/models/oracles/lora's GGUF adapters: GET /lora-adapters lists what `lora` loaded;
 * a request's `lora: [{ id, scale }]` applies those (unlisted: 0) and gives llama.cpp's greedy
 * tokens; without it the server's scales apply (1 for each, or what POST /lora-adapters set);
 * concurrent requests with different adapters run in one batch and each gets its own tokens, also
 * when a slot's cached prompt was evaluated under another adapter; two users alternating adapters
 * each keep their cached prompt; an unknown id is a 400.
 * Skipped, saying so, without ../shared.
 */
import assert from 'node:assert/strict';
import { loadModel, type Model } from '../../lib/model/model.js';
import { createServer, type FuselmServer } from '../../lib/server/server.js';
import { readSharedJson, requireShared, sharedPath } from '../helpers/shared.js';

const LORA = 'models/oracles/lora';

async function post(url: string, body: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, json: await r.json() };
}

describe('fuselm serve: LoRA adapters', function () {
  this.timeout(120_000);
  let model: Model, server: FuselmServer, base: string;
  let o: any;
  before(async function () {
    requireShared(this, `${LORA}/oracle.json`);
    o = readSharedJson(`${LORA}/oracle.json`);
    model = await loadModel(sharedPath('models', 'oracles', 'llama3-ropefreqs', 'llama3-ropefreqs.f32.gguf'), { device: 'cpu', kvType: 'f32', contextSize: 256 });
    server = createServer(model, { parallel: 3, lora: [sharedPath(LORA, o.adapters.adapter1.gguf), sharedPath(LORA, o.adapters.adapter2.gguf)] });
    await server.ready;
    base = await server.listen({ port: 0 });
  });
  after(async () => {
    await server?.close();
    await model?.dispose();
  });

  /** The text of 24 greedy tokens after prompt ids, with `lora` when given, and the text of the ids it should be. */
  const greedyIds = async (prompt: number[], lora?: { id: number; scale: number }[]) => {
    const r = await post(`${base}/v1/completions`, { prompt, max_tokens: 24, temperature: 0, ignore_eos: true, ...(lora ? { lora } : {}) });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    return { got: r.json.choices[0].text as string, want: (ids: number[]) => model.tokenizer.decode(ids) };
  };

  it('lists the adapters; a request’s lora gives llama.cpp’s tokens; unlisted adapters are off', async () => {
    const list = (await (await fetch(`${base}/lora-adapters`)).json()) as any[];
    assert.deepEqual(list.map((l: any) => [l.id, l.scale]), [[0, 1], [1, 1]]);
    assert.match(list[0].path, /adapter1\.f32\.gguf$/);
    for (const [id, name, field, scale] of [[0, 'adapter1', 'scale_1.0', 1], [0, 'adapter1', 'scale_0.5', 0.5], [1, 'adapter2', 'scale_1.0', 1]] as const) {
      const p = o.adapters[name][field][0];
      const { got, want } = await greedyIds(p.ids_with_special, [{ id, scale }]);
      assert.deepEqual(got, want(p.llamacpp_greedy), `${name} at ${scale}`);
    }
  });

  it('without lora, the server’s scales: POST /lora-adapters sets them', async () => {
    const p = o.adapters.adapter1['scale_1.0'][1];
    const r = await post(`${base}/lora-adapters`, [{ id: 0, scale: 1 }]);
    assert.deepEqual(r.json.map((l: any) => l.scale), [1, 0]);
    const { got, want } = await greedyIds(p.ids_with_special);
    assert.deepEqual(got, want(p.llamacpp_greedy));
    await post(`${base}/lora-adapters`, [{ id: 0, scale: 1 }, { id: 1, scale: 1 }]);
  });

  it('concurrent requests with different adapters each get their own tokens, a cached prompt never reused across adapters', async () => {
    const p1 = o.adapters.adapter1['scale_1.0'][2], p2 = o.adapters.adapter2['scale_1.0'][2];
    // the same prompt under adapter1, then adapter2, then adapter1 at 0.5, all at once
    const runs = await Promise.all([
      greedyIds(p1.ids_with_special, [{ id: 0, scale: 1 }]),
      greedyIds(p2.ids_with_special, [{ id: 1, scale: 1 }]),
      greedyIds(o.adapters.adapter1['scale_0.5'][2].ids_with_special, [{ id: 0, scale: 0.5 }]),
    ]);
    assert.deepEqual(runs[0].got, runs[0].want(p1.llamacpp_greedy));
    assert.deepEqual(runs[1].got, runs[1].want(p2.llamacpp_greedy));
    assert.deepEqual(runs[2].got, runs[2].want(o.adapters.adapter1['scale_0.5'][2].llamacpp_greedy));
    // again one by one: each slot's cached prompt now holds another adapter's keys and values
    for (const [p, lora] of [[p2, [{ id: 1, scale: 1 }]], [p1, [{ id: 0, scale: 1 }]]] as const) {
      const { got, want } = await greedyIds(p.ids_with_special, [...lora]);
      assert.deepEqual(got, want(p.llamacpp_greedy));
    }
  });

  it('two users alternating adapters each keep their cached prompt (a slot cached under the same adapters is preferred)', async () => {
    const prompt = 'One day a small red fox and a blue bird went to look for the old tree by the river, and';
    const ask = async (id: number) => {
      const r = await post(`${base}/v1/completions`, { prompt, max_tokens: 8, temperature: 0, ignore_eos: true, lora: [{ id, scale: 1 }] });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      return { text: r.json.choices[0].text as string, prompt: r.json.usage.prompt_tokens as number, cached: r.json.usage.prompt_tokens_details.cached_tokens as number };
    };
    const first = [await ask(0), await ask(1)];
    assert.notEqual(first[0].text, first[1].text, 'the adapters give different tokens');
    for (let round = 0; round < 2; round++)
      for (const id of [0, 1]) {
        const r = await ask(id);
        assert.equal(r.text, first[id].text, `adapter ${id}, round ${round}`);
        // all of the prompt but its last token, whose logits start the generation
        assert.equal(r.cached, r.prompt - 1, `adapter ${id}, round ${round}`);
      }
  });

  it('an unknown adapter id is a 400 naming lora', async () => {
    const r = await post(`${base}/v1/completions`, { prompt: 'Once', max_tokens: 1, lora: [{ id: 5, scale: 1 }] });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.param, 'lora');
    assert.match(r.json.error.message, /no adapter 5/);
  });
});
