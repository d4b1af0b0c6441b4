import { z } from "zod";

/**
 * Claim-check settings, read from the environment: a zod object fragment the service's configuration can merge
 * (`schema.merge(claimSettingsSchema)`), or read alone with {@link loadClaimSettings}.
 */
export const claimSettingsSchema = z.object({
  /**
   * A code dispensed or settled at another pharmacy this recently reads as a copied code (COPIED_CODE); longer ago
   * as a resold pack (RESOLD_PACK). The NHSA notice of 2 Nov 2024 names the patterns ("close in time", "far apart")
   * but publishes no figure, so this is ours to set: 72 hours by default.
   */
  CLAIM_COPIED_CODE_WINDOW_HOURS: z.coerce.number().positive().default(72),
  /** The GLN this service answers GS1 Lightweight Verification requests as (13 digits). */
  LMS_RESPONDER_GLN: z
    .string()
    .regex(/^\d{13}$/, "LMS_RESPONDER_GLN must be a 13-digit GLN")
    .default("0000000000000"),
});

export type ClaimSettings = z.infer<typeof claimSettingsSchema>;

export function loadClaimSettings(env: NodeJS.ProcessEnv = process.env): ClaimSettings {
  const parsed = claimSettingsSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new Error(`invalid claim settings: ${problems}`);
  }
  return parsed.data;
}
