/**
 * The pharmacy counter: a scan field for keyboard-wedge scanners (Enter ends a code; GS arrives as the control
 * character, or as Ctrl+] from scanners that send it as a key chord), paste, or the camera; the verdict; the last
 * scans; dispensing whole or split packs and undoing it.
 */
import { api, codePath } from "./api";
import { startCameraScan, type CameraScan } from "./camera";
import { byId, h } from "./dom";
import { t } from "./i18n";
import { scanView, type ScanResult } from "./scan-view";
import { onLanguage, showError, startPage } from "./shell";

const GS = "\u001d";
const HISTORY = 10;

const input = byId<HTMLInputElement>("code");
const result = byId("result");
const history: ScanResult[] = [];
let current: ScanResult | null = null;
let failure: unknown = null;
let camera: CameraScan | null = null;

function render(): void {
  if (failure) showError(result, failure);
  else if (current) {
    result.className = "";
    result.replaceChildren(...scanView(current));
  }
  byId("dispense").hidden = !current?.known || current.level !== "unit";
  byId("history").replaceChildren(
    ...history.map((r) =>
      h(
        "li",
        {},
        h("span", { class: r.verdict === "OK" ? "ok" : "refused" }, t(`verdict.${r.verdict}`)),
        " ",
        h("code", {}, r.code),
      ),
    ),
  );
  byId("camera").textContent = t(camera ? "scan.cameraStop" : "scan.camera");
}

async function scan(raw: string): Promise<void> {
  if (!raw.trim()) return;
  try {
    current = await api<ScanResult>(codePath(raw));
    failure = null;
    history.unshift(current);
    history.length = Math.min(history.length, HISTORY);
  } catch (err) {
    failure = err;
    current = null;
  }
  byId("dispense-result").textContent = "";
  render();
}

// Ctrl+] is how a US-layout keyboard types GS (0x1D); some wedge scanners send it that way.
input.addEventListener("keydown", (event) => {
  if (event.ctrlKey && (event.key === "]" || event.code === "BracketRight")) {
    event.preventDefault();
    input.setRangeText(GS, input.selectionStart ?? input.value.length, input.selectionEnd ?? input.value.length, "end");
  }
});

byId<HTMLFormElement>("scan-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const raw = input.value;
  input.value = "";
  void scan(raw).then(() => input.focus());
});

byId("camera").addEventListener("click", () => {
  const status = byId("camera-status");
  if (camera) {
    camera.stop();
    camera = null;
    status.textContent = "";
    return render();
  }
  status.textContent = t("scan.cameraStarting");
  startCameraScan(byId<HTMLVideoElement>("video"), (raw) => {
    camera = null;
    status.textContent = "";
    void scan(raw);
  }).then(
    (started) => {
      camera = started;
      status.textContent = t("scan.cameraReady");
      render();
    },
    (err: unknown) => {
      status.textContent = t("scan.cameraFailed", { detail: err instanceof Error ? err.message : String(err) });
    },
  );
});

async function write(path: string, body: unknown, done: "dispense.done" | "dispense.undone"): Promise<void> {
  const out = byId("dispense-result");
  try {
    // A 202 (not mined or indexed within the API's wait) says "pending"; the next scan shows where it stands.
    const answer = await api<{ status?: string }>(path, { body });
    if (current) await scan(current.code);
    out.className = "ok";
    out.textContent = t(answer.status === "pending" ? "dispense.pending" : done);
  } catch (err) {
    showError(out, err);
  }
}

function quantity(): number | null {
  const q = byId<HTMLInputElement>("quantity").valueAsNumber;
  return Number.isInteger(q) && q > 0 ? q : null;
}

byId("dispense-submit").addEventListener("click", () => {
  if (!current) return;
  const q = quantity();
  void (q
    ? write("/v1/dispense/partial", { code: current.code, quantity: q }, "dispense.done")
    : write("/v1/dispense", { codes: [current.code] }, "dispense.done"));
});

byId("undo").addEventListener("click", () => {
  if (!current) return;
  const q = quantity();
  void (q
    ? write("/v1/dispense/undo-partial", { code: current.code, quantity: q }, "dispense.undone")
    : write("/v1/dispense/undo", { codes: [current.code] }, "dispense.undone"));
});

void startPage({ needsKey: true }).then(() => onLanguage(render));
