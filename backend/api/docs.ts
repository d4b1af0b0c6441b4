/**
 * `/docs`: the OpenAPI document rendered as one self-contained HTML page (no scripts, no CDN), so that it works
 * offline, behind strict firewalls and under helmet's default content security policy.
 */

interface Operation {
  summary?: string;
  description?: string;
  tags?: string[];
  security?: unknown[];
  parameters?: { name: string; in: string; required?: boolean; description?: string; schema?: unknown }[];
  requestBody?: { content?: Record<string, { schema?: unknown }> };
  responses?: Record<string, { description?: string; content?: Record<string, { schema?: unknown }> }>;
}

interface Document {
  info?: { title?: string; version?: string; description?: string };
  paths?: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, unknown> };
}

const escape = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

const json = (value: unknown): string => `<pre>${escape(JSON.stringify(value, null, 2))}</pre>`;

function operation(path: string, method: string, op: Operation): string {
  const anchor = `${method}-${path}`.replace(/[^A-Za-z0-9]+/g, "-");
  const params = (op.parameters ?? [])
    .map(
      (p) =>
        `<tr><td><code>${escape(p.name)}</code></td><td>${escape(p.in)}</td><td>${p.required ? "yes" : "no"}</td>` +
        `<td>${escape(p.description ?? "")}</td></tr>`,
    )
    .join("");
  const body = op.requestBody?.content
    ? Object.entries(op.requestBody.content)
        .map(([type, c]) => `<details><summary>Body: ${escape(type)}</summary>${json(c.schema)}</details>`)
        .join("")
    : "";
  const responses = Object.entries(op.responses ?? {})
    .map(([status, r]) => {
      const content = Object.entries(r.content ?? {})
        .map(([type, c]) => `<details><summary>${escape(type)}</summary>${json(c.schema)}</details>`)
        .join("");
      return `<li><b>${escape(status)}</b> ${escape(r.description ?? "")}${content}</li>`;
    })
    .join("");
  return (
    `<section id="${anchor}"><h3><span class="m ${method}">${method.toUpperCase()}</span> <code>${escape(path)}</code></h3>` +
    `<p><b>${escape(op.summary ?? "")}</b></p>` +
    (op.description ? `<p>${escape(op.description).replace(/\n\n/g, "</p><p>")}</p>` : "") +
    (params ? `<table><tr><th>Parameter</th><th>In</th><th>Required</th><th>About</th></tr>${params}</table>` : "") +
    body +
    `<ul>${responses}</ul></section>`
  );
}

export function docsPage(document: object): string {
  const doc = document as Document;
  const ops = Object.entries(doc.paths ?? {}).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, op]) => ({ path, method, op })),
  );
  const toc = ops
    .map(({ path, method, op }) => {
      const anchor = `${method}-${path}`.replace(/[^A-Za-z0-9]+/g, "-");
      return `<li><a href="#${anchor}">${method.toUpperCase()} ${escape(path)}</a> — ${escape(op.summary ?? "")}</li>`;
    })
    .join("");
  const schemas = Object.entries(doc.components?.schemas ?? {})
    .map(
      ([name, schema]) =>
        `<details id="schema-${escape(name)}"><summary>${escape(name)}</summary>${json(schema)}</details>`,
    )
    .join("");
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escape(doc.info?.title ?? "API")}</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}
code,pre{font:13px ui-monospace,monospace}pre{background:#f5f5f5;padding:.6em;overflow:auto}
section{border-top:1px solid #ddd;padding-top:.5em}table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2em .5em}
.m{display:inline-block;min-width:4em;text-align:center;color:#fff;border-radius:3px;padding:0 .3em}
.get{background:#2b7a2b}.post{background:#1f5fa8}.patch,.put{background:#a86b1f}.delete{background:#a82b2b}</style></head>
<body><h1>${escape(doc.info?.title ?? "API")} <small>${escape(doc.info?.version ?? "")}</small></h1>
<p>${escape(doc.info?.description ?? "")}</p><p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>
<h2>Routes</h2><ul>${toc}</ul>${ops.map(({ path, method, op }) => operation(path, method, op)).join("")}
<h2>Schemas</h2>${schemas}</body></html>`;
}
