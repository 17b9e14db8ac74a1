/**
 * Seeded random test strings for the differential tokenizer tests: words in many scripts,
 * contractions in odd casing, digit and whitespace runs (Unicode spaces included), emoji with ZWJ,
 * skin-tone and flag sequences, combining marks, control characters, lone surrogates and
 * random code points.
 */
import { rng } from './helpers.js';

const WORDS = [
  'Hello', 'world', 'the', 'The', 'THE', 'tokenizer', 'ﬁnance', 'naïve', 'Führer', 'İstanbul', 'ΣΟΦΙΑ', 'σοφός', 'ΟΔΟΣ',
  'Привет', 'мир', 'Здравей', 'свят', 'ន្ទាប់', 'ពីការ', 'مرحبا', 'بالعالم', 'नमस्ते', 'दुनिया', '我想在', 'apple', '工作',
  '日本語', 'テキスト', 'ｶﾀｶﾅ', '한국어', 'Cửa', 'Việt', 'straße', 'ǅemal', 'ʼn', 'ℌ𝔢𝔩𝔩𝔬', '𝟙𝟚𝟛', 'x²', 'Ⅻ', '½', '٣٤٥',
  'foo_bar', 'camelCase', 'snake_case', 'https://example.com/a?b=c', 'C++', 'e.g.', 'U.S.A.', 'ſ', 'K', 'Å', 'ǈ',
];
const CONTRACTIONS = ["'s", "'S", "'t", "'T", "'re", "'RE", "'rE", "'ve", "'Ve", "'VE", "'m", "'M", "'ll", "'lL", "'LL", "'d", "'D", "'ſ", "’s", "'x"];
const SPACES = [' ', '  ', '   ', '\t', '\n', '\n\n', '\r\n', '\r', ' \n', '\n ', '\u00a0', '\u0085', '\u2028', '\u2029', '\u3000', '\u2003', '\u200b', '\ufeff', '\u000b', '\u000c', '\u180e', '\u202f'];
const EMOJI = ['🦙', '😁', '👍🏽', '👨‍👩‍👧‍👦', '🏳️‍🌈', '🇺🇦', '🇯🇵', '❤️', '☺︎', '🧑🏿‍💻', '#️⃣', '🫠', '✨'];
const PUNCT = ['.', ',', '!', '?', '...', '--', '-----=====', '"', "'", '`', '``', '(', ')', '[', ']', '{', '}', '<', '>', '/', '\\', '@', '#', '$', '%', '^', '&', '*', '~', '|', '+', '=', '：', '。', '、', '～', '¿', '¡', '«', '»', '—', '…', '·'];
const MARKS = ['\u0301', '\u0308', '\u0323', '\u20dd', '\u093f', '\u0e31', '\u200d', '\u200c', '\ufe0f'];
const CONTROL = ['\u0000', '\u0007', '\u001b', '\u007f', '\u0080', '\u009f', '\u00ad', '\ufffd', '\ue000', '\udb40\udc01'];
const SURROGATES = ['\ud800', '\udc00', '\udbff', '\ud83d', 'a\ude00'];

/** A random assigned-looking code point (BMP and astral planes, avoiding surrogates). */
function randomCodePoint(r: () => number): string {
  const ranges: Array<[number, number]> = [
    [0x20, 0x7e], [0xa0, 0x24f], [0x370, 0x3ff], [0x400, 0x4ff], [0x590, 0x6ff], [0x900, 0x97f], [0xe00, 0xe7f],
    [0x1100, 0x11ff], [0x1e00, 0x1fff], [0x2000, 0x2bff], [0x3000, 0x30ff], [0x4e00, 0x9fff], [0xac00, 0xd7a3],
    [0xf900, 0xfaff], [0xff00, 0xffef], [0x1d400, 0x1d7ff], [0x1f300, 0x1faff], [0x20000, 0x2a6df],
  ];
  const [a, b] = ranges[Math.floor(r() * ranges.length)];
  return String.fromCodePoint(a + Math.floor(r() * (b - a + 1)));
}

export interface RandomTextOptions {
  /** Include lone surrogates. */
  surrogates?: boolean;
  /** Extra strings to sprinkle in (e.g. special-token texts). */
  extra?: string[];
}

/** `count` random strings from `seed`. */
export function randomTexts(seed: number, count: number, opts: RandomTextOptions = {}): string[] {
  const r = rng(seed);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)];
  const out: string[] = [];
  for (let k = 0; k < count; k++) {
    const parts = 1 + Math.floor(r() * 14);
    let s = '';
    for (let p = 0; p < parts; p++) {
      const x = r();
      if (x < 0.25) s += pick(WORDS);
      else if (x < 0.35) s += pick(CONTRACTIONS);
      else if (x < 0.5) s += pick(SPACES);
      else if (x < 0.58) s += String(Math.floor(r() * 10 ** (1 + Math.floor(r() * 12))));
      else if (x < 0.65) s += pick(EMOJI);
      else if (x < 0.73) s += pick(PUNCT);
      else if (x < 0.77) s += pick(MARKS);
      else if (x < 0.8) s += pick(CONTROL);
      else if (x < 0.83 && opts.surrogates) s += pick(SURROGATES);
      else if (x < 0.86 && opts.extra && opts.extra.length > 0) s += pick(opts.extra);
      else if (x < 0.95) for (let i = 1 + Math.floor(r() * 4); i > 0; i--) s += randomCodePoint(r);
      else s += pick(SPACES).repeat(1 + Math.floor(r() * 6));
      if (r() < 0.3) s += ' ';
    }
    out.push(s);
  }
  return out;
}
