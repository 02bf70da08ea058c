/**
 * The synthetic recommender world: users and items with latent preference vectors, item
 * categories and a Zipf-like item popularity. A pure function of (seed, sizes): the trainer's
 * quality benchmark regenerates it in memory with {@link createWorld} to get the ground truth
 * ({@link trueAffinity}) instead of reading files.
 *
 * Model (all vectors stored as float32, so a world read back from world.bin gives the same
 * affinities bit for bit):
 *   - category centroids c_k and item noise e_j, components ~ N(0, 1/√dim), so dot products of
 *     independent vectors have variance ≈ 1;
 *   - item vector v_j = 0.8·c_{cat(j)} + 0.6·e_j (items of a category point the same way);
 *   - user vector u_i, components ~ N(0, 1/√dim);
 *   - popularity: item j gets the Zipf weight 1/(r_j+1)^s of a random popularity rank r_j;
 *   - affinity(i, j) = AFFINITY_SCALE · u_i·v_j + b_j, with the item bias
 *     b_j = POP_BIAS · z(log popularity_j) + AFFINITY_OFFSET (popular items are liked a little
 *     more; the offset sets the base click rate).
 * Clicks are drawn from sigmoid(affinity)·examination(position) in ./generate.ts.
 */
import { Rng } from './rng.ts';

/** Scale of the latent dot product in the affinity. */
export const AFFINITY_SCALE = 1.5;
/** Weight of the standardised log popularity in the item bias. */
export const POP_BIAS = 0.3;
/** Constant of the affinity: sigmoid(-4) ≈ 2% click probability for an average pair (≈ 55% at position 1 of a list). */
export const AFFINITY_OFFSET = -4;
/** Categories a user's preference-based candidates come from. */
export const TOP_CATEGORIES = 3;

/** Sizes and seed of a world. */
export interface WorldOptions {
  seed: number;
  users: number;
  items: number;
  /** Latent dimension. */
  dim: number;
  /** Item categories. */
  categories: number;
  /** Zipf exponent of the item popularity. */
  zipf: number;
}

export const DEFAULT_WORLD: Omit<WorldOptions, 'seed'> = {
  users: 2000,
  items: 5000,
  dim: 16,
  categories: 20,
  zipf: 1.0,
};

/** A generated world. Arrays are row-major: userVec[i*dim + d]. */
export interface World extends WorldOptions {
  userVec: Float32Array;
  itemVec: Float32Array;
  itemBias: Float32Array;
  itemCategory: Int32Array;
  /** Normalised popularity (sums to 1). */
  itemPopularity: Float32Array;
  /** Standardised log popularity (the `pop` item feature). */
  itemPopZ: Float32Array;
  /** Item freshness in [0, 1) (the `fresh` item feature). */
  itemFresh: Float32Array;
  /** Cumulative popularity for sampling by popularity (binary search). */
  popCdf: Float64Array;
  /** Items of each category. */
  categoryItems: Int32Array[];
  /** The TOP_CATEGORIES categories whose centroid is closest to each user: [i*TOP_CATEGORIES + k]. */
  userTopCategories: Int32Array;
}

/**
 * Generates the world of (seed, sizes).
 *
 * @example
 * const w = createWorld({ seed: 7, users: 2000, items: 5000, dim: 16, categories: 20, zipf: 1 });
 * trueAffinity(w, 0, 42);
 */
