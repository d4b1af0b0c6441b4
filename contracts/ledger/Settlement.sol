// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {Dispensing} from "./Dispensing.sol";
import {Refs} from "./Refs.sol";

/**
 * @dev Once-only insurance settlement. A unit is settled at most once across all insurers and regions, only after
 * it was dispensed, and only for the pharmacy that dispensed it; a second attempt reverts naming the earlier
 * claim.
 *
 * Claims are namespaced per insurer by construction: an insurer settles under its own claim reference and the
 * ledger's claim id is `keccak256(abi.encode(insurerId, claimRef))` ({claimIdOf}), so no two insurers can ever
 * share one and no storage is spent on claim ownership.
 *
 * To name the earlier claim without a storage slot per unit, a run's units are grouped in sections of 4,096;
 * each section keeps a table of the claims that settled units in it (8,192 places, open addressing from the
 * claim id, so at most half full), and a settled unit's 13-bit lane field holds its claim's place in that table.
 */
abstract contract Settlement is Dispensing {
    uint256 private constant TABLE_BITS = 13;
    uint256 private constant TABLE_MASK = (1 << TABLE_BITS) - 1;
    /// @dev Far beyond the few dozen places the longest probe runs reach at half load.
    uint256 private constant MAX_PROBES = 256;

    /// @dev Key: runId << 40 | section << 13 | place.
    mapping(uint256 key => bytes32 claimId) private _sectionClaims;
    mapping(bytes32 claimUnit => uint32 quantity) private _splitSettlements;

    event UnitsSettled(
        bytes32 indexed claimId,
        uint32 indexed insurerId,
        uint32 indexed pharmacyId,
        bytes32 claimRef,
        bytes units
    );
    event UnitSettledPartially(
        bytes32 indexed claimId,
        uint32 indexed insurerId,
        uint32 indexed pharmacyId,
        bytes32 claimRef,
        uint256 unit,
        uint32 quantity,
        uint32 settledTotal
    );
    event SettlementReversed(bytes32 indexed claimId, uint32 indexed insurerId, bytes units, string reason);
    event PartialSettlementReversed(
        bytes32 indexed claimId,
        uint32 indexed insurerId,
        uint256 unit,
        uint32 quantity,
        string reason
    );

    error InvalidClaimRef();
    error NotSettledUnderClaim(uint256 ref, bytes32 claimId);
    error SectionClaimTableFull(uint32 runId, uint256 section);

    /**
     * @notice Records that the calling insurer paid for whole packs under one of its claims.
     * @param claimRef The insurer's own claim reference (a hash; no personal data).
     * @param pharmacy The pharmacy that dispensed the units.
     * @param units Packed unit refs (see {Refs}), each dispensed by `pharmacy` and never settled.
     */
    function settle(bytes32 claimRef, address pharmacy, bytes calldata units) external {
        (uint32 insurerId, uint32 pharmacyId, bytes32 claimId) = _claimParties(claimRef, pharmacy);
        _walkUnits(units, Walk.Settle, pharmacyId, claimId);
        emit UnitsSettled(claimId, insurerId, pharmacyId, claimRef, units);
    }

    /**
     * @notice Records that the calling insurer paid for part of a split pack; the parts settled never exceed
     * what was dispensed.
     * @param claimRef The insurer's claim reference.
     * @param pharmacy The pharmacy that dispensed the parts.
     * @param unit The unit ref.
     * @param quantity Doses paid for.
     */
    function settlePartial(bytes32 claimRef, address pharmacy, uint256 unit, uint32 quantity) external {
        (uint32 insurerId, uint32 pharmacyId, bytes32 claimId) = _claimParties(claimRef, pharmacy);
        (uint32 runId, uint32 index) = _decodeUnit(unit);
        Run memory run = _run(runId);
        _requireExists(run, Refs.UNIT, index, unit);
        uint256 lane = _lane(runId, index);
        if (lane & LANE_SPLIT == 0) revert UnitNotDispensed(unit);
        uint32 holderId = uint32(_effectiveEntry(runId, run, Refs.UNIT, index) & VALUE_MASK);
        if (holderId != pharmacyId) revert DispensedByAnotherPharmacy(unit, holderId);
        SplitPack storage split = _splitPack(runId, index);
        uint32 available = split.dispensed - split.settled;
        if (quantity == 0 || quantity > available) revert InvalidQuantity(unit, quantity, available);
        split.settled += quantity;
        _splitSettlements[_claimUnitKey(claimId, unit)] += quantity;
        uint32 packQuantity = productOf(batchOf(run.batchId).productId).packQuantity;
        if (split.settled == packQuantity) _setLane(runId, index, lane | LANE_SETTLED);
        emit UnitSettledPartially(claimId, insurerId, pharmacyId, claimRef, unit, quantity, split.settled);
    }

    /**
     * @notice Reverses the calling insurer's own settlement of whole packs. The units stay dispensed, and their
     * return window is closed.
     * @param claimRef The claim reference they were settled under.
     * @param units Packed unit refs.
     * @param reason Why, for the audit trail.
     */
    function reverseSettlement(bytes32 claimRef, bytes calldata units, string calldata reason) external {
        uint32 insurerId = _activeCaller(Role.Insurer);
        bytes32 claimId = claimIdOf(insurerId, claimRef);
        uint256 count = Refs.count(units);
        for (uint256 i; i < count; ++i) {
            uint256 ref = Refs.at(units, i);
            (uint32 runId, uint32 index) = _decodeUnit(ref);
            uint256 lane = _lane(runId, index);
            if (lane & LANE_SETTLED == 0 || lane & LANE_SPLIT != 0 || _claimOfLane(runId, index, lane) != claimId) {
                revert NotSettledUnderClaim(ref, claimId);
            }
            _setLane(runId, index, LANE_DISPENSED);
        }
        emit SettlementReversed(claimId, insurerId, units, reason);
    }

    /**
     * @notice Reverses everything the calling insurer settled of a split pack under a claim.
     * @param claimRef The claim reference.
     * @param unit The unit ref.
     * @param reason Why, for the audit trail.
     */
    function reversePartialSettlement(bytes32 claimRef, uint256 unit, string calldata reason) external {
        uint32 insurerId = _activeCaller(Role.Insurer);
        bytes32 claimId = claimIdOf(insurerId, claimRef);
        (uint32 runId, uint32 index) = _decodeUnit(unit);
        bytes32 key = _claimUnitKey(claimId, unit);
        uint32 quantity = _splitSettlements[key];
        if (quantity == 0) revert NotSettledUnderClaim(unit, claimId);
        delete _splitSettlements[key];
        _splitPack(runId, index).settled -= quantity;
        _setLane(runId, index, _lane(runId, index) & ~LANE_SETTLED);
        emit PartialSettlementReversed(claimId, insurerId, unit, quantity, reason);
    }

    /**
     * @notice The claim id a whole pack was settled under (zero when it is not settled).
     */
    function settlementOf(uint256 ref) external view returns (bytes32) {
        (uint32 runId, uint32 index) = _decodeUnit(ref);
        uint256 lane = _lane(runId, index);
        if (lane & LANE_SETTLED == 0 || lane & LANE_SPLIT != 0) return bytes32(0);
        return _claimOfLane(runId, index, lane);
    }

    /**
     * @notice The ledger's id of insurer `insurerId`'s claim `claimRef`.
     */
    function claimIdOf(uint32 insurerId, bytes32 claimRef) public pure returns (bytes32) {
        return keccak256(abi.encode(insurerId, claimRef));
    }

    function _claimParties(
        bytes32 claimRef,
        address pharmacy
    ) private view returns (uint32 insurerId, uint32 pharmacyId, bytes32 claimId) {
        insurerId = _activeCaller(Role.Insurer);
        pharmacyId = _activeParticipant(pharmacy, Role.Pharmacy);
        if (claimRef == bytes32(0)) revert InvalidClaimRef();
        claimId = claimIdOf(insurerId, claimRef);
    }

    /// @dev Place of `claimId` in the section's table: where it already is, else the first free place probing
    /// from the claim id. A section holds 4,096 units, so without reversals the 8,192-place table is at most half
    /// full and a probe run averages under three places. Places are not freed on reversal: an insurer that
    /// settles and reverses under thousands of fresh claim references fills the table, and the section's
    /// settlements then fail with {SectionClaimTableFull} after at most `MAX_PROBES` places instead of running
    /// out of gas; that insurer is the regulator's to suspend.
    function _placeClaim(uint32 runId, uint256 section, bytes32 claimId) internal override returns (uint256) {
        uint256 base = (uint256(runId) << 40) | (section << TABLE_BITS);
        uint256 start = uint256(claimId);
        for (uint256 probe; probe < MAX_PROBES; ++probe) {
            uint256 place = (start + probe) & TABLE_MASK;
            bytes32 held = _sectionClaims[base | place];
            if (held == claimId) return place;
            if (held == bytes32(0)) {
                _sectionClaims[base | place] = claimId;
                return place;
            }
        }
        revert SectionClaimTableFull(runId, section);
    }

    function _claimOfLane(uint32 runId, uint32 index, uint256 lane) internal view override returns (bytes32) {
        uint256 section = index >> SECTION_BITS;
        return _sectionClaims[(uint256(runId) << 40) | (section << TABLE_BITS) | (lane >> LANE_FIELD_SHIFT)];
    }

    function _claimUnitKey(bytes32 claimId, uint256 unit) private pure returns (bytes32) {
        return keccak256(abi.encode(claimId, unit));
    }
}
