/**
 * Fraud signals from flows: what the index counts per organisation (`fl:{participantId}`, backend/index/keys.ts)
 * read against simple rules, raised as supply alerts in the alert workflow with the figures that triggered them.
 *
 * The ledger already refuses the per-pack frauds (dispensing what a pharmacy does not hold, settling a pack twice),
 * so these rules look at rates, which the ledger cannot judge:
 *
 * - FLOW_DISPENSED_ABOVE_RECEIVED / FLOW_SETTLED_ABOVE_RECEIVED: over the last FLOW_WINDOW_DAYS days a pharmacy
 *   dispensed (or had settled) at least FLOW_MIN_UNITS packs of a product and more than FLOW_ABOVE_RECEIVED_RATIO
 *   times what it received of it in the same days: it is emptying older stock, or stock that reached it outside
 *   the ledger, faster than goods come in (the pattern of packs "dispensed" on invented prescriptions).
 * - FLOW_DISPENSED_ABOVE_BASELINE / FLOW_SETTLED_ABOVE_BASELINE: the same window's daily rate is more than
 *   FLOW_ABOVE_BASELINE_FACTOR times the pharmacy's own daily rate over the FLOW_BASELINE_DAYS days before it (a
 *   pharmacy with no baseline is not judged by it).
 * - FLOW_SETTLEMENT_CONCENTRATION: over the window an insurer settled at least FLOW_CONCENTRATION_MIN_UNITS packs,
 *   and its FLOW_CONCENTRATION_TOP pharmacies took at least FLOW_CONCENTRATION_SHARE of them, although it settled
 *   for more pharmacies than that over window and baseline (an insurer with one client is not concentrated).
 * - FLOW_CROSS_REGION: a claim line refused because the pack was settled already, by a pharmacy in another region,
 *   within CLAIM_COPIED_CODE_WINDOW_HOURS (the claim check's COPIED_CODE pattern): the same code billed in one
 *   region shortly after another. Raised from the claim check ({@link raiseCrossRegion}), one alert per claiming
 *   pharmacy and earlier region.
 *
 * Whole packs only: split-pack doses are not counted. Days are UTC days of the block. The rules run with the
 * supply evaluation (backend/api/supply-alerts.ts). An alert is not raised again while one for the same rule and
 * subject is open (new or investigating: a repeat counts on it); once it is closed, the next evaluation that still
 * finds the figures raises a new one.
 */
import type { AlertStore } from "../alerts";
import type { AlertActor } from "../alerts/model";
import type { Config } from "../config/env";
import type { ParticipantRecord, ProductRecord } from "../index/events";
import { dayOfNumber, flowKey, ringBucket, ringField, utcDay } from "../index/keys";
import type { IndexReader } from "../index/query";

/** The rules' thresholds (backend/config/env.ts, .env.example). */
export type FlowSettings = Pick<
  Config,
  | "FLOW_WINDOW_DAYS"
  | "FLOW_BASELINE_DAYS"
  | "FLOW_MIN_UNITS"
  | "FLOW_ABOVE_RECEIVED_RATIO"
  | "FLOW_ABOVE_BASELINE_FACTOR"
  | "FLOW_CONCENTRATION_MIN_UNITS"
  | "FLOW_CONCENTRATION_TOP"
  | "FLOW_CONCENTRATION_SHARE"
>;

export const FLOW_REASONS = [
  "FLOW_DISPENSED_ABOVE_RECEIVED",
  "FLOW_SETTLED_ABOVE_RECEIVED",
  "FLOW_DISPENSED_ABOVE_BASELINE",
  "FLOW_SETTLED_ABOVE_BASELINE",
  "FLOW_SETTLEMENT_CONCENTRATION",
  "FLOW_CROSS_REGION",
] as const;
export type FlowReason = (typeof FLOW_REASONS)[number];

/** What a rule found: who it is about, and the figures that triggered it. */
export interface FlowSignal {
  reason: FlowReason;
  /** Stands in for the alert's code: the rule's subject, e.g. `FLOW:pharmacy-5:product-2`. */
  subject: string;
  productCode?: string;
  manufacturerId: number | null;
  /** Organisations that see the alert beside the regulator (and the product's manufacturer). */
  participants: number[];
  figures: Record<string, unknown>;
}

/** The alerts' reporter: the service itself, not an organisation. */
export const FLOW_ACTOR: AlertActor = {
  keyId: "system:flows",
  name: "supply flows",
  participantId: null,
  role: "system",
};

const PHARMACY_ROLE = 3;
const INSURER_ROLE = 4;
const DAY_SECONDS = 86_400;

interface Windows {
  /** UTC days of the window, inclusive, ending on the evaluation's day. */
  window: { from: string; to: string };
  baseline: { from: string; to: string };
}

function windowsAt(nowSeconds: number, settings: FlowSettings): Windows {
  const day = (back: number) => utcDay(nowSeconds - back * DAY_SECONDS);
  const w = settings.FLOW_WINDOW_DAYS;
  return {
    window: { from: day(w - 1), to: day(0) },
    baseline: { from: day(w + settings.FLOW_BASELINE_DAYS - 1), to: day(w) },
  };
}

