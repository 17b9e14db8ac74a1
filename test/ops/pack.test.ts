/**
 * Packed graph nodes (lib/ops/pack.ts, GraphNodes.addPacked), the way every model graph reaches
 * the addon (graphInSlices).
 *
 * Proves: (1) every parity case of every op gives, packed, the same bits as the same node read
 * as an object, so every role and parameter lands where the object path puts it; (2) sequence
 * spans (posSlot, row0, seqRows) land too; (3) a bad node is refused with the object path's
 * message naming the op and the field, adds nothing, and the list goes on working; (4) malformed
 * packed buffers given to the addon directly are errors, never a crash.
 */
import assert from 'node:assert/strict';
import { CpuBackend, graphInSlices, ops } from '../../lib/backend.js';
import { native } from '../../lib/native.js';
import { NodePacker } from '../../lib/ops/pack.js';
import { CASES, type GraphNode, nodeTensors, OP_TABLE, type OpName, writtenRoles } from '../../lib/ops/table.js';
import { emptyTensor, tensorFromF32, tensorFromI32 } from '../../lib/tensor.js';

/** The bytes of every written role after one run of `node`'s case, built by object or packed. */
async function written(be: CpuBackend, node: GraphNode, rows: number, pos: number, maxRows: number, packed: boolean): Promise<Buffer[]> {
  const g = packed ? await graphInSlices(be, [node], maxRows) : be.graph([node], maxRows);
  try {
    await g.run(rows, pos);
  } finally {
    g.dispose();
  }
  return writtenRoles(node.op).map((role) => Buffer.from((node as unknown as Record<string, ReturnType<typeof emptyTensor>>)[role].read()));
}

