/**
 * The `grammar` and `jsonSchema` options: checked, compiled once per tokenizer and grammar text
 * (the token masks are reused by every later request with the same grammar), and one
 * sequence's grammar state (GrammarState) as generate(), stream() and beam search use it.
 */
import { FuselmError, shown } from '../errors.js';
import type { BeamConstraint } from '../beam.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { compileGbnf } from './compile.js';
import { jsonSchemaToGbnf, type JsonSchema } from './json-schema.js';
import { DEAD } from './stacks.js';
import { type GrammarVocab, TokenMasks } from './token-masks.js';
import { VocabTrie } from './vocab-trie.js';

export interface GrammarOptions {
  /**
   * A GBNF grammar (llama.cpp's syntax; generation starts at rule `root`): every token is
   * chosen among those that keep the output in the grammar's language, end-of-generation
   * tokens only where the grammar may end, and generation ends (finishReason 'eog') as soon as
   * nothing more can follow.
   */
  grammar?: string;
  /** A JSON Schema the output must be an instance of (converted to a grammar: jsonSchemaToGbnf). */
  jsonSchema?: JsonSchema;
}

/** Grammars kept compiled per tokenizer. */
const MAX_GRAMMARS = 16;
/** A compiled grammar whose caches grew past this many bytes is compiled afresh for the next request. */
const MAX_FOOTPRINT = 256 << 20;

type Entry = { vocab: GrammarVocab; grammars: Map<string, TokenMasks> };
const perTokenizer = new WeakMap<Tokenizer, Entry>();
/** Vocabularies being read and their tries built, off the JS thread (prepareGrammar). */
const pending = new WeakMap<Tokenizer, Promise<void>>();
/** Token ids read between turns of the event loop. */
const IDS_PER_TURN = 4096;

/** E_INVALID_ARG for a grammar/jsonSchema option of the wrong type (their content is checked on compile). */
export function checkGrammarOptions(o: GrammarOptions): void {
  if (o.grammar !== undefined && typeof o.grammar !== 'string') throw new FuselmError('E_INVALID_ARG', `grammar must be a string (GBNF), got ${shown(o.grammar)}`);
  if (o.jsonSchema !== undefined && typeof o.jsonSchema !== 'boolean' && (typeof o.jsonSchema !== 'object' || o.jsonSchema === null || Array.isArray(o.jsonSchema)))
    throw new FuselmError('E_INVALID_ARG', `jsonSchema must be a JSON Schema (an object or a boolean), got ${shown(o.jsonSchema)}`);
  if (o.grammar !== undefined && o.jsonSchema !== undefined) throw new FuselmError('E_INVALID_ARG', 'give grammar or jsonSchema, not both');
}

/** The token masks of the options' grammar for this tokenizer, or undefined without one. */
export function grammarMasks(tok: Tokenizer, o: GrammarOptions): TokenMasks | undefined {
  checkGrammarOptions(o);
  const text = o.grammar ?? (o.jsonSchema === undefined ? undefined : jsonSchemaToGbnf(o.jsonSchema));
  if (text === undefined) return undefined;
  let entry = perTokenizer.get(tok);
  if (!entry) {
    const bytes: Uint8Array[] = [];
    for (let id = 0; id < tok.vocabSize; id++) bytes.push(tok.tokenBytes(id));
    entry = { vocab: { bytes, eog: tok.eogIds }, grammars: new Map() };
    perTokenizer.set(tok, entry);
  }
  let masks = entry.grammars.get(text);
  if (masks) entry.grammars.delete(text);
  // (sequences still using an old one keep it; it is dropped with them)
  if (!masks || masks.footprint > MAX_FOOTPRINT) {
    masks = new TokenMasks(compileGbnf(text), entry.vocab);
    if (entry.grammars.size >= MAX_GRAMMARS) entry.grammars.delete(entry.grammars.keys().next().value!);
  }
  entry.grammars.set(text, masks); // most recently used last
  return masks;
}

/**
 * grammarMasks() with the slow parts of a first use off the JS thread: the vocabulary read a
 * slice at a time and its trie built in a worker (once per tokenizer), and the initial state's
 * mask made in slices (TokenMasks.prepare). Generation calls it before its first token.
 */
export async function prepareGrammar(tok: Tokenizer, o: GrammarOptions): Promise<void> {
  checkGrammarOptions(o);
  if (o.grammar === undefined && o.jsonSchema === undefined) return;
  if (!perTokenizer.has(tok)) {
    let p = pending.get(tok);
    if (!p) {
      p = (async () => {
        const bytes: Uint8Array[] = [];
        for (let id = 0; id < tok.vocabSize; id++) {
          bytes.push(tok.tokenBytes(id));
          if (id % IDS_PER_TURN === IDS_PER_TURN - 1) await new Promise((r) => setImmediate(r));
        }
        const trie = await VocabTrie.build(bytes);
        if (!perTokenizer.has(tok)) perTokenizer.set(tok, { vocab: { bytes, eog: tok.eogIds, trie }, grammars: new Map() });
      })().finally(() => pending.delete(tok));
      pending.set(tok, p);
    }
    await p;
  }
  const masks = grammarMasks(tok, o)!;
  if (!masks.ready(masks.initial)) await masks.prepare(masks.initial);
}

/**
 * One sequence's place in the grammar. `eogIds` are the call's extra end-of-generation ids
 * (they are allowed, like the tokenizer's, only where the grammar may end).
 */
export class GrammarState {
  readonly masks: TokenMasks;
  state: number;
  readonly #extraEog: readonly number[];

  constructor(masks: TokenMasks, extraEog: readonly number[] = [], state = masks.initial) {
    this.masks = masks;
    this.state = state;
    this.#extraEog = extraEog;
  }

  /** Makes the current state's mask with the event loop free meanwhile; undefined when it is made already. */
  prepare(): Promise<void> | undefined {
    return this.masks.ready(this.state) ? undefined : this.masks.prepare(this.state);
  }

  /** Logits of disallowed tokens set to -Infinity. */
  apply(logits: Float32Array): void {
    const end = this.masks.canEnd(this.state);
    const saved = this.#extraEog.map((id) => logits[id]);
    this.masks.apply(this.state, logits);
    this.#extraEog.forEach((id, i) => {
      if (id < logits.length) logits[id] = end ? saved[i] : -Infinity;
    });
  }

  /** Moves past token `id` (an end-of-generation token only where the grammar may end). */
  accept(id: number): void {
    const next = this.#extraEog.includes(id) ? (this.masks.canEnd(this.state) ? this.state : DEAD) : this.masks.next(this.state, id);
    if (next === DEAD) throw new FuselmError('E_INVALID_ARG', `grammar: token ${id} is not allowed here`);
    this.state = next;
  }

  /** The output is complete: nothing may follow. */
  get complete(): boolean {
    return this.masks.mustEnd(this.state);
  }
}

/** The grammar as beam search follows it: one state per beam. */
export function beamConstraint(masks: TokenMasks, extraEog: readonly number[] = []): BeamConstraint {
  const g = new GrammarState(masks, extraEog);
  return {
    initial: masks.initial,
    apply(state, logits) {
      g.state = state;
      g.apply(logits);
    },
    next(state, id) {
      g.state = state;
      g.accept(id);
      return g.state;
    },
    complete: (state) => masks.mustEnd(state),
  };
}
