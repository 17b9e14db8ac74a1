/**
 * SentencePiece's precompiled_charsmap (lib/tokenizer/precompiled-charsmap.ts) on blobs built
 * here (test/helpers/charsmap.ts: a double-array trie of NFKC-like rules: full-width letters,
 * ligatures, spaces, a zero-width space to nothing, composed accents, a three-character key):
 * - tokenizer.json's Precompiled normalizer gives Hugging Face `tokenizers`' normalized text and,
 *   with the T5 fixture's Unigram vocabulary, its ids, on 300 random texts;
 * - a t5 GGUF's charsmap applies SentencePiece's longest match (llama.cpp's), worked by hand;
 * - bad blobs (too short, a size past the end, children or values past their arrays, an
 *   unterminated or non-UTF-8 replacement, bad base64) are E_FORMAT naming the field, and 500
 *   random corruptions of a good blob either parse and normalize or are E_FORMAT, nothing else.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Tokenizer as HfTokenizer, precompiled } from 'tokenizers';
import { FuselmError } from '../../lib/errors.js';
import { readGguf } from '../../lib/formats/gguf.js';
import { tokenizerFromGguf } from '../../lib/tokenizer/from-gguf.js';
import { loadTokenizerJson } from '../../lib/tokenizer/load.js';
import { PrecompiledCharsmap } from '../../lib/tokenizer/precompiled-charsmap.js';
import { buildCharsmap, CHARSMAP_RULES as RULES, charsmapTexts as randomTexts } from '../helpers/charsmap.js';
import { requireFiles, sharedPath } from '../helpers/shared.js';

describe('SentencePiece precompiled_charsmap', () => {
  const blob = buildCharsmap(RULES);
  const cm = PrecompiledCharsmap.parse(blob, 'test');

  it("normalizes as Hugging Face tokenizers' Precompiled does, on 300 random texts", () => {
    const peer = precompiled([...blob]);
    let changed = 0;
    for (const t of randomTexts(300, 11)) {
      const want = peer.normalizeString(t);
      assert.equal(cm.normalizeGraphemes(t), want, JSON.stringify(t));
      if (want !== t) changed++;
    }
    assert.ok(changed > 200, `most texts are changed by the rules (${changed})`);
  });

  it("tokenizer.json with a Precompiled normalizer gives tokenizers' ids (the T5 fixture's Unigram vocabulary)", async function () {
    const dir = sharedPath('models', 'oracles', 't5', 'hf');
    requireFiles(this, path.join(dir, 'tokenizer.json'));
    const json = JSON.parse(readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
    // as real t5-small's: the charsmap, then runs of spaces made one
    json.normalizer = {
      type: 'Sequence',
      normalizers: [
        { type: 'Precompiled', precompiled_charsmap: Buffer.from(blob).toString('base64') },
        { type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' },
      ],
    };
    const tmp = mkdtempSync(path.join(tmpdir(), 'fuselm-charsmap-'));
    try {
      const file = path.join(tmp, 'tokenizer.json');
      writeFileSync(file, JSON.stringify(json));
      const ours = await loadTokenizerJson(file);
      const peer = HfTokenizer.fromString(JSON.stringify(json));
      for (const t of randomTexts(300, 23)) {
        const want = (await peer.encode(t)).getIds();
        assert.deepEqual(ours.encode(t, { addSpecial: true }), want, JSON.stringify(t));
      }
      // the rules reach the pieces: full-width text gives the ASCII text's ids
      assert.deepEqual(ours.encode('Ｔｈｅ\u3000ｈｏｕｓｅ', { addSpecial: true }), ours.encode('The house', { addSpecial: true }));
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('SentencePiece (a GGUF, as llama.cpp): the longest key at each point, across graphemes', () => {
    const m = PrecompiledCharsmap.parse(buildCharsmap([['ab', 'Z'], ['abc', 'W'], ['e', 'E'], ['e\u0301', 'É'], ['...', '…'], ['\u200b', '']]), 'test');
    assert.equal(m.normalizeLongest('xabcd ab abx e\u0301 e ....\u200b.'), 'xWd Z Zx É E …..');
    assert.equal(m.normalizeLongest('plain'), 'plain');
    // Hugging Face's way on the same rules: per grapheme, the shortest key's replacement for the whole grapheme
    assert.equal(m.normalizeGraphemes('xabcd e\u0301 ...'), 'xabcd E ...');
  });

  it("a t5 GGUF's tokenizer applies its charsmap before the whitespace rules", async function () {
    const file = sharedPath('models', 'oracles', 't5', 't5.f32.gguf');
    requireFiles(this, file);
    const f = await readGguf(file);
    const plain = tokenizerFromGguf(f);
    f.metadata.set('tokenizer.ggml.precompiled_charsmap', blob);
    const tok = tokenizerFromGguf(f);
    assert.deepEqual(tok.encode('\u3000Ｔｈｅ\u3000\u3000ｈｏｕｓｅ ｉｓ\u00a0', { addSpecial: true }), plain.encode('The house is', { addSpecial: true }));
    f.metadata.set('tokenizer.ggml.precompiled_charsmap', Uint8Array.of(1, 2, 3));
    assert.throws(() => tokenizerFromGguf(f), { code: 'E_FORMAT', message: /tokenizer\.ggml\.precompiled_charsmap.*trie_size/ });
    f.metadata.set('tokenizer.ggml.precompiled_charsmap', 'text');
    assert.throws(() => tokenizerFromGguf(f), { code: 'E_FORMAT', message: /tokenizer\.ggml\.precompiled_charsmap.*array of bytes/ });
  });

  describe('bad blobs are E_FORMAT naming the field', () => {
    const bad = (b: Uint8Array, field: RegExp) => assert.throws(() => PrecompiledCharsmap.parse(b, 'x'), (e: FuselmError) => e.code === 'E_FORMAT' && field.test(e.message));
    const u32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint32(at, true);
    const setU32 = (b: Uint8Array, at: number, v: number) => new DataView(b.buffer, b.byteOffset).setUint32(at, v >>> 0, true);
    const small = () => buildCharsmap([['ab', 'Z'], ['c', 'YY']]);

    it('too short, a trie size not a multiple of 4 or past the end', () => {
      bad(Uint8Array.of(1, 2, 3), /trie_size: expected a 4-byte size/);
      const b = small();
      bad(b.slice(0, 10), /trie_size: \d+ bytes of trie, but only 6 follow/);
      const odd = small();
      setU32(odd, 0, 6);
      bad(odd, /trie_size: expected a positive multiple of 4, got 6/);
      bad(Uint8Array.of(0, 0, 0, 0), /trie_size: expected a positive multiple of 4, got 0/);
    });

    it("a node's children past the units, a value past the replacements, a replacement without its NUL or not UTF-8", () => {
      const far = small();
      setU32(far, 4, (u32(far, 4) & 0x3ff) | (0x1fffff << 10)); // the root's offset
      bad(far, /trie: node 0 \(byte 4\) points at unit \d+, past the \d+ units/);
      // the value unit of 'c': found by its replacement's offset (3: after "Z\0")
      const val = small();
      const units = (u32(val, 0) / 4) | 0;
      let at = -1;
      for (let i = 0; i < units; i++) if (u32(val, 4 + 4 * i) === (0x80000000 | 2) >>> 0) at = 4 + 4 * i;
      assert.ok(at > 0);
      setU32(val, at, 0x80000000 | 999);
      bad(val, /normalized: node \d+ \(byte \d+\) has value 999, past the 5 bytes of replacements/);
      const b = small();
      bad(b.subarray(0, b.length - 1), /normalized: the replacement at 2 has no terminating NUL/);
      const nonUtf8 = small();
      nonUtf8[nonUtf8.length - 2] = 0xff;
      bad(nonUtf8, /normalized: the replacement at 2 is not UTF-8/);
    });

    it('bad base64 in tokenizer.json', async () => {
      const tmp = mkdtempSync(path.join(tmpdir(), 'fuselm-charsmap-'));
      try {
        const file = path.join(tmp, 'tokenizer.json');
        const json = { model: { type: 'Unigram', vocab: [['<unk>', 0], ['a', -1]], unk_id: 0 }, normalizer: { type: 'Precompiled', precompiled_charsmap: 'not base64!' } };
        writeFileSync(file, JSON.stringify(json));
        await assert.rejects(loadTokenizerJson(file), { code: 'E_FORMAT', message: /normalizer\.precompiled_charsmap: is not base64/ });
        json.normalizer.precompiled_charsmap = Buffer.from(Uint8Array.of(8, 0, 0, 0, 1)).toString('base64');
        writeFileSync(file, JSON.stringify(json));
        await assert.rejects(loadTokenizerJson(file), { code: 'E_FORMAT', message: /normalizer\.precompiled_charsmap: precompiled_charsmap trie_size/ });
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    });

    it('500 random corruptions: each parses and normalizes, or is E_FORMAT', () => {
      let s = 5, refused = 0;
      const r = (n: number) => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) % n);
      const texts = randomTexts(20, 3);
      // most of the trie is unused zero units: corrupt the bytes that are not
      const live = [...blob.keys()].filter((i) => i < 4 || blob[i] !== 0);
      for (let k = 0; k < 500; k++) {
        const b = blob.slice();
        for (let j = 1 + r(8); j > 0; j--) b[live[r(live.length)]] = r(256);
        const cut = r(4) === 0 ? b.subarray(0, r(b.length)) : b;
        let m: PrecompiledCharsmap;
        try {
          m = PrecompiledCharsmap.parse(cut, 'x');
        } catch (e) {
          assert.ok(e instanceof FuselmError && e.code === 'E_FORMAT', String(e));
          refused++;
          continue;
        }
        for (const t of texts) {
          assert.equal(typeof m.normalizeLongest(t), 'string');
          assert.equal(typeof m.normalizeGraphemes(t), 'string');
        }
      }
      assert.ok(refused > 50 && refused < 500, `refused ${refused}`);
    });
  });
});
