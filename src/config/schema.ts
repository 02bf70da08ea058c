/**
 * The one source of truth for rankdistill's options: names, types, defaults and docs.
 *
 * `docs/CONFIG.md`-style documentation is generated from the `.describe()` texts
 * (`rankdistill config --docs`), and environment overrides map onto these paths
 * (`RANKDISTILL_JOIN__WINDOW_MS=60000` sets `join.windowMs`).
 */
import { z } from 'zod';

const posInt = () => z.number().int().positive();
const nonNegInt = () => z.number().int().nonnegative();
const finite = () => z.number().finite();

export const topicsSchema = z
  .strictObject({
    rankerOutputs: z
      .string()
      .min(1)
      .default('ranker-outputs')
      .describe('Input topic of teacher RankerOutput records.'),
    impressions: z.string().min(1).default('impressions').describe('Input topic of Impression records.'),
    pointwise: z.string().min(1).default('labels.pointwise').describe('Output topic of PointwiseLabels.'),
    pairwise: z.string().min(1).default('labels.pairwise').describe('Output topic of PairwiseLabels.'),
    listwise: z.string().min(1).default('labels.listwise').describe('Output topic of ListwiseLabels.'),
    deadLetter: z.string().min(1).default('rankdistill.dead-letter').describe('Dead-letter topic.'),
    snapshots: z.string().min(1).default('student-snapshots').describe('Snapshot announcement topic.'),
    changelog: z
      .string()
      .min(1)
      .default('rankdistill.join-state.changelog')
      .describe('Compacted changelog topic of the join state (one partition per input partition).'),
  })
  .describe('Topic names.');

const optPath = (what: string) => z.string().min(1).optional().describe(what);
/** Names of the options that hold a secret: `rankdistill config` and config errors show them as ***. */
export const SECRET_OPTIONS: ReadonlySet<string> = new Set(['password', 'bearerToken']);

export const kafkaSslSchema = z
  .strictObject({
    enabled: z
      .boolean()
      .default(false)
      .describe('Connect to the brokers with TLS (SSL / SASL_SSL listeners).'),
    caFile: optPath("PEM file of the CA(s) that signed the brokers' certificates (default: the system CAs)."),
    certFile: optPath('PEM client certificate, for brokers that require TLS client authentication.'),
    keyFile: optPath('PEM private key of certFile.'),
    rejectUnauthorized: z
      .boolean()
      .default(true)
      .describe('Refuse brokers whose certificate does not verify (turn off only to debug).'),
    servername: optPath('TLS server name (SNI) to send and verify, when it differs from the broker host.'),
  })
  .superRefine((v, ctx) => {
    if (!v.enabled && (v.caFile ?? v.certFile ?? v.keyFile ?? v.servername) !== undefined) {
      ctx.addIssue({
        code: 'custom',
        message: 'TLS files are set but kafka.ssl.enabled is false',
        path: ['enabled'],
      });
    }
    if ((v.certFile === undefined) !== (v.keyFile === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'certFile and keyFile go together', path: ['certFile'] });
    }
  })
  .describe('TLS to the brokers.');

export const kafkaSaslSchema = z
  .strictObject({
    mechanism: z
      .enum(['none', 'plain', 'scram-sha-256', 'scram-sha-512', 'oauthbearer'])
      .default('none')
      .describe('SASL mechanism (none: no authentication).'),
    username: z.string().min(1).optional().describe('User of plain / scram-*.'),
    password: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Password of plain / scram-* (secret, shown as ***). Prefer passwordFile or the environment (RANKDISTILL_KAFKA__SASL__PASSWORD).',
      ),
    passwordFile: optPath('File holding the password (trailing newline ignored).'),
    oauthTokenFile: optPath(
      'oauthbearer: file holding the current token, re-read at every (re)authentication.',
    ),
    oauthTokenCommand: optPath(
      'oauthbearer: shell command printing the current token on stdout, run at every (re)authentication.',
    ),
  })
  .superRefine((v, ctx) => {
    const need = (ok: boolean, path: string, message: string) => {
      if (!ok) ctx.addIssue({ code: 'custom', message, path: [path] });
    };
    if (v.mechanism === 'plain' || v.mechanism.startsWith('scram')) {
      need(v.username !== undefined, 'username', `sasl mechanism ${v.mechanism} needs a username`);
      need(
        (v.password === undefined) !== (v.passwordFile === undefined),
        'password',
        `sasl mechanism ${v.mechanism} needs exactly one of password, passwordFile`,
      );
    }
    if (v.mechanism === 'oauthbearer') {
      need(
        (v.oauthTokenFile === undefined) !== (v.oauthTokenCommand === undefined),
        'oauthTokenFile',
        'sasl mechanism oauthbearer needs exactly one of oauthTokenFile, oauthTokenCommand',
      );
    }
  })
  .describe('SASL authentication to the brokers.');

