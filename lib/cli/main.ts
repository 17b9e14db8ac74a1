/**
 * The fuselm command line. `fuselm run -m model.gguf "prompt"` streams a continuation to stdout
 * and prints speed to stderr. Exit codes: 0 success, 1 a FuselmError (message on stderr),
 * 2 bad usage.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { FuselmError } from '../errors.js';
import { readFileSync } from 'node:fs';
import { readFile, rename, rm, stat } from 'node:fs/promises';
import { randomInt } from 'node:crypto';
import path from 'node:path';
import { measureSpeed } from '../tools/bench.js';
import { benchKernels } from '../tools/kernel-bench.js';
import { SHAPES } from '../tools/synthetic.js';
import { syntheticBenchModel } from '../tools/bench-models.js';
import { createInterface } from 'node:readline';
import { type LoadModelOptions, type Model, loadModel } from '../model/model.js';
import { perplexity } from '../tools/perplexity.js';
import { QUANTIZE_TYPES, type QuantizeType, isQuantizeType, quantizeModel } from '../tools/quantize.js';
import { downloadBar, formatBytes, progressBar } from './progress.js';
import { processEscapes } from './escapes.js';
import { pullModel, resolveModelPath } from '../hub/pull.js';
import { cacheDir, listCache, removeCached } from '../hub/cache.js';
import { checkKernels } from '../tools/doctor.js';
import { devices } from '../devices.js';
import { readGguf } from '../formats/gguf.js';
import { readSafetensors } from '../formats/safetensors.js';
import { ggmlTypeName } from '../formats/ggml-types.js';
import { loadTokenizer } from '../tokenizer/load.js';
import { loadEmbeddingModel } from '../model/bert.js';
import { registerServe } from './serve.js';
import { registerLora } from './lora.js';

function intOption(name: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    return n;
  };
}

/** A number option in [min, max] (or (min, max] when min is excluded). */
function floatOption(name: string, min = 0, max = Infinity, minExcluded = false) {
  const range = max === Infinity ? `${minExcluded ? '>' : '>='} ${min}` : `in ${minExcluded ? '(' : '['}${min}, ${max}]`;
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < min || (minExcluded && n === min) || n > max) throw new InvalidArgumentError(`${name} must be a number ${range}`);
    return n;
  };
}

/** --type: one of the quantize types, in any case (llama-quantize's Q4_K_M is q4_k_m). */
function quantizeTypeOption(v: string): QuantizeType {
  const t = v.toLowerCase();
  if (!isQuantizeType(t)) throw new InvalidArgumentError(`--type must be one of ${QUANTIZE_TYPES.join(', ')}`);
  return t;
}

/** --ids: token ids, comma-separated (below the vocabulary's size when it is known). */
function parseIds(v: string, vocabSize = Infinity): number[] {
  const ids = v.split(',').map((s) => (/^\s*\d+\s*$/.test(s) ? Number(s) : NaN));
  const bad = ids.findIndex((id) => !Number.isSafeInteger(id) || id >= vocabSize);
  if (bad >= 0 || ids.length === 0)
    throw new InvalidArgumentError(`--ids must be token ids separated by commas${vocabSize < Infinity ? ` (each below ${vocabSize})` : ''}, got ${JSON.stringify(v.split(',')[bad])}`);
  return ids;
}

/** --stop, repeatable: each value with its escapes processed. */
function collectStop(v: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), processEscapes(v, '--stop')];
}

/** The seed when --seed is not given: random, as llama.cpp's and ollama's are. */
function randomSeed(): number {
  return randomInt(2 ** 32 - 1);
}

function deviceOption(v: string): 'auto' | 'cpu' | 'cuda' {
  if (v !== 'auto' && v !== 'cpu' && v !== 'cuda') throw new InvalidArgumentError('--device must be auto, cpu or cuda');
  return v;
}

const MODEL_HELP = 'a GGUF file or model folder, hf:owner/repo[/file.gguf][@revision] or an https URL (pulled once into the cache); default: the bundled stories260K.gguf';

/**
 * The CLI; `output` fires when stdout's reader has gone (`fuselm run … | head`): generation stops
 * and the command ends quietly.
 */
