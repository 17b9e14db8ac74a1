/**
 * Graph nodes handed to the addon packed (GraphNodes.addPacked): read as objects, field by field
 * in C++ (two dozen named property reads a node, each through a new string), they cost most of
 * a graph's build: a 64-span server step of 7,439 nodes took 35-38 ms of CPU (load average
 * 9-13; 0.3-0.9 s of wall time on a busier host), 16-18 ms packed (bench/graph_build.bench.ts,
 * node objects made included). Packed, each node is a run of int32s (the op's
 * index in the addon's op table, a tensor index or -1 per role in the table's order, and for a
 * positional op its posSlot, row0 and seqRows or -1 each) and one float64 per parameter (NaN:
 * absent); a tensor is unwrapped once per graph, not once per use. The fields are checked here
 * with the messages the addon's object path gives; the addon checks the structure again.
 */
import type { NativeGraphNodes, NativeTensor } from '../../bindings.js';
import { FuselmError } from '../errors.js';
import { call, native } from '../native.js';
import type { GraphNode } from './table.js';

interface OpLayout {
  index: number;
  roles: string[];
  params: { name: string; type: 'float' | 'int' | 'bool' }[];
  positional: boolean;
}

const SPAN_FIELDS = ['posSlot', 'row0', 'seqRows'] as const;
/** The addon's op table by name, in its order (the packed layout's), and the most ints and params a node packs into. */
let layouts: { ops: Map<string, OpLayout>; ints: number; params: number } | undefined;

function opLayouts(): NonNullable<typeof layouts> {
  if (layouts) return layouts;
  const table = call(() => native().opTable());
  layouts = {
    ops: new Map(table.map((o, index) => [o.name, {
      index, roles: o.roles.map((r) => r.name), params: o.params.map((p) => ({ name: p.name, type: p.type })), positional: o.positional,
    }])),
    ints: Math.max(...table.map((o) => 1 + o.roles.length + (o.positional ? SPAN_FIELDS.length : 0))),
    params: Math.max(...table.map((o) => o.params.length)),
  };
  return layouts;
}

const bad = (where: string, what: string) => new FuselmError('E_INVALID_ARG', `${where}: ${what}`);

/** Appends nodes to one GraphNodes list, packed; its tensor table is kept across calls. */
export class NodePacker {
  readonly #list: NativeGraphNodes;
  readonly #tensors = new Map<NativeTensor, number>();
  #count = 0;

  constructor(list: NativeGraphNodes) {
    this.#list = list;
  }

  /** Checks and packs `nodes` and adds them to the list (numbered after those added before). A bad node adds nothing. */
  add(nodes: readonly GraphNode[]): void {
    const fresh: NativeTensor[] = [];
    try {
      const { ints, params } = this.#pack(nodes, fresh);
      this.#count = call(() => this.#list.addPacked(ints, params, fresh));
    } catch (e) {
      // the list is as it was, and so is the tensor table
      for (const t of fresh) this.#tensors.delete(t);
      throw e;
    }
  }

  /** The packed nodes; tensors new to the table are added to it and to `fresh`. */
  #pack(nodes: readonly GraphNode[], fresh: NativeTensor[]): { ints: Int32Array; params: Float64Array } {
    const { ops: table, ints: intsPer, params: paramsPer } = opLayouts(), Tensor = native().Tensor;
    const ints = new Int32Array(nodes.length * intsPer), params = new Float64Array(nodes.length * paramsPer);
    let at = 0, pAt = 0;
    nodes.forEach((node, k) => {
      const o = node as unknown as Record<string, unknown>;
      let where = `node #${this.#count + k}`;
      const L = typeof o.op === 'string' ? table.get(o.op) : undefined;
      if (!L) throw bad(where, `unknown op${typeof o.op === 'string' ? ` '${o.op}'` : ''}`);
      where += ` (${o.op})`;
      let known = 1;
      ints[at++] = L.index;
      for (const role of L.roles) {
        const t = o[role];
        if (t === undefined) {
          ints[at++] = -1;
          continue;
        }
        if (!(t instanceof Tensor)) throw bad(`${where}.${role}`, 'must be a Tensor');
        known++;
        let i = this.#tensors.get(t);
        if (i === undefined) {
          this.#tensors.set(t, (i = this.#tensors.size));
          fresh.push(t);
        }
        ints[at++] = i;
      }
      for (const p of L.params) {
        const v = o[p.name];
        if (v === undefined) {
          params[pAt++] = NaN;
          continue;
        }
        known++;
        if (p.type === 'bool' ? typeof v !== 'boolean' : typeof v !== 'number' || !Number.isFinite(v) || (p.type === 'int' && !Number.isInteger(v)))
          throw bad(where, `parameter '${p.name}' must be ${p.type === 'bool' ? 'a boolean' : p.type === 'int' ? 'an integer' : 'a finite number'}`);
        params[pAt++] = typeof v === 'boolean' ? +v : (v as number);
      }
      if (L.positional)
        for (const f of SPAN_FIELDS) {
          const v = o[f];
          if (v === undefined) ints[at++] = -1;
          else if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < 2 ** 31) {
            known++;
            ints[at++] = v;
          } else throw bad(where, `${f} must be an integer >= 0`);
        }
      // a field the op does not declare is a mistake (a typo would otherwise be a silent default)
      let keys = 0;
      for (const _ in o) keys++;
      if (keys !== known) {
        // (a declared field may be present and undefined)
        const declared = new Set<string>(['op', ...L.roles, ...L.params.map((p) => p.name), ...(L.positional ? SPAN_FIELDS : [])]);
        const unknown = Object.keys(o).find((key) => !declared.has(key));
        if (unknown !== undefined) throw bad(where, `unknown field '${unknown}'`);
      }
    });
    return { ints: ints.subarray(0, at), params: params.subarray(0, pAt) };
  }
}
