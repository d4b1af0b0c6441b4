/**
 * The supply evaluation: at start and every SUPPLY_EVALUATION_INTERVAL_MS, the outlook of every product is
 * computed (backend/supply/) and each shortage, demand surge or expiry risk it finds (and each fraud signal from
 * flows, backend/supply/flows.ts) is raised as a `supply`
 * alert in the alert workflow, one per product, region and reason while it stays open (the figures that
 * triggered it in its snapshot; repeats count on it).
 *
 * Every API process runs the timer; one evaluates each window: the first to `SET NX` the window's marker
 * (`svc:supply:eval:<window>`, window = the figures' time / interval). A process that dies mid-evaluation leaves
 * the rest of its window undone; the next window does it all again, and the alert store's de-duplication makes
 * an evaluation done twice raise nothing twice.
 */
import type { AlertActor, RaiseInput } from "../alerts";
import { allSupplySignals, type SupplySignal, supplyAsOf } from "../supply";
import { evaluateFlows } from "../supply/flows";
import type { ApiContext } from "./context";
import { type PeriodicTask, startPeriodic } from "./periodic";

/** Who raises supply alerts: the service itself, not an organisation's key. */
export const SUPPLY_EVALUATOR: AlertActor = {
  keyId: "supply-evaluation",
  name: "supply evaluation",
  participantId: null,
  role: "system",
};

export const supplyEvaluationKey = (window: number): string => `svc:supply:eval:${window}`;

/** A signal as an alert: the product and region stand where a scan alert has its code. */
export function supplyAlertInput(signal: SupplySignal): RaiseInput {
  return {
    source: "supply",
    reason: signal.reason,
    code: { raw: `SUPPLY:${signal.productId}:${signal.region}`, normalised: null, productCode: signal.productCode },
    reporter: SUPPLY_EVALUATOR,
    manufacturerId: signal.manufacturerId,
    snapshot: { productId: signal.productId, region: signal.region, ...signal.figures },
    dedup: "until_closed",
  };
}

export interface SupplyEvaluation {
  /** False when another process had the window already. */
  evaluated: boolean;
  asOf: number;
  raised: number;
  repeated: number;
}

/** One evaluation, unless another process did this window's. */
export async function evaluateSupplyOnce(ctx: ApiContext, now = Date.now()): Promise<SupplyEvaluation> {
  const asOf = await supplyAsOf(ctx.reader, now);
  const intervalMs = ctx.config.SUPPLY_EVALUATION_INTERVAL_MS;
  const window = Math.floor((asOf * 1000) / intervalMs);
  const won = await ctx.redis.set(supplyEvaluationKey(window), String(process.pid), "PX", intervalMs * 2, "NX");
  if (won !== "OK") return { evaluated: false, asOf, raised: 0, repeated: 0 };
  let raised = 0;
  let repeated = 0;
  for (const signal of await allSupplySignals(ctx.reader, ctx.config, asOf)) {
    const alert = await ctx.alerts.raise(supplyAlertInput(signal));
    if (alert.count === 1) raised++;
    else repeated++;
  }
  // Fraud signals from flows (backend/supply/flows.ts), on the same figures' time.
  const flows = await evaluateFlows(ctx.reader, ctx.alerts, ctx.config, asOf);
  return { evaluated: true, asOf, raised: raised + flows.raised, repeated: repeated + flows.repeated };
}

export type SupplyEvaluator = PeriodicTask<SupplyEvaluation>;

/** Evaluates at start and every interval; Redis or the index away is said once and tried again next time. */
export function startSupplyEvaluation(
  ctx: ApiContext,
  intervalMs = ctx.config.SUPPLY_EVALUATION_INTERVAL_MS,
): SupplyEvaluator {
  return startPeriodic("supply evaluation", intervalMs, ctx.log, async () => {
    const result = await evaluateSupplyOnce(ctx);
    if (result.raised > 0) ctx.log.info(result, "supply evaluation raised alerts");
    return result;
  });
}
