// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {Batches} from "./Batches.sol";
import {Refs} from "./Refs.sol";

/**
 * @dev Commissioning runs. A run puts thousands of unit codes of one batch into service in one transaction,
 * together with the cases and pallets that aggregate them. Nothing is stored per code: the 12-byte code hashes
 * travel in calldata and in the event, and the run stores one Merkle root over them.
 *
 * Aggregation is positional, as a packing line produces it: units are listed in packing order, case `c` holds
 * units `[c * unitsPerCase, (c + 1) * unitsPerCase)` and pallet `p` holds cases
 * `[p * casesPerPallet, (p + 1) * casesPerPallet)`, the last case and pallet possibly partial. A run therefore
 * lists `unitCount` unit codes, then `caseCount` case codes, then `palletCount` pallet codes.
 *
 * A run never holds the same code twice: the caller proves it with a uniqueness witness, the permutation (2 bytes
 * per code) that sorts the run's code hashes strictly ascending, which the contract checks in one pass. A code
 * repeated in another run is the indexer's to flag. A code belongs only to runs of the product it names (digits 1-7
 * of a Chinese code, the GTIN of a GS1 code), and only the manufacturer holding the product's code prefix registers
 * the product (see {Products}), so a copy of another maker's codes in a run of one's own resolves to nothing:
 * {verifyCode} and the index check the product the scanned code names.
 *
 * A run holds at most {maxRunCodes} codes: since Osaka (EIP-7825) a transaction's gas is capped at 2^24, and a
 * code's 14 bytes of calldata cost 560 gas at EIP-7623's floor, so about 29,900 codes fit; the default of 28,000
 * leaves room for the rest of the transaction. A network with another cap sets its own ({setMaxRunCodes}).
 *
 * Merkle tree: codes sit at positions `i` (unit `i`, case `unitCount + c`, pallet `unitCount + caseCount + p`);
 * leaf `j` is the keccak256 of the packed hashes at positions `[32j, 32j + 32)`; each level pairs nodes left to
 * right, `keccak256(left ‖ right)`, with a zero right sibling when the level has an odd width. Leaves (multiples
 * of 12 bytes) never have the 64-byte length of an inner node's preimage.
 */
