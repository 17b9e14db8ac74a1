/**
 * `fuselm serve -m MODEL`: the OpenAI-compatible server (lib/server/server.ts) on host:port. It
 * listens at once (/health is 503 until the model is loaded); SIGTERM or SIGINT stop accepting,
 * let running requests finish within --drain-timeout, and exit 0.
 */
import { type Command, InvalidArgumentError } from 'commander';
import { readFile } from 'node:fs/promises';
import { FuselmError } from '../errors.js';
import { loadEmbeddingModel } from '../model/bert.js';
import { loadModel } from '../model/model.js';
import { createServer } from '../server/server.js';

function int(name: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    return n;
  };
}

function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

async function readText(file: string): Promise<string> {
  return readFile(file, 'utf8').catch((e: Error) => {
    throw new FuselmError('E_IO', `${file}: ${e.message}`);
  });
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('an OpenAI-compatible HTTP server (chat, completions, embeddings) with continuous batching')
    .requiredOption('-m, --model <path>', 'model file (GGUF) or Hugging Face folder')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <n>', 'port to listen on', int('--port', 0), 8080)
    .option('--parallel <n>', 'sequences decoded together (KV cache slots)', int('--parallel', 1), 4)
    .option('-c, --ctx <n>', "KV cache positions per slot (default: min(model context, 4096))", int('--ctx', 1))
    .option('-t, --threads <n>', 'CPU threads (default: physical cores)', int('--threads', 1))
    .option('-d, --device <device>', 'auto, cpu or cuda', 'auto')
    .option('--kv-blocks <n>', "blocks of 16 positions in the paged KV cache's pool (default: every slot's whole context)", int('--kv-blocks', 1))
    .option('--step-tokens <n>', 'most prompt tokens evaluated per step, over all sequences (default: 256)', int('--step-tokens', 1))
    .option('--max-queue <n>', 'most requests waiting for a slot; more get 429', int('--max-queue', 0), 64)
    .option('--timeout <ms>', 'per-request time limit', int('--timeout', 1), 600_000)
    .option('--drain-timeout <ms>', 'on SIGTERM, how long running requests may finish', int('--drain-timeout', 0), 30_000)
    .option('--api-key <key>', 'require this Bearer key (repeatable)', collect)
    .option('--api-key-file <file>', 'require one of the keys in this file (one per line)')
    .option('--cors <origin>', "allow cross-origin requests from this origin ('*' for any; repeatable)", collect)
    .option('--alias <name>', "the model's id in /v1/models (default: the file's name)")
    .option('--chat-template <file>', "a Jinja chat template file over the model's own")
    .option('--embeddings', 'serve an embedding model (BERT) on /v1/embeddings')
    .option('--lora <path>', 'a LoRA adapter (PEFT folder or GGUF adapter) requests can use, ids 0.. in order (repeatable; GET /lora-adapters)', collect)
    .action(async (o) => {
      if (!['auto', 'cpu', 'cuda'].includes(o.device)) throw new InvalidArgumentError('--device must be auto, cpu or cuda');
      const keys: string[] = [...(o.apiKey ?? [])];
      if (o.apiKeyFile) keys.push(...(await readText(o.apiKeyFile)).split('\n').map((l) => l.trim()).filter(Boolean));
      const chatTemplate = o.chatTemplate ? await readText(o.chatTemplate) : undefined;
      const loading = o.embeddings
        ? loadEmbeddingModel(o.model, { threads: o.threads, device: o.device })
        : loadModel(o.model, { threads: o.threads, device: o.device, contextSize: o.ctx });
      const server = createServer(loading, {
        parallel: o.parallel,
        kvBlocks: o.kvBlocks,
        stepTokens: o.stepTokens,
        maxQueue: o.maxQueue,
        requestTimeout: o.timeout,
        drainTimeout: o.drainTimeout,
        apiKeys: keys.length ? keys : undefined,
        cors: o.cors,
        modelName: o.alias,
        chatTemplate,
        lora: o.lora,
      });
      const url = await server.listen({ host: o.host, port: o.port });
      process.stderr.write(`fuselm serve: listening on ${url}, loading ${o.model}\n`);
      const stopped = new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      });
      try {
        if ((await Promise.race([server.ready.then(() => 'ready'), stopped])) === 'ready') process.stderr.write('fuselm serve: ready\n');
        await stopped;
        process.stderr.write('fuselm serve: draining\n');
      } finally {
        await server.close();
        await loading.then((m) => m.dispose(), () => {});
      }
    });
}
