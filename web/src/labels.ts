/**
 * A printable label sheet: each code as a DataMatrix and a Code 128 drawn by bwip-js, so that the counter page
 * can be tried with a real scanner or a phone. bwip-js is large: it is loaded only when a sheet is drawn.
 */
import { h } from "./dom";

const GS = String.fromCharCode(0x1d);

/** A GS1 element string (01…21…) as bwip-js's bracketed AI syntax, for a GS1 DataMatrix. */
function gs1Brackets(code: string): string | null {
  const m = /^01(\d{14})21([^\u001d]{1,20})(?:\u001d(.*))?$/.exec(code); // eslint-disable-line no-control-regex
  if (!m) return null;
  return `(01)${m[1]}(21)${m[2]}` + (m[3] ? m[3].replace(/^(\d{2})/, "($1)") : "");
}

export async function drawLabels(grid: HTMLElement, codes: string[]): Promise<void> {
  const bwip = await import("bwip-js/browser");
  grid.replaceChildren();
  for (const code of codes) {
    const matrix = document.createElement("canvas");
    const linear = document.createElement("canvas");
    const gs1 = gs1Brackets(code);
    if (gs1) bwip.toCanvas(matrix, { bcid: "gs1datamatrix", text: gs1, scale: 3 });
    else bwip.toCanvas(matrix, { bcid: "datamatrix", text: code.replaceAll(GS, "^029"), parse: true, scale: 3 });
    bwip.toCanvas(linear, { bcid: gs1 ? "gs1-128" : "code128", text: gs1 ?? code, scale: 2, height: 10 });
    grid.append(h("figure", { class: "label" }, matrix, linear, h("code", {}, code.replaceAll(GS, "<GS>"))));
  }
}
