/**
 * GS1 Lightweight Verification Messaging routes (lms-verify.ts has the verification): the verify request under
 * `/v1/lms/gtin/…` and, as several providers put it, `/v1/lms/verify/gtin/…`, and `checkConnectivity`. GET only
 * (405 otherwise); a `linkType` other than verificationService or a malformed GTIN, lot, serial, expiry or GLN is a
 * 400; lot and serial arrive percent-decoded by the router; `GS1US-Version` is accepted and echoed.
 */
import type { Router } from "express";
import { z } from "zod";
import { gtinCheckDigitValid } from "../codes/parse";
import type { ApiContext } from "./context";
import { ApiError } from "./errors";
import { LMS_ADDITIONAL_INFO, LMS_FAILURE_REASONS, verifyPack } from "./lms-verify";
import { ApiRouter } from "./openapi";

const VERIFIERS = ["manufacturer", "distributor", "pharmacy", "regulator"] as const;
const GS1_CHARSET = /^[!-"%-?A-Z_a-z]+$/;

const gtin = z
  .string()
  .regex(/^\d{14}$/, "a GTIN-14 is 14 digits")
  .refine(gtinCheckDigitValid, "the GTIN's check digit is wrong")
  .openapi({ example: "09506000134352" });
const gs1Text = (what: string) =>
  z
    .string()
    .min(1)
    .max(20, `a ${what} has at most 20 characters`)
    .regex(GS1_CHARSET, `the ${what} has characters outside GS1's set`);
const gln = z.string().regex(/^\d{13}$/, "a GLN is 13 digits");

const verifyParams = z.object({ gtin, lot: gs1Text("lot"), serial: gs1Text("serial") });

/** YYMMDD (GS1 General Specifications 7.12: years 51-99 are 19xx; day 00 is the month's last day) → YYYY-MM-DD. */
const expiry = z
  .string()
  .regex(/^\d{6}$/, "exp is YYMMDD")
  .transform((v, ctx) => {
    const yy = Number(v.slice(0, 2));
    const mm = Number(v.slice(2, 4));
    const year = yy >= 51 ? 1900 + yy : 2000 + yy;
    const last = new Date(Date.UTC(year, mm, 0)).getUTCDate();
    const dd = Number(v.slice(4, 6)) || last;
    if (mm < 1 || mm > 12 || dd > last) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: "exp is not a date" });
      return z.NEVER;
    }
    return `${year}-${String(mm).padStart(2, "0")}-${String(dd).padStart(2, "0")}`;
  });

const verifyQuery = z.object({
  exp: expiry.optional(),
  linkType: z.literal("verificationService", { message: "linkType must be verificationService" }).optional(),
  context: z.string().max(100).optional().openapi({ example: "dscsaSaleableReturn" }),
  reqGLN: gln.optional(),
  corrUUID: z.string().min(1).max(100).optional(),
  ctrlPossessAtt: z.enum(["true", "false"]).optional(),
});

export const lmsResponseSchema = z
  .object({
    verificationTimestamp: z.string().datetime(),
    responderGLN: z.string().regex(/^\d{13}$/),
    data: z.object({
      verified: z.boolean(),
      verificationFailureReason: z.enum(LMS_FAILURE_REASONS).optional(),
      additionalInfo: z.enum(LMS_ADDITIONAL_INFO).optional(),
    }),
    corrUUID: z.string(),
  })
  .openapi("LmsVerificationResponse");

const VERIFY_PATHS = [
  "/v1/lms/gtin/{gtin}/lot/{lot}/ser/{serial}",
  "/v1/lms/verify/gtin/{gtin}/lot/{lot}/ser/{serial}",
];
const CONNECTIVITY_PATH = "/v1/lms/checkConnectivity";

export function lmsRoutes(ctx: ApiContext): Router {
  const api = new ApiRouter(ctx);
  const echoVersion = (
    req: { header(name: string): string | undefined },
    res: { setHeader(n: string, v: string): void },
  ) => {
    const version = req.header("GS1US-Version");
    if (version && /^[\d.]{1,10}$/.test(version)) res.setHeader("GS1US-Version", version);
  };
  for (const path of VERIFY_PATHS) {
    api.route(
      {
        method: "get",
        path,
        summary: "GS1 Lightweight Verification: is this pack genuine?",
        description:
          "LMS 1.0.2 / GS1 US guideline 1.3. Always 200 with `verified`; `verificationFailureReason` only when " +
          "false (an unknown GTIN+serial is No_match_GTIN_Serial); `additionalInfo` Recalled, Expired or Suspect " +
          "(a code commissioned twice, or a decommissioned pack); `corrUUID` echoed or generated.",
        tags: ["verification"],
        access: VERIFIERS,
        request: { params: verifyParams, query: verifyQuery },
        responses: { 200: { description: "The verification", schema: lmsResponseSchema } },
      },
      async ({ params, query, caller, req, res }) => {
        echoVersion(req, res);
        return verifyPack(
          {
            reader: ctx.reader,
            alerts: ctx.alerts,
            codeHashDomain: ctx.config.CODE_HASH_DOMAIN,
            responderGLN: ctx.config.LMS_RESPONDER_GLN,
            log: ctx.log,
          },
          {
            gtin: params.gtin,
            lot: params.lot,
            serial: params.serial,
            ...(query.exp ? { expiry: query.exp } : {}),
            ...(query.corrUUID ? { corrUUID: query.corrUUID } : {}),
          },
          caller!,
        );
      },
    );
  }
  api.route(
    {
      method: "get",
      path: CONNECTIVITY_PATH,
      summary: "GS1 Lightweight Verification: connectivity check",
      tags: ["verification"],
      access: VERIFIERS,
      request: {
        query: z.object({ gtin: gtin.optional(), reqGLN: gln.optional(), context: z.string().max(100).optional() }),
      },
      responses: {
        200: {
          description: "This responder's GLN",
          schema: z.object({ responderGLN: z.string().regex(/^\d{13}$/) }).openapi("LmsConnectivity"),
        },
      },
    },
    ({ req, res }) => {
      echoVersion(req, res);
      return { responderGLN: ctx.config.LMS_RESPONDER_GLN };
    },
  );
  // The standard's requests are GET only: any other method on these paths is a 405 naming what is allowed.
  for (const path of [...VERIFY_PATHS, CONNECTIVITY_PATH]) {
    api.router.all(path.replace(/\{(\w+)\}/g, ":$1"), (_req, res) => {
      res.setHeader("Allow", "GET, HEAD");
      throw new ApiError(405, "method-not-allowed", "Method not allowed", "verification requests are GET only");
    });
  }
  return api.router;
}
