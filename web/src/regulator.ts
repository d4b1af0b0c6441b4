/**
 * The regulator: the alerts queue and its workflow (new → investigating → closed with a reason), participants
 * with suspend and reinstate, the network's activity over time and totals, and supply: days of cover per product
 * and region, a product's dispensing with its forecast band, and the supply alerts (shortages and flow signals).
 */
// The close reasons are the service's own list: the page offers exactly what the API accepts.
import { CLOSE_REASONS } from "../../backend/alerts/model";
import { api } from "./api";
import { drawActivity, kindOf, type TimedEvent } from "./activity-chart";
import { byId, h, when } from "./dom";
import { label, t } from "./i18n";
import { onLanguage, showError, startPage } from "./shell";
import { coverTable, drawOutlook, type Outlook, type Overview } from "./supply-view";

interface Alert {
  id: string;
  status: "new" | "investigating" | "closed";
  reason: string;
  source: string;
  code: { raw: string };
  snapshot: Record<string, unknown> | null;
  lastSeen: string;
  firstSeen: string;
  count: number;
  closeReason: string | null;
}
interface Participant {
  id: number;
  name: string;
  role: string;
  region: string;
  suspended: boolean;
}

let alerts: Alert[] = [];
let participants: Participant[] = [];
let totals: Record<string, number | string> = {};
let events: TimedEvent[] = [];
let supplyAlerts: Alert[] = [];
let overview: Overview | null = null;
let outlook: Outlook | null = null;

const filter = byId<HTMLSelectElement>("alert-filter");

async function loadAlerts(): Promise<void> {
  const list = async (query: string) => (await api<{ alerts: Alert[] }>(`/v1/alerts?${query}`)).alerts;
  [alerts, supplyAlerts] = await Promise.all([
    list(`status=${filter.value}&limit=50`),
    list(`source=supply&status=${filter.value}&limit=50`),
  ]);
  renderAlerts();
}

const outlookProduct = byId<HTMLSelectElement>("outlook-product");

async function loadSupply(): Promise<void> {
  overview = await api<Overview>("/v1/supply/overview");
  const chosen = outlookProduct.value;
  outlookProduct.replaceChildren(
    ...overview.products.map((p) => h("option", { value: String(p.productId) }, `${p.name} (${p.productCode})`)),
  );
  if (chosen && overview.products.some((p) => String(p.productId) === chosen)) outlookProduct.value = chosen;
  renderSupply();
  await loadOutlook();
}

async function loadOutlook(): Promise<void> {
  if (!outlookProduct.value) return;
  outlook = await api<Outlook>(`/v1/supply/products/${outlookProduct.value}/outlook?days=60`);
  drawOutlook(byId("outlook-chart"), outlook);
}

function renderSupply(): void {
  if (overview) byId("cover").replaceChildren(coverTable(overview));
  if (outlook) drawOutlook(byId("outlook-chart"), outlook);
}

async function loadNetwork(): Promise<void> {
  const [list, network, recentAlerts] = await Promise.all([
    api<{ participants: Participant[] }>("/v1/participants"),
    api<{ totals: Record<string, number | string> }>("/v1/network"),
    api<{ alerts: Alert[] }>("/v1/alerts?limit=200"),
  ]);
  participants = list.participants;
  totals = network.totals;
  const seen = new Set<string>();
  events = recentAlerts.alerts.map((a) => ({ kind: "alerts" as const, time: Date.parse(a.firstSeen) / 1000 }));
  const dashboards = await Promise.all(
    participants.map((p) => api<{ recent: { event: string; time: number; tx: string }[] }>(`/v1/participants/${p.id}`)),
  );
  for (const { recent } of dashboards)
    for (const a of recent) {
      const kind = kindOf(a.event);
      const key = `${a.tx}:${a.event}`;
      if (kind && !seen.has(key)) {
        seen.add(key);
        events.push({ kind, time: a.time });
      }
    }
  renderParticipants();
  renderNetwork();
}

function move(alert: Alert, to: "investigating" | "closed", reason?: string): void {
  const out = byId("alert-result");
  api(`/v1/alerts/${encodeURIComponent(alert.id)}/transitions`, { body: { to, ...(reason ? { reason } : {}) } }).then(
    () => {
      out.className = "ok";
      out.textContent =
        to === "closed"
          ? t("reg.closed", { id: alert.id })
          : t("reg.moved", { id: alert.id, status: label("alertStatus", to) });
      return loadAlerts();
    },
    (err: unknown) => showError(out, err),
  );
}

