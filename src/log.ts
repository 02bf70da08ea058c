/**
 * The one logger of rankdistill: structured JSON lines on stderr, level from the environment
 * variable RANKDISTILL_LOG_LEVEL (debug, info, warn, error, silent; default info). Library code
 * logs through this, never through console.
 *
 * @example
 * const log = logger('label-service');
 * log.info('task assigned', { partition: 3 });
 * // {"time":"2025-…","level":"info","component":"label-service","msg":"task assigned","partition":3}
 */
const LEVELS = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 } as const;
export type LogLevel = keyof typeof LEVELS;

function threshold(): number {
  const v = (process.env.RANKDISTILL_LOG_LEVEL ?? 'info').toLowerCase();
  return v in LEVELS ? LEVELS[v as LogLevel] : LEVELS.info;
}

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  enabled(level: LogLevel): boolean;
}

/** A logger whose lines carry `component`. The level is read once per logger. */
export function logger(component: string): Logger {
  const min = threshold();
  const emit = (level: Exclude<LogLevel, 'silent'>, msg: string, fields?: Record<string, unknown>) => {
    if (LEVELS[level] < min) return;
    const line = { time: new Date().toISOString(), level, component, msg, ...fields };
    process.stderr.write(`${JSON.stringify(line, replacer)}\n`);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    enabled: (level) => LEVELS[level] >= min,
  };
}

function replacer(_k: string, v: unknown): unknown {
  if (v instanceof Error) return { name: v.name, message: v.message, code: (v as { code?: unknown }).code };
  if (typeof v === 'bigint') return v.toString();
  return v;
}
