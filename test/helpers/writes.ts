/**
 * The API harness (test/helpers/api.ts) for writes: the service holds the scenario organisations' dev keys
 * (Hardhat's well-known accounts) and the indexer follows the chain, so that writes are answered with the state
 * the index shows once it has passed them.
 */
import hre from "hardhat";
import { HDNodeWallet } from "ethers";
import { startApi, type ApiHarness } from "./api";

/** Private keys of Hardhat's default accounts (its well-known test mnemonic): development only. */
export function hardhatDevKeys(count = 10): string[] {
  const accounts = hre.network.config.accounts as { mnemonic: string; path: string };
  return Array.from(
    { length: count },
    (_, i) => HDNodeWallet.fromPhrase(accounts.mnemonic, undefined, `${accounts.path}/${i}`).privateKey,
  );
}

export interface WriteHarness extends ApiHarness {
  /** The indexer's follow loop (stopped by close). */
  following: Promise<void>;
}

export async function startWriteApi(overrides: Partial<Record<string, string>> = {}): Promise<WriteHarness> {
  const h = await startApi({ SIGNER_DEV_KEYS: hardhatDevKeys().join(","), API_WRITE_WAIT_MS: "10000", ...overrides });
  const following = h.indexer.indexer.run();
  const close = h.close.bind(h);
  return {
    ...h,
    following,
    async close() {
      h.indexer.indexer.stop();
      await following.catch(() => undefined);
      await close();
    },
  };
}
