/**
 * Who is calling: `Authorization: Bearer <key>` (or HTTP Basic with the key as password, as GS1 LMS clients
 * send it) → the key's organisation as the chain knows it. A regulator is an account holding REGULATOR_ROLE on
 * chain; business roles come from the participant record; a suspended participant is refused.
 */
import type { Request, Response } from "express";
import type { ApiContext, Caller, CallerRole } from "./context";
import type { ApiKeyRecord } from "./keys";
import { ROLE_BY_NUMBER } from "./context";
import { problems } from "./errors";

/** The key in an Authorization header, or null when there is none or it is malformed. */
export function keyFromHeader(header: string | undefined): string | null {
  if (!header) return null;
  const [scheme, value] = header.trim().split(/\s+/, 2);
  if (!scheme || !value) return null;
  if (/^bearer$/i.test(scheme)) return value;
  if (/^basic$/i.test(scheme)) {
    const decoded = Buffer.from(value, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    return colon === -1 ? null : decoded.slice(colon + 1);
  }
  return null;
}

/**
 * Resolves the caller of a key, refusing what the chain refuses (unknown or suspended organisations); a key the
 * request verified already goes to {@link callerOfRecord} directly (see {@link callerOfRequest}).
 */
export async function callerOf(ctx: ApiContext, key: string): Promise<Caller> {
  const record = await ctx.keys.verify(key);
  if (!record) throw problems.unauthorized("The API key is not valid or was revoked.");
  return callerOfRecord(ctx, record);
}

/** The caller of a verified key's record. */
async function callerOfRecord(ctx: ApiContext, record: ApiKeyRecord): Promise<Caller> {
  const [participant, regulator] = await Promise.all([
    ctx.reader.participantByAccount(record.account),
    ctx.reader.isRegulator(record.account),
  ]);
  if (participant?.suspended && !regulator)
    throw problems.forbidden(
      `Organisation ${participant.name} is suspended on chain: ${participant.suspensionReason ?? ""}`,
    );
  const role: CallerRole | undefined = regulator
    ? "regulator"
    : participant
      ? ROLE_BY_NUMBER[participant.role]
      : undefined;
  if (!role) throw problems.forbidden(`Account ${record.account} is not an onboarded organisation on the ledger.`);
  return {
    keyId: record.keyId,
    name: record.name,
    account: record.account,
    participantId: participant?.id ?? null,
    role,
  };
}

/**
 * The request's caller, from its Authorization header, or a 401/403 problem. A key the route verified already
 * (ApiRouter) came from this very header: it is not parsed again.
 */
export async function callerOfRequest(ctx: ApiContext, req: Request, res: Response): Promise<Caller> {
  const verified = res.locals.verifiedKey as ApiKeyRecord | undefined;
  if (verified) return callerOfRecord(ctx, verified);
  const key = keyFromHeader(req.headers.authorization);
  if (!key) {
    res.setHeader("WWW-Authenticate", 'Bearer realm="drugtrace"');
    throw problems.unauthorized("Send Authorization: Bearer <API key>.");
  }
  return callerOf(ctx, key);
}

/** Throws 403 unless the caller has one of the roles. */
export function requireRole(caller: Caller, roles: readonly CallerRole[]): void {
  if (!roles.includes(caller.role))
    throw problems.forbidden(`This route is for: ${roles.join(", ")}; the key is a ${caller.role}'s.`);
}
