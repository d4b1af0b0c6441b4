/**
 * A task the API process runs at start and then every interval (the write sweep, the supply evaluation): one pass
 * at a time (a call while one runs shares it), a failure logged once per distinct message and tried again at the
 * next tick, and a stop that waits for the pass in flight.
 */
import type { Logger } from "../log";

export interface PeriodicTask<T> {
  /** One pass now, or the one already running. Resolves to null when the pass failed. */
  runOnce(): Promise<T | null>;
  stop(): Promise<void>;
}

export function startPeriodic<T>(
  name: string,
  intervalMs: number,
  log: Logger,
  pass: () => Promise<T>,
): PeriodicTask<T> {
  let running: Promise<T | null> | null = null;
  let stopped = false;
  let lastError = "";
  const guarded = async (): Promise<T | null> => {
    try {
      const result = await pass();
      lastError = "";
      return result;
    } catch (err) {
      // Redis or the node away: said once, tried again next time.
      const message = (err as Error).message;
      if (message !== lastError) log.warn({ err: message }, `${name} failed; retrying`);
      lastError = message;
      return null;
    }
  };
  const runOnce = (): Promise<T | null> => (running ??= guarded().finally(() => (running = null)));
  const timer = setInterval(() => {
    if (!stopped) void runOnce();
  }, intervalMs);
  timer.unref();
  void runOnce();
  return {
    runOnce,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
