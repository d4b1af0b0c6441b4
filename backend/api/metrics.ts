/**
 * Prometheus metrics (prom-client), in a registry of the service's own so that several apps in one process (the
 * tests) do not collide: request rate and latency by route, scan verdicts, indexer lag.
 */
import type { RequestHandler } from "express";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export interface IndexLag {
  lagBlocks: number;
  lagSeconds: number;
}

export class ApiMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<"method" | "route" | "status">;
  readonly duration: Histogram<"method" | "route" | "status">;
  readonly verdicts: Counter<"route" | "verdict">;
  private readonly lagBlocks: Gauge;
  private readonly lagSeconds: Gauge;
  private readonly bound = new Map<string, { requests: { inc(): void }; duration: { observe(value: number): void } }>();

  /** `readLag` is asked at each scrape (the indexer's status in Redis); null when there is none. */
  constructor(readLag: () => Promise<IndexLag | null>, options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({
      name: "http_requests_total",
      help: "HTTP requests by method, route and status",
      labelNames: ["method", "route", "status"],
      registers,
    });
    this.duration = new Histogram({
      name: "http_request_duration_seconds",
      help: "HTTP request latency by method, route and status",
      labelNames: ["method", "route", "status"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.verdicts = new Counter({
      name: "scan_verdicts_total",
      help: "Scan verdicts (OK, ALERT, UNKNOWN) by route",
      labelNames: ["route", "verdict"],
      registers,
    });
    const lag = async (pick: keyof IndexLag, gauge: Gauge) => {
      const value = await readLag().catch(() => null);
      if (value) gauge.set(value[pick]);
    };
    this.lagBlocks = new Gauge({
      name: "indexer_lag_blocks",
      help: "Blocks the index is behind the chain head (from the indexer's status)",
      registers,
      collect: () => lag("lagBlocks", this.lagBlocks),
    });
    this.lagSeconds = new Gauge({
      name: "indexer_lag_seconds",
      help: "Seconds the index is behind the chain head (from the indexer's status)",
      registers,
      collect: () => lag("lagSeconds", this.lagSeconds),
    });
  }

  /**
   * The counter and histogram of one label set, made once: prom-client hashes the labels on every call
   * otherwise. Methods (what Node's parser accepts), declared routes and statuses are few.
   */
  private series(method: string, route: string, status: number) {
    const id = `${method} ${route} ${status}`;
    let found = this.bound.get(id);
    if (!found) {
      const labels = { method, route, status: String(status) };
      this.bound.set(id, (found = { requests: this.requests.labels(labels), duration: this.duration.labels(labels) }));
    }
    return found;
  }

  /** Times every request; the route label is the declared route (never the raw path, which is unbounded). */
  middleware(): RequestHandler {
    return (req, res, next) => {
      const start = process.hrtime.bigint();
      res.once("finish", () => {
        const series = this.series(req.method, (res.locals.route as string | undefined) ?? "unmatched", res.statusCode);
        series.requests.inc();
        series.duration.observe(Number(process.hrtime.bigint() - start) / 1e9);
      });
      next();
    };
  }
}
