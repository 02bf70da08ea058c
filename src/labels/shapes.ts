/**
 * Hidden-class priming of the output records (PointwiseItem, GradedItem, ItemPair).
 *
 * Why: V8 tracks a representation per object field. A field that has only ever held numbers is
 * stored "Double", and every object then gets its own mutable heap box for that field — even for
 * a weight of 1 or a gain of 31, which would otherwise be immediate small integers. With 200
 * candidates that is ~600 extra 16-byte allocations per request (weights, gains and the teacher
 * logit of both the pointwise and the listwise record), which measured ~23% of the bytes the
 * labels allocate (56 → 43 KB per request) and a visible share of labeling time.
 *
 * Storing a non-number once generalizes the field to "Tagged": small integers are then stored
 * unboxed and only fractional values get a box. Object literals with the same keys in the same
 * order share one hidden class, so the records created by the generators inherit what the
 * templates below did. The templates stay referenced for the life of the process: an unreferenced
 * hidden class can be collected and a later one would start "Double" again.
 *
 * This changes nothing observable — same keys, same order, same values — only how V8 stores
 * them. Keep the key lists here in the exact order of the generators' literals (and of the Avro
 * schemas); test/labels/shapes.test.ts checks that they match.
 */

/** One template per output record shape; fractional-number fields hold null to generalize them. @internal */
export const RECORD_TEMPLATES: readonly Readonly<Record<string, unknown>>[] = [
  {
    item_id: '',
    rank: 0,
    label: 0,
    weight: null,
    teacher_logit: null,
    soft_target: null,
    clicked: null,
    features: null,
  },
  { item_id: '', rank: 0, grade: 0, gain: null, teacher_logit: null },
  { pos_item: '', neg_item: '', pos_rank: 0, neg_rank: 0, weight: null },
];
