// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {Custody} from "./Custody.sol";
import {Refs} from "./Refs.sol";

/**
 * @dev Dispensing to patients. Each unit has a 16-bit status lane, sixteen to a storage slot:
 *
 *   bit 0 DISPENSED, bit 1 SETTLED, bit 2 SPLIT, bits 3-15 a 13-bit field
 *
 * While a unit is dispensed and not settled the field holds the last day of its return window (days modulo 8,191,
 * plus one), fixed when it was dispensed, so that a later change of the window never reopens a closed return; once
 * settled it holds the settling insurer's index (see {Settlement}); zero means the return window is closed. A split
 * pack (拆零) is dispensed in parts whose quantities live in a record of its own; its lane carries SPLIT, and
 * DISPENSED once the pack is used up.
 *
 * The dispensing pharmacy is never stored per unit: a dispensed unit cannot move and its case is opened (pinned),
 * so the unit's holder stays the pharmacy that dispensed it.
 */
abstract contract Dispensing is Custody {
    uint256 internal constant LANE_DISPENSED = 1;
    uint256 internal constant LANE_SETTLED = 2;
    uint256 internal constant LANE_SPLIT = 4;
    uint256 internal constant LANE_FIELD_SHIFT = 3;
    uint256 private constant DAY_MODULUS = 8191;
    uint16 public constant MAX_RETURN_WINDOW_DAYS = 90;

    struct SplitPack {
        uint32 dispensed;
        uint32 settled;
        /// @dev The latest day doses were dispensed, and how many that day: only those can be returned, until
        /// `lastDayDeadline` (the last day of their return window, fixed that day).
        uint16 lastDayCode;
        uint32 lastDayQuantity;
        uint16 lastDayDeadline;
    }

    /// @dev What a walk over units ({_walkUnits}) does to each of them.
    enum Walk {
        Dispense,
        Undo,
        Settle,
        Reverse
    }

    /// @dev Key: runId << 32 | index >> 4; sixteen 16-bit lanes per word.
    mapping(uint256 key => uint256 word) private _status;
    mapping(uint32 runId => mapping(uint32 index => SplitPack)) private _splits;

    event UnitsDispensed(uint32 indexed pharmacyId, bytes32 indexed prescriptionHash, bytes units);
    event UnitDispensedPartially(
        uint32 indexed pharmacyId,
        bytes32 indexed prescriptionHash,
        uint256 unit,
        uint32 quantity,
        uint32 dispensedTotal,
        uint32 packQuantity
    );
    event DispensingUndone(uint32 indexed pharmacyId, bytes units);
    event PartialDispensingUndone(uint32 indexed pharmacyId, uint256 unit, uint32 quantity, uint32 dispensedTotal);
    event ReturnWindowChanged(uint16 previousDays, uint16 returnWindowDays);

    error NotAUnit(uint256 ref);
    error UnitExpired(uint256 ref, uint40 expiresOn);
    error UnitRecalled(uint256 ref, uint32 batchId);
    error UnitAlreadyDispensed(uint256 ref);
    error UnitNotDispensed(uint256 ref);
    error UnitIsSettled(uint256 ref);
    error UnitIsSplit(uint256 ref);
    error PackNotSplittable(uint256 ref);
    error InvalidQuantity(uint256 ref, uint32 quantity, uint32 available);
    error ReturnWindowClosed(uint256 ref);
    error ReturnWindowTooLong(uint16 returnWindowDays, uint16 maxDays);
    /// @dev `insurerId` settled the unit earlier (the index names the claim, from the events).
    error UnitAlreadySettled(uint256 ref, uint32 insurerId);
    /// @dev The caller did not settle the unit (`settledBy`: the insurer that did, or 0).
    error NotSettledByInsurer(uint256 ref, uint32 settledBy);
    error DispensedByAnotherPharmacy(uint256 ref, uint32 dispensingPharmacyId);

    /**
     * @notice Records whole packs dispensed to a patient by the calling pharmacy, which must hold them. A unit is
     * dispensed at most once; expired, recalled and decommissioned units are refused.
     * @param units Packed unit refs (see {Refs}).
     * @param prescriptionHash Hash of the prescription or claim (no personal data), or zero.
     */
    function dispense(bytes calldata units, bytes32 prescriptionHash) external {
        uint32 pharmacyId = _activeCaller(Role.Pharmacy);
        _walkUnits(units, Walk.Dispense, pharmacyId, 0);
        emit UnitsDispensed(pharmacyId, prescriptionHash, units);
    }

    /**
     * @notice Undoes the caller's own dispensing of whole packs (a return at the counter) within the return
     * window, unless a unit was settled or has expired since.
     * @param units Packed refs of units dispensed by the caller.
     */
    function undoDispense(bytes calldata units) external {
        uint32 pharmacyId = _activeCaller(Role.Pharmacy);
        _walkUnits(units, Walk.Undo, pharmacyId, 0);
        emit DispensingUndone(pharmacyId, units);
    }

    /**
     * @notice Dispenses part of a pack (拆零). Parts add up to the product's pack quantity, after which the pack
     * counts as dispensed; none of this is a duplicate.
     * @param unit The unit ref.
     * @param quantity Doses dispensed now.
     * @param prescriptionHash Hash of the prescription or claim, or zero.
     */
    function dispensePartial(uint256 unit, uint32 quantity, bytes32 prescriptionHash) external {
        uint32 pharmacyId = _activeCaller(Role.Pharmacy);
        (uint32 runId, uint32 index) = _decodeUnit(unit);
        Run memory run = _dispensableRun(runId, unit);
        _requireExists(run, Refs.UNIT, index, unit);
        uint32 packQuantity = productOf(batchOf(run.batchId).productId).packQuantity;
        if (packQuantity < 2) revert PackNotSplittable(unit);
        uint256 lane = _lane(runId, index);
        if (lane & LANE_DISPENSED != 0) revert UnitAlreadyDispensed(unit);
        CaseCursor memory cases = CaseCursor(NO_KEY, 0);
        _requireHeldBy(_unitEntry(cases, runId, run, index), unit, pharmacyId);
        SplitPack storage split = _splits[runId][index];
        uint32 available = packQuantity - split.dispensed;
        if (quantity == 0 || quantity > available) revert InvalidQuantity(unit, quantity, available);
        _openCase(cases, run, runId, pharmacyId);
        split.dispensed += quantity;
        uint16 today = uint16(_dayCode(0));
        if (split.lastDayCode == today) {
            split.lastDayQuantity += quantity;
        } else {
            (split.lastDayCode, split.lastDayQuantity) = (today, quantity);
            split.lastDayDeadline = uint16(_dayCode(_returnWindowDays));
        }
        _setLane(runId, index, LANE_SPLIT | (split.dispensed == packQuantity ? LANE_DISPENSED : 0));
        emit UnitDispensedPartially(pharmacyId, prescriptionHash, unit, quantity, split.dispensed, packQuantity);
    }

    /**
     * @notice Takes back doses of a split pack dispensed on its latest dispensing day, within the return window in
     * force that day and up to what is not settled. Doses of earlier days stay dispensed, so dispensing one
     * more dose can never reopen the window for older ones.
     * @param unit The unit ref.
     * @param quantity Doses taken back.
     */
    function undoDispensePartial(uint256 unit, uint32 quantity) external {
        uint32 pharmacyId = _activeCaller(Role.Pharmacy);
        (uint32 runId, uint32 index) = _decodeUnit(unit);
        Run memory run = _unexpiredRun(runId, unit);
        _requireExists(run, Refs.UNIT, index, unit);
        if (_lane(runId, index) & LANE_SPLIT == 0) revert UnitNotDispensed(unit);
        _requireHeldBy(_effectiveEntry(runId, run, Refs.UNIT, index), unit, pharmacyId);
        SplitPack storage split = _splits[runId][index];
        if (!_withinWindow(split.lastDayDeadline, _dayCode(0))) revert ReturnWindowClosed(unit);
        uint32 available = split.dispensed - split.settled;
        if (split.lastDayQuantity < available) available = split.lastDayQuantity;
        if (quantity == 0 || quantity > available) revert InvalidQuantity(unit, quantity, available);
        split.dispensed -= quantity;
        split.lastDayQuantity -= quantity;
        _setLane(runId, index, split.dispensed == 0 ? 0 : LANE_SPLIT);
        emit PartialDispensingUndone(pharmacyId, unit, quantity, split.dispensed);
    }

    /**
     * @notice Sets the return window in days (regulators), at most 90. It applies to dispensings from now on: each
     * dispensing keeps the window in force when it was made, so no closed return ever opens again.
     */
    function setReturnWindow(uint16 returnWindowDays) external onlyRole(REGULATOR_ROLE) {
        if (returnWindowDays > MAX_RETURN_WINDOW_DAYS)
            revert ReturnWindowTooLong(returnWindowDays, MAX_RETURN_WINDOW_DAYS);
        emit ReturnWindowChanged(_returnWindowDays, returnWindowDays);
        _returnWindowDays = returnWindowDays;
    }

    /**
     * @notice The return window in days.
     */
    function returnWindow() external view returns (uint16) {
        return _returnWindowDays;
    }

    /**
     * @notice The status lane of a unit and, for a split pack, its dispensed and settled quantities.
     * @return dispensed Whole pack dispensed (or a split pack used up).
     * @return settled Whole pack settled (or a split pack fully settled).
     * @return split Dispensed in parts.
     * @return splitDispensed Doses dispensed from a split pack.
     * @return splitSettled Doses settled from a split pack.
     */
    function dispensingOf(
        uint256 ref
    ) external view returns (bool dispensed, bool settled, bool split, uint32 splitDispensed, uint32 splitSettled) {
        (uint32 runId, uint32 index) = _decodeUnit(ref);
        uint256 lane = _lane(runId, index);
        SplitPack storage pack = _splits[runId][index];
        return (
            lane & LANE_DISPENSED != 0,
            lane & LANE_SETTLED != 0,
            lane & LANE_SPLIT != 0,
            pack.dispensed,
            pack.settled
        );
    }

    /**
     * @dev The one loop behind dispensing, undoing, settling and reversing whole packs. It keeps the status word
     * and the case entry it last touched on the stack, so a hundred units of a few cases cost a few storage writes,
     * not a hundred. `actorId` is the dispensing pharmacy (Dispense, Undo) or the pharmacy that must have dispensed
     * the units (Settle, Reverse); `insurerIndex` is the settling insurer's (Settle, Reverse).
     */
    function _walkUnits(bytes calldata units, Walk walk, uint32 actorId, uint256 insurerIndex) internal {
        uint256 count = Refs.count(units);
        uint256 newLane = _walkLane(walk, insurerIndex);
        // What every unit's lane must look like, so that the loop checks it with one comparison; a unit that fails
        // is examined again to name what is wrong with it.
        uint256 rule = _laneRule(walk, insurerIndex);
        uint256 wordKey = NO_KEY;
        uint256 word;
        // The case whose holder was last checked: every unit still in it (no LOOSE_UNITS) shares that holder.
        CaseCursor memory cases = CaseCursor(NO_KEY, 0);
        uint256 checkedCase = NO_KEY;
        Run memory run;
        uint32 runId;
        for (uint256 i; i < count;) {
            uint256 ref = Refs.at(units, i);
            if (uint8(ref >> 32) != Refs.UNIT) revert NotAUnit(ref);
            uint32 index = uint32(ref);
            if (uint32(ref >> 40) != runId) {
                runId = uint32(ref >> 40);
                run = _runFor(walk, runId, ref);
                checkedCase = NO_KEY;
            }
            if (index >= run.unitCount) revert UnknownItem(ref);
            uint256 key = _statusKey(runId, index);
            if (key != wordKey) {
                if (wordKey != NO_KEY) _status[wordKey] = word;
                (wordKey, word) = (key, _status[key]);
            }
            uint256 shift = uint256(index & 15) << 4;
            uint256 lane = (word >> shift) & 0xffff;
            if (lane & (rule >> 16) != rule & 0xffff || walk == Walk.Undo) _checkLane(walk, lane, ref);
            if (run.unitsPerCase == 0 || index / run.unitsPerCase != checkedCase) {
                _checkUnitHolder(walk, cases, runId, run, index, ref, actorId);
                checkedCase = cases.own & LOOSE_UNITS != 0 || run.unitsPerCase == 0 ? NO_KEY : uint32(cases.key);
            }
            word = (word & ~(uint256(0xffff) << shift)) | (newLane << shift);
            unchecked {
                ++i;
            }
        }
        _status[wordKey] = word;
    }

    /// @dev The lane a walk gives each unit: dispensed with its return deadline, settled by the insurer, or (undone)
    /// nothing, or (reversed) dispensed with the return window closed: the pharmacy's consent to bill made the sale
    /// final.
    function _walkLane(Walk walk, uint256 insurerIndex) private view returns (uint256) {
        if (walk == Walk.Dispense) return LANE_DISPENSED | (_dayCode(_returnWindowDays) << LANE_FIELD_SHIFT);
        if (walk == Walk.Settle) return LANE_DISPENSED | LANE_SETTLED | (insurerIndex << LANE_FIELD_SHIFT);
        if (walk == Walk.Reverse) return LANE_DISPENSED;
        return 0;
    }

    /// @dev The bits of a lane a walk checks (high 16 bits) and the value they must have (low 16 bits): not
    /// dispensed (Dispense); dispensed, whole and unsettled (Undo, Settle); settled whole by this insurer (Reverse).
    function _laneRule(Walk walk, uint256 insurerIndex) private pure returns (uint256) {
        if (walk == Walk.Dispense) return (LANE_DISPENSED | LANE_SPLIT) << 16;
        if (walk == Walk.Reverse)
            return (0xffff << 16) | LANE_DISPENSED | LANE_SETTLED | (insurerIndex << LANE_FIELD_SHIFT);
        return ((LANE_DISPENSED | LANE_SETTLED | LANE_SPLIT) << 16) | LANE_DISPENSED;
    }

    /// @dev Reverts with what is wrong with a lane that failed its walk's rule; checks an undo's return window.
    function _checkLane(Walk walk, uint256 lane, uint256 ref) private view {
        if (walk == Walk.Dispense) revert UnitAlreadyDispensed(ref);
        // A split pack's field is not an insurer index: it must never be read as one.
        if (lane & LANE_SPLIT != 0) revert UnitIsSplit(ref);
        uint256 field = lane >> LANE_FIELD_SHIFT;
        bool settled = lane & LANE_SETTLED != 0;
        if (walk == Walk.Reverse) revert NotSettledByInsurer(ref, settled ? _insurerId(field) : 0);
        if (walk == Walk.Settle && settled) revert UnitAlreadySettled(ref, _insurerId(field));
        if (lane & LANE_DISPENSED == 0) revert UnitNotDispensed(ref);
        if (settled) revert UnitIsSettled(ref);
        if (!_withinWindow(field, _dayCode(0))) revert ReturnWindowClosed(ref);
    }

    /// @dev Checks who holds unit `index` (the actor for Dispense and Undo, the dispensing pharmacy for Settle and
    /// Reverse), opening its case when dispensing.
    function _checkUnitHolder(
        Walk walk,
        CaseCursor memory cases,
        uint32 runId,
        Run memory run,
        uint32 index,
        uint256 ref,
        uint32 actorId
    ) private {
        uint64 entry = _unitEntry(cases, runId, run, index);
        if (walk == Walk.Settle || walk == Walk.Reverse) {
            uint32 holderId = uint32(entry & VALUE_MASK);
            if (holderId != actorId) revert DispensedByAnotherPharmacy(ref, holderId);
        } else {
            _requireHeldBy(entry, ref, actorId);
            if (walk == Walk.Dispense) _openCase(cases, run, runId, actorId);
        }
    }

    function _runFor(Walk walk, uint32 runId, uint256 ref) private view returns (Run memory) {
        if (walk == Walk.Dispense) return _dispensableRun(runId, ref);
        if (walk == Walk.Undo) return _unexpiredRun(runId, ref);
        return _run(runId);
    }

    function _isDispensed(uint32 runId, uint32 index) internal view override returns (bool) {
        return _lane(runId, index) & (LANE_DISPENSED | LANE_SPLIT) != 0;
    }

    function _splitPack(uint32 runId, uint32 index) internal view returns (SplitPack storage) {
        return _splits[runId][index];
    }

    function _decodeUnit(uint256 ref) internal pure returns (uint32 runId, uint32 index) {
        uint8 level;
        (runId, level, index) = Refs.decode(ref);
        if (level != Refs.UNIT) revert NotAUnit(ref);
    }

    function _lane(uint32 runId, uint32 index) internal view returns (uint256) {
        return (_status[_statusKey(runId, index)] >> ((index & 15) << 4)) & 0xffff;
    }

    function _setLane(uint32 runId, uint32 index, uint256 lane) internal {
        uint256 shift = uint256(index & 15) << 4;
        uint256 key = _statusKey(runId, index);
        _status[key] = (_status[key] & ~(uint256(0xffff) << shift)) | (lane << shift);
    }

    function _statusKey(uint32 runId, uint32 index) private pure returns (uint256) {
        return (uint256(runId) << 32) | (index >> 4);
    }

    function _dispensableRun(uint32 runId, uint256 ref) private view returns (Run memory run) {
        run = _run(runId);
        Batch memory batch = batchOf(run.batchId);
        if (block.timestamp >= batch.expiresOn) revert UnitExpired(ref, batch.expiresOn);
        if (batch.recalled) revert UnitRecalled(ref, run.batchId);
    }

    function _unexpiredRun(uint32 runId, uint256 ref) private view returns (Run memory run) {
        run = _run(runId);
        uint40 expiresOn = batchOf(run.batchId).expiresOn;
        if (block.timestamp >= expiresOn) revert UnitExpired(ref, expiresOn);
    }

    /// @dev The code of the UTC day `daysAhead` days from today (days modulo 8,191, plus one, so never zero).
    function _dayCode(uint256 daysAhead) private view returns (uint256) {
        return ((block.timestamp / 1 days + daysAhead) % DAY_MODULUS) + 1;
    }

    /// @dev Whether the return window that ends on day code `deadline` is still open on day code `today`. Day codes
    /// wrap every 8,191 days; a deadline is at most 90 days ahead when set and shelf life is bounded well below the
    /// wrap (undoing requires an unexpired pack), so a passed deadline never looks open again.
    function _withinWindow(uint256 deadline, uint256 today) private pure returns (bool) {
        if (deadline == 0) return false;
        return (deadline + DAY_MODULUS - today) % DAY_MODULUS <= MAX_RETURN_WINDOW_DAYS;
    }
}
