/**
 * The snapshot publisher: the one seam between the trainer and snapshots.
 *
 *   const pub = openPublisher({ dir, registry, gateTolerance, modelName, announcer });
 *   const resume = pub.latestPublished();            // offsets to continue from, or null
 *   const snap = resume && pub.loadSnapshot(resume.version); // checksums verified
 *   ... train ...
 *   await pub.maybePublish({ files, items, users, models, model, offsets, metrics, parentVersion });
 *
 * maybePublish: allocate v<N> → write atomically (store.ts) → gate the metrics against the current
 * snapshot (gate.ts; when the two were evaluated on different request sets, against the current
 * snapshot re-evaluated on the candidate's set through `input.reevaluate`, else a re-based
 * baseline, noted) → record published-or-rejected (+ the announcement, one SQLite transaction)
 * → send unsent announcements. It knows nothing of the model: the trainer hands over bytes
 * (tfjs model files, checkpoint blobs), the embedding tables and the metrics it computed on the
 * held-out slice.
 *
 * One writer per snapshot directory (the trainer is one consumer, DESIGN.md "Scale").
 */

import { Kafka, logLevel } from 'kafkajs';
import type { Config } from '../config/schema.ts';
import { snapshotsSchema } from '../config/schema.ts';
import { errorMessage, RankdistillError } from '../errors.ts';
import { kafkaSecurity } from '../kafka/security.ts';
import { type Announcer, kafkaAnnouncer } from './announcer.ts';
import {
  evalSetsDiffer,
  type GateDecision,
  type GateSummary,
  gateOnEvalSet,
  type PairedGateOptions,
  pairedGate,
  type RequestScores,
} from './gate.ts';
import {
  type FileEntry,
  MANIFEST_FORMAT,
  type Manifest,
  type ModelDescription,
  type PartitionOffset,
} from './manifest.ts';
import {
  type AnnouncementRecord,
  openRegistry,
  registryPathOf,
  type SnapshotRecord,
  type SnapshotRegistry,
  toAnnouncement,
} from './registry.ts';
import {
  announcedFiles,
  cleanStaleTemps,
  highestVersionOnDisk,
  type LoadedSnapshot,
  loadSnapshotDir,
  type SnapshotFileInput,
  type WriteStepHook,
  writeSnapshotDir,
} from './store.ts';
import { encodeTable, type VectorTable } from './table.ts';

/** The paired gate's settings when none are given: the config's defaults. */
const DEFAULT_PAIRED_GATE: PairedGateOptions = snapshotsSchema.parse({}).gate;

/** What the trainer hands over at a checkpoint. */
export interface PublishInput {
  /** Model files (tfjs model.json + weights, optimizer/checkpoint blobs), snapshot-relative names. */
  files: SnapshotFileInput[];
  /** Item embedding table, the ANN index's input (written as items.json/.f32/.ids). */
  items: VectorTable;
  /** Known users' vectors in the same space (users.json/.f32/.ids), for tfjs-free recall. */
  users?: VectorTable;
  /** More tables in the same format, by name (e.g. `user_embeddings`, the user tower's id input). */
  tables?: Record<string, VectorTable>;
  /** model.json of each exported tfjs model among `files`, by name (e.g. `{ user_tower: 'model/user_tower/model.json' }`). */
  models?: Record<string, string>;
  model: ModelDescription;
  /** Next offset to consume per input partition: where a resumed trainer continues. */
  offsets: PartitionOffset[];
  /** Held-out metrics (recall_at_100_of_top10, ndcg_at_10, auc, ...). */
  metrics: Record<string, number>;
  /** Version the trainer resumed from (null: trained from scratch). */
  parentVersion: number | null;
  extra?: Record<string, unknown>;
  createdAt?: number;
  /**
   * Re-evaluates a snapshot (the current one) on the request set `metrics` were measured on;
   * called only when the two metric sets carry different eval-set identities. Null: it cannot
   * (e.g. the snapshot carries no trainer checkpoint); the gate then re-bases, noted.
   */
  reevaluate?: (current: SnapshotRecord) => Promise<Record<string, number> | null>;
  /** Per-request values behind `metrics` (the paired gate's input); absent: the absolute gate. */
  requestScores?: RequestScores;
  /**
   * The current snapshot's per-request values on the requests of `requestScores` (stored with it
   * when its eval set is the same, else re-evaluated on the candidate's set); null: none to pair.
   */
  baselineScores?: (current: SnapshotRecord) => Promise<{ scores: RequestScores; note?: string } | null>;
  /** Live quality of the serving snapshot when this candidate was cut (progressive validation). */
  live?: Record<string, number>;
}

