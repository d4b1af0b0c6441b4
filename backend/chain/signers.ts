/**
 * The organisations' signing keys this deployment holds: encrypted JSON keystores (one file per organisation in
 * SIGNER_KEYSTORE_DIR, decrypted with SIGNER_KEYSTORE_PASSWORD), or, outside production only, private keys from
 * SIGNER_DEV_KEYS. One deployment may hold the keys of many organisations or only its own. A key never leaves this
 * module except as an ethers Wallet; nothing here logs or returns key material.
 */
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { Wallet } from "ethers";

export interface SignerSettings {
  SIGNER_KEYSTORE_DIR?: string | undefined;
  SIGNER_KEYSTORE_PASSWORD?: string | undefined;
  SIGNER_DEV_KEYS: string[];
  NODE_ENV: string;
}

export class SignerConfigError extends Error {}

export class Signers {
  private readonly byAccount = new Map<string, Wallet>();

  constructor(wallets: readonly Wallet[] = []) {
    for (const w of wallets) this.byAccount.set(w.address.toLowerCase(), w);
  }

  /** The development keys of SIGNER_DEV_KEYS alone (refused in production). */
  static fromDevKeys(settings: SignerSettings): Signers {
    return new Signers(devWallets(settings));
  }

  /** Loads every key the settings name; refuses dev keys in production and keystores without a password. */
  static async load(settings: SignerSettings): Promise<Signers> {
    const wallets = devWallets(settings);
    if (settings.SIGNER_KEYSTORE_DIR) {
      if (!settings.SIGNER_KEYSTORE_PASSWORD)
        throw new SignerConfigError("SIGNER_KEYSTORE_DIR is set but SIGNER_KEYSTORE_PASSWORD is not");
      const dir = settings.SIGNER_KEYSTORE_DIR;
      const files = (await readdir(dir)).filter((f) => f.endsWith(".json")).sort();
      for (const file of files) {
        const json = await readFile(path.join(dir, file), "utf8");
        try {
          const wallet = await Wallet.fromEncryptedJson(json, settings.SIGNER_KEYSTORE_PASSWORD);
          wallets.push(wallet instanceof Wallet ? wallet : new Wallet(wallet.privateKey));
        } catch (err) {
          throw new SignerConfigError(`keystore ${file} cannot be decrypted: ${(err as Error).message}`);
        }
      }
    }
    return new Signers(wallets);
  }

  /** The wallet of `account` (any case), or null when this deployment does not hold its key. */
  get(account: string): Wallet | null {
    return this.byAccount.get(account.toLowerCase()) ?? null;
  }

  /** The accounts whose keys are held (lower-case), for logs and health: addresses only. */
  accounts(): string[] {
    return [...this.byAccount.keys()];
  }

  // A Signers object that ends up in a log line or a JSON answer shows its accounts, never its keys.
  toJSON(): { accounts: string[] } {
    return { accounts: this.accounts() };
  }
}

function devWallets(settings: SignerSettings): Wallet[] {
  if (settings.SIGNER_DEV_KEYS.length === 0) return [];
  if (settings.NODE_ENV === "production")
    throw new SignerConfigError("SIGNER_DEV_KEYS is refused when NODE_ENV=production: use keystores");
  return settings.SIGNER_DEV_KEYS.map((key, i) => {
    try {
      return new Wallet(key);
    } catch {
      // The key itself is never echoed.
      throw new SignerConfigError(`SIGNER_DEV_KEYS entry ${i + 1} is not a private key`);
    }
  });
}
