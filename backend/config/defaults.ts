/** Defaults that code below the configuration needs too, kept free of the environment-reading side effects. */

/** Hours of hourly dispensing buckets the index keeps per product and region (a week). */
export const DEFAULT_SUPPLY_HOURLY_RETENTION_HOURS = 168;

/**
 * Days of daily buckets the index keeps (dispensing per product, region and day; flows per organisation and day;
 * each batch's closing stock per day): comfortably above the longest span an answer reads (a 366-day consumption
 * window; a rate's 7-day window plus its 28-day baseline; the flow rules' window plus baseline).
 */
export const DEFAULT_SUPPLY_DAILY_RETENTION_DAYS = 400;
