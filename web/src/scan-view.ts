/** How a scan answer reads at the counter: the verdict, its reasons in words, the pack's details, its custody. */
import { h, when } from "./dom";
import { label, reasonText, t } from "./i18n";

interface Org {
  id: number;
  name: string;
}

export interface ScanResult {
  code: string;
  verdict: "OK" | "ALERT" | "UNKNOWN";
  status: string;
  known: boolean;
  alerts: string[];
  hints: string[];
  level: "unit" | "case" | "pallet" | null;
  product: { name: string; productCode: string; packQuantity: number } | null;
  batch: { id: number; lot: string; expiry: string; recalled: boolean } | null;
  manufacturer: Org | null;
  holder: Org | null;
  custody: { event: string; at: string; from?: Org | null; to?: Org | null; reason?: string }[] | null;
  commissioned?: { at: string } | null;
  dispensing: { at: string; pharmacy: Org | null; split: { dispensed: number; packQuantity: number } | null } | null;
  settlement: { at: string; insurer: Org | null } | null;
}

const none = (): string => t("detail.none");

function timeline(r: ScanResult): HTMLElement {
  const steps: { at: string; text: string }[] = [];
  for (const step of r.custody ?? []) {
    const who = [step.from?.name, step.to?.name].filter(Boolean).join(" → ");
    steps.push({ at: step.at, text: `${label("event", step.event)}${who ? ` ${who}` : ""}` });
  }
  if (r.dispensing)
    steps.push({ at: r.dispensing.at, text: t("timeline.dispensed", { org: r.dispensing.pharmacy?.name ?? none() }) });
  if (r.settlement)
    steps.push({ at: r.settlement.at, text: t("timeline.settled", { org: r.settlement.insurer?.name ?? none() }) });
  steps.sort((a, b) => a.at.localeCompare(b.at));
  return h(
    "ol",
    { class: "timeline" },
    ...steps.map((s) => h("li", {}, h("time", { datetime: s.at }, when(s.at)), " ", s.text)),
  );
}

export function scanView(r: ScanResult): HTMLElement[] {
  const reasons = [...r.alerts, ...(r.verdict === "UNKNOWN" ? ["UNKNOWN"] : []), ...r.hints];
  const detail = (key: Parameters<typeof t>[0], value: string): HTMLElement[] => [
    h("dt", {}, t(key)),
    h("dd", {}, value),
  ];
  const parts: (HTMLElement | null)[] = [
    h("div", { class: `verdict ${r.verdict}`, id: "verdict", "data-verdict": r.verdict }, t(`verdict.${r.verdict}`)),
    h("p", {}, h("code", {}, r.code)),
    reasons.length
      ? h(
          "div",
          {},
          h("h2", {}, t("detail.reasons")),
          h(
            "ul",
            { class: "reasons", id: "reasons" },
            ...reasons.map((c) => h("li", { "data-reason": c }, reasonText(c))),
          ),
        )
      : null,
    h(
      "dl",
      { class: "details" },
      ...detail("detail.product", r.product ? `${r.product.name} (${r.product.productCode})` : none()),
      ...detail("detail.batch", r.batch?.lot ?? none()),
      ...detail("detail.expiry", r.batch?.expiry ?? none()),
      ...detail("detail.status", label("status", r.status)),
      ...detail("detail.holder", r.holder?.name ?? none()),
    ),
    r.known ? h("div", {}, h("h2", {}, t("detail.timeline")), timeline(r)) : null,
  ];
  return parts.filter((e): e is HTMLElement => e !== null);
}
