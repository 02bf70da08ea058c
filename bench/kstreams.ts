/**
 * Processes of the label bench's comparison with Kafka Streams (bench/label.bench.ts,
 * `versusKafkaStreams`): the Kafka Streams reference job (bench/kstreams/, built here with Maven
 * from Maven Central), `rankdistill label` as deployed (bin/, the compiled build), and the CPU and
 * memory of a process read from /proc (Linux), so each side is charged for its own process and
 * the broker for its own.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';

const ROOT = join(import.meta.dirname, '..');
const KSTREAMS_DIR = join(ROOT, 'bench', 'kstreams');
/** Clock ticks per second of /proc/<pid>/stat (USER_HZ; 100 on every Linux the bench runs on). */
const HZ = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** CPU seconds (user + system, every thread) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces; fields after its closing parenthesis are fixed.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / HZ; // utime, stime (fields 14 and 15)
}

/** Resident set size and its peak (VmHWM) of a process, bytes. */
export function memory(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

/**
 * The pid of the local broker serving `brokers` (scripts/kafka-local.sh writes <dir>/brokers and
 * runs `kafka.Kafka <dir>/server.properties`), or undefined when it is not on this machine.
 */
export function brokerPid(brokers: string[]): number | undefined {
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0').join(' ');
    } catch {
      continue;
    }
    const m = /kafka\.Kafka (\S+)\/server\.properties/.exec(cmd);
    if (m === null) continue;
    const file = join(m[1]!, 'brokers');
    if (existsSync(file) && readFileSync(file, 'utf8').trim().split(',').includes(brokers[0]!))
      return Number(e);
  }
  return undefined;
}

/**
 * Builds the Kafka Streams job (`mvn package`; Maven fetches Kafka Streams 3.9.2 and its
 * dependencies from Maven Central on first use) and returns its class path.
 */
export function buildKafkaStreamsJob(): string {
  const r = spawnSync(
    'mvn',
    ['-q', '-B', '-f', join(KSTREAMS_DIR, 'pom.xml'), 'package', 'dependency:build-classpath'],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  if (r.status !== 0) throw new Error(`mvn package of bench/kstreams failed (exit ${r.status ?? r.signal})`);
  const deps = readFileSync(join(KSTREAMS_DIR, 'target', 'classpath.txt'), 'utf8').trim();
  return `${join(KSTREAMS_DIR, 'target', 'kstreams-labeler-1.jar')}:${deps}`;
}

/**
 * The Kafka Streams job's JVM, kept across runs: its first run is the cold one, later runs run on
 * code the JIT has compiled (a Kafka Streams application runs for days, as the labeler does).
 * One instance at a time (`start`, then `stop`).
 */
export class KafkaStreamsJvm {
  readonly proc: ChildProcess;
  readonly #lines: Interface;
  readonly #waiting: Array<(line: string) => void> = [];
  #exit: string | undefined;

  constructor(classPath: string) {
    const opts = (process.env.RD_BENCH_KS_JAVA_OPTS ?? '-Xms512m -Xmx1g').split(/\s+/).filter(Boolean);
    this.proc = spawn(
      'java',
      [
        ...opts,
        '-Dorg.slf4j.simpleLogger.defaultLogLevel=warn',
        '-cp',
        classPath,
        'rankdistill.bench.LabelJob',
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    this.#lines = createInterface({ input: this.proc.stdout! });
    this.#lines.on('line', (line) => this.#waiting.shift()?.(line));
    this.proc.once('exit', (code, signal) => {
      this.#exit = `the Kafka Streams JVM exited (${code ?? signal})`;
      for (const w of this.#waiting.splice(0)) w(`error ${this.#exit}`);
    });
  }

  get pid(): number {
    return this.proc.pid!;
  }

  #command(line: string): Promise<string> {
    if (this.#exit !== undefined) return Promise.reject(new Error(this.#exit));
    const answer = new Promise<string>((resolve) => this.#waiting.push(resolve));
    this.proc.stdin!.write(`${line}\n`);
    return answer.then((a) => {
      if (a.startsWith('error ')) throw new Error(a.slice(6));
      return a;
    });
  }

  /** Starts an instance (see LabelJob.java for the keys); resolves once it is RUNNING. */
  async start(args: Record<string, string | number>): Promise<void> {
    const a = await this.#command(
      `start ${Object.entries(args)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')}`,
    );
    if (a !== 'started') throw new Error(`Kafka Streams job: expected "started", got ${JSON.stringify(a)}`);
  }

  /** Closes the instance; returns its outcome counts. */
  async stop(): Promise<Record<string, number>> {
    const a = await this.#command('stop');
    if (!a.startsWith('stopped '))
      throw new Error(`Kafka Streams job: expected "stopped", got ${JSON.stringify(a)}`);
    return JSON.parse(a.slice('stopped '.length)) as Record<string, number>;
  }

  async exit(): Promise<void> {
    if (this.#exit === undefined) {
      this.proc.stdin!.write('exit\n');
      await new Promise((resolve) => this.proc.once('exit', resolve));
    }
  }
}

/**
 * `rankdistill label` in a child process, as deployed: bin/ runs the compiled build (dist/).
 * `root`: the checkout to run (another one, built, for a same-run A/B of two versions).
 */
export function spawnLabeler(configPath: string, root = ROOT): ChildProcess {
  // RD_BENCH_TRACE_DIR: the labeler logs at info level (assignments, task opening) into
  // <dir>/<config>.log, and RD_BENCH_LABELER_NODE_ARGS (e.g. --cpu-prof) go to its node.
  const trace = process.env.RD_BENCH_TRACE_DIR;
  const nodeArgs = (process.env.RD_BENCH_LABELER_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const err = trace === undefined ? 'inherit' : openSync(join(trace, `${basename(configPath)}.log`), 'a');
  return spawn(
    process.execPath,
    [...nodeArgs, join(root, 'bin', 'rankdistill.mjs'), '-c', configPath, 'label'],
    {
      cwd: root,
      env: { ...process.env, RANKDISTILL_LOG_LEVEL: trace === undefined ? 'warn' : 'info' },
      stdio: ['ignore', 'ignore', err],
    },
  );
}

/** CPU seconds of each thread of a process, by thread id and name (`/proc/<pid>/task`). */
export function threadCpuSeconds(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out[`${tid}:${name}`] = (Number(f[11]) + Number(f[12])) / HZ;
    } catch {
      // the thread exited
    }
  }
  return out;
}

/** Whether bin/ will run the compiled build (dist/ built and not older than src/). */
export function compiledBuildPresent(): boolean {
  const stamp = join(ROOT, 'dist', '.build-stamp');
  if (!existsSync(stamp)) return false;
  const built = statSync(stamp).mtimeMs;
  return readdirSync(join(ROOT, 'src'), { recursive: true, withFileTypes: true }).every(
    (e) => !e.isFile() || statSync(join(e.parentPath, e.name)).mtimeMs <= built,
  );
}