export interface PublishResult {
  version: number;
  status: 'published' | 'rejected';
  /** Why the gate rejected it (empty when published). */
  reasons: string[];
  /** What it was gated against when the eval sets differed (see gate.ts gateOnEvalSet). */
  note?: string;
  /** The gate's decision, effect size and interval (also in the registry and the manifest). */
  gate: GateSummary;
  /** Absolute snapshot directory. */
  dir: string;
  files: FileEntry[];
  /** Whether every pending announcement reached the announcer (false: retried at the next call). */
  announced: boolean;
}

export type SnapshotEvent =
  | { type: 'temps-cleaned'; names: string[] }
  | { type: 'published'; version: number; dir: string; note?: string }
  | { type: 'rejected'; version: number; reasons: string[]; note?: string }
  | { type: 'rolled-back'; version: number }
  | { type: 'announced'; version: number; status: string }
  | { type: 'announce-failed'; version: number; error: string };

export interface PublisherOptions {
  /** Snapshot root directory (snapshots.dir). */
  dir: string;
  /** Registry path (snapshots.registry) or an open registry. */
  registry: string | SnapshotRegistry;
  /** snapshots.gateTolerance (the absolute gate, when no per-request values can be paired). */
  gateTolerance: number;
  /** snapshots.gate (the paired gate) [the config's defaults]. */
  gate?: PairedGateOptions;
  /** Key of the announcements (snapshots.modelName). */
  modelName: string;
  /** Where announcements go; none: registry only. */
  announcer?: Announcer;
  onEvent?: (e: SnapshotEvent) => void;
  /** Test hook between write steps. */
  writeHook?: WriteStepHook;
}

/**
 * Opens the publisher: cleans temp dirs of dead writers, opens the registry.
 *
 * @example
 * const pub = openPublisher({ dir: 'snapshots', registry: 'snapshots/registry.sqlite', gateTolerance: 0.02, modelName: 'student' });
 */
export function openPublisher(o: PublisherOptions): SnapshotPublisher {
  return new SnapshotPublisher(o);
}

/**
 * The publisher the config describes (snapshots.dir / registry / gateTolerance / modelName), with
 * announcements on kafka.topics.snapshots when `announce`: what the trainer and the
 * `snapshots rollback` command both open.
 *
 * @example
 * const pub = openPublisherFromConfig(loadConfig(), { announce: true });
 */
export function openPublisherFromConfig(
  c: Config,
  o: {
    announce: boolean;
    onEvent?: ((e: SnapshotEvent) => void) | undefined;
    /** kafkajs retries of the announcement (default kafkajs's 5, ~15 s against no broker). */
    retries?: number;
  },
): SnapshotPublisher {
  const announcer = o.announce
    ? kafkaAnnouncer(
        new Kafka({
          clientId: `${c.kafka.clientId}-snapshots`,
          brokers: c.kafka.brokers,
          logLevel: logLevel.NOTHING,
          ...kafkaSecurity(c.kafka),
          ...(o.retries === undefined ? {} : { retry: { retries: o.retries } }),
        }),
        c.kafka.topics.snapshots,
      )
    : undefined;
  return openPublisher({
    dir: c.snapshots.dir,
    registry: registryPathOf(c.snapshots),
    gateTolerance: c.snapshots.gateTolerance,
    gate: c.snapshots.gate,
    modelName: c.snapshots.modelName,
    ...(announcer ? { announcer } : {}),
    ...(o.onEvent ? { onEvent: o.onEvent } : {}),
  });
}

/** See {@link openPublisher}. */
export class SnapshotPublisher {
  readonly registry: SnapshotRegistry;
  private readonly o: PublisherOptions;
  private readonly ownsRegistry: boolean;

  constructor(o: PublisherOptions) {
    this.o = o;
    const names = cleanStaleTemps(o.dir);
    if (names.length > 0) o.onEvent?.({ type: 'temps-cleaned', names });
    this.ownsRegistry = typeof o.registry === 'string';
    this.registry = typeof o.registry === 'string' ? openRegistry(o.registry) : o.registry;
  }

  /** Next version number: above everything registered and everything on disk. */
  nextVersion(): number {
    return Math.max(this.registry.maxVersion(), highestVersionOnDisk(this.o.dir)) + 1;
  }