function alertActions(a: Alert): HTMLElement {
  const cell = h("td", {});
  if (a.status === "new") {
    const investigate = h(
      "button",
      { type: "button", "aria-label": t("reg.investigateAlert", { id: a.id }) },
      t("reg.investigate"),
    );
    investigate.addEventListener("click", () => move(a, "investigating"));
    cell.append(investigate);
  }
  if (a.status !== "closed") {
    const reason = h(
      "select",
      { "aria-label": t("reg.closeReason", { id: a.id }) },
      ...CLOSE_REASONS.map((r) => h("option", { value: r }, label("closeReason", r))),
    );
    const close = h("button", { type: "button", "aria-label": t("reg.closeAlert", { id: a.id }) }, t("reg.close"));
    close.addEventListener("click", () => move(a, "closed", reason.value));
    cell.append(reason, close);
  } else if (a.closeReason) cell.append(label("closeReason", a.closeReason));
  return cell;
}

/** A supply alert's figures in brief: its snapshot's plain values (the full snapshot is in GET /v1/alerts/{id}). */
function figures(a: Alert): string {
  return Object.entries(a.snapshot ?? {})
    .filter(([, v]) => typeof v === "number" || typeof v === "string")
    .map(([k, v]) => `${k} ${String(v)}`)
    .join(" · ");
}

/** An alert queue; the supply queue also shows the figures that raised each alert. */
function alertTable(list: Alert[], withFigures: boolean): HTMLElement {
  if (list.length === 0) return h("p", {}, t("reg.noAlerts"));
  const head = ["reg.status", "reg.reason", "reg.code", "reg.seen", "reg.count", "reg.actions"] as const;
  return h(
    "table",
    {},
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ...head.map((k) => h("th", { scope: "col" }, t(k))),
        withFigures ? h("th", { scope: "col" }, t("supply.figures")) : null,
      ),
    ),
    h(
      "tbody",
      {},
      ...list.map((a) =>
        h(
          "tr",
          { "data-alert": a.id, "data-status": a.status, "data-reason": a.reason },
          h("td", {}, label("alertStatus", a.status)),
          h("td", {}, label("alert", a.reason)),
          h("td", {}, h("code", {}, a.code.raw)),
          h("td", {}, when(a.lastSeen)),
          h("td", {}, String(a.count)),
          alertActions(a),
          withFigures ? h("td", { class: "figures" }, figures(a)) : null,
        ),
      ),
    ),
  );
}

function renderAlerts(): void {
  byId("alerts").replaceChildren(alertTable(alerts, false));
  byId("supply-alerts").replaceChildren(alertTable(supplyAlerts, true));
}

function setSuspended(p: Participant, suspend: boolean): void {
  const out = byId("participant-result");
  const reason = byId<HTMLInputElement>("suspend-reason").value.trim() || "regulator decision";
  api(
    `/v1/participants/${p.id}/${suspend ? "suspend" : "reinstate"}`,
    suspend ? { body: { reason } } : { method: "POST" },
  ).then(
    () => loadNetwork(),
    (err: unknown) => showError(out, err),
  );
}

function renderParticipants(): void {
  const head = ["reg.name", "reg.role", "reg.region", "reg.suspended", "reg.actions"] as const;
  const rows = participants.map((p) => {
    const button = h(
      "button",
      { type: "button", "aria-label": t(p.suspended ? "reg.reinstateOrg" : "reg.suspendOrg", { name: p.name }) },
      t(p.suspended ? "reg.reinstate" : "reg.suspend"),
    );
    button.addEventListener("click", () => setSuspended(p, !p.suspended));
    return h(
      "tr",
      { "data-participant": String(p.id), "data-suspended": String(p.suspended) },
      h("td", {}, p.name),
      h("td", {}, p.role),
      h("td", {}, p.region),
      h("td", {}, t(p.suspended ? "maker.yes" : "maker.no")),
      h("td", {}, button),
    );
  });
  byId("participants").replaceChildren(
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, ...head.map((k) => h("th", { scope: "col" }, t(k))))),
      h("tbody", {}, ...rows),
    ),
  );
}

function renderNetwork(): void {
  byId("totals").replaceChildren(
    ...Object.entries(totals).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))]),
  );
  drawActivity(byId("chart"), events);
}

function render(): void {
  renderAlerts();
  renderParticipants();
  renderNetwork();
  renderSupply();
}

filter.addEventListener("change", () => void loadAlerts().catch((err: unknown) => showError(byId("alerts"), err)));

outlookProduct.addEventListener(
  "change",
  () => void loadOutlook().catch((err: unknown) => showError(byId("outlook-chart"), err)),
);

void startPage({ needsKey: true }).then(() => {
  onLanguage(render);
  return Promise.all([
    loadAlerts().catch((err: unknown) => showError(byId("alerts"), err)),
    loadNetwork().catch((err: unknown) => showError(byId("participants"), err)),
    loadSupply().catch((err: unknown) => showError(byId("cover"), err)),
  ]);
});
