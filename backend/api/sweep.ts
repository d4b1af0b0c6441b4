/**
 * The write sweep: at start and every TX_SWEEP_INTERVAL_MS, sees through what requests left unfinished — a
 * process killed between sending and answering, or a 202 whose client never came back. Every recorded
 * transaction not known to be mined is watched (re-broadcast if the node lost it, replaced past
 * TX_REPLACE_AFTER_MS); every Idempotency-Key record whose transactions were all signed and that no live request
 * holds is finished as its request would have finished it, so that a retry, however late, gets its answer.
 * Calls a crashed request planned but never signed are left for its retry: nothing is sent on a client's behalf.
 */
import type { ApiContext } from "./context";
import { ApiError } from "./errors";
import { startPeriodic } from "./periodic";
import { STORED_ANSWERS, runWrite } from "./writes";

/** Records one sweep finishes at most (a random sample; the next sweep takes others). */
const SWEEP_RECORDS = 100;

export interface WriteSweeper {
  /** One pass (also what start-up runs). */
  sweepOnce(): Promise<void>;
  stop(): Promise<void>;
}

export function startWriteSweeper(ctx: ApiContext, intervalMs = ctx.config.TX_SWEEP_INTERVAL_MS): WriteSweeper {
  const task = startPeriodic("write sweep", intervalMs, ctx.log, async () => {
    const txs = await ctx.writer.submitter.sweep();
    const answered = await answerUnanswered(ctx);
    if (txs.mined + txs.dropped + answered > 0) ctx.log.info({ ...txs, answered }, "write sweep");
  });
  return { sweepOnce: async () => void (await task.runOnce()), stop: () => task.stop() };
}

/** Finishes the unanswered Idempotency-Key records nobody holds; returns how many got their answer. */
async function answerUnanswered(ctx: ApiContext): Promise<number> {
  const store = ctx.writer.idempotency;
  const keys = await store.unanswered(SWEEP_RECORDS);
  const done = await Promise.all(
    keys.map(async ([org, key]) => {
      const record = await store.read(org, key);
      if (!record || record.state === "done") return void (await store.dropUnanswered(org, key));
      const build = record.answerAs ? STORED_ANSWERS[record.answerAs] : undefined;
      const caller = record.caller;
      if (!build || !caller || !record.calls?.every((c) => c.hash) || (await store.held(org, key))) return;
      try {
        const answer = await runWrite(
          ctx,
          caller,
          { idempotencyKey: key, requestHash: record.requestHash, answerAs: record.answerAs! },
          () => Promise.reject(new Error("the sweep only finishes signed requests")),
          (outcome) => build(ctx, caller, outcome),
        );
        return answer.status !== 202;
      } catch (err) {
        // A refusal (a mined transaction that reverted) is the request's answer, kept by runWrite like any other.
        const refused = err instanceof ApiError && err.status < 500 && err.type !== "in-progress";
        ctx.log.debug({ org, key, err: (err as Error).message, refused }, "sweep: request not answered with a result");
        return refused;
      }
    }),
  );
  return done.filter(Boolean).length;
}
