/**
 * Split GGUFs, as llama.cpp's gguf-split writes them: a model in parts named
 * `<prefix>-00001-of-0000N.gguf` ... `<prefix>-0000N-of-0000N.gguf` (5 digits each), every part
 * a GGUF of its own with `split.no` (0-based), `split.count` and `split.tensors.count` (the
 * model's tensors in all parts), the model's metadata in the first. Loading the first part loads
 * them all; each tensor then names the part that holds its data (GgufTensorInfo.file).
 */
import { FuselmError } from '../errors.js';
import { type GgufFile, ggufNumber, readGguf } from './gguf.js';

const PART_NAME = /^(.*)-(\d{5})-of-(\d{5})\.gguf$/;

/**
 * The header of the GGUF at `path`, or of the whole model when it is the first part of a split
 * one (its metadata, the tensors of every part). A missing part is E_IO naming it; a part
 * whose split keys disagree, a tensor in two parts or a tensor count other than
 * split.tensors.count is E_FORMAT naming the part and the key.
 */
export async function readGgufModel(path: string): Promise<GgufFile> {
  const f = await readGguf(path);
  const count = ggufNumber(f, 'split.count', 1);
  if (count === 1) return f;
  const no = ggufNumber(f, 'split.no');
  if (no !== 0) throw new FuselmError('E_FORMAT', `${path}: this is part ${no + 1} of a split model of ${count}; load the first part (-00001-of-${pad(count)}.gguf)`);
  const m = PART_NAME.exec(path);
  if (!Number.isInteger(count) || count < 1 || count > 99999 || !m || Number(m[2]) !== 1 || Number(m[3]) !== count)
    throw new FuselmError('E_FORMAT', `${path}: split.count is ${count}, but the file is not named <prefix>-00001-of-${Number.isInteger(count) ? pad(count) : count}.gguf as a split model's first part is`);
  const tensors = [...f.tensors];
  for (let i = 1; i < count; i++) {
    const partPath = `${m[1]}-${pad(i + 1)}-of-${m[3]}.gguf`;
    const part = await readGguf(partPath);
    for (const [key, want] of [['split.no', i], ['split.count', count]] as const) {
      const got = ggufNumber(part, key);
      if (got !== want) throw new FuselmError('E_FORMAT', `${partPath}: ${key} is ${got}, expected ${want}`);
    }
    const file = { path: part.path, fileSize: part.fileSize };
    for (const t of part.tensors) tensors.push({ ...t, file });
  }
  const tensorByName = new Map(tensors.map((t) => [t.name, t]));
  if (tensorByName.size !== tensors.length) {
    const seen = new Set<string>();
    const twice = tensors.find((t) => (seen.has(t.name) ? true : (seen.add(t.name), false)))!;
    throw new FuselmError('E_FORMAT', `${path}: tensor '${twice.name}' is in more than one part of the split model`);
  }
  const total = ggufNumber(f, 'split.tensors.count');
  if (total !== tensors.length) throw new FuselmError('E_FORMAT', `${path}: split.tensors.count is ${total}, but the ${count} parts hold ${tensors.length} tensors`);
  f.tensors = tensors;
  f.tensorByName = tensorByName;
  return f;
}

const pad = (n: number) => String(n).padStart(5, '0');
