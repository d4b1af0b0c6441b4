// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {Participants} from "./Participants.sol";

/**
 * @dev Products registered by their manufacturer. A product code is either China's 7-digit drug identification
 * code (药品标识码, the first seven digits of a 20-digit traceability code) or a GS1 GTIN-14; each code is
 * registered once, and only its manufacturer can commission units of it.
 *
 * A manufacturer registers only product codes under the code prefixes a regulator assigned to it, so that no rival
 * can squat another maker's codes: `CN:<1-7 digits>` covers the drug identification codes that start with those
 * digits (an enterprise prefix, or one code), `GS1:<4-12 digits>` the GTINs whose digits after the indicator digit
 * start with them (a GS1 company prefix, written as in a GTIN-13). A prefix belongs to one manufacturer at a time;
 * the longest assigned prefix that covers a code decides. A regulator can reassign a product registered in error.
 */
abstract contract Products is Participants {
    struct Product {
        uint32 manufacturerId;
        /// @dev Doses (tablets, vials...) in one pack; above 1 a pack may be dispensed split (拆零).
        uint32 packQuantity;
    }

    uint256 private constant CN_CODE_DIGITS = 7;
    uint256 private constant GTIN_DIGITS = 14;
    uint256 private constant GS1_PREFIX_MIN = 4;
    uint256 private constant GS1_PREFIX_MAX = 12;

    mapping(uint32 productId => Product) private _products;
    mapping(bytes32 codeHash => uint32) private _productByCode;
    mapping(bytes32 prefixHash => uint32 manufacturerId) private _prefixOwners;
    uint32 private _productCount;

    event ProductRegistered(
        uint32 indexed productId,
        uint32 indexed manufacturerId,
        string productCode,
        string name,
        string approvalNumber,
        string packageSpec,
        uint32 packQuantity
    );
    event ProductReassigned(uint32 indexed productId, uint32 indexed fromId, uint32 indexed toId, string reason);
    event CodePrefixAssigned(uint32 indexed manufacturerId, string prefix);
    event CodePrefixRevoked(uint32 indexed manufacturerId, string prefix);

    error InvalidProductCode(string productCode);
    error ProductAlreadyRegistered(string productCode, uint32 productId);
    error UnknownProduct(uint32 productId);
    error NotProductManufacturer(uint32 productId, address account);
    error InvalidPackQuantity();
    error InvalidCodePrefix(string prefix);
    error CodePrefixTaken(string prefix, uint32 manufacturerId);
    error CodePrefixNotAssigned(string prefix);
    /// @dev No prefix assigned to the caller covers `productCode` (`ownerId`: the manufacturer whose prefix does, or 0).
    error ProductCodeNotAssigned(string productCode, uint32 ownerId);

    /**
     * @notice Registers a product of the calling manufacturer, under one of its code prefixes.
     * @param productCode 7-digit drug identification code or GTIN-14 (digits only, check digit verified).
     * @param name Generic and brand name.
     * @param approvalNumber Marketing authorisation (e.g. 国药准字H...).
     * @param packageSpec Dosage form and package specification, as printed.
     * @param packQuantity Doses per pack (1 for packs that are never split).
     * @return productId Id used by batches and events.
     */
    function registerProduct(
        string calldata productCode,
        string calldata name,
        string calldata approvalNumber,
        string calldata packageSpec,
        uint32 packQuantity
    ) external returns (uint32 productId) {
        uint32 manufacturerId = _activeCaller(Role.Manufacturer);
        if (!_isValidProductCode(bytes(productCode))) revert InvalidProductCode(productCode);
        if (packQuantity == 0) revert InvalidPackQuantity();
        uint32 ownerId = prefixOwnerOf(productCode);
        if (ownerId != manufacturerId) revert ProductCodeNotAssigned(productCode, ownerId);
        bytes32 key = keccak256(bytes(productCode));
        uint32 existing = _productByCode[key];
        if (existing != 0) revert ProductAlreadyRegistered(productCode, existing);
        productId = ++_productCount;
        _productByCode[key] = productId;
        _products[productId] = Product({manufacturerId: manufacturerId, packQuantity: packQuantity});
        emit ProductRegistered(productId, manufacturerId, productCode, name, approvalNumber, packageSpec, packQuantity);
    }

    /**
     * @notice Assigns code prefixes to a manufacturer (regulators only).
     * @param manufacturer An onboarded manufacturer.
     * @param prefixes `CN:<1-7 digits>` or `GS1:<4-12 digits>`, each not held by another manufacturer.
     */
    function assignCodePrefixes(address manufacturer, string[] calldata prefixes) external onlyRole(REGULATOR_ROLE) {
        uint32 manufacturerId = _participantWithRole(manufacturer, Role.Manufacturer);
        for (uint256 i; i < prefixes.length; ++i) {
            string calldata prefix = prefixes[i];
            if (!_isValidPrefix(bytes(prefix))) revert InvalidCodePrefix(prefix);
            bytes32 key = keccak256(bytes(prefix));
            uint32 owner = _prefixOwners[key];
            if (owner != 0 && owner != manufacturerId) revert CodePrefixTaken(prefix, owner);
            _prefixOwners[key] = manufacturerId;
            emit CodePrefixAssigned(manufacturerId, prefix);
        }
    }

    /**
     * @notice Takes a code prefix back from its manufacturer (regulators only). Products already registered under
     * it stay registered.
     * @param prefix The prefix, as assigned.
     */
    function revokeCodePrefix(string calldata prefix) external onlyRole(REGULATOR_ROLE) {
        bytes32 key = keccak256(bytes(prefix));
        uint32 owner = _prefixOwners[key];
        if (owner == 0) revert CodePrefixNotAssigned(prefix);
        delete _prefixOwners[key];
        emit CodePrefixRevoked(owner, prefix);
    }

    /**
     * @notice Gives a product registered in error to its rightful manufacturer (regulators only). Batches already
     * registered stay with the manufacturer that registered them, which can still move their stock but commission no
     * more codes; the new one registers batches and commissions from now on.
     * @param productId The product.
     * @param manufacturer The rightful manufacturer (an onboarded manufacturer).
     * @param reason Why, for the audit trail.
     */
    function reassignProduct(
        uint32 productId,
        address manufacturer,
        string calldata reason
    ) external onlyRole(REGULATOR_ROLE) {
        Product storage product = _products[productId];
        uint32 fromId = product.manufacturerId;
        if (fromId == 0) revert UnknownProduct(productId);
        uint32 toId = _participantWithRole(manufacturer, Role.Manufacturer);
        product.manufacturerId = toId;
        emit ProductReassigned(productId, fromId, toId, reason);
    }

    /**
     * @notice A registered product (manufacturer id 0 when unknown).
     */
    function productOf(uint32 productId) public view returns (Product memory) {
        return _products[productId];
    }

    /**
     * @notice The id of the product registered under `productCode` (0 when none).
     */
    function productIdByCode(string calldata productCode) public view returns (uint32) {
        return _productByCode[keccak256(bytes(productCode))];
    }

    /**
     * @notice The manufacturer whose longest assigned prefix covers a product code (7-digit drug identification
     * code or GTIN-14), or 0 when none does.
     */
    function prefixOwnerOf(string calldata productCode) public view returns (uint32) {
        bytes calldata code = bytes(productCode);
        if (code.length == CN_CODE_DIGITS) return _longestPrefixOwner("CN:", code, 1, CN_CODE_DIGITS);
        if (code.length == GTIN_DIGITS) return _longestPrefixOwner("GS1:", code[1:], GS1_PREFIX_MIN, GS1_PREFIX_MAX);
        return 0;
    }

    /// @dev The product, if the caller (participant `manufacturerId`) made it.
    function _ownProduct(uint32 productId, uint32 manufacturerId) internal view returns (Product memory product) {
        product = _products[productId];
        if (product.manufacturerId == 0) revert UnknownProduct(productId);
        if (product.manufacturerId != manufacturerId) revert NotProductManufacturer(productId, msg.sender);
    }

    function _longestPrefixOwner(
        bytes memory scheme,
        bytes calldata digits,
        uint256 minLength,
        uint256 maxLength
    ) private view returns (uint32 owner) {
        for (uint256 length = maxLength; length >= minLength; --length) {
            owner = _prefixOwners[keccak256(bytes.concat(scheme, digits[:length]))];
            if (owner != 0) return owner;
        }
    }

    function _isValidPrefix(bytes calldata prefix) private pure returns (bool) {
        (uint256 start, uint256 minDigits, uint256 maxDigits) = prefix.length > 3 && bytes3(prefix[:3]) == "CN:"
            ? (3, 1, CN_CODE_DIGITS)
            : prefix.length > 4 && bytes4(prefix[:4]) == "GS1:"
                ? (4, GS1_PREFIX_MIN, GS1_PREFIX_MAX)
                : (0, 1, 0);
        uint256 digits = prefix.length - start;
        if (start == 0 || digits < minDigits || digits > maxDigits) return false;
        return _allDigits(prefix[start:]);
    }

    function _isValidProductCode(bytes calldata code) private pure returns (bool) {
        if ((code.length != CN_CODE_DIGITS && code.length != GTIN_DIGITS) || !_allDigits(code)) return false;
        if (code.length == CN_CODE_DIGITS) return true;
        // GS1 mod-10: weights 3,1,3,... from the rightmost data digit (the check digit itself has weight 1)
        uint256 sum;
        for (uint256 i; i < GTIN_DIGITS; ++i) sum += uint256(uint8(code[i]) - 0x30) * ((13 - i) % 2 == 1 ? 3 : 1);
        return sum % 10 == 0;
    }

    function _allDigits(bytes calldata text) private pure returns (bool) {
        for (uint256 i; i < text.length; ++i) {
            if (text[i] < "0" || text[i] > "9") return false;
        }
        return true;
    }
}
