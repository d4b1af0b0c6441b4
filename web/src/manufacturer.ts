/**
 * The manufacturer: its batches with counts of units by status (GET /v1/batches, then each batch's dashboard),
 * commissioning from a CSV with a progress bar that follows the job (GET /v1/jobs/{id}), recalling a batch, and a
 * label sheet of the codes just uploaded; its products' stock along the chain and where shortages are building.
 */
import { api, type Problem } from "./api";
import { byId, h } from "./dom";
import { label, t } from "./i18n";
import { drawLabels } from "./labels";
import { onLanguage, showError, startPage } from "./shell";
import {
  chainStockOf,
  type StockAnswer,
  chainTable,
  type ChainStock,
  type Overview,
  type ProductCover,
  shortageList,
} from "./supply-view";

interface BatchRow {
  id: number;
  lot: string;
  expiry: string;
  recalled: boolean;
}
interface BatchDashboard {
  product: { name?: string; productCode?: string } | null;
  units: number;
  byStatus: Record<string, number>;
  counters: Record<string, number>;
}
interface Job {
  jobId: string;
  status: "running" | "done" | "failed";
  codes: { total: number; indexed: number };
}

const STATUSES = ["active", "in_transit", "dispensed", "partially_dispensed", "recalled", "expired"] as const;
const POLL_MS = 400;

let batches: (BatchRow & { dashboard: BatchDashboard })[] = [];
let job: Job | null = null;
let uploaded: string[] = [];
let overview: Overview | null = null;
let chain: { product: ProductCover; stock: ChainStock }[] = [];

async function load(): Promise<void> {
  const list = await api<{ batches: BatchRow[] }>("/v1/batches");
  batches = await Promise.all(
    list.batches.map(async (b) => ({ ...b, dashboard: await api<BatchDashboard>(`/v1/batches/${b.id}`) })),
  );
  render();
}

function recall(id: number): void {
  const reason = byId<HTMLInputElement>("recall-reason").value.trim() || "recall";
  const out = byId("batch-result");
  api(`/v1/batches/${id}/recall`, { body: { reason } }).then(
    () => {
      out.className = "ok";
      out.textContent = t("maker.recallDone", { id });
      return load();
    },
    (err: unknown) => showError(out, err),
  );
}

function renderBatches(): void {
  const area = byId("batches");
  if (batches.length === 0) return area.replaceChildren(h("p", {}, t("maker.none")));
  const head = [
    t("maker.batch"),
    t("maker.product"),
    t("maker.lot"),
    t("maker.expiry"),
    t("maker.units"),
    ...STATUSES.map((s) => label("status", s)),
    t("maker.settled"),
    t("maker.recalled"),
    "",
  ];
  const rows = batches.map((b) => {
    const button = h(
      "button",
      { type: "button", "aria-label": t("maker.recallBatch", { id: b.id }) },
      t("maker.recall"),
    );
    button.disabled = b.recalled;
    button.addEventListener("click", () => recall(b.id));
    return h(
      "tr",
      { "data-batch": String(b.id) },
      h("td", {}, String(b.id)),
      h("td", {}, b.dashboard.product?.name ?? t("detail.none")),
      h("td", {}, b.lot),
      h("td", {}, b.expiry),
      h("td", { "data-count": "units" }, String(b.dashboard.units)),
      ...STATUSES.map((s) => h("td", { "data-count": s }, String(b.dashboard.byStatus[s] ?? 0))),
      h("td", {}, String(b.dashboard.counters.unitsSettled ?? 0)),
      h("td", { "data-recalled": String(b.recalled) }, t(b.recalled ? "maker.yes" : "maker.no")),
      h("td", {}, button),
    );
  });
  area.replaceChildren(
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, ...head.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, ...rows),
    ),
  );
  const select = byId<HTMLSelectElement>("commission-batch");
  const chosen = select.value;
  select.replaceChildren(
    ...batches.filter((b) => !b.recalled).map((b) => h("option", { value: String(b.id) }, `${b.id} · ${b.lot}`)),
  );
  if (chosen) select.value = chosen;
}

function renderJob(): void {
  const progress = byId<HTMLProgressElement>("progress");
  if (!job) return;
  progress.max = Math.max(job.codes.total, 1);
  progress.value = job.codes.indexed;
  byId("job").textContent = t("maker.jobState", {
    id: job.jobId,
    status: label("job", job.status),
    done: job.codes.indexed,
    total: job.codes.total,
  });
  byId("job").dataset.status = job.status;
}

/** A product's stock along the chain, from the stock route. */
async function stockOf(product: ProductCover): Promise<ChainStock> {
  return chainStockOf(await api<StockAnswer>(`/v1/supply/products/${product.productId}/stock`));
}

/** The manufacturer's products (the overview lists its own only): where shortages build, and stock by stage. */
async function loadSupply(): Promise<void> {
  overview = await api<Overview>("/v1/supply/overview");
  renderSupply();
  chain = await Promise.all(overview.products.map(async (product) => ({ product, stock: await stockOf(product) })));
  renderSupply();
}

function renderSupply(): void {
  if (!overview) return;
  byId("shortages").replaceChildren(shortageList(overview));
  if (chain.length > 0 || overview.products.length === 0) byId("chain").replaceChildren(chainTable(chain));
}

function render(): void {
  renderBatches();
  renderJob();
  renderSupply();
}

async function follow(jobId: string): Promise<void> {
  for (;;) {
    job = await api<Job>(`/v1/jobs/${encodeURIComponent(jobId)}`);
    renderJob();
    if (job.status !== "running") break;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  await load();
}

/** The codes of a `code,level` CSV (a header line is skipped), for the label sheet. */
const codesOf = (csv: string): string[] =>
  csv
    .split(/\r?\n/)
    .map((line) => line.split(",")[0]!.trim())
    .filter((code) => code && code !== "code");

byId<HTMLFormElement>("commission-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const file = byId<HTMLInputElement>("csv").files?.[0];
  const batchId = byId<HTMLSelectElement>("commission-batch").value;
  if (!file || !batchId) return;
  const out = byId("job");
  void file.text().then((csv) =>
    api<Job>(`/v1/batches/${batchId}/commissions`, { raw: { type: "text/csv", data: csv } }).then(
      (started) => {
        uploaded = codesOf(csv);
        byId<HTMLButtonElement>("labels").disabled = false;
        job = started;
        renderJob();
        return follow(started.jobId);
      },
      (err: unknown) => {
        showError(out, err);
        const lines = (err as { problem?: Problem }).problem?.errors as { line: number; detail?: string }[] | undefined;
        if (lines)
          out.append(h("ul", {}, ...lines.slice(0, 20).map((l) => h("li", {}, `${l.line}: ${l.detail ?? ""}`))));
      },
    ),
  );
});

byId("labels").addEventListener("click", () => {
  byId("sheet").hidden = false;
  void drawLabels(byId("label-grid"), uploaded);
});
byId("print").addEventListener("click", () => window.print());

void startPage({ needsKey: true }).then(() => {
  onLanguage(render);
  return Promise.all([
    load().catch((err: unknown) => showError(byId("batches"), err)),
    loadSupply().catch((err: unknown) => showError(byId("chain"), err)),
  ]);
});
