/**
 * The insurer: a claim's codes scanned or pasted, each line's verdict and the decision (POST /v1/claims/check),
 * settlement with one click (POST /v1/claims/settle), a refused duplicate with the earlier claim and the pattern
 * it matches, and the day's settlements from the insurer's recent activity.
 */
import { api, ApiProblem } from "./api";
import { startCameraScan } from "./camera";
import { byId, h, when } from "./dom";
import { label, t } from "./i18n";
import { onLanguage, showError, startPage } from "./shell";

interface OrgRef {
  id: number;
  name: string;
}
interface LineReason {
  reason: string;
  detail: string;
  pattern?: {
    pattern: string;
    earlier: { event: string; at: string; pharmacy: OrgRef | null; insurer?: OrgRef | null; claimRef?: string };
  };
}
interface ClaimCheck {
  decision: "APPROVE" | "REJECT";
  claimRef: string;
  lines: { line: number; code: string; ok: boolean; reasons: LineReason[] }[];
}
interface Activity {
  event: string;
  time: number;
  claimId?: string;
  units?: number;
}

const resultArea = byId("claim-result");
const settleButton = byId<HTMLButtonElement>("settle");
let check: ClaimCheck | null = null;
let today: Activity[] = [];

function form(): { claimRef: string; pharmacy: string | number; codes: string[] } {
  const pharmacy = byId<HTMLInputElement>("claim-pharmacy").value.trim();
  return {
    claimRef: byId<HTMLInputElement>("claim-ref").value.trim(),
    pharmacy: /^\d+$/.test(pharmacy) ? Number(pharmacy) : pharmacy,
    // A wedge scanner ends each code with Enter: one code a line.
    codes: byId<HTMLTextAreaElement>("claim-codes")
      .value.split(/\r?\n/)
      .map((c) => c.trim())
      .filter(Boolean),
  };
}

function reasonItem(r: LineReason): HTMLElement {
  const words = label("claimReason", r.reason);
  const earlier = r.pattern?.earlier;
  return h(
    "li",
    { "data-reason": r.reason },
    words === r.reason ? r.detail : words,
    r.pattern
      ? h("div", { class: "pattern" }, t("insurer.pattern", { pattern: label("pattern", r.pattern.pattern) }))
      : null,
    earlier
      ? h(
          "div",
          { class: "earlier" },
          t("insurer.earlier", {
            event: label("earlier", earlier.event),
            org: (earlier.event === "settled" ? earlier.insurer?.name : earlier.pharmacy?.name) ?? t("detail.none"),
            at: when(earlier.at),
            claim: earlier.claimRef ? t("insurer.earlierClaim", { claimRef: earlier.claimRef }) : "",
          }),
        )
      : null,
  );
}

function renderCheck(): void {
  if (!check) return;
  const head = ["insurer.line", "insurer.code", "insurer.verdict", "insurer.reasons"] as const;
  resultArea.replaceChildren(
    h("h2", {}, t("insurer.decision")),
    h(
      "div",
      {
        class: `verdict ${check.decision === "APPROVE" ? "OK" : "ALERT"}`,
        id: "decision",
        "data-decision": check.decision,
      },
      t(`insurer.decision.${check.decision}`),
    ),
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, ...head.map((k) => h("th", { scope: "col" }, t(k))))),
      h(
        "tbody",
        {},
        ...check.lines.map((l) =>
          h(
            "tr",
            { "data-ok": String(l.ok) },
            h("td", {}, String(l.line + 1)), // the API counts lines from 0
            h("td", {}, h("code", {}, l.code)),
            h("td", { class: l.ok ? "ok" : "refused" }, t(l.ok ? "insurer.lineOk" : "insurer.lineRefused")),
            h("td", {}, h("ul", {}, ...l.reasons.map(reasonItem))),
          ),
        ),
      ),
    ),
  );
}

function renderToday(): void {
  const list = byId("today");
  if (today.length === 0) return list.replaceChildren(h("li", {}, t("insurer.noneToday")));
  list.replaceChildren(
    ...today.map((a) =>
      h(
        "li",
        {},
        h("time", {}, when(new Date(a.time * 1000).toISOString())),
        " ",
        t("insurer.units", { units: a.units ?? 1, claim: (a.claimId ?? "").slice(0, 10) }),
      ),
    ),
  );
}

async function loadToday(): Promise<void> {
  const start = new Date();
  start.setHours(0, 0, 0, 0);
  const { recent } = await api<{ recent: Activity[] }>("/v1/participants/me");
  today = recent.filter((a) => /Settled$/.test(a.event) && a.time * 1000 >= start.getTime());
  renderToday();
}

function render(): void {
  renderCheck();
  renderToday();
}

byId<HTMLFormElement>("claim-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const { claimRef, pharmacy, codes } = form();
  byId("settle-result").textContent = "";
  api<ClaimCheck>("/v1/claims/check", { body: { claimRef, pharmacy, lines: codes.map((code) => ({ code })) } }).then(
    (answer) => {
      check = answer;
      settleButton.disabled = answer.decision !== "APPROVE";
      renderCheck();
    },
    (err: unknown) => showError(resultArea, err),
  );
});

settleButton.addEventListener("click", () => {
  const { claimRef, pharmacy } = form();
  const out = byId("settle-result");
  settleButton.disabled = true;
  api("/v1/claims/settle", { body: { claimRef, pharmacy } }).then(
    () => {
      out.className = "ok";
      out.textContent = t("insurer.settled", { claimRef });
      void loadToday();
    },
    (err: unknown) => {
      // A claim the check refuses comes back with its check: show its lines as the check would.
      const refused = err instanceof ApiProblem ? (err.problem.check as ClaimCheck | undefined) : undefined;
      if (refused) {
        check = refused;
        renderCheck();
      }
      showError(out, err);
    },
  );
});

// Each camera read adds a line, as a wedge scanner's Enter would.
byId("camera").addEventListener("click", () => {
  const status = byId("camera-status");
  const codes = byId<HTMLTextAreaElement>("claim-codes");
  status.textContent = t("scan.cameraStarting");
  startCameraScan(byId<HTMLVideoElement>("video"), (raw) => {
    codes.value = `${codes.value.replace(/\n*$/, "")}${codes.value.trim() ? "\n" : ""}${raw}\n`;
    status.textContent = "";
  }).then(
    () => void (status.textContent = t("scan.cameraReady")),
    (err: unknown) =>
      void (status.textContent = t("scan.cameraFailed", { detail: err instanceof Error ? err.message : String(err) })),
  );
});

void startPage({ needsKey: true }).then(() => {
  onLanguage(render);
  return loadToday().catch((err: unknown) => showError(byId("today"), err));
});
