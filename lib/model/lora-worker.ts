/**
 * The LoRA worker (loadLoraAdapter's, one per process): reads and decodes each pair it is sent
 * (pairValues) and sends back A and Bᵀ with the request's id, so that a large adapter's decoding and
 * transposing never hold the application's event loop. A FuselmError goes back as its code and
 * message; anything else ends the worker (the loader then does the pair itself).
 */
import { parentPort } from 'node:worker_threads';
import { FuselmError } from '../errors.js';
import { type PairJob, pairValues } from './lora-values.js';

parentPort!.on('message', ({ id, job }: { id: number; job: PairJob }) => {
  pairValues(job).then(
    ({ a, bt }) => parentPort!.postMessage({ id, a, bt }, [a.buffer as ArrayBuffer, bt.buffer as ArrayBuffer]),
    (e: unknown) => {
      if (!(e instanceof FuselmError)) throw e;
      parentPort!.postMessage({ id, error: { code: e.code, message: e.message } });
    },
  );
});
