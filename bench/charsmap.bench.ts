/**
 * SentencePiece precompiled_charsmap normalization (`npm run bench -- charsmap`), MB/s of UTF-8
 * input, beside Hugging Face tokenizers' own Precompiled normalizer (Rust, npm `tokenizers`) in
 * the same run. The charsmap is built here (test/helpers/charsmap.ts) from NFKC: every BMP
 * character NFKC changes (as SentencePiece's nmt_nfkc rules mostly are), plus the rules of the
 * tests. Texts: ~3 MB of TypeScript's lib .d.ts files (ASCII prose and code: nearly nothing
 * changes), and the same with one character in 16 replaced by a full-width letter, a ligature or
 * a composed accent (much changes). Median of 3 runs each; Hugging Face's output must equal
 * ours (grapheme mode), so the comparison is like for like. The longest-match mode (GGUF,
 * llama.cpp's) has no peer here; its rate is reported beside.
 */
import { precompiled } from 'tokenizers';
import { PrecompiledCharsmap } from '../lib/tokenizer/precompiled-charsmap.js';
import { buildCharsmap, CHARSMAP_RULES } from '../test/helpers/charsmap.js';
import { corpus, time } from './tokenizer.bench.js';
import type { BenchResult } from './util.js';

/** One character in 16 of `text` replaced by one the rules change (seeded). */
function sprinkled(text: string): string {
  const swaps = ['Ａ', 'ｚ', '１', 'ﬁ', 'ﬂ', 'e\u0301', 'a\u0308', '\u3000', '½', '™'];
  let s = 9, out = '';
  for (let i = 0; i < text.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out += s % 16 === 0 ? swaps[(s >>> 8) % swaps.length] : text[i];
  }
  return out;
}

export async function run(): Promise<BenchResult[]> {
  const rules: Array<[string, string]> = [...CHARSMAP_RULES];
  for (let c = 0xa0; c < 0x10000; c++) {
    if (c >= 0xd800 && c < 0xe000) continue;
    const ch = String.fromCharCode(c), n = ch.normalize('NFKC');
    if (n !== ch) rules.push([ch, n]);
  }
  const blob = buildCharsmap(rules);
  const parse = time(() => PrecompiledCharsmap.parse(blob, 'bench'));
  const cm = parse.out;
  const peer = precompiled([...blob]);
  const out: BenchResult[] = [{ name: `parse a ${(blob.length / 1e6).toFixed(1)} MB charsmap of ${rules.length} rules (every node checked)`, seconds: parse.seconds }];
  const plain = corpus();
  for (const [what, text] of [['TypeScript lib .d.ts', plain], ['the same, 1 char in 16 changed', sprinkled(plain)]] as const) {
    const mb = Buffer.byteLength(text) / 1e6;
    const ours = time(() => cm.normalizeGraphemes(text));
    const theirs = time(() => peer.normalizeString(text));
    if (ours.out !== theirs.out) throw new Error(`charsmap bench: our grapheme normalization differs from tokenizers' on ${what}`);
    const longest = time(() => cm.normalizeLongest(text));
    out.push({ name: `graphemes (HF) ${what}, ${mb.toFixed(1)} MB`, seconds: ours.seconds, mbPerSecond: mb / ours.seconds, peerMbPerSecond: mb / theirs.seconds, ratio: theirs.seconds / ours.seconds });
    out.push({ name: `longest match (SentencePiece) ${what}`, seconds: longest.seconds, mbPerSecond: mb / longest.seconds });
  }
  return out;
}
