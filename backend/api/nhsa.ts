/**
 * The NHSA platform's sale record, interface 3505 (商品销售), so that a pharmacy's existing insurance interface can
 * ask for a claim check unchanged. Layout as open-source hospital and pharmacy systems send it (e.g. the
 * newtouch-cloud openhis projects: `InventorySaleRecord` 【3505】 field list, and their mock platform that reads
 * `input.selinfo` for 3505): an envelope `{ infno, msgid, fixmedins_code, input: { selinfo } }` whose sale line
 * carries `drugtracinfo: [{ drug_trac_codg }]`, one object per physical pack code (up to 100 characters). The
 * platform's own checks and its 3505 output are not published: only the fields this check needs are required, the
 * rest pass through, and our answer's `output` beside `result` is ours. Answers use the platform's envelope:
 * `infcode` 0 on success, -1 with `err_msg` when the message cannot be processed (the platform's specification
 * lists 0/-1; systems compare against 0), always with HTTP 200 as the platform does, so a client reads one shape.
 */
import { z } from "zod";
import type { ClaimCheckResult, ClaimLineInput } from "./claims-check";
import { lineResultSchema } from "./claims-schemas";

const text = (max: number) => z.union([z.string(), z.number()]).transform(String).pipe(z.string().max(max));

const drugTracInfo = z.object({ drug_trac_codg: z.string().trim().min(1).max(100) }).passthrough();

/** A sale line (selinfo). Lengths follow the record's published field list. */
const selinfo = z
  .object({
    med_list_codg: text(50).optional(),
    fixmedins_hilist_id: text(30).optional(),
    fixmedins_hilist_name: text(200).optional(),
    fixmedins_bchno: text(30).optional(),
    setl_id: text(30).optional(),
    mdtrt_sn: text(30).optional(),
    rtal_docno: text(40).optional(),
    manu_lotnum: text(30).optional(),
    manu_date: z.string().optional(),
    expy_end: z
      .string()
      .regex(/^\d{4}-\d{2}-\d{2}/, "expy_end is yyyy-MM-dd")
      .transform((d) => d.slice(0, 10))
      .optional(),
    trdn_flag: z.union([z.literal("0"), z.literal("1"), z.literal(0), z.literal(1)]).transform(String),
    sel_retn_cnt: z.coerce.number().positive(),
    sel_retn_time: z.string().optional(),
    /** Since 2025: one object per pack code. */
    drugtracinfo: z.array(drugTracInfo).min(1).max(500).optional(),
    /** The older flat field (up to 30 characters), still sent by some systems. */
    drug_trac_codg: z.string().trim().min(1).max(30).optional(),
  })
  .passthrough()
  .refine((s) => s.drugtracinfo || s.drug_trac_codg, "a sale line carries drugtracinfo (or drug_trac_codg)")
  .refine((s) => s.setl_id || s.mdtrt_sn || s.rtal_docno, "a sale line names its settlement (setl_id or mdtrt_sn)");

export const nhsa3505Envelope = z
  .object({
    infno: z.literal("3505"),
    msgid: text(30).pipe(z.string().min(1)),
    fixmedins_code: text(30).pipe(z.string().min(1)),
    // 3505 sends one sale line as an object; some systems send a list: both are read as a list.
    input: z
      .object({
        selinfo: z.preprocess((v) => (Array.isArray(v) || v === undefined ? v : [v]), z.array(selinfo).min(1).max(100)),
      })
      .passthrough(),
  })
  .passthrough()
  .openapi("Nhsa3505Request", { description: "NHSA interface 3505 sale record (商品销售)" });

export type Nhsa3505 = z.infer<typeof nhsa3505Envelope>;

/**
 * What the route accepts: any JSON object or array (all a strict JSON parser lets through), so that a malformed
 * envelope is answered in the envelope.
 */
export const nhsa3505Body = z.union([nhsa3505Envelope, z.record(z.unknown()), z.array(z.unknown())]);

const codeResult = z.object({ drug_trac_codg: z.string() }).merge(lineResultSchema.omit({ code: true }));

export const nhsa3505Answer = z
  .object({
    infcode: z.number().int().openapi({ description: "0 success, -1 the message could not be processed" }),
    inf_refmsgid: z.string(),
    refmsg_time: z.string(),
    respond_time: z.string(),
    err_msg: z.string(),
    output: z
      .object({
        result: z.object({ retRslt: z.enum(["0", "1"]), msgRslt: z.string() }),
        decision: z.enum(["APPROVE", "REJECT"]),
        claimId: z.string().nullable(),
        selinfo: z.array(
          z.object({
            fixmedins_bchno: z.string().nullable(),
            med_list_codg: z.string().nullable(),
            ok: z.boolean(),
            drugtracinfo: z.array(codeResult),
          }),
        ),
      })
      .nullable(),
  })
  .openapi("Nhsa3505Answer");

