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
import { PrecompiledCharsmap } from './precompiled-charsmap.js';
import { UnigramModel } from './unigram.js';
import { WordPieceModel } from './wordpiece.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Json = any;

function unsupported(where: string, what: string): FuselmError {
  return new FuselmError('E_UNSUPPORTED', `${where}: ${what} is not supported`);
}

/**
 * Schema checks of the file's values: a wrong type is an E_FORMAT naming the field and the type
 * found (never the value: the file may be anything, and its contents are not echoed).
 */
function malformed(where: string, what: string): FuselmError {
  return new FuselmError('E_FORMAT', `${where}: ${what}`);
}
const kind = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v);
const hasOwn = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);
function objectAt(v: unknown, where: string): Json {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw malformed(where, `must be an object, got ${kind(v)}`);
  return v;
}
function arrayAt(v: unknown, where: string): Json[] {
  if (!Array.isArray(v)) throw malformed(where, `must be an array, got ${kind(v)}`);
  return v;
}
function stringAt(v: unknown, where: string, fallback?: string, nonEmpty = false): string {
  if ((v === undefined || v === null) && fallback !== undefined) return fallback;
  if (typeof v !== 'string') throw malformed(where, `must be a string, got ${kind(v)}`);
  if (nonEmpty && v.length === 0) throw malformed(where, 'must not be empty');
  return v;
}
function boolAt(v: unknown, where: string, fallback: boolean): boolean {
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw malformed(where, `must be a boolean, got ${kind(v)}`);
  return v;
}
/** The largest token id a tokenizer.json may use (a few million: real vocabularies have under 300k). */
export const MAX_TOKEN_ID = (1 << 22) - 1;
function idAt(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_TOKEN_ID)
    throw malformed(where, `must be a token id (an integer 0..${MAX_TOKEN_ID}), got ${typeof v === 'number' ? v : kind(v)}`);
  return v;
}
function nonNegIntAt(v: unknown, where: string, fallback: number): number {
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw malformed(where, `must be an integer >= 0, got ${typeof v === 'number' ? v : kind(v)}`);
  return v;
}
/** A component's `type`. */
function typeAt(v: Json, where: string): string {
  return stringAt(objectAt(v, where).type, `${where}.type`);
}

function stringPattern(p: Json, where: string): { literal?: string; regex?: RegExp } {
  if (p && typeof p.String === 'string') return { literal: p.String };
  if (p && typeof p.Regex === 'string') return { regex: compileOnig(p.Regex, `${where}.pattern.Regex`) };
  throw new FuselmError('E_FORMAT', `${where}: pattern must be {String} or {Regex}`);
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\\/-]/g, '\\$&');
}

