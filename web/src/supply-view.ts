/**
 * Supply at a glance, shared by the regulator's and the manufacturer's pages: days of cover per product and region
 * coloured by risk and always said in words (GET /v1/supply/overview), a product's dispensing per day with the
 * forecast band drawn by uPlot (GET /v1/supply/products/{id}/outlook), and its stock along the chain
 * (GET /v1/supply/products/{id}/stock).
 */
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { h } from "./dom";
import { label, t } from "./i18n";

export type Risk = "ok" | "low" | "critical" | "no_demand";

export interface RegionCover {
  region: string;
  stock: { manufacturer: number; distributor: number; pharmacy: number; inTransit: number };
  ratePerDay: number;
  daysOfCover: number | null;
  risk: Risk;
  surge: boolean;
}
export interface ProductCover {
  productId: number;
  productCode: string;
  name: string;
  manufacturerId: number;
  regions: RegionCover[];
}
export interface Overview {
  generatedAt: string;
  thresholdDays: number;
  products: ProductCover[];
}
export interface Outlook {
  productId: number;
  perDay: { day: string; units: number }[];
  forecast: { day: string; expected: number; low: number; high: number }[];
  method: string;
}

const RISK_ORDER: Risk[] = ["critical", "low", "ok", "no_demand"];

const cover = (r: RegionCover): string =>
  // No demand has no days of cover: the risk word beside it says so.
  r.daysOfCover === null ? t("detail.none") : t("supply.days", { n: Math.round(r.daysOfCover * 10) / 10 });

/** One cell: the days of cover, the risk in words (the colour only repeats it), a surge flagged in words too. */
function coverCell(r: RegionCover | undefined): HTMLTableCellElement {
  if (!r) return h("td", { class: "risk-none" }, t("detail.none"));
  return h(
    "td",
    { class: `risk risk-${r.risk}`, "data-risk": r.risk, "data-region": r.region },
    h("span", { class: "cover" }, cover(r)),
    " ",
    h("strong", {}, label("risk", r.risk)),
    r.surge ? h("span", { class: "surge" }, ` · ${t("supply.surge")}`) : null,
    // Cover counts stock on its way to the region: how much of it is still on the road.
    r.stock.inTransit > 0
      ? h("span", { class: "in-transit" }, ` · ${t("supply.inTransit", { n: r.stock.inTransit })}`)
      : null,
  );
}

/** Products × regions, days of cover coloured by risk; every region any product is in has a column. */
export function coverTable(overview: Overview): HTMLElement {
  if (overview.products.length === 0) return h("p", {}, t("supply.none"));
  const regions = [...new Set(overview.products.flatMap((p) => p.regions.map((r) => r.region)))].sort();
  return h(
    "table",
    { class: "cover-table" },
    h(
      "caption",
      {},
      t("supply.coverCaption", { days: overview.thresholdDays, at: new Date(overview.generatedAt).toLocaleString() }),
    ),
    h(
      "thead",
      {},
      h("tr", {}, h("th", { scope: "col" }, t("maker.product")), ...regions.map((r) => h("th", { scope: "col" }, r))),
    ),
    h(
      "tbody",
      {},
      ...overview.products.map((p) =>
        h(
          "tr",
          { "data-product": String(p.productId) },
          h("th", { scope: "row" }, `${p.name} (${p.productCode})`),
          ...regions.map((region) => coverCell(p.regions.find((r) => r.region === region))),
        ),
      ),
    ),
  );
}

/** Regions where cover is low or critical, worst first: where shortages are building. */
export function shortageList(overview: Overview): HTMLElement {
  const rows = overview.products
    .flatMap((p) => p.regions.filter((r) => r.risk === "low" || r.risk === "critical").map((r) => ({ p, r })))
    .sort((a, b) => RISK_ORDER.indexOf(a.r.risk) - RISK_ORDER.indexOf(b.r.risk));
  if (rows.length === 0) return h("p", { "data-shortages": "0" }, t("supply.noShortage"));
  return h(
    "ul",
    { class: "shortages", "data-shortages": String(rows.length) },
    ...rows.map(({ p, r }) =>
      h(
        "li",
        { class: `risk-${r.risk}`, "data-product": String(p.productId), "data-region": r.region, "data-risk": r.risk },
        h("strong", {}, label("risk", r.risk)),
        " ",
        t("supply.shortageLine", {
          product: p.name,
          region: r.region,
          cover: cover(r),
          rate: Math.round(r.ratePerDay * 10) / 10,
          stock: r.stock.distributor + r.stock.pharmacy,
          inTransit: r.stock.inTransit,
        }),
      ),
    ),
  );
}

