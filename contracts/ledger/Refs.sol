// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

/**
 * @dev Compact references to the things the ledger tracks. A unit, case or pallet is addressed by the
 * commissioning run that created it, its packaging level and its index within that level of the run:
 *
 *   ref = runId << 40 | level << 32 | index
 *
 * Runs are numbered from 1, so a ref is never zero. Lists of refs travel packed, 9 bytes each (the ref's
 * big-endian uint72: run id, level, index), which costs a third of ABI-encoded uint256 words in calldata and
 * events. Codes themselves never appear on chain in clear text:
 * a run commits to the 12-byte hashes of its codes with a Merkle root, and the ref says where a code sits.
 */
library Refs {
    uint8 internal constant UNIT = 0;
    uint8 internal constant CASE = 1;
    uint8 internal constant PALLET = 2;

    /// @dev A ref that does not decode to a level the ledger knows, or carries bits above the run id.
    error InvalidRef(uint256 ref);

    /// @dev A packed ref list whose length is not a positive multiple of 9 bytes.
    error InvalidRefList(uint256 length);

    uint256 internal constant PACKED_BYTES = 9;

    /// @dev Number of refs in a packed list; reverts on an empty or ragged list.
    function count(bytes calldata list) internal pure returns (uint256 n) {
        if (list.length == 0 || list.length % PACKED_BYTES != 0) revert InvalidRefList(list.length);
        return list.length / PACKED_BYTES;
    }

    /// @dev The `i`-th ref of a packed list (bounds are the caller's, see {count}).
    function at(bytes calldata list, uint256 i) internal pure returns (uint256 ref) {
        assembly ("memory-safe") {
            ref := shr(184, calldataload(add(list.offset, mul(i, 9))))
        }
    }

    function decode(uint256 ref) internal pure returns (uint32 runId, uint8 level, uint32 index) {
        if (ref >> 72 != 0) revert InvalidRef(ref);
        runId = uint32(ref >> 40);
        level = uint8(ref >> 32);
        index = uint32(ref);
        if (level > PALLET || runId == 0) revert InvalidRef(ref);
    }
}
