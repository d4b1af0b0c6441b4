/**
 * A minimal JSON-RPC client over fetch for the indexer's hot path. ethers' provider decodes response bodies with
 * its own JavaScript UTF-8 decoder, which costs seconds on the multi-megabyte eth_getLogs answers of a back-fill;
 * here the runtime's native decoder and JSON.parse do it.
 */
export class RpcError extends Error {
  constructor(
    message: string,
    readonly code?: number,
    /** What the node attached to the error: for a reverted call, the revert data (hex, or nested in an object). */
    readonly data?: unknown,
  ) {
    super(message);
  }
}

interface RpcReply {
  id: number;
  result?: unknown;
  error?: { code: number; message: string; data?: unknown };
}

export interface RpcCall {
  method: string;
  params: unknown[];
}

const TIMEOUT_MS = 60_000;

export class JsonRpcClient {
  private nextId = 1;

  constructor(readonly url: string) {}

  async call<T>(method: string, params: unknown[]): Promise<T> {
    const [result] = await this.batch<T>([{ method, params }]);
    return result!;
  }

  /** Sends calls in one HTTP request (a JSON-RPC batch); results come back in the calls' order. */
  async batch<T>(calls: readonly RpcCall[]): Promise<T[]> {
    return (await this.batchSettled<T>(calls)).map((r) => {
      if ("error" in r) throw r.error;
      return r.result;
    });
  }

  /**
   * POSTs the body; a connection that fails before any answer (a keep-alive socket the node closed while idle,
   * which fetch may pick just as it closes) is tried once more on a new one. JSON-RPC calls are safe to repeat
   * here: reads are, and a signed transaction sent twice is the same transaction (the node answers "already
   * known", or "nonce too low" once it is mined, which every sender checks against the receipt).
   */
  private async post(body: string): Promise<Response> {
    const send = () =>
      fetch(this.url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    try {
      return await send();
    } catch (err) {
      if (!(err instanceof TypeError)) throw err; // a timeout (AbortSignal) is not retried
      return send();
    }
  }

  /** As {@link batch}, but each call's error is its own result: one failing call does not fail the others. */
  async batchSettled<T>(calls: readonly RpcCall[]): Promise<({ result: T } | { error: RpcError })[]> {
    if (calls.length === 0) return [];
    const firstId = this.nextId;
    this.nextId += calls.length;
    const body = calls.map((c, i) => ({ jsonrpc: "2.0", id: firstId + i, method: c.method, params: c.params }));
    const response = await this.post(JSON.stringify(calls.length === 1 ? body[0] : body));
    const text = await response.text();
    if (!response.ok) throw new RpcError(`${calls[0]!.method}: HTTP ${response.status} ${text.slice(0, 200)}`);
    const parsed = JSON.parse(text) as RpcReply | RpcReply[];
    const replies = Array.isArray(parsed) ? parsed : [parsed];
    const byId = new Map(replies.map((r) => [r.id, r]));
    return calls.map((c, i) => {
      const reply = byId.get(firstId + i);
      if (!reply) return { error: new RpcError(`${c.method}: no reply`) };
      if (reply.error)
        return { error: new RpcError(`${c.method}: ${reply.error.message}`, reply.error.code, reply.error.data) };
      return { result: reply.result as T };
    });
  }
}
