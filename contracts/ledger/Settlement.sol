// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Dispensing} from "./Dispensing.sol";
import {Refs} from "./Refs.sol";

/**
 * @dev Once-only insurance settlement. A unit is settled at most once across all insurers and regions, only after
 * it was dispensed, only for the pharmacy that dispensed it, and only by the insurer that pharmacy billed: every
 * settlement carries the dispensing pharmacy's consent, an EIP-712 signature over insurer, claim reference and
 * units ({SETTLEMENT_CONSENT_TYPEHASH}), checked once per settlement. A rival insurer can therefore neither
 * front-run the rightful settlement nor, by settling and reversing, close a pharmacy's return window.
 *
 * Claims are namespaced per insurer by construction: an insurer settles under its own claim reference and the
 * ledger's claim id is `keccak256(abi.encode(insurerId, claimRef))` ({claimIdOf}), so no two insurers can ever
 * share one and no storage is spent on claim ownership.
 *
 * A settled unit's 13-bit lane field holds its insurer's small index: no structure is shared between insurers, so
 * none can fill one to block the others. A second settlement reverts with {UnitAlreadySettled} naming the insurer;
 * the claim is in the {UnitsSettled} events, which the index keeps.
 */
abstract contract Settlement is Dispensing, EIP712 {
    /// @notice What a pharmacy signs to let `insurer` settle `units` under `claimRef`: whole packs with `quantity`
    /// 0, or `quantity` doses of the split pack `units` (one packed ref).
    bytes32 public constant SETTLEMENT_CONSENT_TYPEHASH = keccak256(
        "SettlementConsent(address insurer,bytes32 claimRef,bytes units,uint32 quantity)"
    );

    /// @notice One claim of {settleClaims}: the arguments of {settle}.
    struct ClaimSettlement {
        bytes32 claimRef;
        address pharmacy;
        bytes units;
        bytes consent;
    }

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
    event SettlementReversed(
        bytes32 indexed claimId,
        uint32 indexed insurerId,
        uint32 indexed pharmacyId,
        bytes32 claimRef,
        bytes units,
        string reason
    );
    event PartialSettlementReversed(
        bytes32 indexed claimId,
        uint32 indexed insurerId,
        uint32 indexed pharmacyId,
        bytes32 claimRef,
        uint256 unit,
        uint32 quantity,
        string reason
    );

    error InvalidClaimRef();
    error NotSettledUnderClaim(uint256 ref, bytes32 claimId);
    /// @dev The consent was not signed by `pharmacy` for this insurer, claim and units.
    error InvalidConsent(address pharmacy);
    /// @dev The claim already settled doses of this split pack: its consent covers one settlement of them.
    error AlreadySettledUnderClaim(uint256 ref, bytes32 claimId);
    error UnitNotSplit(uint256 ref);

    constructor() EIP712("DrugLedger", "1") {}

    /**
     * @notice Records that the calling insurer paid for whole packs under one of its claims.
     * @param claimRef The insurer's own claim reference (a hash; no personal data).
     * @param pharmacy The pharmacy that dispensed the units.
     * @param units Packed unit refs (see {Refs}), each dispensed by `pharmacy` and never settled.
     * @param consent `pharmacy`'s EIP-712 signature of SettlementConsent(caller, claimRef, units, 0).
     */
    function settle(bytes32 claimRef, address pharmacy, bytes calldata units, bytes calldata consent) external {
        (uint32 insurerId, uint256 insurerIndex) = _activeInsurer();
        _settle(insurerId, insurerIndex, claimRef, pharmacy, units, consent);
    }

    /**
     * @notice Records several of the calling insurer's claims of whole packs in one transaction (a day's claims),
     * each with its own pharmacy's consent, as {settle} would one by one; the transaction's fixed cost is shared.
     * Any failing claim reverts them all: callers simulate each claim first and leave out the doomed ones. The loop
     * runs over calldata only, bounded by the transaction's gas.
     * @param claims The claims, each emitting its own {UnitsSettled}.
     */
    function settleClaims(ClaimSettlement[] calldata claims) external {
        (uint32 insurerId, uint256 insurerIndex) = _activeInsurer();
        for (uint256 i = 0; i < claims.length; ++i) {
            ClaimSettlement calldata c = claims[i];
            _settle(insurerId, insurerIndex, c.claimRef, c.pharmacy, c.units, c.consent);
        }
    }

    function _settle(
        uint32 insurerId,
        uint256 insurerIndex,
        bytes32 claimRef,
        address pharmacy,
        bytes calldata units,
        bytes calldata consent
    ) private {
        uint32 pharmacyId = _activeParticipant(pharmacy, Role.Pharmacy);
        bytes32 claimId = _claimId(insurerId, claimRef);
        _requireConsent(pharmacy, claimRef, keccak256(units), 0, consent);
        _walkUnits(units, Walk.Settle, pharmacyId, insurerIndex);
        emit UnitsSettled(claimId, insurerId, pharmacyId, claimRef, units);
    }

    /**
     * @notice Records that the calling insurer paid for part of a split pack; the parts settled never exceed
     * what was dispensed.
     * @param claimRef The insurer's claim reference.
     * @param pharmacy The pharmacy that dispensed the parts.
     * @param unit The unit ref.
     * @param quantity Doses paid for.
     * @param consent `pharmacy`'s EIP-712 signature of SettlementConsent(caller, claimRef, packed unit, quantity).
     */
    function settlePartial(
        bytes32 claimRef,
        address pharmacy,
        uint256 unit,
        uint32 quantity,
        bytes calldata consent
    ) external {
        (uint32 insurerId, , uint32 pharmacyId, bytes32 claimId) = _claimParties(claimRef, pharmacy, true);
        _requireConsent(pharmacy, claimRef, keccak256(abi.encodePacked(uint72(unit))), quantity, consent);
        (uint32 runId, uint32 index, Run memory run) = _splitUnitOf(unit, pharmacyId);
        SplitPack storage split = _splitPack(runId, index);
        uint32 available = split.dispensed - split.settled;
        if (quantity == 0 || quantity > available) revert InvalidQuantity(unit, quantity, available);
        // One settlement per claim and pack, so that a consent to `quantity` doses can never be replayed for more.
        bytes32 key = _claimUnitKey(claimId, unit);
        if (_splitSettlements[key] != 0) revert AlreadySettledUnderClaim(unit, claimId);
        split.settled += quantity;
        _splitSettlements[key] = quantity;
        uint32 packQuantity = productOf(batchOf(run.batchId).productId).packQuantity;
        if (split.settled == packQuantity) _setLane(runId, index, _lane(runId, index) | LANE_SETTLED);
        emit UnitSettledPartially(claimId, insurerId, pharmacyId, claimRef, unit, quantity, split.settled);
    }

    /**
     * @notice Reverses the calling insurer's own settlement of whole packs, also of a suspended pharmacy. The units
     * stay dispensed, and their return window stays closed: the pharmacy's consent to bill made the sale final.
     * @param claimRef The claim reference they were settled under (for the record; the ledger checks the insurer).
     * @param pharmacy The pharmacy that dispensed them.
     * @param units Packed unit refs, each settled by the caller.
     * @param reason Why, for the audit trail.
     */
    function reverseSettlement(
        bytes32 claimRef,
        address pharmacy,
        bytes calldata units,
        string calldata reason
    ) external {
        (uint32 insurerId, uint256 insurerIndex, uint32 pharmacyId, bytes32 claimId) = _claimParties(
            claimRef,
            pharmacy,
            false
        );
        _walkUnits(units, Walk.Reverse, pharmacyId, insurerIndex);
        emit SettlementReversed(claimId, insurerId, pharmacyId, claimRef, units, reason);
    }

    /**
     * @notice Reverses everything the calling insurer settled of a split pack under a claim.
     * @param claimRef The claim reference.
     * @param pharmacy The pharmacy that dispensed the pack.
     * @param unit The unit ref.
     * @param reason Why, for the audit trail.
     */
    function reversePartialSettlement(
        bytes32 claimRef,
        address pharmacy,
        uint256 unit,
        string calldata reason
    ) external {
        (uint32 insurerId, , uint32 pharmacyId, bytes32 claimId) = _claimParties(claimRef, pharmacy, false);
        (uint32 runId, uint32 index, ) = _splitUnitOf(unit, pharmacyId);
        bytes32 key = _claimUnitKey(claimId, unit);
        uint32 quantity = _splitSettlements[key];
        if (quantity == 0) revert NotSettledUnderClaim(unit, claimId);
        delete _splitSettlements[key];
        _splitPack(runId, index).settled -= quantity;
        _setLane(runId, index, _lane(runId, index) & ~LANE_SETTLED);
        emit PartialSettlementReversed(claimId, insurerId, pharmacyId, claimRef, unit, quantity, reason);
    }

    /**
     * @notice The participant id of the insurer that settled a whole pack (0 when it is not settled).
     */
    function settlementOf(uint256 ref) external view returns (uint32) {
        (uint32 runId, uint32 index) = _decodeUnit(ref);
        uint256 lane = _lane(runId, index);
        if (lane & LANE_SETTLED == 0 || lane & LANE_SPLIT != 0) return 0;
        return _insurerId(lane >> LANE_FIELD_SHIFT);
    }

    /**
     * @notice The ledger's id of insurer `insurerId`'s claim `claimRef`.
     */
    function claimIdOf(uint32 insurerId, bytes32 claimRef) public pure returns (bytes32) {
        return keccak256(abi.encode(insurerId, claimRef));
    }

    /// @dev The parties of a settlement (`settling`: the pharmacy must be active) or of a reversal (a suspended
    /// pharmacy's insurers can still take back what they paid it).
    function _claimParties(
        bytes32 claimRef,
        address pharmacy,
        bool settling
    ) private view returns (uint32 insurerId, uint256 insurerIndex, uint32 pharmacyId, bytes32 claimId) {
        (insurerId, insurerIndex) = _activeInsurer();
        pharmacyId =
            settling ? _activeParticipant(pharmacy, Role.Pharmacy) : _participantWithRole(pharmacy, Role.Pharmacy);
        claimId = _claimId(insurerId, claimRef);
    }

    /// @dev The claim id, refusing the empty reference.
    function _claimId(uint32 insurerId, bytes32 claimRef) private pure returns (bytes32) {
        if (claimRef == bytes32(0)) revert InvalidClaimRef();
        return claimIdOf(insurerId, claimRef);
    }

    function _requireConsent(
        address pharmacy,
        bytes32 claimRef,
        bytes32 unitsHash,
        uint32 quantity,
        bytes calldata consent
    ) private view {
        (address signer, ECDSA.RecoverError error, ) = ECDSA.tryRecover(
            _consentDigest(msg.sender, claimRef, unitsHash, quantity),
            consent
        );
        if (error != ECDSA.RecoverError.NoError || signer != pharmacy) revert InvalidConsent(pharmacy);
    }

    function _consentDigest(
        address insurer,
        bytes32 claimRef,
        bytes32 unitsHash,
        uint32 quantity
    ) private view returns (bytes32) {
        return
            _hashTypedDataV4(
                keccak256(abi.encode(SETTLEMENT_CONSENT_TYPEHASH, insurer, claimRef, unitsHash, quantity))
            );
    }

    /// @dev A split pack's run and index, if `pharmacyId` dispensed it.
    function _splitUnitOf(
        uint256 unit,
        uint32 pharmacyId
    ) private view returns (uint32 runId, uint32 index, Run memory run) {
        (runId, index) = _decodeUnit(unit);
        run = _run(runId);
        _requireExists(run, Refs.UNIT, index, unit);
        if (_lane(runId, index) & LANE_SPLIT == 0) revert UnitNotSplit(unit);
        uint32 holderId = uint32(_effectiveEntry(runId, run, Refs.UNIT, index) & VALUE_MASK);
        if (holderId != pharmacyId) revert DispensedByAnotherPharmacy(unit, holderId);
    }

    function _claimUnitKey(bytes32 claimId, uint256 unit) private pure returns (bytes32) {
        return keccak256(abi.encode(claimId, unit));
    }
}
