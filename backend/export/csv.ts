/**
 * A trace (trail.ts) as CSV (RFC 4180): one row per event and item, so that a spreadsheet filters by item.
 */
import { isoWithOffset } from "./epcis";
import type { Trace } from "./trail";

export const TRACE_CSV_HEADER = [
  "time",
  "block",
  "event",
  "item",
  "parent",
  "shipment",
  "from",
  "to",
  "by",
  "reason",
  "tx",
];

const DECOMMISSION_REASONS = ["destroyed", "damaged", "stolen", "sample"];

function field(value: unknown): string {
  const text = value === undefined || value === null ? "" : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** The rows, header first, each line ended by CRLF as RFC 4180 has it. */
export function* traceCsvLines(trace: Trace, timeZoneOffset: string): Generator<string> {
  yield TRACE_CSV_HEADER.join(",") + "\r\n";
  for (const e of trace.events)
    for (const item of e.epcs)
      yield (
        [
          isoWithOffset(e.time, timeZoneOffset),
          e.block,
          e.kind,
          item,
          e.parent,
          e.shipmentId,
          e.from,
          e.to,
          e.by,
          e.reason === undefined ? "" : DECOMMISSION_REASONS[e.reason],
          e.tx,
        ]
          .map(field)
          .join(",") + "\r\n"
      );
}