export function buildCli(output: AbortSignal = new AbortController().signal): Command {
  const program = new Command('fuselm')
    .description('LLM inference for Node.js: fused CPU and CUDA kernels behind a typed API')
    .version(packageVersion(), '-V, --version')
    .exitOverride();

  program
    .command('run')
    .description('generate a continuation of a prompt, streamed to stdout; speed goes to stderr')
    .option('-m, --model <ref>', MODEL_HELP)
    .argument('[prompt]', 'the text to continue (or --ids)')
    .option('--ids <ids>', 'the prompt as token ids, comma-separated (models without a tokenizer: their output is ids too)', (v: string) => parseIds(v))
    .option('-n, --max-tokens <n>', 'most tokens to generate (default: until end of text or a full context)', intOption('--max-tokens', 0))
    .option('-t, --threads <n>', 'CPU threads (default: physical cores)', intOption('--threads', 1))
    .option('-d, --device <device>', "where the model runs: auto (CUDA when a device works), cpu or cuda", deviceOption, 'auto')
    .option('-c, --context-size <n>', 'KV cache positions (default: min(model context, 4096))', intOption('--context-size', 1))
    .option('--temperature <t>', "sampling temperature; 0 is greedy (default: the model's generation_config.json, else 0)", floatOption('--temperature'))
    .option('--seed <n>', 'random seed for sampling (default: a random one, printed with the speed and in --json, to replay a run)', intOption('--seed', 0))
    .option('--top-k <n>', 'keep the k most likely tokens, 0 = off (default 40)', intOption('--top-k', 0))
    .option('--top-p <p>', 'nucleus sampling mass, 1 = off (default 0.95)', floatOption('--top-p', 0, 1, true))
    .option('--min-p <p>', 'keep tokens with p >= min-p * p_max, 0 = off (default 0.05)', floatOption('--min-p', 0, 1))
    .option('--repeat-penalty <x>', 'repetition penalty over the last 64 tokens, 1 = off (default 1)', floatOption('--repeat-penalty', 0, Infinity, true))
    .option('--stop <text>', 'stop before this text; repeat for several (escapes as llama.cpp reads them: \\n \\t \\r \\\\ \\" \\\' \\xNN \\uNNNN)', collectStop)
    .option('--beams <n>', 'beam search with n beams (needs --max-tokens; prints the best hypothesis)', intOption('--beams', 1))
    .option('--json', 'print one JSON object (text, ids, timings) instead of streaming')
    .option('--no-mmap', 'read the weights into memory instead of mapping the GGUF')
    .action(async (text: string | undefined, o) => {
      if (o.beams !== undefined && !o.maxTokens) throw new InvalidArgumentError('--beams needs --max-tokens');
      if ((text === undefined) === (o.ids === undefined)) throw new InvalidArgumentError('give the prompt as text or as --ids, one of them');
      const prompt: string | number[] = o.ids ?? text;
      const model = await loadWithProgress(o.model, { threads: o.threads, device: o.device, contextSize: o.contextSize, useMmap: o.mmap });
      // without a vocabulary, ids are the only readable output
      const idsOut = model.tokenizer.idsOnly === true;
      try {
        if (o.beams !== undefined) {
          const r = await model.beamSearch(prompt, { numBeams: o.beams, maxTokens: o.maxTokens, stop: o.stop, signal: output });
          process.stdout.write(o.json ? JSON.stringify(r) + '\n' : (idsOut ? r.sequences[0].ids.join(' ') : r.sequences[0].text) + '\n');
          return;
        }
        const seed: number = o.seed ?? randomSeed();
        const opts = {
          maxTokens: o.maxTokens, temperature: o.temperature, seed, topK: o.topK, topP: o.topP,
          minP: o.minP, repeatPenalty: o.repeatPenalty, stop: o.stop, signal: output,
        };
        if (o.json) {
          const r = await model.generate(prompt, opts);
          process.stdout.write(JSON.stringify({ ...r, seed }) + '\n');
          if (r.finishReason === 'contextFull') contextFullNotice(model);
          return;
        }
        let first = true;
        for await (const chunk of model.stream(prompt, opts)) {
          if (!idsOut) process.stdout.write(chunk.text);
          else if (chunk.id >= 0) process.stdout.write(`${first ? '' : ' '}${chunk.id}`);
          first = false;
        }
        process.stdout.write('\n');
        if (model.lastFinishReason === 'contextFull') contextFullNotice(model);
        const t = model.lastTimings!;
        process.stderr.write(
          `prompt: ${t.promptTokens} tokens, ${t.promptTokensPerSecond.toFixed(1)} tok/s; ` +
            `generated: ${t.generatedTokens} tokens, ${t.tokensPerSecond.toFixed(1)} tok/s (${model.device === 'cpu' ? `${model.threads} threads` : 'cuda'}); seed ${seed}\n`,
        );
      } finally {
        await model.dispose();
      }
    });
  program
    .command('chat')
    .description('an interactive chat with streaming replies; /reset forgets the conversation, /exit (or end of input) quits')
    .option('-m, --model <ref>', MODEL_HELP)
    .option('-s, --system <text>', 'a system message')
    .option('-n, --max-tokens <n>', 'most tokens per reply; the context keeps room for them (default: 512, at most half the context)', intOption('--max-tokens', 1))
    .option('-t, --threads <n>', 'CPU threads (default: physical cores)', intOption('--threads', 1))
    .option('-d, --device <device>', "where the model runs: auto (CUDA when a device works), cpu or cuda", deviceOption, 'auto')
    .option('-c, --context-size <n>', 'KV cache positions (default: min(model context, 4096))', intOption('--context-size', 1))
    .option('--temperature <t>', "sampling temperature; 0 is greedy (default: the model's generation_config.json, else 0)", floatOption('--temperature'))
    .option('--seed <n>', 'random seed for sampling (default: a random one, printed with the speed and in --json, to replay a run)', intOption('--seed', 0))
    .option('--template <file>', 'a Jinja chat template file overriding the model\'s own')
    .option('--no-mmap', 'read the weights into memory instead of mapping the GGUF')
    .action(async (o) => {
      const template = o.template ? await readFile(o.template, 'utf8').catch((e) => { throw new FuselmError('E_IO', `${o.template}: ${e.message}`); }) : undefined;
      const model = await loadWithProgress(o.model, { threads: o.threads, device: o.device, contextSize: o.contextSize, useMmap: o.mmap });
      const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY });
      try {
        const maxTokens = o.maxTokens ?? Math.min(512, Math.floor(model.contextSize / 2));
        const chat = model.chat({ system: o.system, template, maxTokens, temperature: o.temperature, seed: o.seed ?? randomSeed(), contextShift: 'dropOldest' });
        const prompt = () => process.stdin.isTTY && process.stdout.write('> ');
        prompt();
        for await (const line of rl) {
          const text = line.trim();
          if (text === '/exit') break;
          if (text === '/reset') {
            chat.reset();
            process.stdout.write('(conversation reset)\n');
          } else if (text) {
            for await (const c of chat.stream(text, { signal: output })) process.stdout.write(c.text);
            process.stdout.write('\n');
          }
          prompt();
        }
      } finally {
        rl.close();
        await model.dispose();
      }
    });

  registerServe(program);
  registerLora(program);

  const bench = program.command('bench').description('speed: `bench e2e` for a model, `bench kernels` for every CPU op');
  bench
    .command('kernels')
    .description(
      'every op of the case table at TinyLlama/Llama-3-sized shapes: time, GB/s or GFLOP/s, and the share of the roofline measured in the same run ' +
        "(memory-bound cases: the bandwidth of the cache level, or main memory, that the op's bytes fit in, so cache-resident cases are held to the cache's rate; compute-bound ones: the run's best GEMM); progress on stderr",
    )
    .option('-t, --threads <n>', 'CPU threads (default: physical cores)', intOption('--threads', 1))
    .option('--filter <text>', 'only cases whose name contains this')
    .addOption(new Option('--device <device>', 'where the kernels run').choices(['cpu', 'cuda', 'cuda-emulated']).default('cpu'))
    .option('--json', 'print the report as JSON')
    .action(async (o) => {
      const progress = caseProgress('bench kernels');
      const r = await benchKernels({ threads: o.threads, filter: o.filter, device: o.device, onCase: progress.update }).finally(progress.stop);
      if (o.json) {
        process.stdout.write(JSON.stringify(r) + '\n');
        return;
      }
      const levels = r.levels.map((l) => `${l.level}${l.bytes ? ` (${l.bytes / 2 ** 10} KiB)` : ''} ${l.ceilingGBps.toFixed(1)} GB/s${l.ceilingGBps > l.copyGBps ? ` (a case; copy ${l.copyGBps.toFixed(1)})` : ''}`);
      const lines = [`${r.device}${r.threads ? `, ${r.threads} threads` : ''}; rooflines: ${levels.join(', ')}; best GEMM ${r.peakGflops.toFixed(1)} GFLOP/s`];
      for (const k of r.kernels) {
        const rate = k.gbps !== undefined ? `${k.gbps.toFixed(1)} GB/s` : `${k.gflops!.toFixed(1)} GFLOP/s`;
        const of = k.level !== undefined ? `${k.level}` : 'best GEMM';
        lines.push(`  ${k.op.padEnd(44)} ${(k.seconds * 1e6).toFixed(1).padStart(9)} us  ${rate.padStart(14)}  ${(k.rooflineShare * 100).toFixed(0).padStart(4)}% of ${of}`);
      }
      process.stdout.write(lines.join('\n') + '\n');
    });
  bench
    .command('e2e')
    .description('prefill and decode tokens per second of a model (or of a synthetic one at a published shape), medians after a warm-up')
    .option('-m, --model <path>', 'model file (GGUF)')
    .option('--shape <name>', `a synthetic model with random weights: ${Object.keys(SHAPES).join(', ')}`)
    .option('--dtype <type>', 'weight type of the synthetic model: f32, f16, bf16 or q8_0', 'q8_0')
    .option('-t, --threads <n>', 'CPU threads (default: physical cores)', intOption('--threads', 1))
    .option('-d, --device <device>', "where the model runs: auto (CUDA when a device works), cpu or cuda", deviceOption, 'auto')
    .option('-p, --prompt <n>', 'prompt tokens per run', intOption('--prompt', 1), 128)
    .option('-n, --gen <n>', 'generated tokens per run', intOption('--gen', 1), 64)
    .option('-r, --reps <n>', 'runs after the warm-up', intOption('--reps', 1), 3)
    .option('--json', 'print the result as JSON')
    .action(async (o) => {
      if (!o.model === !o.shape) throw new InvalidArgumentError('give either --model or --shape');
      let file = o.model as string;
      if (o.shape) {
        if (!SHAPES[o.shape]) throw new InvalidArgumentError(`--shape must be one of ${Object.keys(SHAPES).join(', ')}`);
        if (!['f32', 'f16', 'bf16', 'q8_0'].includes(o.dtype)) throw new InvalidArgumentError('--dtype must be f32, f16, bf16 or q8_0');
        file = await syntheticBenchModel(o.shape, o.dtype);
      }
      const r = await measureSpeed(file, { threads: o.threads, device: o.device, prompt: o.prompt, gen: o.gen, reps: o.reps });
      if (o.json) process.stdout.write(JSON.stringify({ model: file, threads: o.threads ?? null, prompt: o.prompt, gen: o.gen, reps: o.reps, ...r }) + '\n');
      else process.stdout.write(`${file} on ${r.device}: prefill ${r.prefillTokensPerSecond.toFixed(1)} tok/s (${o.prompt} tokens), decode ${r.decodeTokensPerSecond.toFixed(2)} tok/s (${o.gen} tokens), ${r.rssMB} MB resident\n`);
    });

  program
    .command('tokenize')
    .description('print the token ids and pieces of a text')
    .option('-m, --model <ref>', 'a model or tokenizer: GGUF (vocab-only too), tokenizer.json or model folder, or a model reference as run -m takes; default: the bundled stories260K.gguf')
    .argument('[text]', 'the text to tokenize (or --ids)')
    .option('--ids <ids>', 'token ids, comma-separated, to show as pieces and text instead')
    .option('--add-special', "add the model's BOS/EOS tokens")
    .option('--parse-special', 'recognize special tokens written in the text, like <s>')
    .option('--json', 'print {ids, pieces} as JSON (and the decoded text, with --ids)')
    .action(async (text: string | undefined, o) => {
      if ((text === undefined) === (o.ids === undefined)) throw new InvalidArgumentError('give a text or --ids, one of them');
      const tok = await loadTokenizer(o.model);
      const ids: number[] = o.ids ? parseIds(o.ids, tok.vocabSize) : tok.encode(text!, { addSpecial: !!o.addSpecial, parseSpecial: !!o.parseSpecial });
      const pieces = ids.map((id) => tok.tokenToPiece(id));
      const decoded = o.ids ? { text: tok.decode(ids) } : {};
      if (o.json) process.stdout.write(JSON.stringify({ ids, pieces, ...decoded }) + '\n');
      else process.stdout.write([...ids.map((id, i) => `${String(id).padStart(7)} ${JSON.stringify(pieces[i])}`), ...(o.ids ? [JSON.stringify(decoded.text)] : [])].join('\n') + '\n');
    });

  program
    .command('embed')
    .description('sentence embeddings of texts from an embedding model (BERT folder or bert GGUF): one JSON array per text, one per line')
    .requiredOption('-m, --model <ref>', 'the embedding model: a BERT folder or a bert GGUF, or a model reference as run -m takes')
    .argument('<texts...>', 'the texts to embed')
    .addOption(new Option('--pooling <how>', "how token states become one vector (default: the model's own, else mean)").choices(['mean', 'cls', 'last']))
    .option('--no-normalize', 'keep the vectors as pooled instead of scaling them to unit length')
    .option('-t, --threads <n>', 'CPU threads (default: physical cores)', intOption('--threads', 1))
    .option('-d, --device <device>', "where the model runs: auto (CUDA when a device works), cpu or cuda", deviceOption, 'auto')
    .option('--json', 'print {model, pooling, dim, embeddings} as one JSON object')
    .action(async (texts: string[], o) => {
      const model = await loadEmbeddingModel(o.model, { threads: o.threads, device: o.device });
      try {
        const pooling = o.pooling ?? model.pooling;
        const vectors = (await model.embed(texts, { pooling, normalize: o.normalize })).map((v) => Array.from(v));
        if (o.json) process.stdout.write(JSON.stringify({ model: o.model, pooling, dim: vectors[0].length, embeddings: vectors }) + '\n');
        else process.stdout.write(vectors.map((v) => JSON.stringify(v)).join('\n') + '\n');
      } finally {
        await model.dispose();
      }
    });

  program
    .command('inspect')
    .description("print a GGUF or safetensors file's metadata and tensor table")
    .argument('<file>', 'a GGUF or .safetensors file, or a model reference to one (hf:owner/repo/file.gguf, an https URL)')
    .option('--json', 'print {version, metadata, tensors} as JSON (arrays summarized)')
    .action(async (ref: string, o) => {
      const bar = downloadBar();
      const file = await resolveModelPath(ref, { onProgress: (p) => bar.update(p) }).finally(() => bar.stop());
      if (file.endsWith('.safetensors')) {
        const st = await readSafetensors(file);
        const tensors = [...st.tensors.values()].map((t) => ({ name: t.name, type: t.dtype, dims: t.shape, offset: t.offset, bytes: t.nbytes }));
        if (o.json) process.stdout.write(JSON.stringify({ file, format: 'safetensors', metadata: st.metadata, tensors }) + '\n');
        else
          process.stdout.write(
            [
              `${file}: safetensors, ${Object.keys(st.metadata).length} metadata keys, ${tensors.length} tensors`,
              ...Object.entries(st.metadata).map(([k, v]) => `  ${k} = ${JSON.stringify(v)}`),
              ...tensors.map((t) => `  ${t.name.padEnd(48)} ${t.type.padEnd(5)} [${t.dims.join(', ')}] ${t.bytes} bytes at ${t.offset}`),
            ].join('\n') + '\n',
          );
        return;
      }
      const f = await readGguf(file);
      const meta = Object.fromEntries([...f.metadata].map(([k, v]) => [k, summarize(v)]));
      const tensors = f.tensors.map((t) => ({ name: t.name, type: ggmlTypeName(t.type), dims: t.dims, offset: t.offset, bytes: t.nbytes }));
      if (o.json) {
        process.stdout.write(JSON.stringify({ file, version: f.version, alignment: f.alignment, metadata: meta, tensors }) + '\n');
        return;
      }
      const lines = [`${file}: GGUF v${f.version}, ${f.metadata.size} metadata keys, ${f.tensors.length} tensors`];
      for (const [k, v] of Object.entries(meta)) lines.push(`  ${k} = ${JSON.stringify(v)}`);
      for (const t of tensors) lines.push(`  ${t.name.padEnd(32)} ${t.type.padEnd(6)} [${t.dims.join(', ')}] ${t.bytes} bytes at ${t.offset}`);
      process.stdout.write(lines.join('\n') + '\n');
    });

  program
    .command('pull')
    .description(
      'download a model into the cache (see `ls`): hf:owner/repo/file.gguf[@revision] (every part of a split GGUF), ' +
        'hf:owner/repo[@revision] (a model folder: config, tokenizer and safetensors files) or an https URL; ' +
        'from $HF_ENDPOINT (default https://huggingface.co) with $HF_TOKEN for gated repositories; resumes an interrupted download',
    )
    .argument('<ref>', 'the model reference')
    .option('--json', 'print {ref, path, downloaded} as JSON')
    .action(async (ref: string, o) => {
      const bar = downloadBar();
      const ac = new AbortController();
      const onSigint = () => ac.abort();
      process.once('SIGINT', onSigint);
      let r;
      try {
        r = await pullModel(ref, { onProgress: (p) => bar.update(p), signal: ac.signal });
      } finally {
        bar.stop();
        process.off('SIGINT', onSigint);
      }
      if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
      else process.stdout.write(`${r.ref}: ${r.downloaded.length ? `${r.downloaded.length} file(s) downloaded` : 'already in the cache'}, ${r.path}\n`);
    });
  program
    .command('ls')
    .description(`list the models in the cache (\$FUSELM_CACHE, else \$XDG_CACHE_HOME/fuselm or ~/.cache/fuselm) with their sizes`)
    .option('--json', 'print [{ref, path, files, bytes}] as JSON')
    .action(async (o) => {
      const models = await listCache();
      if (o.json) process.stdout.write(JSON.stringify(models) + '\n');
      else if (models.length === 0) process.stdout.write(`no models in ${cacheDir()}\n`);
      else process.stdout.write(models.map((m) => `${formatBytes(m.bytes).padStart(9)}  ${m.ref}`).join('\n') + '\n');
    });
  program
    .command('rm')
    .description('remove models from the cache: hf:owner/repo (all its revisions; @revision one), hf:owner/repo/file.gguf[@revision], or a URL')
    .argument('<ref...>', 'model references as `ls` prints them')
    .action(async (refs: string[]) => {
      for (const ref of refs) for (const p of await removeCached(ref)) process.stdout.write(`removed ${p}\n`);
    });

  program
    .command('doctor')
    .description('which backends loaded (and why not), and a check of every kernel against its reference')
    .option('--json', 'print the report as JSON')
    .action(async (o) => {
      const info = devices();
      const kernels = await checkKernels();
      const ok = kernels.every((k) => k.ok);
      if (o.json) process.stdout.write(JSON.stringify({ ok, devices: info, kernels }) + '\n');
      else {
        const lines = [
          `cpu: ${info.cpu.physicalCores} physical cores, kernels ${info.cpu.kernels} (${info.cpu.features.join(' ')})`,
          `cuda: ${info.cuda.devices.length ? info.cuda.devices.map((d) => `${d.name} (sm ${d.computeCapability}, ${(d.totalMemory / 2 ** 30).toFixed(1)} GiB)`).join(', ') : `none: ${info.cuda.reason}`}`,
          ...kernels.map((k) => `  ${k.ok ? 'ok  ' : 'FAIL'} ${k.op.padEnd(40)} ${k.impl} rel err ${k.relError.toExponential(2)} (tolerance ${k.tolerance})`),
        ];
        process.stdout.write(lines.join('\n') + '\n');
      }
      if (!ok) throw new FuselmError('E_NATIVE', 'a kernel disagrees with its reference on this machine');
    });
  const typeOption = (what: string) =>
    new Option('--type <type>', `${what}: ${QUANTIZE_TYPES.join(', ')} (llama.cpp's file types, in any case; the _m ones its tensor mixtures)`).argParser(quantizeTypeOption);
  const writeModel = async (input: string, output: string, type: QuantizeType, o: { json?: boolean; threads?: number }, label: string) => {
    if (path.resolve(input) === path.resolve(output)) throw new FuselmError('E_INVALID_ARG', `the output would overwrite the input ${input}`);
    const bar = progressBar(label);
    // written beside the target and renamed at the end, so a failed run leaves no half file
    const tmp = `${output}.part`;
    let r;
    try {
      r = await quantizeModel(input, tmp, type, { threads: o.threads, onTensor: (done, total, name) => bar.update(done, total, name) });
      await rename(tmp, output);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    } finally {
      bar.stop();
    }
    if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
    else {
      const types = Object.entries(r.types).map(([t, n]) => `${n} ${t}`).join(', ');
      process.stdout.write(`${output}: ${type} (${types}); ${r.converted} of ${r.tensors} tensors converted, ${(r.bytesIn / 1e6).toFixed(1)} MB -> ${(r.bytesOut / 1e6).toFixed(1)} MB\n`);
    }
  };
  program
    .command('quantize')
    .description(
      "write a GGUF in one of llama.cpp's file types, from a GGUF (F32, F16, BF16 or quantized) or a Hugging Face " +
        'model folder; metadata and tokenizer kept, 1-D tensors (norms) kept in F32, the k-quant mixtures chosen ' +
        "per tensor as llama-quantize chooses them (output and some attn_v / ffn_down layers in Q6_K)",
    )
    .argument('<input>', 'a GGUF file or a Hugging Face model folder')
    .argument('<output>', 'the GGUF file to write')
    .addOption(typeOption('the file type').default('q8_0'))
    .option('-t, --threads <n>', 'CPU threads for the block formats (default: all cores)', intOption('--threads', 1))
    .option('--json', 'print the report as JSON')
    .action(async (input: string, output: string, o) => writeModel(input, output, o.type, o, 'quantize'));
  program
    .command('convert')
    .description(
      "convert a Hugging Face decoder folder (llama, mistral, qwen2/3, phi3, gemma 1/2/3; F32, F16 or BF16 safetensors; " +
        "a SentencePiece tokenizer.model or a byte-level BPE tokenizer.json) to a GGUF laid out as llama.cpp's convert_hf_to_gguf.py writes it",
    )
    .argument('<folder>', 'the Hugging Face model folder')
    .argument('<output>', 'the GGUF file to write')
    .addOption(typeOption('the file type').default('f16'))
    .option('-t, --threads <n>', 'CPU threads for the block formats (default: all cores)', intOption('--threads', 1))
    .option('--json', 'print the report as JSON')
    .action(async (folder: string, output: string, o) => {
      if (!(await stat(folder).catch(() => undefined))?.isDirectory()) throw new FuselmError('E_INVALID_ARG', `${folder} is not a folder (convert reads Hugging Face model folders; quantize reads GGUFs)`);
      await writeModel(folder, output, o.type, o, 'convert');
    });

  program
    .command('perplexity')
    .description(
      "perplexity of a model over a text, as llama.cpp's perplexity tool computes it: the text is " +
        'tokenized with BOS and cut into chunks of --ctx tokens (the remainder dropped); each chunk is ' +
        'evaluated from an empty cache with its first token set to BOS, and only its second half is scored ' +
        '(every scored token sees at least ctx/2 tokens of context); PPL = exp(mean negative log-likelihood)',
    )
    .requiredOption('-m, --model <path>', 'model file (GGUF)')
    .requiredOption('-f, --file <path>', 'the text file')
    .option('--ctx <n>', 'tokens per chunk', intOption('--ctx', 4), 512)
    .option('--batch <n>', 'tokens per forward call (default: ctx)', intOption('--batch', 1))
    .option('-t, --threads <n>', 'CPU threads (default: physical cores)', intOption('--threads', 1))
    .option('--json', 'print the result as JSON')
    .action(async (o) => {
      let text: string;
      try {
        text = await readFile(o.file, 'utf8');
      } catch (e) {
        throw new FuselmError('E_IO', `${o.file}: ${(e as Error).message}`);
      }
      const model = await loadWithProgress(o.model, { threads: o.threads, contextSize: o.ctx, batchSize: o.batch ?? o.ctx });
      const bar = progressBar('perplexity');
      try {
        const r = await perplexity(model, text, { ctx: o.ctx, onChunk: (c, n, ppl) => bar.update(c, n, `ppl ${ppl.toFixed(4)}`) });
        bar.stop();
        if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
        else process.stdout.write(`${r.running.map((p, i) => `[${i + 1}]${p.toFixed(4)}`).join(',')}\nperplexity: ${r.perplexity.toFixed(4)} over ${r.chunks} chunks of ${o.ctx} tokens (${r.scoredTokens} scored)\n`);
      } finally {
        bar.stop();
        await model.dispose();
      }
    });
  usageErrorsInOneLine(program);
  return program;
}