const within = (day: string, range: { from: string; to: string }): boolean => day >= range.from && day <= range.to;

/**
 * `{kind}:{id}:{slot}` daily ring fields (`{day number}:{units}`) summed per kind and id over the window and the
 * baseline; the configuration keeps both within SUPPLY_DAILY_RETENTION_DAYS, so no day they cover has left the ring.
 */
function sumFlows(raw: Record<string, string>, windows: Windows) {
  const sums = new Map<string, { window: number; baseline: number }>();
  for (const [field, value] of Object.entries(raw)) {
    const { prefix: key } = ringField(field);
    const { period, units } = ringBucket.decode(value)!;
    const day = dayOfNumber(period);
    const inWindow = within(day, windows.window);
    if (!inWindow && !within(day, windows.baseline)) continue;
    let sum = sums.get(key);
    if (!sum) sums.set(key, (sum = { window: 0, baseline: 0 }));
    sum[inWindow ? "window" : "baseline"] += units;
  }
  const of = (kind: string, id: number) => sums.get(`${kind}:${id}`) ?? { window: 0, baseline: 0 };
  const ids = (kind: string) => [...sums.keys()].filter((k) => k.startsWith(`${kind}:`)).map((k) => Number(k.slice(2)));
  return { of, ids };
}

const round = (n: number): number => Math.round(n * 100) / 100;

/** The four pharmacy rules, per product the pharmacy received, dispensed or had settled. */
export function pharmacySignals(
  pharmacy: ParticipantRecord,
  raw: Record<string, string>,
  products: ReadonlyMap<number, ProductRecord>,
  nowSeconds: number,
  settings: FlowSettings,
): FlowSignal[] {
  const windows = windowsAt(nowSeconds, settings);
  const sums = sumFlows(raw, windows);
  const out: FlowSignal[] = [];
  const productIds = new Set([...sums.ids("r"), ...sums.ids("d"), ...sums.ids("s")]);
  for (const productId of [...productIds].sort((a, b) => a - b)) {
    const product = products.get(productId);
    const received = sums.of("r", productId).window;
    const base = {
      subject: `FLOW:pharmacy-${pharmacy.id}:product-${productId}`,
      ...(product ? { productCode: product.productCode } : {}),
      manufacturerId: product?.manufacturerId ?? null,
      participants: [],
    };
    const context = { pharmacyId: pharmacy.id, region: pharmacy.region, productId, ...windows };
    for (const [flow, kind] of [
      ["dispensed", "d"],
      ["settled", "s"],
    ] as const) {
      const { window, baseline } = sums.of(kind, productId);
      if (window < settings.FLOW_MIN_UNITS) continue;
      const upper = flow === "dispensed" ? "DISPENSED" : "SETTLED";
      if (window > settings.FLOW_ABOVE_RECEIVED_RATIO * received)
        out.push({
          ...base,
          reason: `FLOW_${upper}_ABOVE_RECEIVED`,
          figures: { ...context, [flow]: window, received, ratioLimit: settings.FLOW_ABOVE_RECEIVED_RATIO },
        });
      const windowRate = window / settings.FLOW_WINDOW_DAYS;
      const baselineRate = baseline / settings.FLOW_BASELINE_DAYS;
      if (baseline > 0 && windowRate > settings.FLOW_ABOVE_BASELINE_FACTOR * baselineRate)
        out.push({
          ...base,
          reason: `FLOW_${upper}_ABOVE_BASELINE`,
          figures: {
            ...context,
            [flow]: window,
            baselineUnits: baseline,
            perDay: round(windowRate),
            baselinePerDay: round(baselineRate),
            factorLimit: settings.FLOW_ABOVE_BASELINE_FACTOR,
          },
        });
    }
  }
  return out;
}

/** An insurer's settlements in the window concentrated on its top pharmacies. */
export function insurerSignals(
  insurer: ParticipantRecord,
  raw: Record<string, string>,
  nowSeconds: number,
  settings: FlowSettings,
): FlowSignal[] {
  const windows = windowsAt(nowSeconds, settings);
  const sums = sumFlows(raw, windows);
  const pharmacies = sums.ids("s").map((id) => ({ pharmacyId: id, ...sums.of("s", id) }));
  const total = pharmacies.reduce((sum, p) => sum + p.window, 0);
  const everSettledFor = pharmacies.filter((p) => p.window + p.baseline > 0).length;
  if (total < settings.FLOW_CONCENTRATION_MIN_UNITS || everSettledFor <= settings.FLOW_CONCENTRATION_TOP) return [];
  const top = pharmacies
    .filter((p) => p.window > 0)
    .sort((a, b) => b.window - a.window || a.pharmacyId - b.pharmacyId)
    .slice(0, settings.FLOW_CONCENTRATION_TOP);
  const share = top.reduce((sum, p) => sum + p.window, 0) / total;
  if (share < settings.FLOW_CONCENTRATION_SHARE) return [];
  return [
    {
      reason: "FLOW_SETTLEMENT_CONCENTRATION",
      subject: `FLOW:insurer-${insurer.id}`,
      manufacturerId: null,
      // The insurer's own book: its fraud team sees the alert; the pharmacies named in it do not.
      participants: [insurer.id],
      figures: {
        insurerId: insurer.id,
        ...windows,
        settled: total,
        pharmacies: everSettledFor,
        top: top.map((p) => ({ pharmacyId: p.pharmacyId, settled: p.window, share: round(p.window / total) })),
        share: round(share),
        shareLimit: settings.FLOW_CONCENTRATION_SHARE,
      },
    },
  ];
}

