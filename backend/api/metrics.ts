/**
 * Prometheus metrics (prom-client), in a registry of the service's own so that several apps in one process (the
 * tests) do not collide: request rate and latency by route, scan verdicts, indexer lag.
 */
import { performance } from "node:perf_hooks";
import type { RequestHandler } from "express";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** One label set's counter and histogram; its requests are counted here and told to the counter when scraped. */
interface Series {
  requests: { inc(value?: number): void };
  duration: { observe(value: number): void };
  unreported: number;
}

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
  private readonly bound = new Map<string, Series>();

  /** `readLag` is asked at each scrape (the indexer's status in Redis); null when there is none. */
  constructor(readLag: () => Promise<IndexLag | null>, options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({
      name: "http_requests_total",
      help: "HTTP requests by method, route and status",
      labelNames: ["method", "route", "status"],
      registers,
      // prom-client validates and hashes the labels on every inc: requests are summed per series instead, and
      // the sums reach the counter whenever it is read (a scrape), which is all that ever reads it.
      collect: () => {
        for (const series of this.bound.values())
          if (series.unreported > 0) {
            series.requests.inc(series.unreported);
            series.unreported = 0;
          }
      },
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
  private series(method: string, route: string, status: number): Series {
    const id = `${method} ${route} ${status}`;
    let found = this.bound.get(id);
    if (!found) {
      const labels = { method, route, status: String(status) };
      found = { requests: this.requests.labels(labels), duration: this.duration.labels(labels), unreported: 0 };
      this.bound.set(id, found);
    }
    return found;
  }

  /**
   * Times every request; the route label is the declared route (never the raw path, which is unbounded). A plain
   * listener (finish is emitted once), not `once`'s wrapper; performance.now(), not a BigInt per request.
   */
  middleware(): RequestHandler {
    return (req, res, next) => {
      const start = performance.now();
      res.on("finish", () => {
        const series = this.series(req.method, (res.locals.route as string | undefined) ?? "unmatched", res.statusCode);
        series.unreported++;
        series.duration.observe((performance.now() - start) / 1000);
      });
      next();
    };
  }
}
