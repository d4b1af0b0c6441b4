import { z } from "zod";

/**
 * Alert settings, read from the environment. A zod object fragment, so that the service's own configuration can
 * merge it (`schema.merge(alertSettingsSchema)`); `loadAlertSettings` reads it alone.
 */
export const alertSettingsSchema = z.object({
  /** The same code, reason and organisation within this many seconds of the last occurrence: one alert, counted. */
  ALERT_DEDUP_WINDOW_SECONDS: z.coerce.number().int().min(1).default(600),
  /** A key whose scans fail this many times within ALERT_REPEAT_WINDOW_SECONDS looks like a badly set-up scanner. */
  ALERT_REPEAT_THRESHOLD: z.coerce.number().int().min(2).default(3),
  ALERT_REPEAT_WINDOW_SECONDS: z.coerce.number().int().min(1).default(300),
  /** Days each day's alert event stream is kept (the alerts themselves are kept for good). */
  ALERT_LOG_RETENTION_DAYS: z.coerce.number().int().min(1).default(400),
});

export type AlertSettings = z.infer<typeof alertSettingsSchema>;

export function loadAlertSettings(env: NodeJS.ProcessEnv = process.env): AlertSettings {
  const parsed = alertSettingsSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new Error(`invalid alert settings: ${problems}`);
  }
  return parsed.data;
}