export const schemaRegistryAuthSchema = z
  .strictObject({
    username: z.string().min(1).optional().describe('Basic-auth user (Confluent Cloud: the API key).'),
    password: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Basic-auth password (secret, shown as ***); prefer passwordFile or RANKDISTILL_KAFKA__SCHEMA_REGISTRY_AUTH__PASSWORD.',
      ),
    passwordFile: optPath('File holding the basic-auth password.'),
    bearerToken: z
      .string()
      .min(1)
      .optional()
      .describe('Bearer token (secret, shown as ***); prefer bearerTokenFile.'),
    bearerTokenFile: optPath('File holding the bearer token, re-read for every request.'),
    caFile: optPath("PEM file of the CA(s) of the registry's https certificate (default: the system CAs)."),
    rejectUnauthorized: z
      .boolean()
      .default(true)
      .describe('Refuse a registry whose certificate does not verify.'),
  })
  .superRefine((v, ctx) => {
    const basic = v.password !== undefined || v.passwordFile !== undefined;
    const bearer = v.bearerToken !== undefined || v.bearerTokenFile !== undefined;
    if (v.password !== undefined && v.passwordFile !== undefined)
      ctx.addIssue({
        code: 'custom',
        message: 'give password or passwordFile, not both',
        path: ['password'],
      });
    if (v.bearerToken !== undefined && v.bearerTokenFile !== undefined)
      ctx.addIssue({
        code: 'custom',
        message: 'give bearerToken or bearerTokenFile, not both',
        path: ['bearerToken'],
      });
    if (basic && bearer)
      ctx.addIssue({
        code: 'custom',
        message: 'give basic auth or a bearer token, not both',
        path: ['bearerToken'],
      });
    if (basic !== (v.username !== undefined))
      ctx.addIssue({
        code: 'custom',
        message: 'basic auth needs both username and a password',
        path: ['username'],
      });
  })
  .describe('Credentials and TLS of the schema registry.');

export const kafkaSchema = z
  .strictObject({
    brokers: z
      .array(z.string().regex(/^[^:\s]+:\d+$/, 'expected host:port'))
      .min(1)
      .default(['127.0.0.1:9092'])
      .describe('Bootstrap brokers, host:port. Env: comma-separated.'),
    clientId: z.string().min(1).default('rankdistill').describe('Kafka client id prefix.'),
    groupId: z
      .string()
      .min(1)
      .default('rankdistill-labeler')
      .describe('Consumer group of the labeling service.'),
    topics: topicsSchema.prefault({}),
    inputFormat: z
      .enum(['avro', 'confluent', 'json'])
      .default('avro')
      .describe('Wire format of input records: plain Avro, Confluent framing (magic + schema id) or JSON.'),
    outputFormat: z
      .enum(['avro', 'confluent'])
      .default('avro')
      .describe('Wire format of records we produce.'),
    schemaRegistryUrl: z
      .url()
      .optional()
      .describe('Confluent-compatible schema registry; enables confluent framing.'),
    schemaRegistryAuth: schemaRegistryAuthSchema.prefault({}),
    ssl: kafkaSslSchema.prefault({}),
    sasl: kafkaSaslSchema.prefault({}),
    createTopics: z
      .boolean()
      .default(true)
      .describe('Create missing topics at start (with the partitions below).'),
    partitions: posInt().default(4).describe('Partitions of topics created by rankdistill.'),
    replicationFactor: posInt().default(1).describe('Replication factor of topics created by rankdistill.'),
    transactionTimeoutMs: posInt().default(60_000).describe('Kafka transaction timeout.'),
    commitIntervalMs: posInt().default(100).describe('Upper bound on the time between transaction commits.'),
    maxBatchRecords: posInt().default(5_000).describe('Most input records processed in one transaction.'),
    sessionTimeoutMs: posInt().default(30_000).describe('Consumer group session timeout.'),
    stopTimeoutMs: posInt()
      .default(7_000)
      .describe(
        "Longest a graceful stop (SIGTERM/SIGINT) may take: finish or cancel the start-up, commit open batches, leave the group. Past it the process exits anyway (open transactions are aborted by the partitions' next owner). With the CLI's 1 s exit grace this stays below Docker's default 10 s stop grace.",
      ),
    deadLetterMaxBytes: posInt()
      .min(1_024)
      .default(256 * 1024)
      .describe(
        "Largest original value plus key (counted twice: message key and field) a dead letter carries: a larger value keeps its first bytes, its size and SHA-256 (raw_truncated); a key larger than a quarter of it likewise (key_truncated). Also bounded by the dead-letter topic's max.message.bytes, so a dead letter always fits.",
      ),
    streamThreads: posInt()
      .max(64)
      .default(1)
      .describe(
        'Labeler stream threads in one process (Kafka Streams num.stream.threads): each is a worker thread with its own consumer-group member, tasks and state under store.dir/thread-<i>; partitions are spread over them. Use up to the cores the process may use.',
      ),
  })
  .describe('Kafka transport.');

