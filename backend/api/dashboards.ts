/**
 * Dashboards: a batch with its counts by status, a participant's counters and recent activity, network totals.
 * Volumes are commercial: a batch is the regulator's and its manufacturer's to see, a participant's own
 * dashboard its own (and the regulator's).
 */
import type { Router } from "express";
import { z } from "zod";
import type { ApiContext, Caller } from "./context";
import { problems } from "./errors";
import { ApiRouter } from "./openapi";
import { batchView, countByStatus, DISPOSITIONS, orgView, productView } from "./scan";
import type { UnitState } from "../index/query";

/** Units read per round trip when counting a batch. */
const COUNT_CHUNK = 4096;

const activitySchema = z.array(z.record(z.unknown()));
const countersSchema = z.record(z.number());

const batchDashboardSchema = z
  .object({
    batch: z.object({
      id: z.number().int(),
      lot: z.string(),
      manufacturedOn: z.string(),
      expiry: z.string(),
      recalled: z.boolean(),
    }),
    product: z.record(z.unknown()).nullable(),
    manufacturer: z.record(z.unknown()).nullable(),
    recalls: z.array(z.record(z.unknown())),
    runs: z.array(
      z.object({
        runId: z.number().int(),
        units: z.number().int(),
        cases: z.number().int(),
        pallets: z.number().int(),
        at: z.string(),
      }),
    ),
    units: z.number().int(),
    byStatus: z.record(z.enum(DISPOSITIONS), z.number().int()),
    counters: countersSchema,
    recent: activitySchema,
  })
  .openapi("BatchDashboard");

const participantDashboardSchema = z
  .object({
    participant: z.object({
      id: z.number().int(),
      name: z.string(),
      role: z.string(),
      region: z.string(),
      licence: z.string(),
      suspended: z.boolean(),
    }),
    counters: countersSchema,
    recent: activitySchema,
  })
  .openapi("ParticipantDashboard");

/** Ids are handed out in order from 1 on chain; a list stops at the first id the index does not have. */
const MAX_LISTED = 10_000;

async function listInOrder<T>(read: (id: number) => Promise<T | null>): Promise<T[]> {
  const out: T[] = [];
  for (let id = 1; id <= MAX_LISTED; id++) {
    const record = await read(id);
    if (!record) break;
    out.push(record);
  }
  return out;
}

const batchListSchema = z
  .object({
    batches: z.array(
      z.object({
        id: z.number().int(),
        lot: z.string(),
        manufacturedOn: z.string(),
        expiry: z.string(),
        recalled: z.boolean(),
        productId: z.number().int(),
        manufacturerId: z.number().int(),
      }),
    ),
  })
  .openapi("BatchList");

const participantListSchema = z
  .object({
    participants: z.array(
      z.object({
        id: z.number().int(),
        name: z.string(),
        role: z.string(),
        region: z.string(),
        account: z.string(),
        suspended: z.boolean(),
      }),
    ),
  })
  .openapi("ParticipantList");

const networkSchema = z.object({ totals: z.record(z.union([z.number(), z.string()])) }).openapi("NetworkTotals");

const idParam = (name: string) =>
  z.object({ [name]: z.coerce.number().int().min(1).max(0xffffffff).openapi({ type: "integer" }) });

function mayWatch(caller: Caller, participantId: number): boolean {
  return caller.role === "regulator" || caller.participantId === participantId;
}

