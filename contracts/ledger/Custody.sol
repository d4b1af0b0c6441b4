// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {Commissioning} from "./Commissioning.sol";
import {Refs} from "./Refs.sol";

/**
 * @dev Custody at the granularity at which goods move. Every unit, case and pallet has a 64-bit custody entry,
 * four to a storage slot, and an entry of zero means "wherever my parent is": a unit follows its case, a case its
 * pallet, a pallet its manufacturer. Commissioning writes nothing; shipping a pallet writes one entry and moves
 * everything on it; only what leaves its parent gets an entry of its own.
 *
 * A case is *opened* when a unit leaves it (dispensed, decommissioned, or shipped loose). An opened case no
 * longer ships whole, which keeps a dispensed unit's holder, the dispensing pharmacy, fixed for good. A unit gets
 * an entry of its own only by leaving its case (shipped loose or decommissioned; receipts and returns then update
 * that entry), and its case is flagged LOOSE_UNITS, so that resolving the units of other cases never reads unit
 * entries.
 *
 * A shipment is in transit until its recipient receives it. A partial receipt leaves the rest in transit under the
 * shipment until it is received late or the sender takes it back, so nothing is lost; a shipment that closes (nothing
 * left in transit) with some but not all of its items received closed short, and records a discrepancy (one taken
 * back whole was cancelled).
 */
