/** Loopback ports for `npm start`'s own servers: the one asked for, or the next free one when it is taken. */
import net from "node:net";

/** Whether nothing listens on host:port (a bind succeeds). */
export function portIsFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once("error", () => resolve(false));
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve(true)));
  });
}

/** `wanted`, or the first free port after it (at most `tries` looked at); throws a message naming what is taken. */
export async function freePortFrom(what: string, host: string, wanted: number, tries = 20): Promise<number> {
  for (let port = wanted; port < wanted + tries && port <= 65535; port++) if (await portIsFree(host, port)) return port;
  throw new Error(
    `${what}: ports ${wanted}-${wanted + tries - 1} on ${host} are all in use; stop what holds them or set another port`,
  );
}

/** Whether a JSON-RPC node answers at `url` (eth_chainId), for waiting on a node this process started. */
export async function rpcAnswers(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
    });
    return res.ok;
  } catch {
    return false;
  }
}
