/**
 * Chooses and initialises the TensorFlow.js backend of the trainer.
 *
 * Order for `auto`: `tensorflow` (native, from the optional `@tensorflow/tfjs-node`, when it is
 * installed) → `wasm` → `cpu`. wasm before cpu because it was measured faster on our machine for
 * every op the trainer uses (bench/train.bench.ts: tens of thousands of examples/s against a few
 * thousand on cpu for the d=32 two-tower); the trainer never needs `UnsortedSegmentSum` (missing in
 * tfjs-backend-wasm 4.22) because embedding rows are inputs, not gathered variables (sparse.ts).
 *
 * The wasm binaries ship inside the npm package; in Node they are loaded from
 * node_modules/@tensorflow/tfjs-backend-wasm/dist/ by a file path given to `setWasmPaths`.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { errorMessage, RankdistillError } from '../errors.ts';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
export type BackendChoice = 'auto' | BackendName;

export interface BackendInfo {
  /** The backend in use. */
  name: BackendName;
  /** Why it was chosen (and why preferred ones were not). */
  reason: string;
}

const require = createRequire(import.meta.url);
let wasmRegistered = false;

async function tryTensorflow(): Promise<string | undefined> {
  try {
    // Optional dependency: absent where its native install fails. The name is in a variable so
    // TypeScript does not require its types.
    const name = '@tensorflow/tfjs-node';
    await import(name);
    if (!(await tf.setBackend('tensorflow')))
      return 'tfjs-node loaded but the tensorflow backend did not start';
    return undefined;
  } catch (e) {
    return `@tensorflow/tfjs-node unavailable (${errorMessage(e).split('\n')[0]})`;
  }
}

/** Directory holding the tfjs-backend-wasm .wasm binaries, with a trailing slash. */
export function wasmDir(): string {
  return `${join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist')}/`;
}

async function tryWasm(): Promise<string | undefined> {
  try {
    if (!wasmRegistered) {
      const wasm = await import('@tensorflow/tfjs-backend-wasm');
      wasm.setWasmPaths(wasmDir());
      wasmRegistered = true;
    }
    if (!(await tf.setBackend('wasm'))) return 'the wasm backend did not initialise';
    return undefined;
  } catch (e) {
    return `wasm backend failed (${errorMessage(e).split('\n')[0]})`;
  }
}

/**
 * Initialises the requested backend (or the best available for `auto`) and returns which one runs.
 * Idempotent: switching back to an initialised backend is cheap.
 *
 * @throws RankdistillError BACKEND_UNAVAILABLE when an explicitly requested backend cannot start.
 * @example
 * const { name, reason } = await initBackend('auto'); // { name: 'wasm', reason: '...' }
 */
export async function initBackend(choice: BackendChoice = 'auto'): Promise<BackendInfo> {
  const attempts: Record<BackendName, () => Promise<string | undefined>> = {
    tensorflow: tryTensorflow,
    wasm: tryWasm,
    cpu: async () => ((await tf.setBackend('cpu')) ? undefined : 'cpu backend did not start'),
  };
  const order: BackendName[] = choice === 'auto' ? ['tensorflow', 'wasm', 'cpu'] : [choice];
  const failures: string[] = [];
  for (const name of order) {
    const failure = await attempts[name]();
    if (failure === undefined) {
      await tf.ready();
      const reason =
        choice === 'auto'
          ? `auto: first available of tensorflow > wasm > cpu${failures.length ? `; ${failures.join('; ')}` : ''}`
          : 'requested';
      return { name, reason };
    }
    failures.push(failure);
  }
  throw new RankdistillError(
    'BACKEND_UNAVAILABLE',
    `TensorFlow.js backend ${choice}: expected it to initialise, found: ${failures.join('; ')}`,
  );
}