export function createWorld(opts: WorldOptions): World {
  const { seed, users, items, dim, categories, zipf } = opts;
  for (const [k, v] of Object.entries({ users, items, dim, categories })) {
    if (!Number.isInteger(v) || v < 1)
      throw new RangeError(`world ${k} must be a positive integer, found ${v}`);
  }
  const rng = new Rng(seed, 'world');
  const s = 1 / Math.sqrt(Math.sqrt(dim)); // component std so that E[(x·y)^2] = 1
  const centroids = new Float64Array(categories * dim);
  for (let i = 0; i < centroids.length; i++) centroids[i] = rng.normal() * s;

  const itemCategory = new Int32Array(items);
  const itemVec = new Float32Array(items * dim);
  for (let j = 0; j < items; j++) {
    const k = rng.int(categories);
    itemCategory[j] = k;
    for (let d = 0; d < dim; d++) {
      itemVec[j * dim + d] = 0.8 * (centroids[k * dim + d] as number) + 0.6 * rng.normal() * s;
    }
  }
  const userVec = new Float32Array(users * dim);
  for (let i = 0; i < userVec.length; i++) userVec[i] = rng.normal() * s;

  // Popularity: Zipf weight of a random popularity rank (Fisher–Yates permutation).
  const rank = new Int32Array(items);
  for (let j = 0; j < items; j++) rank[j] = j;
  for (let j = items - 1; j > 0; j--) {
    const r = rng.int(j + 1);
    const t = rank[j] as number;
    rank[j] = rank[r] as number;
    rank[r] = t;
  }
  const weight = new Float64Array(items);
  let total = 0;
  for (let j = 0; j < items; j++) {
    weight[j] = 1 / ((rank[j] as number) + 1) ** zipf;
    total += weight[j] as number;
  }
  const itemPopularity = new Float32Array(items);
  const popCdf = new Float64Array(items);
  let acc = 0;
  let meanLog = 0;
  for (let j = 0; j < items; j++) {
    const p = (weight[j] as number) / total;
    itemPopularity[j] = p;
    acc += p;
    popCdf[j] = acc;
    meanLog += Math.log(p);
  }
  meanLog /= items;
  let varLog = 0;
  for (let j = 0; j < items; j++) varLog += (Math.log(weight[j]! / total) - meanLog) ** 2;
  const sdLog = Math.sqrt(varLog / items) || 1;
  const itemPopZ = new Float32Array(items);
  const itemBias = new Float32Array(items);
  const itemFresh = new Float32Array(items);
  for (let j = 0; j < items; j++) {
    const z = (Math.log(weight[j]! / total) - meanLog) / sdLog;
    itemPopZ[j] = z;
    itemBias[j] = POP_BIAS * z + AFFINITY_OFFSET;
    itemFresh[j] = rng.next();
  }

  const counts = new Int32Array(categories);
  for (let j = 0; j < items; j++) counts[itemCategory[j] as number]!++;
  const categoryItems = Array.from({ length: categories }, (_, k) => new Int32Array(counts[k] as number));
  const fill = new Int32Array(categories);
  for (let j = 0; j < items; j++) {
    const k = itemCategory[j] as number;
    (categoryItems[k] as Int32Array)[fill[k]!++] = j;
  }

  const top = Math.min(TOP_CATEGORIES, categories);
  const userTopCategories = new Int32Array(users * TOP_CATEGORIES);
  const sims = new Float64Array(categories);
  for (let i = 0; i < users; i++) {
    for (let k = 0; k < categories; k++) {
      let dot = 0;
      for (let d = 0; d < dim; d++) dot += userVec[i * dim + d]! * centroids[k * dim + d]!;
      // only non-empty categories can supply candidates
      sims[k] = counts[k] === 0 ? Number.NEGATIVE_INFINITY : dot;
    }
    for (let t = 0; t < TOP_CATEGORIES; t++) {
      let best = 0;
      for (let k = 1; k < categories; k++) if (sims[k]! > sims[best]!) best = k;
      userTopCategories[i * TOP_CATEGORIES + t] = best;
      if (t < top - 1) sims[best] = Number.NEGATIVE_INFINITY;
    }
  }

  return {
    seed,
    users,
    items,
    dim,
    categories,
    zipf,
    userVec,
    itemVec,
    itemBias,
    itemCategory,
    itemPopularity,
    itemPopZ,
    itemFresh,
    popCdf,
    categoryItems,
    userTopCategories,
  };
}

/**
 * The ground-truth affinity (click logit when examined) of user `u` for item `j`.
 *
 * @example
 * const p = 1 / (1 + Math.exp(-trueAffinity(world, 3, 17))); // click probability at position 1
 */
export function trueAffinity(world: World, u: number, j: number): number {
  const { dim, userVec, itemVec } = world;
  let dot = 0;
  const a = u * dim;
  const b = j * dim;
  for (let d = 0; d < dim; d++) dot += userVec[a + d]! * itemVec[b + d]!;
  return AFFINITY_SCALE * dot + world.itemBias[j]!;
}