  /**
   * Writes a snapshot, gates it, records it, and announces it when it passes.
   *
   * @throws RankdistillError TRAIN_INPUT_INVALID for bad tables or file names; IO_FAILED when the
   *   write fails. A failed announcement does not throw (`announced: false`, retried later).
   * @example
   * const r = await pub.maybePublish({ files, items, model, offsets, metrics, parentVersion: 3 });
   * if (r.status === 'rejected') log(r.reasons);
   */
  async maybePublish(input: PublishInput): Promise<PublishResult> {
    const version = this.nextVersion();
    const createdAt = input.createdAt ?? Date.now();
    const tables: Record<string, string> = { items: 'items.json' };
    const files = [...input.files, ...encodeTable('items', input.items)];
    if (input.users) {
      if (input.users.dim !== input.items.dim)
        throw new RankdistillError(
          'TRAIN_INPUT_INVALID',
          `users table: expected dim ${input.items.dim} (the items' dim), found ${input.users.dim}`,
        );
      files.push(...encodeTable('users', input.users));
      tables.users = 'users.json';
    }
    for (const [name, t] of Object.entries(input.tables ?? {})) {
      if (name in tables || !/^[a-z][a-z0-9_]*$/.test(name))
        throw new RankdistillError(
          'TRAIN_INPUT_INVALID',
          `table name: expected [a-z][a-z0-9_]* other than items/users, found ${JSON.stringify(name)}`,
        );
      files.push(...encodeTable(name, t));
      tables[name] = `${name}.json`;
    }
    const models = input.models ?? {};
    for (const [name, path] of Object.entries(models)) {
      if (!files.some((f) => f.name === path))
        throw new RankdistillError(
          'TRAIN_INPUT_INVALID',
          `model ${name}: expected file ${path} among the files, found none`,
        );
    }
    const model = {
      ...input.model,
      numItems: input.items.ids.length,
      numUsers: input.users?.ids.length ?? 0,
    };
    const current = this.registry.current();
    const { decision, summary } = await this.decide(input, current?.snapshot ?? null);
    const note = decision.note;
    const written = writeSnapshotDir(
      this.o.dir,
      version,
      files,
      (entries): Manifest => ({
        format: MANIFEST_FORMAT,
        version,
        createdAt,
        parentVersion: input.parentVersion,
        model,
        offsets: input.offsets,
        metrics: input.metrics,
        tables,
        models,
        files: entries,
        extra: input.extra ?? {},
        gate: summary,
        ...(input.live ? { live: input.live } : {}),
      }),
      this.o.writeHook,
    );
    const all = announcedFiles(written.manifest, written.manifestSha256, written.manifestBytes);
    this.registry.record({
      version,
      status: decision.pass ? 'published' : 'rejected',
      createdAt,
      path: written.dir,
      parentVersion: input.parentVersion,
      model,
      offsets: input.offsets,
      metrics: input.metrics,
      files: all,
      // a published snapshot's reason is the gate's note, when it was not compared as usual
      reason: decision.pass
        ? (note ?? null)
        : [...decision.reasons, ...(note === undefined ? [] : [note])].join('; '),
      gate: summary,
      live: input.live ?? null,
    });
    const n = note === undefined ? {} : { note };
    if (decision.pass) this.o.onEvent?.({ type: 'published', version, dir: written.dir, ...n });
    else this.o.onEvent?.({ type: 'rejected', version, reasons: decision.reasons, ...n });
    const announced = await this.flush();
    return {
      version,
      status: decision.pass ? 'published' : 'rejected',
      reasons: decision.reasons,
      ...n,
      gate: summary,
      dir: written.dir,
      files: all,
      announced,
    };
  }