/** A usage error prints one line and where the help is, not the whole help; on every subcommand. */
function usageErrorsInOneLine(cmd: Command): void {
  cmd
    .showHelpAfterError(`see '${commandPath(cmd)} --help'`)
    .configureOutput({ outputError: (text, write) => write(`fuselm: ${text.replace(/^error: /, '')}`) });
  for (const sub of cmd.commands) usageErrorsInOneLine(sub);
}

/** 'fuselm bench e2e' for bench's e2e command. */
function commandPath(cmd: Command): string {
  return cmd.parent ? `${commandPath(cmd.parent)} ${cmd.name()}` : cmd.name();
}

/** package.json's version (this file is lib/cli/main.ts, or dist/cli/main.js once built). */
function packageVersion(): string {
  return JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version;
}

/** Progress through a list on stderr: a bar on a terminal, else one line per item (for logs). */
function caseProgress(label: string): { update: (done: number, total: number, name: string) => void; stop: () => void } {
  if (process.stderr.isTTY) {
    const bar = progressBar(label);
    return { update: (done, total, name) => bar.update(done, total, name), stop: () => bar.stop() };
  }
  const update = (done: number, total: number, name: string) => {
    if (done < total) process.stderr.write(`${label}: ${done + 1}/${total} ${name}\n`);
  };
  return { update, stop: () => {} };
}

