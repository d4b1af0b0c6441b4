/** Defaults that code below the configuration needs too, kept free of the environment-reading side effects. */

/** Hours of hourly dispensing buckets the index keeps per product and region (a week). */
export const DEFAULT_SUPPLY_HOURLY_RETENTION_HOURS = 168;
