/**
 * The /v1 API as the pages call it: the organisation's key from sessionStorage as a Bearer token, JSON in and
 * out, problem+json turned into an ApiProblem that carries the body (a refused claim's `check`, a write's `error`).
 */
const KEY = "dt.apiKey";

export const savedKey = (): string | null => sessionStorage.getItem(KEY);
export const saveKey = (key: string): void => sessionStorage.setItem(KEY, key);
export const forgetKey = (): void => sessionStorage.removeItem(KEY);

export interface Problem {
  type?: string;
  title?: string;
  status: number;
  detail?: string;
  [field: string]: unknown;
}

export class ApiProblem extends Error {
  constructor(readonly problem: Problem) {
    super(problem.detail ?? problem.title ?? `HTTP ${problem.status}`);
  }
}

export interface CallOptions {
  method?: string;
  body?: unknown;
  /** A raw body with its content type (a commissioning CSV). */
  raw?: { type: string; data: string | Blob };
  key?: string;
}

export async function api<T>(path: string, options: CallOptions = {}): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json" };
  const key = options.key ?? savedKey();
  if (key) headers.authorization = `Bearer ${key}`;
  let body: string | Blob | undefined;
  if (options.body !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(options.body);
  } else if (options.raw) {
    headers["content-type"] = options.raw.type;
    body = options.raw.data;
  }
  const res = await fetch(path, { method: options.method ?? (body === undefined ? "GET" : "POST"), headers, body });
  const text = await res.text();
  const parsed: unknown = text ? JSON.parse(text) : {};
  if (!res.ok) throw new ApiProblem({ status: res.status, ...(parsed as object) });
  return parsed as T;
}

export const codePath = (code: string): string => `/v1/codes/${encodeURIComponent(code)}`;
