/**
 * Whether process `pid` is alive on this host (signal 0: it exists, ours or another user's). The
 * pid-tagged files of our writers (replay locks, `.tmp-<pid>` snapshot directories and assembled
 * output files) are left behind when a writer dies; a live writer's must be kept.
 *
 * @example
 * pidAlive(process.pid); // true
 */
export function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