const daySeconds = (day: string): number => Date.parse(`${day}T00:00:00Z`) / 1000;

/** Units dispensed per day, then the forecast: expected (dashed) inside its low-high band. */
function outlookData(outlook: Outlook): uPlot.AlignedData {
  const days = [...new Set([...outlook.perDay.map((d) => d.day), ...outlook.forecast.map((f) => f.day)])].sort();
  const actual = new Map(outlook.perDay.map((d) => [d.day, d.units]));
  const forecast = new Map(outlook.forecast.map((f) => [f.day, f]));
  const firstForecast = outlook.forecast[0]?.day ?? "9999-12-31";
  return [
    days.map(daySeconds),
    // A day with no dispensing before the forecast starts is a zero, not a gap.
    days.map((d) => actual.get(d) ?? (d < firstForecast ? 0 : null)),
    days.map((d) => forecast.get(d)?.expected ?? null),
    days.map((d) => forecast.get(d)?.low ?? null),
    days.map((d) => forecast.get(d)?.high ?? null),
  ];
}

let chart: uPlot | null = null;

export function drawOutlook(target: HTMLElement, outlook: Outlook): void {
  chart?.destroy();
  chart = null;
  target.replaceChildren();
  if (outlook.perDay.length === 0 && outlook.forecast.length === 0) {
    target.append(h("p", {}, t("supply.noDispensing")));
    return;
  }
  const width = Math.min(target.clientWidth || 900, 1100);
  chart = new uPlot(
    {
      width,
      height: 260,
      series: [
        {},
        { label: t("supply.series.dispensed"), stroke: "#1e7d32", width: 2, points: { show: true } },
        { label: t("supply.series.expected"), stroke: "#12355b", width: 2, dash: [6, 4] },
        { label: t("supply.series.low"), stroke: "#7a9cc6", width: 1 },
        { label: t("supply.series.high"), stroke: "#7a9cc6", width: 1 },
      ],
      bands: [{ series: [4, 3], fill: "rgba(18, 53, 91, 0.15)" }],
      axes: [{}, { label: t("supply.units") }],
    },
    outlookData(outlook),
    target,
  );
  target.append(h("p", {}, t("supply.outlookNote", { method: outlook.method })));
}

export interface ChainStock {
  manufacturer: number;
  inTransit: number;
  distributor: number;
  pharmacy: number;
  dispensed: number;
}

/** The part of GET /v1/supply/products/{id}/stock the chain table shows (units of batches not recalled). */
export interface StockAnswer {
  byRole: Partial<Record<"manufacturer" | "distributor" | "pharmacy", number>>;
  inTransit: number;
  dispensed: number;
}

/** A stock answer's stages along the chain: held by holder role, in transit, dispensed. */
export function chainStockOf(answer: StockAnswer): ChainStock {
  return {
    manufacturer: answer.byRole.manufacturer ?? 0,
    inTransit: answer.inTransit,
    distributor: answer.byRole.distributor ?? 0,
    pharmacy: answer.byRole.pharmacy ?? 0,
    dispensed: answer.dispensed,
  };
}

export const CHAIN_STAGES = ["manufacturer", "inTransit", "distributor", "pharmacy", "dispensed"] as const;

/** A product's stock along the chain, one row a product, units at each stage. */
export function chainTable(rows: { product: ProductCover; stock: ChainStock }[]): HTMLElement {
  if (rows.length === 0) return h("p", {}, t("supply.none"));
  return h(
    "table",
    { class: "chain-table" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, t("maker.product")),
        ...CHAIN_STAGES.map((s) => h("th", { scope: "col" }, t(`stage.${s}`))),
      ),
    ),
    h(
      "tbody",
      {},
      ...rows.map(({ product, stock }) =>
        h(
          "tr",
          { "data-product": String(product.productId) },
          h("th", { scope: "row" }, `${product.name} (${product.productCode})`),
          ...CHAIN_STAGES.map((s) => h("td", { "data-stage": s }, String(stock[s]))),
        ),
      ),
    ),
  );
}
