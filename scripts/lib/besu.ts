/**
 * A Hyperledger Besu QBFT network profile: the genesis (QBFT extraData naming the validators, RLP-encoded), each
 * validator's node key, and the local account and node allowlists (permissions TOML). Pure functions, so the
 * unit tests decode exactly what `scripts/besu-genesis.ts` writes.
 */
import { Wallet, encodeRlp, getAddress, type HDNodeWallet } from "ethers";

/** EIP-7825 (Osaka) caps one transaction at 2^24 gas; our largest transaction is sized under it. */
export const TX_GAS_CAP = 2 ** 24;

/**
 * Block gas limit: 6 x 2^24 = 100,663,296. Measured gas per operation (README, `npm run bench:gas`): the largest
 * commissioning run, 28,000 codes, is 15,653,170 gas, so a block must hold at least one full run beside ordinary
 * traffic; six full-size transactions a block let a manufacturer's run and a block's worth of sales share it. At
 * 47,753 gas per single-pack sale that is ~2,100 sales a block, or ~33,800 batched packs at 2,974 gas each, and
 * ~57,000 settled packs at 1,760 gas each (docs/capacity.md works these out per second).
 */
export const BLOCK_GAS_LIMIT = 6 * TX_GAS_CAP;

/** DrugLedger is ~27 KB, above EIP-170's 24,576 bytes; twice that leaves room to grow. */
export const CONTRACT_SIZE_LIMIT = 49_152;

export interface Validator {
  /** The node key: hex private key, as Besu reads it from `<data-path>/key`. */
  nodeKey: string;
  /** The validator's address (from the node key), which the QBFT extraData lists. */
  address: string;
  /** The node's public key without the 0x04 prefix: the id in its enode URL. */
  enodeId: string;
}

export interface ProfileOptions {
  validators: number;
  chainId: number;
  blockPeriodSeconds: number;
  /** Host and first P2P port of the validators (node i listens on port + i). */
  host: string;
  p2pPort: number;
  /** Accounts allowed to send transactions (the organisations' signing accounts); validators are always allowed. */
  accounts: string[];
}

export function newValidator(wallet: Wallet | HDNodeWallet = Wallet.createRandom()): Validator {
  return {
    nodeKey: wallet.privateKey,
    address: wallet.address,
    enodeId: wallet.signingKey.publicKey.slice(4),
  };
}

/** QBFT's genesis extraData: RLP([32-byte vanity, [validator addresses], no vote, round 0, no seals]). */
export function qbftExtraData(addresses: string[]): string {
  const listed = addresses.map((a) => getAddress(a).toLowerCase());
  return encodeRlp(["0x" + "00".repeat(32), listed, [], "0x", []]);
}

export function genesis(options: ProfileOptions, validators: Validator[]): Record<string, unknown> {
  return {
    config: {
      chainId: options.chainId,
      berlinBlock: 0,
      londonBlock: 0,
      shanghaiTime: 0,
      cancunTime: 0,
      // Zero gas price: members do not pay for writes; the node also runs with --min-gas-price=0.
      zeroBaseFee: true,
      contractSizeLimit: CONTRACT_SIZE_LIMIT,
      qbft: { blockperiodseconds: options.blockPeriodSeconds, epochlength: 30_000, requesttimeoutseconds: 4 },
    },
    nonce: "0x0",
    timestamp: "0x0",
    gasLimit: "0x" + BLOCK_GAS_LIMIT.toString(16),
    difficulty: "0x1",
    mixHash: "0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365",
    coinbase: "0x0000000000000000000000000000000000000000",
    alloc: {},
    extraData: qbftExtraData(validators.map((v) => v.address)),
  };
}

export function enodeUrl(options: ProfileOptions, validator: Validator, index: number): string {
  return `enode://${validator.enodeId}@${options.host}:${options.p2pPort + index}`;
}

const tomlList = (items: string[]) => `[\n${items.map((i) => `  "${i}",`).join("\n")}\n]`;

/** Besu's local permissioning file (`--permissions-accounts-config-file` / `--permissions-nodes-config-file`). */
export function permissionsToml(options: ProfileOptions, validators: Validator[]): string {
  const accounts = [...validators.map((v) => v.address), ...options.accounts.map((a) => getAddress(a))];
  const nodes = validators.map((v, i) => enodeUrl(options, v, i));
  return `accounts-allowlist=${tomlList(accounts)}\n\nnodes-allowlist=${tomlList(nodes)}\n`;
}