  /**
   * The gate's decision: the paired gate when the candidate carries per-request values and the
   * current snapshot's can be had on the same requests; else the absolute gate of `gateTolerance`
   * on the means (like with like through `input.reevaluate`, see gate.ts gateOnEvalSet).
   */
  private async decide(
    input: PublishInput,
    current: SnapshotRecord | null,
  ): Promise<{ decision: GateDecision; summary: GateSummary }> {
    const opts = this.o.gate ?? DEFAULT_PAIRED_GATE;
    let failure = '';
    if (input.requestScores) {
      let baseline: { scores: RequestScores; note?: string } | null = null;
      if (current && input.baselineScores) {
        try {
          baseline = await input.baselineScores(current);
        } catch (e) {
          failure = `; scoring v${current.version} on the candidate's requests failed: ${errorMessage(e)}`;
        }
      }
      if (current === null || baseline !== null) {
        const d = pairedGate(
          input.metrics,
          input.requestScores,
          current && baseline ? { version: current.version, scores: baseline.scores } : null,
          opts,
        );
        const note = baseline?.note;
        return { decision: note === undefined ? d : { ...d, note }, summary: d.summary };
      }
    }
    let reevaluated: Record<string, number> | null = null;
    if (current && input.reevaluate && evalSetsDiffer(input.metrics, current.metrics)) {
      try {
        reevaluated = await input.reevaluate(current);
      } catch (e) {
        failure += `; re-evaluating v${current.version} failed: ${errorMessage(e)}`;
      }
    }
    const gated = gateOnEvalSet(
      input.metrics,
      current ? { version: current.version, metrics: current.metrics } : null,
      this.o.gateTolerance,
      reevaluated,
    );
    const note =
      gated.note === undefined ? (failure === '' ? undefined : failure.slice(2)) : gated.note + failure;
    const decision = note === undefined ? gated : { ...gated, note };
    return {
      decision,
      summary: {
        decision: decision.pass ? 'published' : 'rejected',
        method: current ? 'absolute' : 'first',
        against: current?.version ?? null,
        confidence: opts.confidence,
        primary: null,
        secondary: [],
        warnings: note === undefined ? [] : [note],
      },
    };
  }

  /**
   * Makes an older published version current: verifies its files, records a `rollback`
   * announcement and sends it.
   *
   * @throws RankdistillError SNAPSHOT_NOT_FOUND / SNAPSHOT_REJECTED / SNAPSHOT_CORRUPT.
   * @example
   * await pub.rollback(2); // v2 is announced again, status 'rollback'
   */
  async rollback(version: number): Promise<{ announcement: AnnouncementRecord; announced: boolean }> {
    const s = this.registry.get(version);
    if (s?.status === 'published') loadSnapshotDir(s.path, s.files); // refuse a damaged target
    const announcement = this.registry.rollback(version);
    this.o.onEvent?.({ type: 'rolled-back', version });
    return { announcement, announced: await this.flush() };
  }

  /** Sends unsent announcements in order; false when one failed (it stays pending). */
  async flush(): Promise<boolean> {
    const announcer = this.o.announcer;
    if (!announcer) return true;
    for (const a of this.registry.unsent()) {
      const s = this.registry.get(a.version);
      if (!s) continue;
      try {
        await announcer.announce(this.o.modelName, toAnnouncement(s, a.status));
        this.registry.markSent(a.seq);
        this.o.onEvent?.({ type: 'announced', version: a.version, status: a.status });
      } catch (e) {
        this.o.onEvent?.({ type: 'announce-failed', version: a.version, error: errorMessage(e) });
        return false;
      }
    }
    return true;
  }

  /**
   * The current snapshot — the newest published one, or the version an operator rolled back to
   * since — with the offsets a resumed trainer continues from; null when nothing is published.
   *
   * @example
   * const s = pub.latestPublished(); if (s) consumer.seek(s.offsets);
   */
  latestPublished(): SnapshotRecord | null {
    return this.registry.current()?.snapshot ?? null;
  }

  /**
   * Loads a registered snapshot (`'latest'`: the current one), verifying every file against the
   * checksums in the registry.
   *
   * @throws RankdistillError SNAPSHOT_NOT_FOUND, SNAPSHOT_CORRUPT naming the bad file.
   * @example
   * const snap = pub.loadSnapshot('latest'); snap.table('items');
   */
  loadSnapshot(version: number | 'latest'): LoadedSnapshot {
    return loadRegisteredSnapshot(this.registry, version);
  }

  async close(): Promise<void> {
    await this.o.announcer?.close();
    if (this.ownsRegistry) this.registry.close();
  }
}

/**
 * Loads version `version` (or the current one for `'latest'`) named by `registry`, verifying its
 * files against the registered checksums.
 *
 * @throws RankdistillError SNAPSHOT_NOT_FOUND, SNAPSHOT_CORRUPT.
 * @example
 * const snap = loadRegisteredSnapshot(openRegistry('snapshots/registry.sqlite'), 'latest');
 */
export function loadRegisteredSnapshot(
  registry: SnapshotRegistry,
  version: number | 'latest',
): LoadedSnapshot {
  const s = version === 'latest' ? (registry.current()?.snapshot ?? null) : registry.get(version);
  if (!s)
    throw new RankdistillError(
      'SNAPSHOT_NOT_FOUND',
      version === 'latest'
        ? 'snapshot latest: expected a published snapshot, found none in the registry'
        : `snapshot v${version}: expected it in the registry, found none`,
      { details: { version } },
    );
  return loadSnapshotDir(s.path, s.files);
}
