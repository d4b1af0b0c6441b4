// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {Products} from "./Products.sol";

/**
 * @dev Manufacturing batches (lots) of a product, and their recall. A batch is registered once per product and
 * lot; its units are commissioned afterwards, in one or more runs (see {Commissioning}).
 */
abstract contract Batches is Products {
    /// @dev Bounds the shelf life so that a dispensing day kept modulo 8,191 days can never be ambiguous.
    uint256 internal constant MAX_SHELF_LIFE = 20 * 365 days;

    struct Batch {
        uint32 productId;
        uint32 manufacturerId;
        uint40 manufacturedOn;
        uint40 expiresOn;
        bool recalled;
    }

    mapping(uint32 batchId => Batch) private _batches;
    mapping(bytes32 productLot => uint32) private _batchByLot;
    uint32 private _batchCount;

    event BatchRegistered(
        uint32 indexed batchId,
        uint32 indexed productId,
        uint32 indexed manufacturerId,
        string lot,
        uint40 manufacturedOn,
        uint40 expiresOn
    );
    event BatchRecalled(uint32 indexed batchId, address indexed by, string reason);
    event BatchRecallLifted(uint32 indexed batchId, address indexed by, string reason);

    error InvalidLot();
    error InvalidDates(uint40 manufacturedOn, uint40 expiresOn);
    error BatchAlreadyRegistered(uint32 productId, string lot, uint32 batchId);
    error UnknownBatch(uint32 batchId);
    error NotBatchManufacturer(uint32 batchId, address account);
    error BatchIsRecalled(uint32 batchId);
    error BatchNotRecalled(uint32 batchId);

    /**
     * @notice Registers a batch of one of the caller's products.
     * @param productId The product.
     * @param lot Lot (batch) number as printed, at most 20 characters (GS1 AI 10).
     * @param manufacturedOn Manufacture date (unix seconds, not in the future).
     * @param expiresOn Expiry (unix seconds; packs are unusable from this instant on).
     * @return batchId Id used by commissioning runs and events.
     */
    function registerBatch(
        uint32 productId,
        string calldata lot,
        uint40 manufacturedOn,
        uint40 expiresOn
    ) external returns (uint32 batchId) {
        uint32 manufacturerId = _activeCaller(Role.Manufacturer);
        _ownProduct(productId, manufacturerId);
        if (bytes(lot).length == 0 || bytes(lot).length > 20) revert InvalidLot();
        // A manufacture date in the future would stretch the dispensable life past MAX_SHELF_LIFE.
        if (
            manufacturedOn > block.timestamp ||
            expiresOn <= manufacturedOn ||
            expiresOn - manufacturedOn > MAX_SHELF_LIFE
        ) {
            revert InvalidDates(manufacturedOn, expiresOn);
        }
        bytes32 key = keccak256(abi.encode(productId, lot));
        uint32 existing = _batchByLot[key];
        if (existing != 0) revert BatchAlreadyRegistered(productId, lot, existing);
        batchId = ++_batchCount;
        _batchByLot[key] = batchId;
        _batches[batchId] = Batch({
            productId: productId,
            manufacturerId: manufacturerId,
            manufacturedOn: manufacturedOn,
            expiresOn: expiresOn,
            recalled: false
        });
        emit BatchRegistered(batchId, productId, manufacturerId, lot, manufacturedOn, expiresOn);
    }

    /**
     * @notice Recalls a batch: its units can no longer be dispensed. Callable by the product's manufacturer or a
     * regulator.
     * @param batchId The batch.
     * @param reason Why, for pharmacies and the audit trail.
     */
    function recallBatch(uint32 batchId, string calldata reason) external {
        Batch storage batch = _existingBatch(batchId);
        // Not `_activeCaller`: a recall is a safety action, allowed while business writes are paused.
        if (
            !hasRole(REGULATOR_ROLE, msg.sender) &&
            _activeParticipant(msg.sender, Role.Manufacturer) != batch.manufacturerId
        ) {
            revert NotBatchManufacturer(batchId, msg.sender);
        }
        if (batch.recalled) revert BatchIsRecalled(batchId);
        batch.recalled = true;
        emit BatchRecalled(batchId, msg.sender, reason);
    }

    /**
     * @notice Lifts a recall (regulators only).
     * @param batchId The batch.
     * @param reason Why, for the audit trail.
     */
    function liftRecall(uint32 batchId, string calldata reason) external onlyRole(REGULATOR_ROLE) {
        Batch storage batch = _existingBatch(batchId);
        if (!batch.recalled) revert BatchNotRecalled(batchId);
        batch.recalled = false;
        emit BatchRecallLifted(batchId, msg.sender, reason);
    }

    /**
     * @notice A registered batch (product id 0 when unknown).
     */
    function batchOf(uint32 batchId) public view returns (Batch memory) {
        return _batches[batchId];
    }

    function _existingBatch(uint32 batchId) internal view returns (Batch storage batch) {
        batch = _batches[batchId];
        if (batch.productId == 0) revert UnknownBatch(batchId);
    }
}
