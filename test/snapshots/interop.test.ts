// A snapshot's tfjs model loads in a separate process that has only @tensorflow/tfjs (no
// rankdistill code) and predicts exactly what the exporting process predicts.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { openPublisher } from '../../src/snapshots/publisher.ts';
import { layersModelFiles, loadSnapshotModel } from '../../src/snapshots/tfjs.ts';
import { publishInput, tempRoot } from './helpers.ts';

const LOADER = new URL('./fixtures/load-model.mjs', import.meta.url).pathname;

describe('tfjs model interop', () => {
  test('the exported user tower loads with plain tfjs in a child process and gives the same output', async () => {
    await tf.setBackend('cpu');
    const tower = tf.sequential({
      layers: [
        tf.layers.dense({
          inputShape: [6],
          units: 5,
          activation: 'relu',
          kernelInitializer: tf.initializers.randomNormal({ seed: 1 }),
        }),
        tf.layers.dense({ units: 8, kernelInitializer: tf.initializers.randomNormal({ seed: 2 }) }),
      ],
    });
    const input = [0.5, -1, 2, 0.25, 0, 1];
    const expected = Array.from((tower.predict(tf.tensor2d([input])) as tf.Tensor).dataSync());

    const root = tempRoot();
    const pub = openPublisher({
      dir: root,
      registry: join(root, 'registry.sqlite'),
      gateTolerance: 0.02,
      modelName: 's',
    });
    const files = await layersModelFiles(tower, 'model/user_tower/');
    const r = await pub.maybePublish(
      publishInput({ files, models: { user_tower: 'model/user_tower/model.json' } }),
    );
    assert.equal(r.status, 'published');

    const out = execFileSync(
      process.execPath,
      [LOADER, join(r.dir, 'model', 'user_tower'), JSON.stringify(input)],
      {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    const got = JSON.parse(out.trim().split('\n').at(-1)!) as number[];
    assert.equal(got.length, 8);
    for (let i = 0; i < 8; i++)
      assert.ok(Math.abs(got[i]! - expected[i]!) < 1e-5, `output ${i}: ${got[i]} vs ${expected[i]}`);

    // and in-process through the verified snapshot
    const loaded = await loadSnapshotModel(pub.loadSnapshot(r.version), 'user_tower');
    const again = Array.from((loaded.predict(tf.tensor2d([input])) as tf.Tensor).dataSync());
    assert.deepEqual(again, expected);
    await pub.close();
  });
});
