/**
 * A SentencePiece precompiled_charsmap blob built from (key, replacement) pairs, for tests: a
 * Darts-clone double-array trie over the keys' UTF-8 bytes (written here from the format's
 * documented structure; lib/tokenizer/precompiled-charsmap.ts says what the bits mean), then the
 * replacements as NUL-terminated strings. Each node's children get a block of 256 units of their
 * own (base ^ c for their bytes c, a leaf's value at base itself); no two nodes share a base, so a
 * byte that is not a node's child never lands on another node's child with that label.
 */
const LEAF = 1 << 8;
const VALUE = 0x80000000;

interface Node {
  value: number;
  children: Map<number, Node>;
}

export function buildCharsmap(entries: Array<[key: string, replacement: string]>): Uint8Array {
  const enc = new TextEncoder();
  // the replacements, each once
  const offsets = new Map<string, number>();
  const normalized: number[] = [];
  const root: Node = { value: -1, children: new Map() };
  for (const [key, rep] of entries) {
    if (!offsets.has(rep)) {
      offsets.set(rep, normalized.length);
      normalized.push(...enc.encode(rep), 0);
    }
    let n = root;
    for (const c of enc.encode(key)) {
      let child = n.children.get(c);
      if (!child) n.children.set(c, (child = { value: -1, children: new Map() }));
      n = child;
    }
    n.value = offsets.get(rep)!;
  }
  const units: number[] = [];
  const at = (p: number) => units[p] ?? 0;
  const set = (p: number, u: number) => {
    while (units.length <= (p | 0xff)) units.push(0);
    units[p] = u >>> 0;
  };
  set(0, 0);
  let nextBase = 256;
  const place = (n: Node, p: number) => {
    if (n.children.size === 0 && n.value < 0) return;
    // a fresh block for every node: its base is unique and its children's slots free
    const base = nextBase;
    nextBase += 256;
    const offset = p ^ base;
    if (offset >= 1 << 21) throw new Error('charsmap builder: too many nodes for a short offset');
    set(p, (at(p) & (VALUE | LEAF | 0xff)) | (offset << 10));
    if (n.value >= 0) set(base, VALUE | n.value);
    for (const [c, child] of n.children) set(base ^ c, c | (child.value >= 0 ? LEAF : 0));
    for (const [c, child] of n.children) place(child, base ^ c);
  };
  place(root, 0);
  const trie = new Uint8Array(units.length * 4);
  const dv = new DataView(trie.buffer);
  units.forEach((u, i) => dv.setUint32(i * 4, u, true));
  const out = new Uint8Array(4 + trie.length + normalized.length);
  new DataView(out.buffer).setUint32(0, trie.length, true);
  out.set(trie, 4);
  out.set(normalized, 4 + trie.length);
  return out;
}

/** NFKC-like rules: full-width letters, ligatures, spaces, a zero-width space to nothing, composed accents, a three-character key. */
export const CHARSMAP_RULES: Array<[string, string]> = [
  ...Array.from({ length: 0xff5e - 0xff01 + 1 }, (_, i) => String.fromCharCode(0xff01 + i)).map((c): [string, string] => [c, c.normalize('NFKC')]),
  ...['ﬀ', 'ﬁ', 'ﬂ', 'ﬃ', 'ﬄ', 'ﬆ', '½', '℃', 'Ⅻ', '™', 'ǅ', '①'].map((c): [string, string] => [c, c.normalize('NFKC')]),
  ['\u3000', ' '],
  ['\u00a0', ' '],
  ['\u200b', ''],
  ['e\u0301', 'é'],
  ['a\u0308', 'ä'],
  ['a\u0308\u0304', 'ǟ'],
  ['o\u0302', 'ô'],
  // a key over three graphemes: SentencePiece replaces it, Hugging Face (grapheme by grapheme) never does
  ['...', '…'],
];

/** What charsmapTexts are made of: words, the rules' keys, near misses, emoji. */
const PARTS = [
  'The', 'house', 'is', 'wonderful', 'city', 'council', 'park', 'Tuesday', ' ', '  ', '\u3000', '\u00a0', '\u200b',
  'Ｔｈｅ', 'ｈｏｕｓｅ', 'ＰＡＲＫ', '１２３', '！', 'ﬁne', 'ﬂow', 'oﬀ', '½', '℃', 'Ⅻ', '™', 'ǅ', '①',
  'e\u0301', 'cafe\u0301', 'a\u0308', 'a\u0308\u0304', 'o\u0302', 'é', 'naïve', '...', '..', '.', '日本', '😀', '👍🏽', 'x', 'Q',
];

/** `n` random texts of PARTS (seeded). */
export function charsmapTexts(n: number, seed: number): string[] {
  let s = seed;
  const r = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  return Array.from({ length: n }, () => Array.from({ length: 1 + Math.floor(r() * 10) }, () => PARTS[Math.floor(r() * PARTS.length)]).join(r() < 0.3 ? '' : ' '));
}