export const joinSchema = z
  .strictObject({
    windowMs: posInt()
      .default(600_000)
      .describe('Join window in event time: a request completes when both sides arrive within it.'),
    allowedLatenessMs: nonNegInt()
      .default(30_000)
      .describe('Watermark = largest event time seen on the partition minus this lateness.'),
    emitUnmatched: z
      .boolean()
      .default(true)
      .describe('When the window closes on a lone RankerOutput, still emit labels (without ground truth).'),
  })
  .describe('Event-time join of RankerOutput and Impression by request_id.');

export const teacherSchema = z
  .strictObject({
    signal: z
      .enum(['logits', 'rank'])
      .default('logits')
      .describe('logits: use the teacher scores; rank: only the order is used (the without-logits scheme).'),
    objectiveWeights: z
      .record(z.string(), finite())
      .default({})
      .describe('Fuse multi-objective logits: z = sum_k w_k * objectives[k]. Empty: use the score field.'),
    missingLogits: z
      .enum(['error', 'score'])
      .default('error')
      .describe(
        'When a weighted objective is missing on an item: reject the request, or fall back to its score.',
      ),
    orderSource: z
      .enum(['ranker', 'impression'])
      .default('ranker')
      .describe("Order to learn: the ranker's order, or the impression's post-re-rank order."),
  })
  .describe('Teacher signal.');

export const pointwiseSchema = z
  .strictObject({
    enabled: z.boolean().default(true).describe('Emit PointwiseLabels.'),
    k: posInt().default(5).describe('Top K of the list are positives, the rest negatives.'),
    weighting: z
      .enum(['reciprocal', 'exponential', 'dcg', 'constant'])
      .default('reciprocal')
      .describe(
        'Position weight of positives: reciprocal 1 + a/pos, exponential exp(-pos/lambda), dcg 1/log2(pos+1), constant 1.',
      ),
    a: finite().nonnegative().default(1).describe('Slope a of the reciprocal weighting.'),
    lambda: finite()
      .positive()
      .default(5)
      .describe('Temperature lambda of the exponential weighting (Tang & Wang 2018).'),
    softTargets: z
      .boolean()
      .default(false)
      .describe('Emit soft targets sigmoid(z / T) from the teacher logit.'),
    temperature: finite().positive().default(1).describe("Hinton's temperature T of the soft targets."),
  })
  .describe('Pointwise labels.');