export function dashboardRoutes(ctx: ApiContext): Router {
  const api = new ApiRouter(ctx);
  api.route(
    {
      method: "get",
      path: "/v1/batches",
      summary: "Batches: a manufacturer's own, or every batch for the regulator (the manufacturer page's list)",
      tags: ["dashboards"],
      access: ["regulator", "manufacturer"],
      responses: { 200: { description: "The batches, oldest first", schema: batchListSchema } },
    },
    async ({ caller }) => {
      const all = await listInOrder((id) => ctx.reader.batch(id));
      return {
        batches: all
          .filter((b) => mayWatch(caller!, b.manufacturerId))
          .map((b) => ({ ...batchView(b)!, productId: b.productId, manufacturerId: b.manufacturerId })),
      };
    },
  );
  api.route(
    {
      method: "get",
      path: "/v1/participants",
      summary: "Every participant with its role, region and suspension (the regulator page's list)",
      tags: ["dashboards"],
      access: ["regulator"],
      responses: { 200: { description: "The participants, by id", schema: participantListSchema } },
    },
    async () => {
      const all = await listInOrder((id) => ctx.reader.participant(id));
      return {
        participants: all.map((p) => ({ ...orgView(p)!, account: p.account, suspended: p.suspended })),
      };
    },
  );
  api.route(
    {
      method: "get",
      path: "/v1/batches/{batchId}",
      summary: "A batch: its runs, counts of units by status, counters, recalls and recent activity",
      tags: ["dashboards"],
      access: ["regulator", "manufacturer"],
      request: { params: idParam("batchId") },
      responses: { 200: { description: "The batch", schema: batchDashboardSchema } },
    },
    async ({ params, caller }) => {
      const batch = await ctx.reader.batch(params.batchId as number);
      if (!batch) throw problems.notFound(`No batch ${params.batchId}`, { field: "batchId" });
      if (!mayWatch(caller!, batch.manufacturerId))
        throw problems.forbidden("Only the batch's manufacturer and the regulator see it.");
      const runs = (await Promise.all(batch.runs.map((id) => ctx.reader.run(id)))).filter((r) => r !== null);
      const units: UnitState[] = [];
      for (const run of runs)
        for (let from = 0; from < run.unitCount; from += COUNT_CHUNK)
          units.push(...(await ctx.reader.unitStates(run, from, COUNT_CHUNK)));
      const [product, manufacturer, counters, recent] = await Promise.all([
        ctx.reader.product(batch.productId),
        ctx.reader.participant(batch.manufacturerId),
        ctx.reader.counters("b", batch.id),
        ctx.reader.activity("b", batch.id),
      ]);
      return {
        batch: batchView(batch)!,
        product: productView(product),
        manufacturer: orgView(manufacturer),
        recalls: batch.recalls.map((r) => ({ ...r, at: new Date(r.time * 1000).toISOString() })),
        runs: runs.map((r) => ({
          runId: r.runId,
          units: r.unitCount,
          cases: r.caseCount,
          pallets: r.palletCount,
          at: new Date(r.time * 1000).toISOString(),
        })),
        units: units.length,
        byStatus: countByStatus(units, { batch, nowSeconds: Math.floor(Date.now() / 1000) }),
        counters,
        recent,
      };
    },
  );
  api.route(
    {
      method: "get",
      path: "/v1/participants/{participantId}",
      summary: "A participant's counters and recent activity (its own, or any for the regulator)",
      tags: ["dashboards"],
      access: "any",
      request: {
        params: z.object({ participantId: z.string().openapi({ description: 'A participant id, or "me"' }) }),
      },
      responses: { 200: { description: "The participant", schema: participantDashboardSchema } },
    },
    async ({ params, caller }) => {
      const id = params.participantId === "me" ? caller!.participantId : Number(params.participantId);
      if (id === null || !Number.isInteger(id) || id < 1 || id > 0xffffffff)
        throw problems.validation(`participantId must be a positive integer or "me"`, "participantId");
      if (!mayWatch(caller!, id)) throw problems.forbidden("A participant's dashboard is its own and the regulator's.");
      const participant = await ctx.reader.participant(id);
      if (!participant) throw problems.notFound(`No participant ${id}`, { field: "participantId" });
      const [counters, recent] = await Promise.all([ctx.reader.counters("p", id), ctx.reader.activity("p", id)]);
      const org = orgView(participant)!;
      return {
        participant: { ...org, licence: participant.licence, suspended: participant.suspended },
        counters,
        recent,
      };
    },
  );
  api.route(
    {
      method: "get",
      path: "/v1/network",
      summary: "Network totals: participants, runs, codes, shipments, recalls, code conflicts",
      tags: ["dashboards"],
      access: "any",
      responses: { 200: { description: "Totals", schema: networkSchema } },
    },
    async () => {
      const raw = await ctx.reader.totals();
      const totals: Record<string, number | string> = {};
      for (const [k, v] of Object.entries(raw))
        if (!k.startsWith("admin:")) totals[k] = /^-?\d+$/.test(v) ? Number(v) : v;
      return { totals };
    },
  );
  return api.router;
}
