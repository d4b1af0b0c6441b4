/** Sign in: the organisation's API key, checked against the API, then kept in sessionStorage only. */
import { api, ApiProblem, saveKey } from "./api";
import { byId } from "./dom";
import { t } from "./i18n";
import { startPage } from "./shell";

void startPage({ needsKey: false });

byId<HTMLFormElement>("signin").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = byId<HTMLInputElement>("key").value.trim();
  const result = byId("signin-result");
  api("/v1/network", { key })
    .then(() => {
      saveKey(key);
      location.reload();
    })
    .catch((err: unknown) => {
      result.className = "error";
      result.textContent = t("signin.refused", { detail: err instanceof ApiProblem ? err.message : String(err) });
    });
});