export const pairwiseSchema = z
  .strictObject({
    enabled: z.boolean().default(true).describe('Emit PairwiseLabels.'),
    strategy: z
      .enum(['topk-vs-below', 'adjacent', 'sampled'])
      .default('topk-vs-below')
      .describe(
        'topk-vs-below: each of the top K against m items ranked below it; adjacent: (r, r+1); sampled: random ordered pairs.',
      ),
    k: posInt().default(5).describe('Positives of the topk-vs-below strategy.'),
    m: posInt().default(4).describe('Items ranked below each positive drawn per positive.'),
    maxPairs: posInt().default(64).describe('Cap on the pairs of one request.'),
    minRankGap: posInt().default(1).describe('Minimum neg_rank - pos_rank of a pair.'),
    weightByDeltaNdcg: z
      .boolean()
      .default(false)
      .describe('Weight each pair by |delta NDCG| of swapping its items.'),
  })
  .describe('Pairwise (BPR) labels.');

export const listwiseSchema = z
  .strictObject({
    enabled: z.boolean().default(true).describe('Emit ListwiseLabels.'),
    scheme: z
      .enum(['buckets', 'logit-quantiles', 'logit-thresholds'])
      .default('buckets')
      .describe(
        'buckets: rank buckets; logit-quantiles: per-list quantiles of the logit; logit-thresholds: fixed cut points.',
      ),
    bucketSize: posInt()
      .default(5)
      .describe('Ranks per bucket: top bucketSize get maxGrade, the next maxGrade - 1, ...'),
    maxGrade: posInt().max(30).default(5).describe('Highest grade.'),
    levels: posInt().min(2).max(31).default(6).describe('Grades 0..levels-1 of the logit-quantiles scheme.'),
    thresholds: z
      .array(finite())
      .default([])
      .describe('Ascending logit cut points of logit-thresholds: grade = number of thresholds <= logit.'),
  })
  .describe('Listwise graded relevance.');

export const labelsSchema = z
  .strictObject({
    teacher: teacherSchema.prefault({}),
    pointwise: pointwiseSchema.prefault({}),
    pairwise: pairwiseSchema.prefault({}),
    listwise: listwiseSchema.prefault({}),
  })
  .describe('Label generation.');

export const storeSchema = z
  .strictObject({
    dir: z
      .string()
      .min(1)
      .default('.rankdistill/state')
      .describe('Directory of the SQLite join-state stores.'),
  })
  .describe('Local state.');

