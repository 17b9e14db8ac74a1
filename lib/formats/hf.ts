/**
 * Hugging Face model folders: config.json (mapped onto ModelConfig by configFromHf in
 * model/config.ts) and generation_config.json (the model's generation defaults) as written; the
 * safetensors weights are read by safetensors.ts. A missing or malformed file is E_IO or
 * E_FORMAT naming it.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { FuselmError } from '../errors.js';
import { readJsonFile } from './files.js';

/** A parsed JSON object. */
export type JsonObject = Record<string, unknown>;

/** generation_config.json as Hugging Face writes it (the keys fuselm's sampler can use, and the rest). */
export interface GenerationConfig {
  bos_token_id?: number | number[];
  eos_token_id?: number | number[];
  pad_token_id?: number;
  do_sample?: boolean;
  temperature?: number;
  top_k?: number;
  top_p?: number;
  min_p?: number;
  typical_p?: number;
  repetition_penalty?: number;
  max_new_tokens?: number;
  max_length?: number;
  [key: string]: unknown;
}

export async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** false only when the file is not there (any other failure is left for the read to report). */
function mayExist(file: string): Promise<boolean> {
  return stat(file).then(() => true, (e) => (e as NodeJS.ErrnoException).code !== 'ENOENT');
}

async function readJsonObject(file: string, optional: boolean): Promise<JsonObject | undefined> {
  if (optional && !(await mayExist(file))) return undefined;
  const json = await readJsonFile(file, path.basename(file));
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new FuselmError('E_FORMAT', `${file}: not a JSON object`);
  return json as JsonObject;
}

export interface HfFolder {
  dir: string;
  /** config.json's path (for messages) and contents, as written. */
  configPath: string;
  rawConfig: JsonObject;
  /** generation_config.json, or {} when the folder has none. */
  generationConfig: GenerationConfig;
}

/** Reads config.json and generation_config.json of a Hugging Face model folder. */
export async function readHfFolder(dir: string): Promise<HfFolder> {
  const cfgPath = path.join(dir, 'config.json');
  if (!(await mayExist(cfgPath)))
    throw new FuselmError('E_FORMAT', `${dir}: not a GGUF file or model folder (a Hugging Face model folder holds config.json; this one has none)`);
  const rawConfig = (await readJsonObject(cfgPath, false))!;
  const generationConfig = ((await readJsonObject(path.join(dir, 'generation_config.json'), true)) ?? {}) as GenerationConfig;
  return { dir, configPath: cfgPath, rawConfig, generationConfig };
}