/** Every rule over every pharmacy and insurer the index knows. */
export async function flowSignals(
  reader: IndexReader,
  nowSeconds: number,
  settings: FlowSettings,
): Promise<FlowSignal[]> {
  const count = Number((await reader.totals()).participants ?? 0);
  const participants = await Promise.all(Array.from({ length: count }, (_, i) => reader.participant(i + 1)));
  const watched = participants.filter(
    (p): p is ParticipantRecord => !!p && (p.role === PHARMACY_ROLE || p.role === INSURER_ROLE),
  );
  const raws = await Promise.all(watched.map((p) => reader.redis.hgetall(flowKey(p.id))));
  const productIds = new Set<number>();
  watched.forEach((p, i) => {
    if (p.role !== PHARMACY_ROLE) return;
    for (const field of Object.keys(raws[i]!)) productIds.add(Number(field.split(":")[1]));
  });
  const products = new Map<number, ProductRecord>();
  for (const product of await Promise.all([...productIds].map((id) => reader.product(id))))
    if (product) products.set(product.id, product);
  return watched.flatMap((p, i) =>
    p.role === PHARMACY_ROLE
      ? pharmacySignals(p, raws[i]!, products, nowSeconds, settings)
      : insurerSignals(p, raws[i]!, nowSeconds, settings),
  );
}

/**
 * Raises an alert for each signal, one per rule and subject while it is open (a repeat is counted on it, however
 * long ago it was raised); returns how many were new and how many counted on an open one.
 */
export async function raiseFlowAlerts(alerts: AlertStore, signals: readonly FlowSignal[]) {
  let raised = 0;
  let repeated = 0;
  for (const signal of signals) {
    const alert = await alerts.raise({
      source: "supply",
      reason: signal.reason,
      code: {
        raw: signal.subject,
        normalised: null,
        ...(signal.productCode ? { productCode: signal.productCode } : {}),
      },
      reporter: FLOW_ACTOR,
      participants: signal.participants,
      manufacturerId: signal.manufacturerId,
      snapshot: signal.figures,
      dedup: "until_closed",
    });
    if (alert.count === 1) raised++;
    else repeated++;
  }
  return { raised, repeated };
}

/** One evaluation: every rule, alerts for what they found. */
export async function evaluateFlows(
  reader: IndexReader,
  alerts: AlertStore,
  settings: FlowSettings,
  nowSeconds = Math.floor(Date.now() / 1000),
): Promise<{ signals: FlowSignal[]; raised: number; repeated: number }> {
  const signals = await flowSignals(reader, nowSeconds, settings);
  return { signals, ...(await raiseFlowAlerts(alerts, signals)) };
}

/** A claim line the check refused as settled already: who settled it, where, and how long ago. */
export interface SettledElsewhere {
  code: string;
  pharmacy: { id: number; region: string };
  earlier: { pharmacyId: number | null; region: string | null; at: string; claimRef?: string };
  secondsBetween: number;
}

/**
 * FLOW_CROSS_REGION: packs settled already in another region, billed again within the copied-code window. One
 * alert per claiming pharmacy and earlier region; its figures are the first such line (the claim check's own
 * per-code alerts keep every line).
 */
export async function raiseCrossRegion(alerts: AlertStore, lines: readonly SettledElsewhere[]) {
  const signals = new Map<string, FlowSignal>();
  for (const line of lines) {
    if (!line.earlier.region || line.earlier.region === line.pharmacy.region) continue;
    const subject = `FLOW:pharmacy-${line.pharmacy.id}:from-region-${line.earlier.region}`;
    if (signals.has(subject)) continue;
    signals.set(subject, {
      reason: "FLOW_CROSS_REGION",
      subject,
      manufacturerId: null,
      participants: [],
      figures: {
        pharmacyId: line.pharmacy.id,
        region: line.pharmacy.region,
        earlierRegion: line.earlier.region,
        earlierPharmacyId: line.earlier.pharmacyId,
        settledAt: line.earlier.at,
        secondsBetween: line.secondsBetween,
        code: line.code,
        codesInThisCheck: lines.filter((l) => l.earlier.region === line.earlier.region).length,
      },
    });
  }
  return raiseFlowAlerts(alerts, [...signals.values()]);
}
