/**
 * What this proves about the streaming decoder (lib/tokenizer/stream-decoder.ts), on the real
 * 32000-token Llama SPM vocab:
 * - for multi-byte text (emoji, CJK, Cyrillic, Khmer) tokenized many ways (normal tokens randomly
 *   replaced by their UTF-8 byte tokens, so characters arrive split across byte tokens at every
 *   possible point), the pushed text plus flush() equals decode() and the original text;
 * - no push() ever returns U+FFFD for valid input, and no character is held back longer than
 *   needed: after each push the text so far is exactly decode() of the ids so far minus an
 *   unfinished last character;
 * - a 4-byte character arriving as 4 byte tokens comes out whole on the 4th push;
 * - the prefix space is dropped from the first printed text only (and not at all on request);
 * - for arbitrary id sequences, broken UTF-8 and control tokens included, the stream and decode()
 *   both equal an independent reference: all token bytes joined and decoded by one TextDecoder.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { loadTokenizer } from '../../lib/tokenizer/load.js';
import { SpmTokenizer } from '../../lib/tokenizer/spm.js';
import { TokenType } from '../../lib/tokenizer/tokenizer.js';
import { requireFiles, rng, VOCAB_DIR } from './helpers.js';

const TEXTS = [
  'Hello 🦙 world',
  '🦙🦙🦙',
  ' this is 🦙.cpp',
  'Привет, как дела? Болгарски: Здравей, свят',
  '我想在apple工作1314151天～',
  'ន្ទាប់ពីការប្រកួតប្រជែង',
  '👨‍👩‍👧‍👦 family, 🇺🇦 flag, é vs é',
  'Cửa Việt 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ⏎\n\t end',
  '   leading spaces and trailing   ',
];

describe('stream decoder on the llama-spm vocab', function () {
  const vocabFile = path.join(VOCAB_DIR, 'ggml-vocab-llama-spm.gguf');
  let tok: SpmTokenizer;
  const byteId: number[] = [];

  before(async function () {
    requireFiles(this, vocabFile);
    const t = await loadTokenizer(vocabFile);
    assert.ok(t instanceof SpmTokenizer);
    tok = t;
    for (let id = 0; id < tok.vocabSize; id++) {
      const m = /^<0x([0-9A-F]{2})>$/.exec(tok.tokenToPiece(id));
      if (m && tok.tokenType(id) === TokenType.BYTE) byteId[parseInt(m[1], 16)] = id;
    }
    assert.equal(byteId.filter((x) => x !== undefined).length, 256);
  });

  /** The same text as other token sequences: each normal token replaced, with probability p, by
   * the byte tokens of its text. */
  function explode(ids: number[], rand: () => number, p: number): number[] {
    const out: number[] = [];
    for (const id of ids) {
      if (tok.tokenType(id) === TokenType.NORMAL && rand() < p) {
        for (const b of new TextEncoder().encode(tok.tokenToPiece(id).replaceAll('\u2581', ' '))) out.push(byteId[b]);
      } else {
        out.push(id);
      }
    }
    return out;
  }

  /** Streams ids, checking every push against decode() of the prefix; returns the full text. */
  function streamChecked(ids: number[], label: string): string {
    const d = tok.createStreamDecoder();
    let got = '';
    for (let i = 0; i < ids.length; i++) {
      const piece = d.push(ids[i]);
      assert.ok(!piece.includes('\ufffd'), `${label}: push ${i} returned U+FFFD`);
      got += piece;
      // decode() of the prefix ends in one U+FFFD exactly when a character is unfinished.
      const prefix = tok.decode(ids.slice(0, i + 1)).replace(/\ufffd$/, '');
      assert.equal(got, prefix, `${label}: after push ${i}`);
    }
    return got + d.flush();
  }

  it('gives decode() for every way of splitting multi-byte text into tokens', () => {
    const rand = rng(42);
    let sequences = 0;
    let byteTokens = 0;
    for (const text of TEXTS) {
      const ids = tok.encode(text);
      for (const p of [0, 0.3, 0.7, 1]) {
        for (let k = 0; k < (p === 0 || p === 1 ? 1 : 8); k++) {
          const seq = explode(ids, rand, p);
          byteTokens += seq.filter((id) => tok.tokenType(id) === TokenType.BYTE).length;
          const label = `${JSON.stringify(text)} p=${p} #${k}`;
          assert.equal(tok.decode(seq), text, label);
          assert.equal(streamChecked(seq, label), text, label);
          sequences++;
        }
      }
    }
    console.log(`      ${sequences} token sequences, ${byteTokens} byte tokens streamed`);
  });

  it('emits a 4-byte character whole on its 4th byte token', () => {
    const llama = [...new TextEncoder().encode('🦙')].map((b) => byteId[b]);
    assert.equal(llama.length, 4);
    // Plain encode already uses byte fallback for it: ▁ then the 4 bytes.
    assert.deepEqual(tok.encode('🦙').slice(-4), llama);
    const d = tok.createStreamDecoder();
    assert.deepEqual(llama.map((id) => d.push(id)), ['', '', '', '🦙']);
    assert.equal(d.flush(), '');
  });

  it('drops the prefix space from the first printed text only', () => {
    const [hello, world] = tok.encode('Hello world');
    assert.equal(tok.tokenToPiece(hello), '▁Hello');
    let d = tok.createStreamDecoder();
    assert.deepEqual([d.push(hello), d.push(world), d.flush()], ['Hello', ' world', '']);
    d = tok.createStreamDecoder();
    assert.deepEqual([d.push(tok.bos!), d.push(hello), d.push(world)], ['', 'Hello', ' world']);
    d = tok.createStreamDecoder({ stripLeadingSpace: false });
    assert.deepEqual([d.push(hello), d.push(world)], [' Hello', ' world']);
    d = tok.createStreamDecoder({ skipSpecial: false });
    assert.deepEqual([d.push(tok.bos!), d.push(hello)], ['<s>', ' Hello']);
    // The space can also come first as a byte token: still stripped once.
    d = tok.createStreamDecoder();
    assert.deepEqual([d.push(byteId[0x20]), d.push(byteId[0x20]), d.push(world)], ['', ' ', ' world']);
  });

  it('turns unfinished characters into U+FFFD at the same place decode() does', () => {
    const euro = [...new TextEncoder().encode('€')].map((b) => byteId[b]);
    const [a] = tok.encode('a'); // ▁a
    let d = tok.createStreamDecoder();
    assert.deepEqual([d.push(euro[0]), d.push(euro[1]), d.push(a), d.flush()], ['', '', '\ufffd a', '']);
    assert.equal(tok.decode([euro[0], euro[1], a]), '\ufffd a');
    d = tok.createStreamDecoder();
    assert.deepEqual([d.push(euro[0]), d.flush()], ['', '\ufffd']);
    // A stray continuation byte is invalid at once.
    d = tok.createStreamDecoder();
    assert.equal(d.push(byteId[0x82]), '\ufffd');
  });

  /** Reference decode: every token's bytes joined, one non-streaming TextDecoder, then the
   * leading-space strip. The stream decoder instead switches between strings and bytes. */
  function refDecode(ids: number[], opts: { skipSpecial?: boolean; stripLeadingSpace?: boolean }): string {
    const bytes: number[] = [];
    const enc = new TextEncoder();
    for (const id of ids) {
      const type = tok.tokenType(id);
      const piece = tok.tokenToPiece(id);
      if (type === TokenType.BYTE) bytes.push(parseInt(piece.slice(3, 5), 16));
      else if (type === TokenType.NORMAL) bytes.push(...enc.encode(piece.replaceAll('\u2581', ' ')));
      else if (opts.skipSpecial === false) bytes.push(...enc.encode(piece));
    }
    const text = new TextDecoder('utf-8', { ignoreBOM: true }).decode(new Uint8Array(bytes));
    return opts.stripLeadingSpace !== false && text.startsWith(' ') ? text.slice(1) : text;
  }

  it('equals a one-shot byte decode for arbitrary id sequences', () => {
    const rand = rng(99);
    const pick = () => {
      const r = rand();
      if (r < 0.5) return byteId[0x80 + Math.floor(rand() * 0x78)] ?? 3; // mostly multi-byte lead/continuation bytes
      if (r < 0.6) return Math.floor(rand() * 3); // <unk> <s> </s>
      return Math.floor(rand() * tok.vocabSize);
    };
    for (let k = 0; k < 300; k++) {
      const ids = Array.from({ length: 1 + Math.floor(rand() * 20) }, pick);
      for (const opts of [{}, { skipSpecial: false }, { stripLeadingSpace: false }]) {
        const d = tok.createStreamDecoder(opts);
        let got = '';
        for (const id of ids) got += d.push(id);
        got += d.flush();
        const label = `ids ${JSON.stringify(ids)} ${JSON.stringify(opts)}`;
        assert.equal(got, refDecode(ids, opts), label);
        assert.equal(tok.decode(ids, opts), got, label);
      }
    }
  });
});
