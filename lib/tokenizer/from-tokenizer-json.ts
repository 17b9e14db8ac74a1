/**
 * Builds a Tokenizer from a Hugging Face tokenizer.json (and optionally tokenizer_config.json):
 * models BPE (byte-level, or character-level with byte_fallback like Llama-2 / Mistral) and
 * WordPiece; the normalizers, pre-tokenizers, post-processors and decoders those files use.
 * Anything else is refused with E_UNSUPPORTED naming the component.
 */
import { FuselmError } from '../errors.js';
import { BpeModel } from './bpe.js';
import { findEndTokens } from './eog.js';
import {
  bertNormalizer,
  lowercase,
  nfc,
  nfd,
  nfkc,
  nfkd,
  prependNormalizer,
  replaceNormalizer,
  sequenceNormalizer,
  stripAccents,
  stripNormalizer,
  type Normalizer,
} from './normalize.js';
import { PipelineTokenizer, type AddedToken, type DecoderStep, type Template, type WordModel } from './pipeline.js';
import {
  bertPreTokenizer,
  charDelimiterSplit,
  compileOnig,
  digitsPreTokenizer,
  GPT2_PATTERN,
  metaspacePreTokenizer,
  punctuationPreTokenizer,
  regexSplit,
  sequence,
  whitespacePreTokenizer,
  whitespaceSplit,
  type PreTokenizer,
  type SplitBehavior,
} from './pretokenize.js';
import { WordPieceModel } from './wordpiece.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Json = any;

function unsupported(where: string, what: string): FuselmError {
  return new FuselmError('E_UNSUPPORTED', `${where}: ${what} is not supported`);
}

function stringPattern(p: Json, where: string): { literal?: string; regex?: RegExp } {
  if (p && typeof p.String === 'string') return { literal: p.String };
  if (p && typeof p.Regex === 'string') return { regex: compileOnig(p.Regex) };
  throw new FuselmError('E_FORMAT', `${where}: pattern must be {String} or {Regex}`);
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\\/-]/g, '\\$&');
}

function buildNormalizer(n: Json, where: string): Normalizer | undefined {
  if (n === null || n === undefined) return undefined;
  switch (n.type) {
    case 'Sequence': {
      const steps = (n.normalizers as Json[]).map((x, i) => buildNormalizer(x, `${where}.normalizers[${i}]`)).filter((x): x is Normalizer => !!x);
      return steps.length === 0 ? undefined : sequenceNormalizer(steps);
    }
    case 'NFC': return nfc;
    case 'NFD': return nfd;
    case 'NFKC': return nfkc;
    case 'NFKD': return nfkd;
    case 'Lowercase': return lowercase;
    case 'StripAccents': return stripAccents;
    case 'Strip': return stripNormalizer(n.strip_left ?? true, n.strip_right ?? true);
    case 'Prepend': return prependNormalizer(n.prepend);
    case 'Replace': {
      const p = stringPattern(n.pattern, where);
      return replaceNormalizer(p.literal ?? p.regex!, n.content);
    }
    case 'BertNormalizer':
      return bertNormalizer({
        cleanText: n.clean_text,
        handleChineseChars: n.handle_chinese_chars,
        stripAccents: n.strip_accents,
        lowercase: n.lowercase,
      });
    default:
      throw unsupported(where, `normalizer "${n.type}"`);
  }
}

const BEHAVIORS: Record<string, SplitBehavior> = {
  Removed: 'removed',
  Isolated: 'isolated',
  MergedWithPrevious: 'merged_with_previous',
  MergedWithNext: 'merged_with_next',
  Contiguous: 'contiguous',
};

interface PreInfo {
  pre?: PreTokenizer;
  byteLevel: boolean;
}

function buildPreTokenizer(p: Json, where: string, info: PreInfo): PreTokenizer | undefined {
  if (p === null || p === undefined) return undefined;
  switch (p.type) {
    case 'Sequence': {
      const steps = (p.pretokenizers as Json[]).map((x, i) => buildPreTokenizer(x, `${where}.pretokenizers[${i}]`, info)).filter((x): x is PreTokenizer => !!x);
      return steps.length === 0 ? undefined : sequence(steps);
    }
    case 'ByteLevel': {
      info.byteLevel = true;
      const steps: PreTokenizer[] = [];
      if (p.add_prefix_space) steps.push((t, out) => out.push(t.startsWith(' ') ? t : ' ' + t));
      if (p.use_regex ?? true) steps.push(regexSplit(new RegExp(GPT2_PATTERN, 'gu'), 'isolated', false));
      return steps.length === 0 ? undefined : sequence(steps);
    }
    case 'Split': {
      const pat = stringPattern(p.pattern, where);
      const re = pat.regex ?? new RegExp(escapeRegex(pat.literal!), 'gu');
      const behavior = BEHAVIORS[p.behavior];
      if (!behavior) throw unsupported(where, `Split behavior "${p.behavior}"`);
      return regexSplit(re, behavior, p.invert ?? false);
    }
    case 'BertPreTokenizer': return bertPreTokenizer;
    case 'Whitespace': return whitespacePreTokenizer;
    case 'WhitespaceSplit': return whitespaceSplit;
    case 'Digits': return digitsPreTokenizer(p.individual_digits ?? false);
    case 'Punctuation': return punctuationPreTokenizer(BEHAVIORS[p.behavior] ?? 'isolated');
    case 'CharDelimiterSplit': return charDelimiterSplit(p.delimiter);
    case 'Metaspace': {
      const scheme = p.prepend_scheme ?? (p.add_prefix_space === false ? 'never' : 'always');
      return metaspacePreTokenizer(p.replacement ?? '▁', scheme, p.split ?? true);
    }
    default:
      throw unsupported(where, `pre-tokenizer "${p.type}"`);
  }
}

