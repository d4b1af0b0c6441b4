/**
 * What every page shares: the header (page links, language switch, who is signed in, sign out), the signed-in
 * organisation, and re-rendering when the language changes.
 */
import { api, ApiProblem, forgetKey, savedKey } from "./api";
import { byId, h } from "./dom";
import { currentLang, setLang, t, translate, type Lang } from "./i18n";
import type { MessageKey } from "./messages";
import "./style.css";

export interface Me {
  id: number;
  name: string;
  role: string;
  region: string;
}

const PAGES: [string, MessageKey][] = [
  ["/", "nav.home"],
  ["/counter", "nav.counter"],
  ["/insurer", "nav.insurer"],
  ["/manufacturer", "nav.manufacturer"],
  ["/regulator", "nav.regulator"],
];

let me: Me | null = null;
const renderers: (() => void)[] = [];

/** Called again whenever the language changes, after the static strings are translated. */
export function onLanguage(render: () => void): void {
  renderers.push(render);
  render();
}

function rerender(): void {
  translate();
  whoami();
  for (const render of renderers) render();
}

function whoami(): void {
  byId("whoami").textContent = me
    ? t("signin.as", { name: me.name, role: me.role })
    : t(savedKey() ? "signin.noRecord" : "signin.none");
}

export function showError(target: HTMLElement, err: unknown): void {
  const detail = err instanceof ApiProblem ? err.message : String(err);
  target.textContent = t("error.generic", { detail });
  target.className = "error";
}

function header(): void {
  const lang = h(
    "select",
    { id: "lang", "data-i18n-label": "lang.label" },
    h("option", { value: "en" }, "English"),
    h("option", { value: "zh" }, "中文"),
  );
  lang.value = currentLang();
  lang.addEventListener("change", () => {
    setLang(lang.value as Lang);
    rerender();
  });
  const signout = h("button", { id: "signout", type: "button", "data-i18n": "signin.signout" });
  signout.addEventListener("click", () => {
    forgetKey();
    location.href = "/";
  });
  const here = location.pathname;
  const links = PAGES.map(([href, key]) =>
    h("a", { href, "data-i18n": key, ...(href === here ? { "aria-current": "page" } : {}) }),
  );
  byId("bar").replaceChildren(
    h("strong", { "data-i18n": "app.title" }),
    h("nav", { "data-i18n-label": "nav.label" }, ...links),
    h("span", { id: "whoami", role: "status" }),
    lang,
    signout,
  );
}

/** Sets up the page; on pages that need a key, sends a visitor without one to sign in. */
export async function startPage(options: { needsKey: boolean }): Promise<Me | null> {
  setLang(currentLang());
  header();
  translate();
  if (!savedKey()) {
    if (options.needsKey) location.href = "/";
    whoami();
    return null;
  }
  try {
    me = (await api<{ participant: Me }>("/v1/participants/me")).participant;
  } catch {
    me = null; // the regulator has no participant record; the page still works with its key
  }
  rerender();
  return me;
}