function buildNormalizer(n: Json, where: string): Normalizer | undefined {
  if (n === null || n === undefined) return undefined;
  switch (typeAt(n, where)) {
    case 'Sequence': {
      const steps = arrayAt(n.normalizers, `${where}.normalizers`).map((x, i) => buildNormalizer(x, `${where}.normalizers[${i}]`)).filter((x): x is Normalizer => !!x);
      return steps.length === 0 ? undefined : sequenceNormalizer(steps);
    }
    case 'NFC': return nfc;
    case 'NFD': return nfd;
    case 'NFKC': return nfkc;
    case 'NFKD': return nfkd;
    case 'Lowercase': return lowercase;
    case 'StripAccents': return stripAccents;
    case 'Strip': return stripNormalizer(boolAt(n.strip_left, `${where}.strip_left`, true), boolAt(n.strip_right, `${where}.strip_right`, true));
    case 'Prepend': return prependNormalizer(stringAt(n.prepend, `${where}.prepend`));
    case 'Replace': {
      const p = stringPattern(n.pattern, where);
      if (p.literal === '') throw malformed(`${where}.pattern.String`, 'must not be empty');
      return replaceNormalizer(p.literal ?? p.regex!, stringAt(n.content, `${where}.content`));
    }
    case 'Precompiled': {
      // SentencePiece's charsmap, applied grapheme by grapheme as Hugging Face does
      const b64 = stringAt(n.precompiled_charsmap, `${where}.precompiled_charsmap`);
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) throw malformed(`${where}.precompiled_charsmap`, 'is not base64');
      const cm = PrecompiledCharsmap.parse(Buffer.from(b64, 'base64'), `${where}.precompiled_charsmap`);
      return (s) => cm.normalizeGraphemes(s);
    }
    case 'BertNormalizer':
      return bertNormalizer({
        cleanText: boolAt(n.clean_text, `${where}.clean_text`, true),
        handleChineseChars: boolAt(n.handle_chinese_chars, `${where}.handle_chinese_chars`, true),
        stripAccents: n.strip_accents === null || n.strip_accents === undefined ? n.strip_accents : boolAt(n.strip_accents, `${where}.strip_accents`, false),
        lowercase: boolAt(n.lowercase, `${where}.lowercase`, true),
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

function behaviorAt(v: unknown, where: string): SplitBehavior {
  const name = stringAt(v, where);
  if (!hasOwn(BEHAVIORS, name)) throw unsupported(where, `Split behavior ${JSON.stringify(name.slice(0, 40))}`);
  return BEHAVIORS[name];
}

/**
 * Metaspace's replacement (one character, as Hugging Face's is a char: an empty one would never
 * advance the split) and prepend scheme, for the pre-tokenizer and the decoder.
 */
function metaspaceAt(p: Json, where: string): { replacement: string; scheme: 'always' | 'first' | 'never' } {
  const replacement = stringAt(p.replacement, `${where}.replacement`, '▁');
  if ([...replacement].length !== 1) throw malformed(`${where}.replacement`, `must be one character, got ${replacement.length} UTF-16 units`);
  const addPrefix = boolAt(p.add_prefix_space, `${where}.add_prefix_space`, true);
  const scheme = stringAt(p.prepend_scheme, `${where}.prepend_scheme`, addPrefix ? 'always' : 'never');
  if (scheme !== 'always' && scheme !== 'first' && scheme !== 'never') throw unsupported(`${where}.prepend_scheme`, `prepend scheme ${JSON.stringify(scheme.slice(0, 40))}`);
  return { replacement, scheme };
}

function buildPreTokenizer(p: Json, where: string, info: PreInfo): PreTokenizer | undefined {
  if (p === null || p === undefined) return undefined;
  switch (typeAt(p, where)) {
    case 'Sequence': {
      const steps = arrayAt(p.pretokenizers, `${where}.pretokenizers`).map((x, i) => buildPreTokenizer(x, `${where}.pretokenizers[${i}]`, info)).filter((x): x is PreTokenizer => !!x);
      return steps.length === 0 ? undefined : sequence(steps);
    }
    case 'ByteLevel': {
      info.byteLevel = true;
      const steps: PreTokenizer[] = [];
      if (boolAt(p.add_prefix_space, `${where}.add_prefix_space`, false)) steps.push((t, out) => out.push(t.startsWith(' ') ? t : ' ' + t));
      if (boolAt(p.use_regex, `${where}.use_regex`, true)) steps.push(regexSplit(new RegExp(GPT2_PATTERN, 'gu'), 'isolated', false));
      return steps.length === 0 ? undefined : sequence(steps);
    }
    case 'Split': {
      const pat = stringPattern(p.pattern, where);
      if (pat.literal === '') throw malformed(`${where}.pattern.String`, 'must not be empty');
      const re = pat.regex ?? new RegExp(escapeRegex(pat.literal!), 'gu');
      return regexSplit(re, behaviorAt(p.behavior, `${where}.behavior`), boolAt(p.invert, `${where}.invert`, false));
    }
    case 'BertPreTokenizer': return bertPreTokenizer;
    case 'Whitespace': return whitespacePreTokenizer;
    case 'WhitespaceSplit': return whitespaceSplit;
    case 'Digits': return digitsPreTokenizer(boolAt(p.individual_digits, `${where}.individual_digits`, false));
    case 'Punctuation': return punctuationPreTokenizer(p.behavior === undefined || p.behavior === null ? 'isolated' : behaviorAt(p.behavior, `${where}.behavior`));
    case 'CharDelimiterSplit': return charDelimiterSplit(stringAt(p.delimiter, `${where}.delimiter`, undefined, true));
    case 'Metaspace': {
      const m = metaspaceAt(p, where);
      return metaspacePreTokenizer(m.replacement, m.scheme, boolAt(p.split, `${where}.split`, true));
    }
    default:
      throw unsupported(where, `pre-tokenizer "${p.type}"`);
  }
}

function buildDecoder(d: Json, where: string, out: DecoderStep[]): void {
  if (d === null || d === undefined) return;
  switch (typeAt(d, where)) {
    case 'Sequence':
      arrayAt(d.decoders, `${where}.decoders`).forEach((x, i) => buildDecoder(x, `${where}.decoders[${i}]`, out));
      return;
    case 'ByteLevel': out.push({ type: 'byteLevel' }); return;
    case 'ByteFallback': out.push({ type: 'byteFallback' }); return;
    case 'Fuse': out.push({ type: 'fuse' }); return;
    case 'Strip':
      out.push({ type: 'strip', content: stringAt(d.content, `${where}.content`), start: nonNegIntAt(d.start, `${where}.start`, 0), stop: nonNegIntAt(d.stop, `${where}.stop`, 0) });
      return;
    case 'Replace': {
      if (!d.pattern || typeof d.pattern.String !== 'string') throw unsupported(where, 'a Replace decoder with a regex');
      if (d.pattern.String === '') throw malformed(`${where}.pattern.String`, 'must not be empty');
      out.push({ type: 'replace', pattern: d.pattern.String, content: stringAt(d.content, `${where}.content`) });
      return;
    }
    case 'Metaspace': {
      const m = metaspaceAt(d, where);
      out.push({ type: 'metaspace', replacement: m.replacement, prependFirst: m.scheme !== 'never' });
      return;
    }
    case 'WordPiece':
      out.push({ type: 'wordpiece', prefix: stringAt(d.prefix, `${where}.prefix`, '##'), cleanup: boolAt(d.cleanup, `${where}.cleanup`, true) });
      return;
    case 'BPEDecoder': out.push({ type: 'bpeSuffix', suffix: stringAt(d.suffix, `${where}.suffix`, '</w>', true) }); return;
    default:
      throw unsupported(where, `decoder "${d.type}"`);
  }
}

/** BertProcessing's cls / sep: [token, id]. */
function specialPair(v: unknown, where: string): number {
  const a = arrayAt(v, where);
  if (a.length !== 2) throw malformed(where, 'must be [token, id]');
  stringAt(a[0], `${where}[0]`);
  return idAt(a[1], `${where}[1]`);
}

function buildTemplate(p: Json, where: string, idOf: (t: string) => number | undefined): Template | undefined {
  if (p === null || p === undefined) return undefined;
  switch (typeAt(p, where)) {
    case 'ByteLevel':
      return undefined;
    case 'Sequence': {
      let t: Template | undefined;
      for (const [i, x] of arrayAt(p.processors, `${where}.processors`).entries()) t = buildTemplate(x, `${where}.processors[${i}]`, idOf) ?? t;
      return t;
    }
    case 'TemplateProcessing': {
      const t: Template = [];
      const specials = p.special_tokens === undefined || p.special_tokens === null ? {} : objectAt(p.special_tokens, `${where}.special_tokens`);
      for (const [i, item] of arrayAt(p.single, `${where}.single`).entries()) {
        const at = `${where}.single[${i}]`;
        objectAt(item, at);
        if (item.Sequence) {
          t.push(null);
        } else if (item.SpecialToken) {
          const name = stringAt(objectAt(item.SpecialToken, `${at}.SpecialToken`).id, `${at}.SpecialToken.id`);
          const sp = hasOwn(specials, name) ? objectAt(specials[name], `${where}.special_tokens[${i}]`) : undefined;
          const ids: number[] | undefined = sp
            ? arrayAt(sp.ids, `${where}.special_tokens.ids`).map((x, k) => idAt(x, `${where}.special_tokens.ids[${k}]`))
            : idOf(name) !== undefined ? [idOf(name)!] : undefined;
          if (!ids) throw new FuselmError('E_FORMAT', `${at}: its special token has no ids`);
          t.push(ids);
        }
      }
      if (!t.includes(null)) t.push(null);
      return t;
    }
    case 'BertProcessing':
    case 'RobertaProcessing':
      return [[specialPair(p.cls, `${where}.cls`)], null, [specialPair(p.sep, `${where}.sep`)]];
    default:
      throw unsupported(where, `post-processor "${p.type}"`);
  }
}

function buildModel(m: Json, vocab: Map<string, number>, info: PreInfo): WordModel {
  const where = 'tokenizer.json model';
  const unkId = (name: string | null | undefined) => (name == null ? undefined : vocab.get(name));
  const unkName = (fallback?: string) => (m.unk_token === null || (m.unk_token === undefined && fallback === undefined) ? undefined : stringAt(m.unk_token, `${where}.unk_token`, fallback));
  const type = typeAt(m, where);
  switch (type) {
    case 'BPE': {
      const merges: Array<[string, string]> = arrayAt(m.merges ?? [], `${where}.merges`).map((x, i) => {
        if (Array.isArray(x)) {
          if (x.length !== 2 || typeof x[0] !== 'string' || typeof x[1] !== 'string') throw malformed(`${where}.merges[${i}]`, 'must be a pair of strings');
          return [x[0], x[1]];
        }
        if (typeof x === 'string') {
          const sp = x.indexOf(' ', 1);
          if (sp < 0) throw new FuselmError('E_FORMAT', `${where}.merges[${i}]: has no space`);
          return [x.slice(0, sp), x.slice(sp + 1)];
        }
        throw new FuselmError('E_FORMAT', `${where}.merges[${i}]: is neither a string nor a pair`);
      });
      if (m.dropout) throw unsupported(where, 'BPE dropout');
      return new BpeModel({
        vocab,
        merges,
        byteLevel: info.byteLevel,
        ignoreMerges: boolAt(m.ignore_merges, `${where}.ignore_merges`, false),
        byteFallback: boolAt(m.byte_fallback, `${where}.byte_fallback`, false),
        unk: unkId(unkName()),
        fuseUnk: boolAt(m.fuse_unk, `${where}.fuse_unk`, false),
        continuingSubwordPrefix: stringAt(m.continuing_subword_prefix, `${where}.continuing_subword_prefix`, ''),
        endOfWordSuffix: stringAt(m.end_of_word_suffix, `${where}.end_of_word_suffix`, ''),
      });
    }
    case 'WordPiece': {
      const unk = unkId(unkName('[UNK]'));
      if (unk === undefined) throw new FuselmError('E_FORMAT', `${where}: its unk_token is not in the vocab`);
      const maxChars = nonNegIntAt(m.max_input_chars_per_word, `${where}.max_input_chars_per_word`, 100);
      return new WordPieceModel({ vocab, unk, continuingSubwordPrefix: stringAt(m.continuing_subword_prefix, `${where}.continuing_subword_prefix`, '##'), maxInputCharsPerWord: maxChars });
    }
    default:
      throw unsupported(where, `model type ${JSON.stringify(type.slice(0, 40))}`);
  }
}

/** A Unigram model: its [piece, score] list read into `vocab` (id = index). */
function unigramModel(m: Json, vocab: Map<string, number>): UnigramModel {
  const where = 'tokenizer.json model';
  if (boolAt(m.byte_fallback, `${where}.byte_fallback`, false)) throw unsupported(where, 'Unigram with byte_fallback');
  const scores: number[] = [];
  arrayAt(m.vocab, `${where}.vocab`).forEach((e, i) => {
    if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'string' || typeof e[1] !== 'number' || !Number.isFinite(e[1]))
      throw malformed(`${where}.vocab[${i}]`, 'must be a [piece, score] pair');
    if (!vocab.has(e[0])) vocab.set(e[0], i);
    scores.push(e[1]);
  });
  const unk = m.unk_id == null ? undefined : idAt(m.unk_id, `${where}.unk_id`);
  if (unk !== undefined && unk >= scores.length) throw malformed(`${where}.unk_id`, `is outside the vocabulary (0..${scores.length - 1})`);
  return new UnigramModel({ pieces: vocab, scores, unk });
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
  if (!json || typeof json !== 'object' || Array.isArray(json) || !json.model) throw new FuselmError('E_FORMAT', 'tokenizer.json: no "model"');
  const m = objectAt(json.model, 'tokenizer.json model');
  const vocab = new Map<string, number>();
  const unigram = m.type === 'Unigram' ? unigramModel(m, vocab) : undefined;
  if (!unigram && Array.isArray(m.vocab)) {
    // [piece, score] lists are Unigram's, not a BPE/WordPiece vocab.
    throw unsupported('tokenizer.json model', `model type ${JSON.stringify(String(m.type).slice(0, 40))} with a list vocab`);
  }
  const vocabJson = unigram || m.vocab === undefined || m.vocab === null ? {} : objectAt(m.vocab, 'tokenizer.json model.vocab');
  let entry = 0;
  for (const [k, v] of Object.entries(vocabJson)) vocab.set(k, idAt(v, `tokenizer.json model.vocab (entry ${entry++})`));

  const info: PreInfo = { byteLevel: false };
  const normalizer = buildNormalizer(json.normalizer, 'tokenizer.json normalizer');
  const preTokenizer = buildPreTokenizer(json.pre_tokenizer, 'tokenizer.json pre_tokenizer', info);
  const model = unigram ?? buildModel(m, vocab, info);

  const added: AddedToken[] = arrayAt(json.added_tokens ?? [], 'tokenizer.json added_tokens').map((t, i) => {
    const at = `tokenizer.json added_tokens[${i}]`;
    objectAt(t, at);
    const special = boolAt(t.special, `${at}.special`, false);
    return {
      id: idAt(t.id, `${at}.id`),
      content: stringAt(t.content, `${at}.content`, undefined, true),
      special,
      lstrip: boolAt(t.lstrip, `${at}.lstrip`, false),
      rstrip: boolAt(t.rstrip, `${at}.rstrip`, false),
      singleWord: boolAt(t.single_word, `${at}.single_word`, false),
      normalized: boolAt(t.normalized, `${at}.normalized`, !special),
    };
  });

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
  for (const part of template ?? [])
    for (const id of part ?? []) if (id >= size) throw malformed('tokenizer.json post_processor', `token id ${id} is outside the vocabulary (0..${size - 1})`);

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
    unk: idOf(configToken(cfg.unk_token)) ?? (m.unk_token != null ? vocab.get(m.unk_token) : m.unk_id != null ? idAt(m.unk_id, 'tokenizer.json model.unk_id') : undefined),
    pad: idOf(configToken(cfg.pad_token)),
    eog,
    addBos: cfg.add_bos_token === true,
    addEos: cfg.add_eos_token === true,
    chatTemplate: extras.chatTemplate ?? configChatTemplate(cfg.chat_template),
  });
}