function buildDecoder(d: Json, where: string, out: DecoderStep[]): void {
  if (d === null || d === undefined) return;
  switch (d.type) {
    case 'Sequence':
      (d.decoders as Json[]).forEach((x, i) => buildDecoder(x, `${where}.decoders[${i}]`, out));
      return;
    case 'ByteLevel': out.push({ type: 'byteLevel' }); return;
    case 'ByteFallback': out.push({ type: 'byteFallback' }); return;
    case 'Fuse': out.push({ type: 'fuse' }); return;
    case 'Strip': out.push({ type: 'strip', content: d.content, start: d.start ?? 0, stop: d.stop ?? 0 }); return;
    case 'Replace': {
      if (!d.pattern || typeof d.pattern.String !== 'string') throw unsupported(where, 'a Replace decoder with a regex');
      out.push({ type: 'replace', pattern: d.pattern.String, content: d.content });
      return;
    }
    case 'Metaspace': {
      const scheme = d.prepend_scheme ?? (d.add_prefix_space === false ? 'never' : 'always');
      out.push({ type: 'metaspace', replacement: d.replacement ?? '▁', prependFirst: scheme !== 'never' });
      return;
    }
    case 'WordPiece': out.push({ type: 'wordpiece', prefix: d.prefix ?? '##', cleanup: d.cleanup ?? true }); return;
    case 'BPEDecoder': out.push({ type: 'bpeSuffix', suffix: d.suffix ?? '</w>' }); return;
    default:
      throw unsupported(where, `decoder "${d.type}"`);
  }
}

function buildTemplate(p: Json, where: string, idOf: (t: string) => number | undefined): Template | undefined {
  if (p === null || p === undefined) return undefined;
  switch (p.type) {
    case 'ByteLevel':
      return undefined;
    case 'Sequence': {
      let t: Template | undefined;
      for (const [i, x] of (p.processors as Json[]).entries()) t = buildTemplate(x, `${where}.processors[${i}]`, idOf) ?? t;
      return t;
    }
    case 'TemplateProcessing': {
      const t: Template = [];
      for (const item of p.single as Json[]) {
        if (item.Sequence) {
          t.push(null);
        } else if (item.SpecialToken) {
          const sp = p.special_tokens?.[item.SpecialToken.id];
          const ids: number[] | undefined = sp?.ids ?? (idOf(item.SpecialToken.id) !== undefined ? [idOf(item.SpecialToken.id)!] : undefined);
          if (!ids) throw new FuselmError('E_FORMAT', `${where}: special token "${item.SpecialToken.id}" has no ids`);
          t.push(ids);
        }
      }
      if (!t.includes(null)) t.push(null);
      return t;
    }
    case 'BertProcessing':
    case 'RobertaProcessing':
      return [[p.cls[1]], null, [p.sep[1]]];
    default:
      throw unsupported(where, `post-processor "${p.type}"`);
  }
}

function buildModel(m: Json, vocab: Map<string, number>, info: PreInfo): WordModel {
  const where = 'tokenizer.json model';
  const unkId = (name: string | null | undefined) => (name == null ? undefined : vocab.get(name));
  switch (m.type) {
    case 'BPE': {
      const merges: Array<[string, string]> = (m.merges as Json[]).map((x, i) => {
        if (Array.isArray(x)) return [x[0], x[1]];
        if (typeof x === 'string') {
          const sp = x.indexOf(' ', 1);
          if (sp < 0) throw new FuselmError('E_FORMAT', `${where}: merge ${i} ${JSON.stringify(x)} has no space`);
          return [x.slice(0, sp), x.slice(sp + 1)];
        }
        throw new FuselmError('E_FORMAT', `${where}: merge ${i} is neither a string nor a pair`);
      });
      if (m.dropout) throw unsupported(where, 'BPE dropout');
      return new BpeModel({
        vocab,
        merges,
        byteLevel: info.byteLevel,
        ignoreMerges: m.ignore_merges ?? false,
        byteFallback: m.byte_fallback ?? false,
        unk: unkId(m.unk_token),
        fuseUnk: m.fuse_unk ?? false,
        continuingSubwordPrefix: m.continuing_subword_prefix ?? '',
        endOfWordSuffix: m.end_of_word_suffix ?? '',
      });
    }
    case 'WordPiece': {
      const unk = unkId(m.unk_token ?? '[UNK]');
      if (unk === undefined) throw new FuselmError('E_FORMAT', `${where}: unk_token ${JSON.stringify(m.unk_token)} is not in the vocab`);
      return new WordPieceModel({ vocab, unk, continuingSubwordPrefix: m.continuing_subword_prefix ?? '##', maxInputCharsPerWord: m.max_input_chars_per_word ?? 100 });
    }
    default:
      throw unsupported(where, `model type "${m.type}"`);
  }
}