export const trainSchema = z
  .strictObject({
    model: z.enum(['two-tower', 'fm']).default('two-tower').describe('Student model.'),
    dim: posInt().default(32).describe('Embedding dimension d.'),
    hidden: z.array(posInt()).default([64]).describe('Hidden layer sizes of the towers.'),
    batchSize: posInt().default(1024).describe('Examples per training step.'),
    optimizer: z
      .enum(['adam', 'adagrad'])
      .default('adam')
      .describe('Optimizer of dense and sparse parameters.'),
    learningRate: finite().positive().default(0.01).describe('Learning rate.'),
    lossWeights: z
      .strictObject({
        pointwise: finite().nonnegative().default(1),
        pairwise: finite().nonnegative().default(1),
        listwise: finite().nonnegative().default(1),
        negatives: finite().nonnegative().default(1),
      })
      .prefault({})
      .describe(
        'Weights of the per-kind losses in the summed loss (negatives: the in-batch/sampled softmax with logQ correction).',
      ),
    listwiseLoss: z
      .enum(['listnet', 'lambda'])
      .default('listnet')
      .describe('ListNet softmax CE or NDCG-weighted loss.'),
    groundTruthLambda: finite()
      .min(0)
      .max(1)
      .default(0)
      .describe('lambda of the mixed loss: (1-lambda)*teacher + lambda*clicks.'),
    inBatchNegatives: z.boolean().default(true).describe('Add in-batch negatives with logQ correction.'),
    sampledNegatives: nonNegInt()
      .default(0)
      .describe('Negatives per example drawn from the item-frequency estimate.'),
    shuffleBuffer: posInt().default(10_000).describe('Bounded shuffle buffer of examples.'),
    heldOutPercent: finite()
      .min(0)
      .max(50)
      .default(5)
      .describe('Percent of requests (by hash of request_id) held out for evaluation.'),
    validationPercent: finite()
      .min(0)
      .max(50)
      .default(2)
      .describe(
        'Percent of requests (by hash of request_id, the slice after the held-out one) kept for validation: never trained on, not the evaluation set; priorBeta is chosen on them.',
      ),
    validationRequests: posInt()
      .default(1000)
      .describe(
        'Validation requests kept (the first N of the validation slice, then frozen like evalRequests).',
      ),
    priorBeta: z
      .union([z.literal('auto'), finite().min(0)])
      .default('auto')
      .describe(
        'Weight beta of the exposure prior beta*logQ(item) in the served score (the prior column of the item table; docs/SNAPSHOTS.md). auto: at every checkpoint, the value of priorBetaGrid with the best validation recall (1 until validation requests exist).',
      ),
    priorBetaGrid: z
      .array(finite().min(0))
      .min(1)
      .default([0, 0.5, 1, 1.5, 2, 3])
      .describe('Values of beta tried when priorBeta is auto.'),
    historyLength: nonNegInt()
      .default(0)
      .describe(
        "Behaviour input of the user tower (two-tower): the mean item embedding of the user's last N distinct positives (teacher top historyTopK and clicks; the request's own items left out), kept in the trainer's checkpointed state (docs/DESIGN-history.md). 0: off.",
      ),
    historyTopK: posInt()
      .default(5)
      .describe('Teacher ranks 1..K of a request count as positives of the history.'),
    userIdEmbedding: z
      .boolean()
      .default(true)
      .describe(
        'Whether the user tower reads a user id embedding (bounded by maxUsers); false: behaviour and context only.',
      ),
    backend: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).default('auto').describe('TensorFlow.js backend.'),
    checkpointEveryExamples: posInt()
      .default(200_000)
      .describe('Checkpoint (and snapshot) every N examples.'),
    checkpointEveryMs: posInt().default(60_000).describe('Checkpoint (and snapshot) at least every T ms.'),
    groupId: z.string().min(1).default('rankdistill-trainer').describe('Consumer group of the trainer.'),
    contextBuckets: nonNegInt()
      .default(16)
      .describe('Width of the hashed context-feature vector fed to the user tower (0: ignore context).'),
    itemFeatureBuckets: nonNegInt()
      .default(16)
      .describe('Width of the hashed item-feature vector fed to the item tower (0: ignore item features).'),
    maxUsers: nonNegInt()
      .default(0)
      .describe('Most exact rows of the user id table (0: unbounded); past it new ids share hashed rows.'),
    maxItems: nonNegInt()
      .default(0)
      .describe('Most exact rows of the item id table (0: unbounded); past it new ids share hashed rows.'),
    maxListLength: posInt()
      .default(50)
      .describe('Listwise labels keep the teacher top N items of a list for the listwise loss.'),
    frequencyBuckets: posInt()
      .default(1 << 20)
      .describe('Hash buckets of the streaming item-frequency estimate (Yi et al. 2019) behind logQ.'),
    frequencyAlpha: finite()
      .positive()
      .max(1)
      .default(0.01)
      .describe('Learning rate alpha of the frequency estimate: B <- (1-alpha) B + alpha (t - A).'),
    evalRequests: posInt()
      .default(1000)
      .describe(
        'Held-out requests evaluated at every checkpoint: the first N held-out requests in stream order, then frozen (and kept in the checkpoint), so successive snapshots are compared on the same set; later held-out requests are still never trained on.',
      ),
    evalSet: z
      .enum(['first', 'latest'])
      .default('first')
      .describe(
        "Which held-out requests are evaluated: the first evalRequests, then frozen (first), or the latest evalRequests, the oldest leaving as new ones join (latest: follows a drifting stream; the gate re-scores the current snapshot on each candidate's set, one more evaluation per checkpoint).",
      ),
    keepCheckpoints: nonNegInt()
      .default(3)
      .describe('Trainer checkpoints kept in the checkpoint directory (0: keep all).'),
    seed: nonNegInt().default(1).describe('Seed of initialisation, shuffling and negative sampling.'),
    gauge: z
      .strictObject({
        share: finite()
          .min(0)
          .max(1)
          .default(0.02)
          .describe(
            'Share of training requests (by hash of request_id) scored by the current snapshot before training on them (progressive validation; 0: off). A scored request costs a catalog-wide top 100 (~4 ms on wasm with 10k items on a loaded machine): 0.02 keeps the trainer near its throughput.',
          ),
        window: posInt()
          .default(500)
          .describe('Scored requests in the moving window and in each drop check.'),
        dropThreshold: finite()
          .min(0)
          .max(1)
          .default(0.05)
          .describe(
            'A window whose live recall is this far below the mean of every scored request before it logs a warning and counts a drop.',
          ),
      })
      .prefault({})
      .describe('Live distillation-quality gauge (progressive validation).'),
    metricsPort: z
      .number()
      .int()
      .min(0)
      .max(65535)
      .default(9465)
      .describe(
        "Port of the trainer's Prometheus /metrics (the live gauge; 0: ephemeral; off when metrics.enabled is false).",
      ),
  })
  .describe('Student training.');

