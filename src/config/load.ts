/**
 * Loads the configuration: a YAML or JSON file, then `RANKDISTILL_*` environment overrides,
 * validated by {@link configSchema}. Every invalid field is reported by path, value and expectation.
 */
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import type { z } from 'zod';
import { ConfigError } from '../errors.ts';
import { type Config, configSchema, SECRET_OPTIONS } from './schema.ts';

export const ENV_PREFIX = 'RANKDISTILL_';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** `JOIN__WINDOW_MS` → `['join', 'windowMs']`. */
export function envPath(suffix: string): string[] {
  return suffix
    .split('__')
    .map((seg) => seg.toLowerCase().replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase()));
}

function parseEnvValue(raw: string, path: string[]): Json {
  const t = raw.trim();
  if (t === 'true' || t === 'false' || t === 'null') return JSON.parse(t) as Json;
  if (/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(t)) return Number(t);
  if (t.startsWith('[') || t.startsWith('{')) {
    try {
      return JSON.parse(t) as Json;
    } catch {
      return raw;
    }
  }
  if (
    path[path.length - 1] === 'brokers' ||
    path[path.length - 1] === 'thresholds' ||
    path[path.length - 1] === 'hidden'
  ) {
    return t.split(',').map((s) => {
      const x = s.trim();
      return /^-?\d+(\.\d+)?$/.test(x) ? Number(x) : x;
    });
  }
  return raw;
}

/** Applies `RANKDISTILL_A__B_C=value` overrides onto a raw config object (copy). */
export function applyEnv(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out = structuredClone(raw);
  const keys = Object.keys(env)
    // RANKDISTILL_CONFIG names the file; RANKDISTILL_LOG_LEVEL is read by src/log.ts.
    .filter((k) => k.startsWith(ENV_PREFIX) && k !== `${ENV_PREFIX}CONFIG` && k !== `${ENV_PREFIX}LOG_LEVEL`)
    .sort();
  for (const k of keys) {
    const path = envPath(k.slice(ENV_PREFIX.length));
    let node: Record<string, unknown> = out;
    for (const seg of path.slice(0, -1)) {
      const next = node[seg];
      if (next === undefined || next === null || typeof next !== 'object' || Array.isArray(next))
        node[seg] = {};
      node = node[seg] as Record<string, unknown>;
    }
    node[path[path.length - 1] as string] = parseEnvValue(env[k] as string, path);
  }
  return out;
}

function valueAt(obj: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = obj;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[p];
  }
  return cur;
}

/**
 * Validates a raw config object (file contents after env overrides).
 *
 * @throws ConfigError listing every invalid field.
 * @example
 * const cfg = parseConfig({ join: { windowMs: 60000 } });
 */
export function parseConfig(raw: unknown, source = 'config'): Config {
  const res = configSchema.safeParse(raw ?? {});
  if (res.success) return res.data;
  throw configErrorFrom(res.error, raw, source);
}

/** Shown instead of a secret's value. */
export const REDACTED = '***';

/**
 * A copy of a config (or any part of one) with every secret option ({@link SECRET_OPTIONS}) shown
 * as `***`: what `rankdistill config` prints and what config errors quote.
 *
 * @example
 * console.log(JSON.stringify(redactSecrets(loadConfig()), null, 2));
 */
export function redactSecrets<T>(value: T): T {
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v === null || typeof v !== 'object') return v;
    return Object.fromEntries(
      Object.entries(v).map(([k, x]) => [k, SECRET_OPTIONS.has(k) && x !== undefined ? REDACTED : walk(x)]),
    );
  };
  return walk(value) as T;
}

function configErrorFrom(error: z.ZodError, raw: unknown, source: string): ConfigError {
  const issues = error.issues.flatMap((i) => {
    if (i.code === 'unrecognized_keys') {
      return i.keys.map((k) => ({
        path: [...i.path, k].join('.'),
        message: 'unknown option (check the spelling; see `rankdistill config --docs`)',
        value: redactSecrets(valueAt(raw, [...i.path, k])),
      }));
    }
    const secret = i.path.some((p) => typeof p === 'string' && SECRET_OPTIONS.has(p));
    const value = valueAt(raw, i.path);
    return [
      {
        path: i.path.join('.') || '<root>',
        message: i.message,
        value: secret ? REDACTED : redactSecrets(value),
      },
    ];
  });
  const lines = issues.map(
    (i) => `  - ${i.path}: ${i.message} (found ${JSON.stringify(i.value) ?? 'undefined'})`,
  );
  return new ConfigError(`invalid ${source}:\n${lines.join('\n')}`, issues);
}

/**
 * Loads a config file (YAML or JSON; optional) and applies environment overrides.
 *
 * @example
 * const cfg = loadConfig({ file: 'rankdistill.yaml' });
 */
export function loadConfig(
  opts: { file?: string | undefined; env?: NodeJS.ProcessEnv; overrides?: Record<string, unknown> } = {},
): Config {
  const env = opts.env ?? process.env;
  const file = opts.file ?? env[`${ENV_PREFIX}CONFIG`];
  let raw: Record<string, unknown> = {};
  if (file !== undefined && file !== '') {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (cause) {
      throw new ConfigError(
        `cannot read config file ${file}: ${(cause as Error).message}`,
        [],
        'CONFIG_UNREADABLE',
      );
    }
    try {
      const parsed: unknown = file.endsWith('.json') ? JSON.parse(text) : YAML.parse(text);
      if (parsed !== null && (typeof parsed !== 'object' || Array.isArray(parsed))) {
        throw new Error(
          `expected a mapping at the top level, found ${Array.isArray(parsed) ? 'a list' : typeof parsed}`,
        );
      }
      raw = (parsed ?? {}) as Record<string, unknown>;
    } catch (cause) {
      throw new ConfigError(
        `cannot parse config file ${file}: ${(cause as Error).message}`,
        [],
        'CONFIG_UNREADABLE',
      );
    }
  }
  const merged = deepMerge(applyEnv(raw, env), opts.overrides ?? {});
  return parseConfig(merged, file ? `config (${file} + environment)` : 'config (environment)');
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] =
      v !== null &&
      typeof v === 'object' &&
      !Array.isArray(v) &&
      cur !== null &&
      typeof cur === 'object' &&
      !Array.isArray(cur)
        ? deepMerge(cur as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

/** Markdown table of every option with its default and doc, generated from the schema. */
export function configDocs(): string {
  const rows: string[] = ['| option | default | description |', '| --- | --- | --- |'];
  const defaults = configSchema.parse({});
  const walk = (schema: z.ZodType, path: string[]) => {
    const def = (
      schema as unknown as {
        _zod: { def: { type: string; innerType?: z.ZodType; shape?: Record<string, z.ZodType> } };
      }
    )._zod.def;
    let inner: z.ZodType = schema;
    let d = def;
    while ((d.type === 'default' || d.type === 'prefault' || d.type === 'optional') && d.innerType) {
      inner = d.innerType;
      d = (inner as unknown as { _zod: { def: typeof def } })._zod.def;
    }
    if (d.type === 'object' && d.shape) {
      for (const [k, v] of Object.entries(d.shape)) walk(v, [...path, k]);
      return;
    }
    const dv = valueAt(defaults, path);
    const desc = schema.description ?? inner.description ?? '';
    rows.push(
      `| \`${path.join('.')}\` | \`${JSON.stringify(dv) ?? '—'}\` | ${desc.replaceAll('|', '\\|')} |`,
    );
  };
  walk(configSchema, []);
  return rows.join('\n');
}