/**
 * The user id of user index `i` (`u<i>`).
 *
 * @example
 * userId(123); // 'u123'
 */
export function userId(i: number): string {
  return `u${i}`;
}

/**
 * The item id of item index `j` (`i<j>`).
 *
 * @example
 * itemId(456); // 'i456'
 */
export function itemId(j: number): string {
  return `i${j}`;
}

/**
 * The index of a user id made by {@link userId}, or -1.
 *
 * @example
 * userIndex('u123'); // 123
 */
export function userIndex(id: string): number {
  return parseIndex(id, 'u');
}

/**
 * The index of an item id made by {@link itemId}, or -1.
 *
 * @example
 * itemIndex('i456'); // 456
 */
export function itemIndex(id: string): number {
  return parseIndex(id, 'i');
}

function parseIndex(id: string, prefix: string): number {
  if (!id.startsWith(prefix) || id.length < 2) return -1;
  const n = Number(id.slice(1));
  return Number.isInteger(n) && n >= 0 && String(n) === id.slice(1) ? n : -1;
}

/** Header of world.json; the arrays are little-endian in the binary file it names. */
export interface WorldFileHeader {
  format: 'rankdistill-sim-world/1';
  seed: number;
  users: number;
  items: number;
  dim: number;
  categories: number;
  zipf: number;
  affinity: string;
  constants: { AFFINITY_SCALE: number; POP_BIAS: number; AFFINITY_OFFSET: number };
  ids: { user: string; item: string };
  binary: string;
  arrays: {
    name: string;
    dtype: 'float32' | 'int32';
    shape: number[];
    byteOffset: number;
    byteLength: number;
  }[];
}

/**
 * Serialises a world: a JSON header (sizes, the affinity formula, and where each array lies) and
 * one little-endian binary blob with userVec [users, dim], itemVec [items, dim], itemBias,
 * itemCategory (int32), itemPopularity, itemPopZ, itemFresh. `createWorld` regenerates the same
 * world from the header's seed and sizes; the files are for other tools and for inspection.
 *
 * @example
 * const { header, binary } = serializeWorld(world, 'world.bin');
 */
export function serializeWorld(
  world: World,
  binaryName = 'world.bin',
): { header: WorldFileHeader; binary: Buffer } {
  const arrays: [string, Float32Array | Int32Array, number[]][] = [
    ['userVec', world.userVec, [world.users, world.dim]],
    ['itemVec', world.itemVec, [world.items, world.dim]],
    ['itemBias', world.itemBias, [world.items]],
    ['itemCategory', world.itemCategory, [world.items]],
    ['itemPopularity', world.itemPopularity, [world.items]],
    ['itemPopZ', world.itemPopZ, [world.items]],
    ['itemFresh', world.itemFresh, [world.items]],
  ];
  const parts: Buffer[] = [];
  const meta: WorldFileHeader['arrays'] = [];
  let off = 0;
  for (const [name, arr, shape] of arrays) {
    const b = Buffer.alloc(arr.length * 4);
    for (let i = 0; i < arr.length; i++) {
      if (arr instanceof Int32Array) b.writeInt32LE(arr[i]!, i * 4);
      else b.writeFloatLE(arr[i]!, i * 4);
    }
    parts.push(b);
    meta.push({
      name,
      dtype: arr instanceof Int32Array ? 'int32' : 'float32',
      shape,
      byteOffset: off,
      byteLength: b.length,
    });
    off += b.length;
  }
  return {
    header: {
      format: 'rankdistill-sim-world/1',
      seed: world.seed,
      users: world.users,
      items: world.items,
      dim: world.dim,
      categories: world.categories,
      zipf: world.zipf,
      affinity: 'affinity(u, j) = AFFINITY_SCALE * dot(userVec[u], itemVec[j]) + itemBias[j]',
      constants: { AFFINITY_SCALE, POP_BIAS, AFFINITY_OFFSET },
      ids: { user: 'u<index>', item: 'i<index>' },
      binary: binaryName,
      arrays: meta,
    },
    binary: Buffer.concat(parts),
  };
}
