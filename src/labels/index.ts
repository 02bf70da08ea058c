/**
 * Label generators: pure, deterministic functions that turn one joined request (a teacher's
 * RankerOutput and, when it arrived, the Impression) into distillation labels — pointwise,
 * pairwise (BPR) and listwise — as specified in DESIGN.md "Label semantics".
 *
 * No I/O, no clock, no Math.random: the same request and config give the same labels, byte for
 * byte, live, in a replay and after a crash. The streaming service, the replay tool and the
 * trainer's tests all call {@link labelRequest}.
 *
 * Outputs share the input's `context` and item `features` maps (no copy, for speed): treat the
 * input and the labels as immutable once labeled. The config is treated as immutable too (it is
 * parsed once; derived tables such as the position weights and fused-objective keys are cached).
 */
import type { LabelsConfig } from '../config/schema.ts';
import type {
  Impression,
  ListwiseLabels,
  PairwiseLabels,
  PointwiseLabels,
  RankerOutput,
} from '../contracts/index.ts';
import { LabelInputError } from '../errors.ts';
import { IdIndex } from './id-index.ts';
import { listwiseGrades, listwiseItems } from './listwise.ts';
import { pairwisePairs } from './pairwise.ts';
import { pointwiseItems } from './pointwise.ts';
import { Rng } from './rng.ts';
import { resolveTeacher, ViewScratch } from './teacher.ts';
import { checkRankerOutput, validateImpression, validateRankerOutput } from './validate.ts';

/** FNV-1a of a request id's UTF-8 bytes: the seed of its labels' sampling. */
export { fnv1a32 } from './rng.ts';

// Candidate index reused across calls (labelRequest is synchronous and never re-entered).
const candidateIndex = new IdIndex();
// Buffers of labelRequest's teacher view and grades, reused likewise.
const scratch = new ViewScratch();

export { validateImpression, validateRankerOutput };

/** A request as the join emits it: the teacher's output and the impression, null when unmatched. */
export interface JoinedRequest {
  ranker: RankerOutput;
  impression: Impression | null;
}

/** Labels of one request; a kind is null when it is disabled in the config. */
export interface RequestLabels {
  pointwise: PointwiseLabels | null;
  pairwise: PairwiseLabels | null;
  listwise: ListwiseLabels | null;
}

/**
 * Labels one joined request.
 *
 * - id = `${request_id}:pointwise|pairwise|listwise`; ts = max(ranker.ts, impression.ts);
 *   matched = impression !== null; model_version and context copied from the ranker output.
 * - Throws {@link LabelInputError} (code LABEL_INPUT_INVALID) with a dead-letter reason when the
 *   ranker output or impression fails validation ({@link validateRankerOutput},
 *   {@link validateImpression}), when the impression belongs to another request or user, when a
 *   weighted objective logit is missing (missingLogits 'error'), or when the listwise scheme
 *   needs logits in `rank` mode. Exception: item features and context are copied as given and
 *   not re-checked for NaN/±∞ here — validateRankerOutput (applied at ingestion) rejects those.
 *
 * @example
 * import { labelsSchema } from '../config/schema.ts';
 * const cfg = labelsSchema.parse({});
 * const { pointwise, pairwise, listwise } = labelRequest({ ranker, impression: null }, cfg);
 * pointwise?.items[0]?.weight; // 2 (reciprocal, a = 1, rank 1)
 */
export function labelRequest(req: JoinedRequest, cfg: LabelsConfig): RequestLabels {
  const ranker = req.ranker;
  const impression = req.impression;
  const index = candidateIndex;
  // Validation copies the scores into the view's logit buffer while it reads them anyway.
  const bad = checkRankerOutput(ranker, index, false, scratch);
  if (bad !== null) {
    throw new LabelInputError(`invalid RankerOutput: ${bad}`, { request_id: ranker.request_id });
  }
  let ts = ranker.ts;
  if (impression !== null) {
    const badImp = validateImpression(impression);
    if (badImp !== null) {
      throw new LabelInputError(`invalid Impression: ${badImp}`, { request_id: ranker.request_id });
    }
    if (impression.request_id !== ranker.request_id) {
      throw new LabelInputError(
        `impression request_id ${JSON.stringify(impression.request_id)} does not match the ranker output's ${JSON.stringify(ranker.request_id)}`,
        { request_id: ranker.request_id },
      );
    }
    if (impression.user_id !== ranker.user_id) {
      throw new LabelInputError(
        `impression user_id ${JSON.stringify(impression.user_id)} does not match the ranker output's ${JSON.stringify(ranker.user_id)} for request ${JSON.stringify(ranker.request_id)}`,
        { request_id: ranker.request_id },
      );
    }
    if (impression.ts > ts) ts = impression.ts;
  }

  const view = resolveTeacher(ranker, impression, cfg.teacher, index, scratch, true);
  const requestId = ranker.request_id;
  const userId = ranker.user_id;
  const modelVersion = ranker.model_version;
  const matched = impression !== null;
  const context = ranker.context;

  const pw = cfg.pairwise;
  const needGrades = cfg.listwise.enabled || (pw.enabled && pw.weightByDeltaNdcg);
  const grades = needGrades ? listwiseGrades(view, cfg.listwise, scratch) : null;

  const pointItems = cfg.pointwise.enabled ? pointwiseItems(view, cfg.pointwise) : null;
  return {
    pointwise:
      pointItems !== null
        ? {
            id: `${requestId}:pointwise`,
            request_id: requestId,
            user_id: userId,
            ts,
            model_version: modelVersion,
            matched,
            context,
            items: pointItems,
          }
        : null,
    pairwise: pw.enabled
      ? {
          id: `${requestId}:pairwise`,
          request_id: requestId,
          user_id: userId,
          ts,
          model_version: modelVersion,
          matched,
          context,
          pairs: pairwisePairs(view, pw, Rng.forRequest(requestId), grades),
        }
      : null,
    listwise:
      cfg.listwise.enabled && grades !== null
        ? {
            id: `${requestId}:listwise`,
            request_id: requestId,
            user_id: userId,
            ts,
            model_version: modelVersion,
            matched,
            context,
            // Same view: the listwise records reuse the pointwise records' logit values.
            items: listwiseItems(view, grades, pointItems),
          }
        : null,
  };
}