/** A token named in tokenizer_config.json: a string or an AddedToken-like {content}. */
function configToken(v: Json): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v.content === 'string') return v.content;
  return undefined;
}

/**
 * tokenizer_config.json's chat_template: a string, or a list of named templates ({name,
 * template}) of which transformers uses "default" (undefined when the list has none).
 */
function configChatTemplate(v: Json): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (Array.isArray(v) && v.every((t) => t && typeof t.name === 'string' && typeof t.template === 'string'))
    return v.find((t) => t.name === 'default')?.template;
  throw new FuselmError('E_FORMAT', 'tokenizer_config.json: chat_template must be a string or a list of {name, template}');
}

/** What a model folder adds to tokenizer.json and tokenizer_config.json. */
export interface TokenizerFolderExtras {
  /**
   * generation_config.json's eos_token_id ones: more ids that end generation (those past the
   * vocabulary, which it cannot produce, are left out).
   */
  generationEos?: number[];
  /** chat_template.jinja, which transformers prefers to tokenizer_config.json's chat_template. */
  chatTemplate?: string;
}

/**
 * Builds the tokenizer from parsed tokenizer.json (and tokenizer_config.json) objects, and what
 * a model folder adds (generation_config.json's eos ids, chat_template.jinja).
 */
export function tokenizerFromJson(json: Json, config?: Json, extras: TokenizerFolderExtras = {}): PipelineTokenizer {
  if (!json || typeof json !== 'object' || !json.model) throw new FuselmError('E_FORMAT', 'tokenizer.json: no "model"');
  const m = json.model;
  const vocab = new Map<string, number>();
  if (Array.isArray(m.vocab)) {
    // Unigram-style [piece, score] lists are not a BPE/WordPiece vocab.
    throw unsupported('tokenizer.json model', `model type "${m.type}" with a list vocab`);
  }
  for (const [k, v] of Object.entries(m.vocab ?? {})) vocab.set(k, v as number);

  const info: PreInfo = { byteLevel: false };
  const normalizer = buildNormalizer(json.normalizer, 'tokenizer.json normalizer');
  const preTokenizer = buildPreTokenizer(json.pre_tokenizer, 'tokenizer.json pre_tokenizer', info);
  const model = buildModel(m, vocab, info);

  const added: AddedToken[] = ((json.added_tokens ?? []) as Json[]).map((t) => ({
    id: t.id,
    content: t.content,
    special: !!t.special,
    lstrip: !!t.lstrip,
    rstrip: !!t.rstrip,
    singleWord: !!t.single_word,
    normalized: t.normalized ?? !t.special,
  }));

  let size = 0;
  for (const id of vocab.values()) if (id + 1 > size) size = id + 1;
  for (const t of added) if (t.id + 1 > size) size = t.id + 1;
  const tokens: (string | undefined)[] = new Array(size);
  for (const [k, id] of vocab) tokens[id] = k;
  for (const t of added) tokens[t.id] = t.content;
  const idOf = (t: string | undefined) => {
    if (t === undefined) return undefined;
    const a = added.find((x) => x.content === t);
    return a ? a.id : vocab.get(t);
  };

  const decoder: DecoderStep[] = [];
  buildDecoder(json.decoder, 'tokenizer.json decoder', decoder);
  const template = buildTemplate(json.post_processor, 'tokenizer.json post_processor', idOf);

  const cfg = config ?? {};
  let bos = idOf(configToken(cfg.bos_token));
  let eos = idOf(configToken(cfg.eos_token));
  if (template) {
    const a = template.indexOf(null);
    if (bos === undefined) bos = template.slice(0, a).find((x) => x && x.length > 0)?.[0];
    if (eos === undefined) eos = template.slice(a + 1).find((x) => x && x.length > 0)?.[0];
  }
  const { eot, eog } = findEndTokens(tokens, { eos: [eos, ...(extras.generationEos ?? []).filter((id) => id < tokens.length)] });

  // Without a template, tokenizer_config's add_bos_token / add_eos_token say what addSpecial adds.
  return new PipelineTokenizer({
    tokens,
    model,
    normalizer,
    preTokenizer,
    added,
    template: template && template.some((x) => x && x.length > 0) ? template : undefined,
    decoder,
    bos,
    eos,
    eot,
    unk: idOf(configToken(cfg.unk_token)) ?? (m.unk_token != null ? vocab.get(m.unk_token) : undefined),
    pad: idOf(configToken(cfg.pad_token)),
    eog,
    addBos: cfg.add_bos_token === true,
    addEos: cfg.add_eos_token === true,
    chatTemplate: extras.chatTemplate ?? configChatTemplate(cfg.chat_template),
  });
}