abstract contract Custody is Commissioning {
    uint64 internal constant IN_TRANSIT = 1 << 63;
    uint64 internal constant OPENED = 1 << 62;
    uint64 internal constant DECOMMISSIONED = 1 << 61;
    uint64 internal constant LOOSE_UNITS = 1 << 60;
    uint64 internal constant VALUE_MASK = (1 << 40) - 1;
    uint64 private constant CASE_FLAGS = OPENED | LOOSE_UNITS;
    uint256 internal constant NO_KEY = type(uint256).max;

    /// @dev Caches the own entry of the case last looked at, for loops over units of the same cases.
    struct CaseCursor {
        uint256 key;
        uint64 own;
    }

    enum DecommissionReason {
        Destroyed,
        Damaged,
        Stolen,
        Sample
    }

    struct Shipment {
        uint32 fromId;
        uint32 toId;
        uint32 itemCount;
        uint32 received;
        uint32 returned;
        uint40 shippedAt;
        bool discrepancy;
    }

    /// @dev Key: runId << 40 | level << 32 | index >> 2; four 64-bit entries per word.
    mapping(uint256 key => uint256 word) private _custody;
    mapping(uint40 shipmentId => Shipment) private _shipments;
    uint40 private _shipmentCount;

    event ShipmentCreated(uint40 indexed shipmentId, uint32 indexed fromId, uint32 indexed toId, bytes items);
    event ShipmentReceived(uint40 indexed shipmentId, uint32 indexed toId, bytes items, uint32 outstanding);
    /// @notice The shipment closed short: of `shipped` items, `received` arrived and `returned` went back.
    event ShipmentDiscrepancy(
        uint40 indexed shipmentId,
        uint32 indexed fromId,
        uint32 indexed toId,
        uint32 shipped,
        uint32 received,
        uint32 returned
    );
    event ShipmentReturned(uint40 indexed shipmentId, uint32 indexed fromId, bytes items, uint32 outstanding);
    event Decommissioned(uint32 indexed holderId, DecommissionReason reason, bytes items);

    error ShipToSelf();
    error UnknownShipment(uint40 shipmentId);
    error NotShipmentParty(uint40 shipmentId, address account);
    error NotHolder(uint256 ref, uint32 holderId);
    error ItemInTransit(uint256 ref, uint40 shipmentId);
    error NotInShipment(uint256 ref, uint40 shipmentId);
    error ItemDecommissioned(uint256 ref);
    error CaseOpened(uint256 ref);
    error UnitDispensed(uint256 ref);

    /**
     * @notice Ships units, cases or pallets held by the caller to another holder; they are in transit until
     * received.
     * @param to The recipient (an active manufacturer, distributor or pharmacy).
     * @param items Packed refs of what is shipped (see {Refs}); a case or pallet carries everything still in it.
     * @return shipmentId The shipment, for {receiveShipment} and {returnToSender}.
     */
    function ship(address to, bytes calldata items) external returns (uint40 shipmentId) {
        uint32 fromId = _activeHolder();
        uint32 toId = _activeHolder(to);
        if (toId == fromId) revert ShipToSelf();
        shipmentId = ++_shipmentCount;
        uint256 count = _takeAll(items, fromId, IN_TRANSIT | shipmentId);
        _shipments[shipmentId] = Shipment({
            fromId: fromId,
            toId: toId,
            itemCount: uint32(count),
            received: 0,
            returned: 0,
            shippedAt: uint40(block.timestamp),
            discrepancy: false
        });
        emit ShipmentCreated(shipmentId, fromId, toId, items);
    }

    /**
     * @notice Receives items of a shipment addressed to the caller. Items of the shipment not yet received or
     * returned stay in transit.
     * @param shipmentId The shipment.
     * @param items The items that arrived (all or part of the shipment).
     */
    function receiveShipment(uint40 shipmentId, bytes calldata items) external {
        Shipment storage shipment = _shipment(shipmentId);
        uint32 toId = shipment.toId;
        if (_activeHolder() != toId) revert NotShipmentParty(shipmentId, msg.sender);
        shipment.received += _settleTransit(shipmentId, items, toId);
        uint32 outstanding = shipment.itemCount - shipment.received - shipment.returned;
        emit ShipmentReceived(shipmentId, toId, items, outstanding);
        if (outstanding == 0) _closeShipment(shipmentId, shipment);
    }

    /**
     * @notice Takes items of a shipment back into the sender's custody: a cancelled shipment, or what the
     * recipient did not receive.
     * @param shipmentId The shipment.
     * @param items Items still in transit under it.
     */
    function returnToSender(uint40 shipmentId, bytes calldata items) external {
        Shipment storage shipment = _shipment(shipmentId);
        uint32 fromId = shipment.fromId;
        if (_activeHolder() != fromId) revert NotShipmentParty(shipmentId, msg.sender);
        shipment.returned += _settleTransit(shipmentId, items, fromId);
        uint32 outstanding = shipment.itemCount - shipment.received - shipment.returned;
        emit ShipmentReturned(shipmentId, fromId, items, outstanding);
        if (outstanding == 0) _closeShipment(shipmentId, shipment);
    }

    /// @dev A shipment with nothing left in transit: short when part of it was received and the rest went back (all
    /// of it received is complete, none of it received a cancellation).
    function _closeShipment(uint40 shipmentId, Shipment storage shipment) private {
        if (shipment.received == shipment.itemCount || shipment.received == 0) return;
        shipment.discrepancy = true;
        emit ShipmentDiscrepancy(
            shipmentId,
            shipment.fromId,
            shipment.toId,
            shipment.itemCount,
            shipment.received,
            shipment.returned
        );
    }

    /**
     * @notice Takes units, cases or pallets held by the caller out of circulation for good.
     * @param items Refs; an opened case cannot be decommissioned whole (decommission its remaining units).
     * @param reason Destroyed, damaged, stolen or sample.
     */
    function decommission(bytes calldata items, DecommissionReason reason) external {
        uint32 holderId = _activeHolder();
        _takeAll(items, holderId, DECOMMISSIONED | holderId);
        emit Decommissioned(holderId, reason, items);
    }

    /**
     * @notice Where an item is: its holder's participant id, or the shipment carrying it, and whether it has been
     * decommissioned (directly or with its case or pallet).
     */
    function custodyOf(
        uint256 ref
    ) external view returns (uint32 holderId, uint40 inTransitShipment, bool decommissioned) {
        (uint32 runId, uint8 level, uint32 index) = Refs.decode(ref);
        Run memory run = _run(runId);
        _requireExists(run, level, index, ref);
        uint64 entry = _effectiveEntry(runId, run, level, index);
        if (entry & IN_TRANSIT != 0) {
            inTransitShipment = uint40(entry & VALUE_MASK);
            holderId = _shipments[inTransitShipment].fromId;
        } else {
            holderId = uint32(entry & VALUE_MASK);
        }
        decommissioned = entry & DECOMMISSIONED != 0;
    }

    /**
     * @notice A shipment's parties, size and progress (`fromId` 0 when unknown).
     */
    function shipmentOf(uint40 shipmentId) external view returns (Shipment memory) {
        return _shipments[shipmentId];
    }

    /// @dev Takes every listed item from `holderId` (see {_takeFromHolder}) and gives it `newEntry`.
    function _takeAll(bytes calldata items, uint32 holderId, uint64 newEntry) private returns (uint256 count) {
        count = Refs.count(items);
        Run memory run;
        uint32 cachedRunId;
        for (uint256 i; i < count; ++i) {
            uint256 ref = Refs.at(items, i);
            (uint32 runId, uint8 level, uint32 index) = Refs.decode(ref);
            if (runId != cachedRunId) (run, cachedRunId) = (_run(runId), runId);
            _requireExists(run, level, index, ref);
            _takeFromHolder(runId, run, level, index, ref, holderId);
            _setEntry(runId, level, index, newEntry);
        }
    }

    /**
     * @dev Checks that participant `holderId` holds the item outright (not in transit, not decommissioned, not
     * dispensed, not an opened case) and detaches a loose unit from its case by opening the case.
     */
    function _takeFromHolder(
        uint32 runId,
        Run memory run,
        uint8 level,
        uint32 index,
        uint256 ref,
        uint32 holderId
    ) private {
        uint64 own = _entry(runId, level, index);
        if (level == Refs.CASE && own & OPENED != 0) revert CaseOpened(ref);
        if (level == Refs.UNIT && _isDispensed(runId, index)) revert UnitDispensed(ref);
        _requireHeldBy(_effectiveEntry(runId, run, level, index), ref, holderId);
        if (level == Refs.UNIT && run.unitsPerCase != 0) {
            // The unit is about to get an entry of its own: open its case (pinned where it is) and flag it.
            uint32 caseIndex = index / run.unitsPerCase;
            uint64 caseOwn = _entry(runId, Refs.CASE, caseIndex);
            if (caseOwn & OPENED == 0) caseOwn = OPENED | holderId;
            _setEntry(runId, Refs.CASE, caseIndex, caseOwn | LOOSE_UNITS);
        }
    }

    /// @dev Moves items out of transit under `shipmentId` to `newHolderId`; returns how many.
    function _settleTransit(
        uint40 shipmentId,
        bytes calldata items,
        uint32 newHolderId
    ) private returns (uint32 count) {
        count = uint32(Refs.count(items));
        uint64 transit = IN_TRANSIT | shipmentId;
        for (uint256 i; i < count; ++i) {
            uint256 ref = Refs.at(items, i);
            (uint32 runId, uint8 level, uint32 index) = Refs.decode(ref);
            if (_entry(runId, level, index) != transit) revert NotInShipment(ref, shipmentId);
            _setEntry(runId, level, index, newHolderId);
        }
    }

    function _shipment(uint40 shipmentId) private view returns (Shipment storage shipment) {
        shipment = _shipments[shipmentId];
        if (shipment.fromId == 0) revert UnknownShipment(shipmentId);
    }

    /// @dev Reverts unless `entry` says participant `holderId` holds the item at rest.
    function _requireHeldBy(uint64 entry, uint256 ref, uint32 holderId) internal pure {
        if (entry & IN_TRANSIT != 0) revert ItemInTransit(ref, uint40(entry & VALUE_MASK));
        if (entry & DECOMMISSIONED != 0) revert ItemDecommissioned(ref);
        if (uint32(entry & VALUE_MASK) != holderId) revert NotHolder(ref, uint32(entry & VALUE_MASK));
    }

    /// @dev Effective entry of unit `index`, loading its case's own entry through `cursor`.
    function _unitEntry(
        CaseCursor memory cursor,
        uint32 runId,
        Run memory run,
        uint32 index
    ) internal view returns (uint64) {
        if (run.unitsPerCase == 0) {
            uint64 own = _entry(runId, Refs.UNIT, index);
            return own != 0 ? own : run.manufacturerId;
        }
        uint32 caseIndex = index / run.unitsPerCase;
        uint256 key = (uint256(runId) << 32) | caseIndex;
        if (cursor.key != key) (cursor.key, cursor.own) = (key, _entry(runId, Refs.CASE, caseIndex));
        if (cursor.own & LOOSE_UNITS != 0) {
            uint64 own = _entry(runId, Refs.UNIT, index);
            if (own != 0) return own;
        }
        if (cursor.own != 0) return cursor.own & ~CASE_FLAGS;
        return _containerEntry(runId, run, Refs.CASE, caseIndex);
    }

    /// @dev Opens the case last loaded into `cursor` (if the run has cases and it is not open yet).
    function _openCase(CaseCursor memory cursor, Run memory run, uint32 runId, uint32 holderId) internal {
        if (run.unitsPerCase == 0 || cursor.own & OPENED != 0) return;
        cursor.own = OPENED | holderId;
        _setEntry(runId, Refs.CASE, uint32(cursor.key), cursor.own);
    }

    /// @dev The entry that decides where an item is: its own, else its parent's.
    function _effectiveEntry(uint32 runId, Run memory run, uint8 level, uint32 index) internal view returns (uint64) {
        if (level == Refs.UNIT) return _unitEntry(CaseCursor(NO_KEY, 0), runId, run, index);
        return _containerEntry(runId, run, level, index);
    }

    function _containerEntry(uint32 runId, Run memory run, uint8 level, uint32 index) private view returns (uint64) {
        uint64 own = _entry(runId, level, index);
        if (own != 0) return own & ~CASE_FLAGS;
        if (level == Refs.CASE && run.casesPerPallet != 0) {
            own = _entry(runId, Refs.PALLET, index / run.casesPerPallet);
            if (own != 0) return own;
        }
        return run.manufacturerId;
    }

    function _entry(uint32 runId, uint8 level, uint32 index) internal view returns (uint64) {
        return uint64(_custody[_custodyKey(runId, level, index)] >> ((index & 3) << 6));
    }

    function _setEntry(uint32 runId, uint8 level, uint32 index, uint64 entry) internal {
        uint256 shift = uint256(index & 3) << 6;
        uint256 key = _custodyKey(runId, level, index);
        _custody[key] = (_custody[key] & ~(uint256(type(uint64).max) << shift)) | (uint256(entry) << shift);
    }

    function _custodyKey(uint32 runId, uint8 level, uint32 index) private pure returns (uint256) {
        return (uint256(runId) << 40) | (uint256(level) << 32) | (index >> 2);
    }

    /// @dev Whether unit `index` of `runId` is dispensed, wholly or in part (see {Dispensing}).
    function _isDispensed(uint32 runId, uint32 index) internal view virtual returns (bool);
}