describe('packed graph nodes', () => {
  it('give every op case the bits of the object path', async () => {
    const be = new CpuBackend({ threads: 1 });
    try {
      for (const op of Object.keys(OP_TABLE) as OpName[])
        for (const c of CASES[op].parity) {
          const got: Buffer[][] = [];
          for (const packed of [false, true]) {
            const node = c.build();
            try {
              got.push(await written(be, node, c.rows, c.pos ?? 0, c.maxRows ?? c.rows, packed));
            } finally {
              for (const [, t] of nodeTensors(node)) t.free();
            }
          }
          got[0].forEach((b, i) => assert.ok(b.equals(got[1][i]), `${c.name}: ${writtenRoles(op)[i]} differs packed`));
        }
    } finally {
      be.dispose();
    }
  });

  it('carry sequence spans: rows and position slots', async () => {
    const be = new CpuBackend({ threads: 1 });
    const positions = tensorFromI32([2], Int32Array.of(5, 9));
    const init = Float32Array.from({ length: 3 * 8 }, (_, i) => Math.sin(i + 1));
    const results: Float32Array[] = [];
    for (const packed of [false, true]) {
      const x = tensorFromF32('f32', [3, 8], init);
      const rope = { nHeads: 2, headDim: 4, thetaBase: 10000 };
      const nodes = [ops.rope(x, rope, { row0: 0, rows: 2, slot: 0 }), ops.rope(x, rope, { row0: 2, slot: 1 })];
      const g = packed ? await graphInSlices(be, nodes, 3, positions) : be.graph(nodes, 3, positions);
      await g.run(3, 0);
      g.dispose();
      results.push(new Float32Array(x.read()));
      x.free();
    }
    assert.notDeepEqual(results[0], init);
    assert.deepEqual(results[1], results[0]);
    positions.free();
    be.dispose();
  });

  it('refuse a bad node with the object path’s message, adding nothing', async () => {
    const x = emptyTensor('f32', [2, 8]), y = emptyTensor('f32', [2, 8]);
    x.write(Float32Array.from({ length: 16 }, (_, i) => i));
    const packer = new NodePacker(new (native().GraphNodes)());
    const rope = ops.rope(x, { nHeads: 2, headDim: 4, thetaBase: 10000 }) as unknown as Record<string, unknown>;
    const { thetaBase: _, ...noTheta } = rope;
    const refuse = (n: Record<string, unknown>, message: RegExp) => assert.throws(() => packer.add([ops.add(y, x, x), n as never]), { code: 'E_INVALID_ARG', message });
    refuse(noTheta, /node #1 \(rope\): missing parameter 'thetaBase' \(number\)/);
    refuse({ ...rope, thetaBse: 1e6 }, /node #1 \(rope\): unknown field 'thetaBse'/);
    refuse({ ...rope, nHeads: 2.5 }, /node #1 \(rope\): parameter 'nHeads' must be an integer/);
    refuse({ ...rope, neox: 1 }, /parameter 'neox' must be a boolean/);
    refuse({ ...rope, thetaBase: Infinity }, /parameter 'thetaBase' must be a finite number/);
    refuse({ ...rope, row0: 0 }, /node #1 \(rope\): row0 and seqRows need a posSlot/);
    refuse({ ...rope, posSlot: 0 }, /node #1 \(rope\): posSlot needs row0 and seqRows/);
    refuse({ ...rope, posSlot: -2, row0: 0, seqRows: 1 }, /posSlot must be an integer >= 0/);
    refuse({ op: 'add', out: y, a: x }, /node #1 \(add\): missing tensor 'b'/);
    refuse({ op: 'add', out: y, a: x, b: {} }, /node #1 \(add\)\.b: must be a Tensor/);
    refuse({ op: 'nope', out: x }, /node #1: unknown op 'nope'/);
    refuse({ ...ops.add(y, x, x), posSlot: 0 }, /unknown field 'posSlot'/);
    // a present but undefined declared field is no field, as on the object path
    packer.add([ops.add(y, x, x), { ...rope, freqFactors: undefined } as never]);
    packer.add([ops.add(y, y, x)]);
    // the refused slices left nothing: node numbering and tensor table as if they never came
    assert.throws(() => packer.add([noTheta as never]), { message: /node #3 \(rope\)/ });
    const be = new CpuBackend({ threads: 1 });
    const list = new (native().GraphNodes)(), p2 = new NodePacker(list);
    assert.throws(() => p2.add([ops.add(y, x, x), noTheta as never]));
    p2.add([ops.add(y, x, x), ops.add(y, y, x)]);
    const g = be.graph(list, 2);
    await g.run(2, 0);
    assert.deepEqual([...new Float32Array(y.read())], Array.from({ length: 16 }, (_, i) => 3 * i));
    g.dispose();
    be.dispose();
    x.free();
    y.free();
  });

  it('malformed packed buffers are errors, never a crash', () => {
    const { GraphNodes } = native();
    const x = emptyTensor('f32', [1, 4]);
    const add = native().opTable().findIndex((o) => o.name === 'add');
    const bad = (ints: number[], params: number[], tensors: unknown[], message: RegExp) =>
      assert.throws(() => new GraphNodes().addPacked(Int32Array.from(ints), Float64Array.from(params), tensors as never), { code: 'E_INVALID_ARG', message });
    bad([9999], [], [], /node #0: unknown op index/);
    bad([-1], [], [], /unknown op index/);
    bad([add, 0, 0], [], [x], /packed buffers end early/);
    bad([add, 0, 0, 1], [], [x], /tensor index 1 out of range/);
    bad([add, 0, 0, 0], [1], [x], /1 parameters left over/);
    bad([add, 0, 0, 0], [], [{}], /must be a Tensor/);
    assert.throws(() => new GraphNodes().addPacked(new Float64Array(1) as never, new Float64Array(0), []), { code: 'E_INVALID_ARG', message: /ints has the wrong type/ });
    const l = new GraphNodes();
    assert.equal(l.addPacked(Int32Array.of(add, 0, 0, 0), new Float64Array(0), [x]), 1);
    assert.equal(l.addPacked(Int32Array.of(add, 0, 0, 0, add, 0, 0, 0), new Float64Array(0), []), 3);
    x.free();
  });
});