export const snapshotsSchema = z
  .strictObject({
    dir: z.string().min(1).default('snapshots').describe('Directory of snapshots/v<N>.'),
    registry: z
      .string()
      .min(1)
      .optional()
      .describe(
        'SQLite registry of snapshots; default <dir>/registry.sqlite, so the snapshot directory carries its registry and setting dir is enough.',
      ),
    gateTolerance: finite()
      .min(0)
      .max(1)
      .default(0.02)
      .describe(
        'Fallback gate, when no per-request values can be paired (snapshots of older versions): publish only when no metric drops by more than this (absolute) vs the current.',
      ),
    gate: z
      .strictObject({
        primary: z
          .string()
          .min(1)
          .default('recall_at_100_of_top10')
          .describe(
            'Metric that decides: teacher-agreement recall of the teacher top 10 in the student top 100.',
          ),
        primaryTolerance: finite()
          .min(0)
          .max(1)
          .default(0)
          .describe(
            'Reject when the primary is significantly worse by more than this (0: any significant drop).',
          ),
        secondary: z
          .record(z.string(), finite().min(0).max(1))
          .default({ ndcg_at_10: 0.02, auc: 0.05 })
          .describe(
            'Secondary metrics and their tolerances: they block only on a significant drop beyond the tolerance, otherwise a drop is a warning.',
          ),
        confidence: finite()
          .min(0.5)
          .max(0.9999)
          .default(0.95)
          .describe(
            'Level of the central interval of the paired difference; a model as good is wrongly rejected at rate (1-confidence)/2.',
          ),
        resamples: posInt().default(2000).describe('Paired bootstrap resamples over held-out requests.'),
        seed: nonNegInt().default(1).describe('Seed of the bootstrap (fixed: same inputs, same decision).'),
      })
      .prefault({})
      .describe('The paired gate: candidate vs current snapshot on the same held-out requests.'),
    modelName: z
      .string()
      .min(1)
      .default('student')
      .describe('Name of the student: the key of its announcements on the snapshots topic.'),
  })
  .describe('Snapshots.');

export const metricsSchema = z
  .strictObject({
    port: z
      .number()
      .int()
      .min(0)
      .max(65535)
      .default(9464)
      .describe('Prometheus /metrics and /health port (0: ephemeral).'),
    host: z
      .string()
      .min(1)
      .default('127.0.0.1')
      .describe(
        'Address the metrics server binds: loopback by default; 0.0.0.0 in a container so Prometheus can scrape it.',
      ),
    enabled: z.boolean().default(true).describe('Serve metrics over HTTP.'),
    stuckPartitionMs: posInt()
      .default(120_000)
      .describe(
        '/health answers 503 while a partition of this instance has had input to process and no committed progress for this long.',
      ),
  })
  .describe('Metrics and health.');

export const configSchema = z
  .strictObject({
    kafka: kafkaSchema.prefault({}),
    join: joinSchema.prefault({}),
    labels: labelsSchema.prefault({}),
    store: storeSchema.prefault({}),
    train: trainSchema.prefault({}),
    snapshots: snapshotsSchema.prefault({}),
    metrics: metricsSchema.prefault({}),
  })
  .describe('rankdistill configuration.');

export type Config = z.infer<typeof configSchema>;
export type LabelsConfig = Config['labels'];
export type JoinConfig = Config['join'];
export type KafkaConfig = Config['kafka'];
export type TrainConfig = Config['train'];
