/**
 * bindings.d.ts is the one typing of the raw addon: its NativeAddon keys are exactly what the
 * addon exports, and the info functions return what the types say.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { native } from '../lib/native.js';

describe('native bindings', () => {
  it('exports exactly the keys declared in bindings.d.ts', () => {
    const src = readFileSync(new URL('../bindings.d.ts', import.meta.url), 'utf8');
    const body = src.slice(src.indexOf('export interface NativeAddon {'));
    const declared = [...body.slice(0, body.indexOf('\n}')).matchAll(/^ {2}(\w+)[(:]/gm)].map((m) => m[1]).sort();
    assert.deepEqual(Object.keys(native()).sort(), declared);
  });

  it('reports the CPU and CUDA state', () => {
    const cpu = native().cpuInfo();
    assert.ok(cpu.physicalCores >= 1);
    assert.ok(cpu.impls.includes('reference') && cpu.impls.includes('portable'));
    assert.ok(cpu.impls.includes(cpu.bestImpl));
    const cuda = native().cudaInfo();
    assert.equal(typeof cuda.compiled, 'boolean');
    if (cuda.devices.length === 0) assert.ok(cuda.reason && cuda.reason.length > 0, 'no devices must come with a reason');
  });

  it('turns bad arguments into coded errors, not crashes', () => {
    const { Tensor } = native();
    assert.throws(() => new Tensor('f64' as never, [2]), { code: 'E_INVALID_ARG' });
    assert.throws(() => new Tensor('f32', [0]), { code: 'E_INVALID_ARG' });
    assert.throws(() => new Tensor('f32', [2 ** 40, 2 ** 40]), { code: 'E_INVALID_ARG' });
    assert.throws(() => new Tensor('q8_0', [3, 31]), { code: 'E_INVALID_ARG' });
    // the GGUF block formats: rows of whole blocks, sized by their block bytes
    assert.throws(() => new Tensor('q4_k', [3, 300]), { code: 'E_INVALID_ARG', message: /q4_k.*multiple of 256/ });
    assert.equal(new Tensor('q6_k', [3, 512]).nbytes, 3 * 2 * 210);
    assert.equal(new Tensor('iq4_nl', [1, 64]).nbytes, 2 * 18);
    // read from a file: refused before anything is allocated or read, naming the type and offset
    assert.throws(() => native().tensorFromFile('/nonexistent', 128, 'q5_k', [2, 100]), { code: 'E_FORMAT', message: /offset 128.*q5_k/ });
    const t = new Tensor('f32', [2, 2]);
    assert.throws(() => t.write(new Float32Array(5)), { code: 'E_INVALID_ARG' });
    assert.throws(() => t.read(8, 16), { code: 'E_INVALID_ARG' });
    t.free();
    assert.throws(() => t.read(), { code: 'E_DISPOSED' });
  });

  it('growRows makes longer copies of tensors off the JS thread, and checks every shape first', async () => {
    const { Tensor, growRows } = native();
    const a = new Tensor('f32', [2, 2]), b = new Tensor('f16', [1, 4]);
    a.write(Float32Array.of(1, 2, 3, 4));
    b.write(Uint16Array.of(0x3c00, 0x4000, 0x4200, 0x4400));
    const [ga, gb] = await growRows([a, b], 3);
    assert.deepEqual([ga.dtype, ga.shape, gb.dtype, gb.shape], ['f32', [3, 2], 'f16', [3, 4]]);
    assert.deepEqual([...new Float32Array(ga.read())], [1, 2, 3, 4, 0, 0]);
    assert.deepEqual([...new Uint16Array(gb.read())], [0x3c00, 0x4000, 0x4200, 0x4400, 0, 0, 0, 0, 0, 0, 0, 0]);
    // fewer rows than a tensor has, or not 2-D: refused before anything is made
    assert.throws(() => growRows([a, b], 1), { code: 'E_INVALID_ARG', message: /tensor #0 \(f32\[2, 2\]\) cannot grow to 1 rows/ });
    assert.throws(() => growRows([new Tensor('f32', [2])], 4), { code: 'E_INVALID_ARG' });
    assert.throws(() => growRows([{} as never], 4), { code: 'E_INVALID_ARG' });
    for (const t of [a, b, ga, gb]) t.free();
  });

  it('GraphNodes reads nodes in slices into one graph; a bad node adds nothing; a graph takes them once', async () => {
    const { Tensor, GraphNodes, Graph, Pool } = native();
    const x = new Tensor('f32', [1, 4]), y = new Tensor('f32', [1, 4]);
    x.write(Float32Array.of(1, 2, 3, 4));
    const pool = new Pool(1);
    const list = new GraphNodes();
    assert.equal(list.add([{ op: 'add', out: y, a: x, b: x }]), 1);
    assert.throws(() => list.add([{ op: 'add', out: y, a: x, b: x }, { op: 'add', out: y, a: x }]), { code: 'E_INVALID_ARG', message: /node #2 \(add\): missing tensor 'b'/ });
    assert.equal(list.add([{ op: 'add', out: y, a: y, b: x }]), 2);
    const g = new Graph(list, { pool, maxRows: 1 });
    await g.run(1, 0);
    assert.deepEqual([...new Float32Array(y.read())], [3, 6, 9, 12]);
    assert.throws(() => list.add([]), { code: 'E_DISPOSED' });
    assert.throws(() => new Graph(list, { pool, maxRows: 1 }), { code: 'E_DISPOSED' });
    g.free();
    pool.free();
  });
});
