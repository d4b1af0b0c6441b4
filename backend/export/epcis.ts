/**
 * A trace (trail.ts) as a GS1 EPCIS 2.0 JSON-LD document (EPCISDocument). Commissioning is an ObjectEvent ADD,
 * each case's and pallet's packing an AggregationEvent ADD, shipping and receiving ObjectEvents OBSERVE with the
 * parties as owning_party source and destination and the shipment as a bizTransaction, dispensing an ObjectEvent
 * OBSERVE and decommissioning an ObjectEvent DELETE. Business steps and dispositions are CBV 2.0 values, written
 * as the bare words the EPCIS 2.0 JSON binding takes (`"bizStep": "commissioning"`); the URN form
 * (`urn:epcglobal:cbv:bizstep:commissioning`) is the XML / EPCIS 1.x spelling and the JSON schema refuses it.
 */
import { createHash } from "node:crypto";
import { partyUri, shipmentUri } from "./identifiers";
import type { Trace, TraceEvent } from "./trail";

export const EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld";
/** The consortium's own terms (ledger block and transaction), as an EPCIS user extension namespace. */
export const DRUGTRACE_NAMESPACE = "urn:drugtrace:epcis:";

export interface EpcisOptions {
  /** The offset the event times are written in, e.g. `+08:00` (China Standard Time). */
  timeZoneOffset: string;
  /** The document's creation time (defaults to now). */
  now?: Date;
}

/** Custody.DecommissionReason → CBV disposition. */
const DECOMMISSION_DISPOSITIONS = ["destroyed", "damaged", "stolen", "non_sellable_other"] as const;

/** Unix seconds as an ISO 8601 time in the given offset (`2026-12-02T22:06:11.000+08:00`). */
export function isoWithOffset(seconds: number, offset: string): string {
  const match = /^([+-])(\d{2}):(\d{2})$/.exec(offset);
  if (!match) throw new RangeError(`time zone offset ${offset} is not ±HH:MM`);
  const minutes = (match[1] === "-" ? -1 : 1) * (Number(match[2]) * 60 + Number(match[3]));
  return new Date((seconds + minutes * 60) * 1000).toISOString().replace("Z", offset);
}

type Json = Record<string, unknown>;

function eventBody(e: TraceEvent): Json {
  const parties = (from?: number, to?: number) => ({
    ...(from ? { sourceList: [{ type: "owning_party", source: partyUri(from) }] } : {}),
    ...(to ? { destinationList: [{ type: "owning_party", destination: partyUri(to) }] } : {}),
  });
  const shipment = e.shipmentId
    ? { bizTransactionList: [{ type: "desadv", bizTransaction: shipmentUri(e.shipmentId) }] }
    : {};
  switch (e.kind) {
    case "commissioned":
      return { type: "ObjectEvent", action: "ADD", epcList: e.epcs, bizStep: "commissioning", disposition: "active" };
    case "aggregated":
      return {
        type: "AggregationEvent",
        action: "ADD",
        parentID: e.parent,
        childEPCs: e.epcs,
        bizStep: "packing",
        disposition: "container_closed",
      };
    case "shipped":
      return {
        type: "ObjectEvent",
        action: "OBSERVE",
        epcList: e.epcs,
        bizStep: "shipping",
        disposition: "in_transit",
        ...shipment,
        ...parties(e.from, e.to),
      };
    case "received":
      return {
        type: "ObjectEvent",
        action: "OBSERVE",
        epcList: e.epcs,
        bizStep: "receiving",
        disposition: "in_progress",
        ...shipment,
        ...parties(e.from, e.to),
      };
    case "returned":
      // Back to the sender: the receiver of the shipment is the source now.
      return {
        type: "ObjectEvent",
        action: "OBSERVE",
        epcList: e.epcs,
        bizStep: "receiving",
        disposition: "returned",
        ...shipment,
        ...parties(e.to, e.from),
      };
    case "dispensed":
      return {
        type: "ObjectEvent",
        action: "OBSERVE",
        epcList: e.epcs,
        bizStep: "dispensing",
        disposition: "dispensed",
        bizLocation: { id: partyUri(e.by!) },
      };
    case "decommissioned":
      return {
        type: "ObjectEvent",
        action: "DELETE",
        epcList: e.epcs,
        bizStep: "decommissioning",
        disposition: DECOMMISSION_DISPOSITIONS[e.reason ?? 0] ?? "inactive",
      };
  }
}

/** The document's events, each with a stable eventID (a hash of what it says) and the ledger's block. */
export function epcisEvents(trace: Trace, options: EpcisOptions): Json[] {
  return trace.events.map((e) => {
    const body: Json = {
      ...eventBody(e),
      eventTime: isoWithOffset(e.time, options.timeZoneOffset),
      eventTimeZoneOffset: options.timeZoneOffset,
    };
    if (e.kind === "commissioned") {
      body.ilmd = {
        "cbvmda:lotNumber": trace.batch.lot,
        "cbvmda:itemExpirationDate": new Date(trace.batch.expiresOn * 1000).toISOString().slice(0, 10),
      };
      if (e.by) body.readPoint = { id: partyUri(e.by) };
    }
    body["drugtrace:block"] = e.block;
    if (e.tx) body["drugtrace:transaction"] = e.tx;
    const digest = createHash("sha256").update(JSON.stringify(body)).digest("hex");
    return { eventID: `ni:///sha-256;${digest}?ver=CBV2.0`, ...body };
  });
}

export function epcisDocument(trace: Trace, options: EpcisOptions): Json {
  return {
    "@context": [EPCIS_CONTEXT, { drugtrace: DRUGTRACE_NAMESPACE }],
    type: "EPCISDocument",
    schemaVersion: "2.0",
    creationDate: (options.now ?? new Date()).toISOString(),
    epcisBody: { eventList: epcisEvents(trace, options) },
  };
}