/** The stderr line for a generation that ended because the context (the KV cache) was full. */
function contextFullNotice(model: Model): void {
  process.stderr.write(`fuselm: the context is full (${model.contextSize} positions): generation stopped there; --context-size sets it\n`);
}

/** loadModel (of a path or model reference, the bundled model when none) with progress bars on stderr (when it is a terminal). */
async function loadWithProgress(ref: string | undefined, opts: LoadModelOptions): Promise<Model> {
  const download = downloadBar();
  const bar = progressBar('loading');
  try {
    return await loadModel(ref, { ...opts, onDownload: (p) => download.update(p), onProgress: (done, total) => (download.stop(), bar.update(done, total)) });
  } finally {
    download.stop();
    bar.stop();
  }
}

/** Metadata values for display: long arrays cut to their first entries and length. */
function summarize(v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (ArrayBuffer.isView(v) || Array.isArray(v)) {
    const a = Array.from(v as ArrayLike<unknown>);
    const head = a.slice(0, 8).map(summarize);
    return a.length > 8 ? { length: a.length, first: head } : head;
  }
  return v;
}

export async function main(argv: string[]): Promise<number> {
  // a closed stdout is an EPIPE 'error' event, which would otherwise end the process with a stack trace
  const stdoutClosed = new AbortController();
  const onStdoutError = (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    stdoutClosed.abort();
  };
  process.stdout.on('error', onStdoutError);
  const program = buildCli(stdoutClosed.signal);
  let running = program;
  program.hook('preAction', (_, action) => {
    running = action;
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (stdoutClosed.signal.aborted) return 0; // the reader has what it wanted
    const err = e as { code?: string; exitCode?: number };
    if (e instanceof InvalidArgumentError) {
      // thrown by an action (commander prints only the errors of its own parsing)
      process.stderr.write(`fuselm: ${e.message}\nsee '${commandPath(running)} --help'\n`);
      return 2;
    }
    if (typeof err.code === 'string' && err.code.startsWith('commander.')) {
      // help and version are successes; commander has already printed the usage error
      return err.code === 'commander.helpDisplayed' || err.code === 'commander.version' ? 0 : 2;
    }
    if (e instanceof FuselmError) {
      process.stderr.write(`fuselm: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
