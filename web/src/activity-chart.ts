/**
 * Network activity over time as a uPlot chart: events per interval, by kind. The series come from what the
 * regulator can already read (each participant's recent activity, de-duplicated across the two parties of a
 * shipment or settlement, and the alerts), so no route keeps a time series of its own.
 */
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { t } from "./i18n";

export interface TimedEvent {
  kind: "shipments" | "dispensing" | "settlement" | "alerts";
  time: number; // unix seconds
}

const KINDS = ["shipments", "dispensing", "settlement", "alerts"] as const;
const COLOURS = { shipments: "#12355b", dispensing: "#1e7d32", settlement: "#a86b1f", alerts: "#c62828" };
const BUCKETS = 24;

export function kindOf(event: string): TimedEvent["kind"] | null {
  if (/^Shipment(Created|Received)$/.test(event)) return "shipments";
  if (/^Unit(s)?Dispensed/.test(event)) return "dispensing";
  if (/^Unit(s)?Settled/.test(event)) return "settlement";
  return null;
}

/** Counts per kind in BUCKETS equal intervals over the span of the events. */
function bucketed(events: TimedEvent[]): uPlot.AlignedData {
  const times = events.map((e) => e.time);
  const from = Math.min(...times);
  const step = Math.max(60, Math.ceil((Math.max(...times) - from + 1) / BUCKETS));
  const xs = Array.from({ length: BUCKETS }, (_, i) => from + i * step);
  const series = KINDS.map((kind) => {
    const counts = new Array<number>(BUCKETS).fill(0);
    for (const e of events)
      if (e.kind === kind) counts[Math.min(BUCKETS - 1, Math.floor((e.time - from) / step))]! += 1;
    return counts;
  });
  return [xs, ...series];
}

let chart: uPlot | null = null;

export function drawActivity(target: HTMLElement, events: TimedEvent[]): void {
  chart?.destroy();
  chart = null;
  target.replaceChildren();
  if (events.length === 0) return;
  const width = Math.min(target.clientWidth || 900, 1100);
  chart = new uPlot(
    {
      width,
      height: 260,
      series: [
        {},
        ...KINDS.map((k) => ({ label: t(`reg.series.${k}`), stroke: COLOURS[k], width: 2, points: { show: true } })),
      ],
      axes: [{}, { label: t("reg.count") }],
    },
    bucketed(events),
    target,
  );
  const note = document.createElement("p");
  note.textContent = t("reg.activityNote");
  target.append(note);
}