abstract contract Commissioning is Batches {
    uint256 internal constant CODE_BYTES = 12;
    /// @dev Witness positions are 2 bytes.
    uint32 public constant MAX_RUN_CODES_LIMIT = 65_535;
    /// @dev Codes hashed together into one Merkle leaf: one keccak per 384 bytes keeps commissioning cheap.
    uint256 internal constant CODES_PER_LEAF = 32;

    struct Run {
        uint32 batchId;
        uint32 manufacturerId;
        uint32 unitCount;
        uint32 unitsPerCase;
        uint32 caseCount;
        uint32 casesPerPallet;
        uint32 palletCount;
    }

    mapping(uint32 runId => Run) private _runs;
    mapping(uint32 runId => bytes32) private _roots;
    uint32 private _runCount;

    /// @param codes The run's code hashes, 12 bytes each: units in packing order, then cases, then pallets.
    event UnitsCommissioned(
        uint32 indexed runId,
        uint32 indexed batchId,
        uint32 indexed manufacturerId,
        uint32 unitCount,
        uint32 unitsPerCase,
        uint32 casesPerPallet,
        bytes32 root,
        bytes codes
    );

    event RunLimitChanged(uint32 previousMaxCodes, uint32 maxCodes);

    error InvalidRunShape(uint32 unitCount, uint32 unitsPerCase, uint32 casesPerPallet);
    error RunTooLarge(uint256 codeCount, uint256 maxCodes);
    error InvalidRunLimit(uint32 maxCodes);
    error CodesLengthMismatch(uint256 expectedBytes, uint256 actualBytes);
    /// @dev The code at `position` is the same as the one before it in the witness's order.
    error DuplicateCode(uint256 position);
    /// @dev The code at `position` is zero, which no hash is.
    error ZeroCode(uint256 position);
    /// @dev The witness's entry `witnessIndex` points past the run's codes.
    error WitnessIndexOutOfRange(uint256 witnessIndex, uint256 position);
    /// @dev The witness's entry `witnessIndex` is not in ascending order of the codes: a wrong witness.
    error WitnessNotSorted(uint256 witnessIndex);
    error UnknownRun(uint32 runId);
    error UnknownItem(uint256 ref);

    /**
     * @notice Commissions units, cases and pallets of one of the caller's batches.
     * @param batchId The batch (registered by the caller, not recalled).
     * @param unitCount Number of unit (sales pack) codes.
     * @param unitsPerCase Units per case, 0 when the units are not cased.
     * @param casesPerPallet Cases per pallet, 0 when the cases are not palletised.
     * @param codes 12-byte code hashes: `unitCount` units, then the cases, then the pallets.
     * @param uniquenessWitness 2-byte big-endian positions into `codes`, ordering the hashes strictly ascending.
     * @return runId Id of the run; a code is addressed as (runId, level, index), see {Refs}.
     */
    function commission(
        uint32 batchId,
        uint32 unitCount,
        uint32 unitsPerCase,
        uint32 casesPerPallet,
        bytes calldata codes,
        bytes calldata uniquenessWitness
    ) external returns (uint32 runId) {
        uint32 manufacturerId = _activeCaller(Role.Manufacturer);
        Batch storage batch = _existingBatch(batchId);
        if (batch.manufacturerId != manufacturerId) revert NotBatchManufacturer(batchId, msg.sender);
        // A product reassigned to its rightful maker takes no more codes from the one that registered it in error.
        _ownProduct(batch.productId, manufacturerId);
        if (batch.recalled) revert BatchIsRecalled(batchId);
        if (unitCount == 0 || (unitsPerCase == 0 && casesPerPallet != 0)) {
            revert InvalidRunShape(unitCount, unitsPerCase, casesPerPallet);
        }
        uint256 caseCount = unitsPerCase == 0 ? 0 : (uint256(unitCount) + unitsPerCase - 1) / unitsPerCase;
        uint256 palletCount = casesPerPallet == 0 ? 0 : (caseCount + casesPerPallet - 1) / casesPerPallet;
        uint256 total = unitCount + caseCount + palletCount;
        if (total > _maxRunCodes) revert RunTooLarge(total, _maxRunCodes);
        if (codes.length != total * CODE_BYTES) revert CodesLengthMismatch(total * CODE_BYTES, codes.length);
        if (uniquenessWitness.length != total * 2) revert CodesLengthMismatch(total * 2, uniquenessWitness.length);
        _requireUnique(codes, uniquenessWitness, total);

        bytes32 root = _merkleRoot(codes, total);
        runId = ++_runCount;
        _runs[runId] = Run({
            batchId: batchId,
            manufacturerId: manufacturerId,
            unitCount: unitCount,
            unitsPerCase: unitsPerCase,
            caseCount: uint32(caseCount),
            casesPerPallet: casesPerPallet,
            palletCount: uint32(palletCount)
        });
        _roots[runId] = root;
        emit UnitsCommissioned(runId, batchId, manufacturerId, unitCount, unitsPerCase, casesPerPallet, root, codes);
    }

    /**
     * @notice Sets the most codes (units, cases and pallets) one run may hold, to fit the network's per-transaction
     * gas cap (consortium admin).
     * @param maxCodes At most {MAX_RUN_CODES_LIMIT}.
     */
    function setMaxRunCodes(uint32 maxCodes) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (maxCodes == 0 || maxCodes > MAX_RUN_CODES_LIMIT) revert InvalidRunLimit(maxCodes);
        emit RunLimitChanged(_maxRunCodes, maxCodes);
        _maxRunCodes = maxCodes;
    }

    /**
     * @notice The most codes one run may hold.
     */
    function maxRunCodes() external view returns (uint32) {
        return _maxRunCodes;
    }

    /**
     * @notice A commissioning run (batch id 0 when unknown).
     */
    function runOf(uint32 runId) external view returns (Run memory) {
        return _runs[runId];
    }

    /**
     * @notice The Merkle root over a run's code hashes.
     */
    function runRoot(uint32 runId) external view returns (bytes32) {
        return _roots[runId];
    }

    /**
     * @notice Whether `codeHash` is the code of `ref`, proven against the run's root, in a run of the product the
     * scanned code names. Lets any client check what an index tells it about a code without trusting the index.
     * @param productCode The product code the scanned code names (digits 1-7 of a Chinese code, a GS1 code's GTIN),
     * or empty for a code that names none. A unit must be of that product; a case or pallet, of that product or of
     * the manufacturer holding the prefix that covers it (container codes carry other packaging levels' codes).
     * @param ref Unit, case or pallet reference.
     * @param codeHash The 12-byte hash of the normalised code.
     * @param leafCodes The leaf's chunk of code hashes (up to `CODES_PER_LEAF`, the code among them).
     * @param proof Sibling hashes from leaf to root (zero where a level had no right sibling).
     */
    function verifyCode(
        string calldata productCode,
        uint256 ref,
        bytes12 codeHash,
        bytes calldata leafCodes,
        bytes32[] calldata proof
    ) external view returns (bool) {
        (uint32 runId, uint8 level, uint32 index) = Refs.decode(ref);
        Run memory run = _run(runId);
        _requireExists(run, level, index, ref);
        if (!_namesRunProduct(productCode, run, level)) return false;
        uint256 position = _treePosition(run, level, index);
        uint256 total = uint256(run.unitCount) + run.caseCount + run.palletCount;
        uint256 leaf = position / CODES_PER_LEAF;
        uint256 inLeaf = total - leaf * CODES_PER_LEAF;
        if (inLeaf > CODES_PER_LEAF) inLeaf = CODES_PER_LEAF;
        if (leafCodes.length != inLeaf * CODE_BYTES) return false;
        uint256 offset = (position % CODES_PER_LEAF) * CODE_BYTES;
        if (bytes12(leafCodes[offset:offset + CODE_BYTES]) != codeHash) return false;
        uint256 leaves = (total + CODES_PER_LEAF - 1) / CODES_PER_LEAF;
        uint256 depth;
        while ((uint256(1) << depth) < leaves) ++depth;
        if (proof.length != depth) return false;
        bytes32 node = keccak256(leafCodes);
        for (uint256 i; i < depth; ++i) {
            node =
                (leaf >> i) & 1 == 0
                    ? keccak256(abi.encodePacked(node, proof[i]))
                    : keccak256(abi.encodePacked(proof[i], node));
        }
        return node == _roots[runId];
    }

    function _run(uint32 runId) internal view returns (Run memory run) {
        run = _runs[runId];
        if (run.batchId == 0) revert UnknownRun(runId);
    }

    function _namesRunProduct(string calldata productCode, Run memory run, uint8 level) private view returns (bool) {
        if (bytes(productCode).length == 0) return true;
        if (productIdByCode(productCode) == batchOf(run.batchId).productId) return true;
        return level != Refs.UNIT && prefixOwnerOf(productCode) == run.manufacturerId;
    }

    function _treePosition(Run memory run, uint8 level, uint32 index) private pure returns (uint256) {
        if (level == Refs.UNIT) return index;
        if (level == Refs.CASE) return uint256(run.unitCount) + index;
        return uint256(run.unitCount) + run.caseCount + index;
    }

    function _requireExists(Run memory run, uint8 level, uint32 index, uint256 ref) internal pure {
        uint32 count =
            level == Refs.UNIT
                ? run.unitCount
                : level == Refs.CASE
                    ? run.caseCount
                    : run.palletCount;
        if (index >= count) revert UnknownItem(ref);
    }

    /// @dev Checks that the witness orders the codes strictly ascending from above zero, naming the first failure.
    function _requireUnique(bytes calldata codes, bytes calldata witness, uint256 count) private pure {
        uint256 failure;
        uint256 k;
        uint256 j;
        assembly ("memory-safe") {
            let previous := 0
            for {} lt(k, count) {
                k := add(k, 1)
            } {
                j := shr(240, calldataload(add(witness.offset, shl(1, k))))
                if iszero(lt(j, count)) {
                    failure := 1
                    break
                }
                let code := shr(160, calldataload(add(codes.offset, mul(j, 12))))
                if iszero(code) {
                    failure := 4
                    break
                }
                if iszero(gt(code, previous)) {
                    failure := add(2, eq(code, previous))
                    break
                }
                previous := code
            }
        }
        // failure: 1 index out of range, 2 below the previous code, 3 equal to it, 4 zero
        if (failure == 1) revert WitnessIndexOutOfRange(k, j);
        if (failure == 2) revert WitnessNotSorted(k);
        if (failure == 3) revert DuplicateCode(j);
        if (failure == 4) revert ZeroCode(j);
    }

    /**
     * @dev Hashes each chunk of `CODES_PER_LEAF` codes into a leaf, then builds the tree level by level, all in
     * scratch memory past the free memory pointer.
     */
    function _merkleRoot(bytes calldata codes, uint256 count) private pure returns (bytes32 root) {
        uint256 leafBytes = CODES_PER_LEAF * CODE_BYTES;
        assembly ("memory-safe") {
            let base := mload(0x40)
            let width := div(add(count, sub(CODES_PER_LEAF, 1)), CODES_PER_LEAF)
            let chunk := add(base, shl(5, width))
            for {
                let j := 0
            } lt(j, width) {
                j := add(j, 1)
            } {
                let start := mul(j, leafBytes)
                let size := sub(codes.length, start)
                if gt(size, leafBytes) {
                    size := leafBytes
                }
                calldatacopy(chunk, add(codes.offset, start), size)
                mstore(add(base, shl(5, j)), keccak256(chunk, size))
            }
            for {} gt(width, 1) {} {
                let half := shr(1, add(width, 1))
                for {
                    let j := 0
                } lt(j, half) {
                    j := add(j, 1)
                } {
                    let left := add(base, shl(6, j))
                    mstore(0x00, mload(left))
                    switch lt(add(shl(1, j), 1), width)
                    case 1 {
                        mstore(0x20, mload(add(left, 0x20)))
                    }
                    default {
                        mstore(0x20, 0)
                    }
                    mstore(add(base, shl(5, j)), keccak256(0x00, 0x40))
                }
                width := half
            }
            root := mload(base)
        }
    }
}
