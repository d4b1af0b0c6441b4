/**
 * GET /v1/tx/{hash}: where a write stands when its answer was a 202 — sent, mined (block, gas, success) and
 * whether the index has passed it. Only the organisation that sent it (and the regulator) may look.
 */
import type { Router } from "express";
import { z } from "zod";
import { META } from "../index/keys";
import type { ApiContext } from "./context";
import { problems } from "./errors";
import { ApiRouter } from "./openapi";

const txParams = z.object({
  hash: z.string().regex(/^0x[0-9a-fA-F]{64}$/, "a transaction hash: 0x and 64 hex digits"),
});

export const txStatusSchema = z
  .object({
    txHash: z.string(),
    state: z.enum(["pending", "mined", "reverted"]),
    nonce: z.number().int(),
    versions: z.array(z.string()).openapi({ description: "Every signed version (replacements), oldest first" }),
    minedAs: z.string().nullable(),
    block: z.number().int().nullable(),
    gasUsed: z.number().int().nullable(),
    indexed: z.boolean().openapi({ description: "The index has passed the transaction's block" }),
  })
  .openapi("TxStatus");

export function transactionRoutes(ctx: ApiContext): Router {
  const api = new ApiRouter(ctx);
  api.route(
    {
      method: "get",
      path: "/v1/tx/{hash}",
      summary: "A sent transaction's status (where a 202 answer points)",
      description: "Retry the write with the same Idempotency-Key for its full answer once this says indexed.",
      tags: ["writes"],
      access: ["regulator", "manufacturer", "distributor", "pharmacy", "insurer"],
      request: { params: txParams },
      responses: { 200: { description: "The transaction", schema: txStatusSchema } },
    },
    async ({ params, caller }) => {
      const submitter = ctx.writer.submitter;
      const record = await submitter.record(params.hash);
      if (!record || (record.org !== caller!.account && caller!.role !== "regulator"))
        throw problems.notFound(`No transaction ${params.hash} sent by this service for your organisation`);
      const versions = record.versions.map((v) => v.hash);
      const [receipt, checkpoint] = await Promise.all([submitter.receiptOf(versions), ctx.redis.get(META.checkpoint)]);
      const indexedTo = checkpoint ? (JSON.parse(checkpoint) as { number: number }).number : -1;
      return {
        txHash: params.hash.toLowerCase(),
        state: !receipt ? "pending" : receipt.status === 1 ? "mined" : "reverted",
        nonce: record.nonce,
        versions,
        minedAs: receipt?.transactionHash ?? null,
        block: receipt?.blockNumber ?? null,
        gasUsed: receipt?.gasUsed ?? null,
        indexed: !!receipt && indexedTo >= receipt.blockNumber,
      };
    },
  );
  return api.router;
}