export type Nhsa3505Answer = z.infer<typeof nhsa3505Answer>;

type Row = z.infer<typeof selinfo>;
const rowsOf = (e: Nhsa3505): Row[] => e.input.selinfo;

/** Reads a body as a 3505 envelope, or says in one sentence what is wrong with it. */
export function read3505(body: unknown): { envelope: Nhsa3505 } | { error: string; msgid: string } {
  const parsed = nhsa3505Envelope.safeParse(body);
  // As the envelope reads it: a string, or a number taken as text.
  const sent = (body as { msgid?: unknown } | null)?.msgid;
  const msgid = typeof sent === "string" || typeof sent === "number" ? String(sent) : "";
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return { error: `${issue.path.join(".") || "message"}: ${issue.message}`, msgid };
  }
  for (const [i, row] of rowsOf(parsed.data).entries()) {
    const codes = codesOf(row);
    // A split sale (拆零) takes doses out of one pack: its quantity cannot be shared out among several codes.
    if (row.trdn_flag === "1" && codes.length !== 1)
      return { error: `selinfo[${i}]: a split sale (trdn_flag 1) names exactly one pack code`, msgid };
  }
  return { envelope: parsed.data };
}

const codesOf = (row: Row): string[] =>
  row.drugtracinfo ? row.drugtracinfo.map((d) => d.drug_trac_codg) : [row.drug_trac_codg!];

/** The claim reference of a sale: the fund's settlement id, else the visit's serial number or the receipt. */
export const claimRefOf = (e: Nhsa3505): string => {
  const row = rowsOf(e)[0]!;
  return row.setl_id ?? row.mdtrt_sn ?? row.rtal_docno!;
};

/** One claim line per pack code; a split sale's line asks for its quantity in doses. */
export function linesOf(e: Nhsa3505): ClaimLineInput[] {
  return rowsOf(e).flatMap((row) =>
    codesOf(row).map((code) => ({
      code,
      ...(row.trdn_flag === "1" ? { quantity: row.sel_retn_cnt } : {}),
      expect: {
        ...(row.manu_lotnum !== undefined ? { lot: row.manu_lotnum } : {}),
        ...(row.expy_end !== undefined ? { expiry: row.expy_end } : {}),
      },
    })),
  );
}

/** The platform writes times as `yyyy-MM-dd HH:mm:ss` in China Standard Time. */
export const platformTime = (ms: number): string =>
  new Date(ms + 8 * 3_600_000).toISOString().slice(0, 19).replace("T", " ");

export function answer3505(e: Nhsa3505, result: ClaimCheckResult, receivedMs: number): Nhsa3505Answer {
  let at = 0;
  const selinfoResults = rowsOf(e).map((row) => {
    const lines = result.lines.slice(at, (at += codesOf(row).length));
    return {
      fixmedins_bchno: row.fixmedins_bchno ?? null,
      med_list_codg: row.med_list_codg ?? null,
      ok: lines.every((l) => l.ok),
      drugtracinfo: lines.map(({ code, ...rest }) => ({ drug_trac_codg: code, ...rest })),
    };
  });
  const refused = result.lines.filter((l) => !l.ok);
  return {
    infcode: 0,
    inf_refmsgid: e.msgid,
    refmsg_time: platformTime(receivedMs),
    respond_time: platformTime(Date.now()),
    err_msg: "",
    output: {
      result: {
        retRslt: result.decision === "APPROVE" ? "1" : "0",
        msgRslt:
          result.decision === "APPROVE"
            ? "all pack codes may be settled"
            : refused.map((l) => `${l.code}: ${l.reasons.map((r) => r.reason).join(",")}`).join("; "),
      },
      decision: result.decision,
      claimId: result.claimId,
      selinfo: selinfoResults,
    },
  };
}

export function failure3505(msgid: string, message: string, receivedMs: number): Nhsa3505Answer {
  return {
    infcode: -1,
    inf_refmsgid: msgid,
    refmsg_time: platformTime(receivedMs),
    respond_time: platformTime(Date.now()),
    err_msg: message,
    output: null,
  };
}
