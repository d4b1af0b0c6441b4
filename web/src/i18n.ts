/**
 * Language: the chosen one (English or Chinese, remembered in localStorage), `t()` for strings built in code, and
 * `translate()` for markup that names its strings with data-i18n (text), data-i18n-label (aria-label) and
 * data-i18n-placeholder.
 */
import { en, zh, type MessageKey } from "./messages";

export type Lang = "en" | "zh";
const catalogues: Record<Lang, Record<MessageKey, string>> = { en, zh };
const STORAGE = "dt.lang";

export function currentLang(): Lang {
  const saved = localStorage.getItem(STORAGE);
  if (saved === "en" || saved === "zh") return saved;
  return navigator.language.toLowerCase().startsWith("zh") ? "zh" : "en";
}

export function setLang(lang: Lang): void {
  localStorage.setItem(STORAGE, lang);
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
}

export function hasMessage(key: string): key is MessageKey {
  return key in en;
}

export function t(key: MessageKey, vars: Record<string, string | number> = {}): string {
  return catalogues[currentLang()][key].replace(/\{(\w+)\}/g, (_, name: string) => String(vars[name] ?? ""));
}

export function translate(root: ParentNode = document): void {
  for (const el of root.querySelectorAll<HTMLElement>("[data-i18n]")) el.textContent = t(el.dataset.i18n as MessageKey);
  for (const el of root.querySelectorAll<HTMLElement>("[data-i18n-label]"))
    el.setAttribute("aria-label", t(el.dataset.i18nLabel as MessageKey));
  for (const el of root.querySelectorAll<HTMLElement>("[data-i18n-placeholder]"))
    el.setAttribute("placeholder", t(el.dataset.i18nPlaceholder as MessageKey));
  document.title = `${t((document.body.dataset.title ?? "app.title") as MessageKey)} · ${t("app.title")}`;
}

/** A scan's alert or hint in words; a code the catalogue does not know yet is shown as it is. */
export function reasonText(code: string): string {
  const length = /^LENGTH_(\d+)_EXPECTED_20$/.exec(code);
  if (length) return t("hint.LENGTH", { n: length[1]! });
  for (const key of [`alert.${code}`, `hint.${code}`]) if (hasMessage(key)) return t(key);
  return code;
}

/** A message whose key is built from data (a status, a reason); unknown values are shown as they are. */
export function label(prefix: string, value: string): string {
  const key = `${prefix}.${value}`;
  return hasMessage(key) ? t(key) : value;
}
