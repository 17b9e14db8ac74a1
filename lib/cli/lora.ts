/** `fuselm lora merge`: an adapter folded into a base model's weights (lib/tools/lora-merge.ts). */
import { type Command, InvalidArgumentError } from 'commander';
import { mergeLora } from '../tools/lora-merge.js';

export function registerLora(program: Command): void {
  const lora = program.command('lora').description('LoRA adapters (PEFT folders, GGUF adapters)');
  lora
    .command('merge')
    .description('write BASE with ADAPTER merged into its weights (W + scale · alpha/r · B·A) as a GGUF llama.cpp loads')
    .argument('<base>', 'the base model: a GGUF file or a Hugging Face folder')
    .argument('<adapter>', 'a PEFT adapter folder or a GGUF adapter')
    .argument('<output>', 'the GGUF file to write')
    .option('--scale <s>', "the adapter's weight (default 1)", (v: string) => {
      const n = Number(v);
      if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('--scale must be a number');
      return n;
    })
    .option('--type <type>', "the merged projections' type: f32, f16, q8_0 or another block format (default: as the base stores each)")
    .action(async (base: string, adapter: string, output: string, o: { scale?: number; type?: string }) => {
      const r = await mergeLora(base, adapter, output, { scale: o.scale, type: o.type });
      process.stdout.write(`${output}: ${r.merged} of ${r.tensors} tensors merged\n`);
    });
}
