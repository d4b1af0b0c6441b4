/**
 * Every reply a test receives is checked against the zod schema its route declares for that status (problem
 * responses against the problem schema), so that the OpenAPI document and the service cannot drift apart.
 */
import { expect } from "chai";
import { problemSchema, type RouteSpec } from "../../backend/api/openapi";

let declared: RouteSpec[] = [];
/** Routes a reply was checked for: `METHOD /path/{param}` → statuses seen. */
export const covered = new Map<string, Set<number>>();

export function declareRoutes(specs: RouteSpec[]): void {
  declared = specs;
}

const matcher = (template: string): RegExp =>
  new RegExp("^" + template.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{\w+\}/g, "[^/]+") + "$");

export function routeOf(method: string, path: string): RouteSpec | undefined {
  const bare = path.split("?")[0]!;
  return declared.find((s) => s.method === method.toLowerCase() && matcher(s.path).test(bare));
}

interface Reply {
  status: number;
  headers: Headers;
  body: unknown;
}

/** Checks a reply against its route's declared schema; replies of undeclared paths (404s) only need problem+json. */
export function checkAgainstSchema(method: string, path: string, reply: Reply): void {
  const spec = routeOf(method, path);
  const problem = /^application\/problem\+json/.test(reply.headers.get("content-type") ?? "");
  if (reply.status >= 400 && reply.status !== 503 && !problem && spec?.path !== "/healthz")
    throw new Error(`${method} ${path}: ${reply.status} is not application/problem+json`);
  if (!spec) return;
  const key = `${spec.method.toUpperCase()} ${spec.path}`;
  if (!covered.has(key)) covered.set(key, new Set());
  covered.get(key)!.add(reply.status);
  const schema = spec.responses[reply.status]?.schema ?? (reply.status >= 400 ? problemSchema : undefined);
  if (!schema || typeof reply.body === "string") return;
  const parsed = schema.safeParse(reply.body);
  if (!parsed.success)
    throw new Error(
      `${key} ${reply.status} does not match its schema: ${JSON.stringify(parsed.error.issues.slice(0, 3))}`,
    );
}

export function expectMatchesSchema(method: string, route: string, reply: Reply): void {
  const spec = declared.find((s) => s.method === method && s.path === route);
  expect(spec, `${method} ${route} is declared`).to.not.equal(undefined);
  const schema = spec!.responses[reply.status]?.schema;
  expect(schema, `${route} declares a schema for ${reply.status}`).to.not.equal(undefined);
  const parsed = schema!.safeParse(reply.body);
  expect(parsed.success, JSON.stringify(parsed.error?.issues.slice(0, 3))).to.equal(true);
}
