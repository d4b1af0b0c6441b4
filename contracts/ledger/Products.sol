// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {Participants} from "./Participants.sol";

/**
 * @dev Products registered by their manufacturer. A product code is either China's 7-digit drug identification
 * code (药品标识码, the first seven digits of a 20-digit traceability code) or a GS1 GTIN-14; each code is
 * registered once, and only its manufacturer can commission units of it.
 */
abstract contract Products is Participants {
    struct Product {
        uint32 manufacturerId;
        /// @dev Doses (tablets, vials...) in one pack; above 1 a pack may be dispensed split (拆零).
        uint32 packQuantity;
    }

    mapping(uint32 productId => Product) private _products;
    mapping(bytes32 codeHash => uint32) private _productByCode;
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

    error InvalidProductCode(string productCode);
    error ProductAlreadyRegistered(string productCode, uint32 productId);
    error UnknownProduct(uint32 productId);
    error NotProductManufacturer(uint32 productId, address account);
    error InvalidPackQuantity();

    /**
     * @notice Registers a product of the calling manufacturer.
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
        bytes32 key = keccak256(bytes(productCode));
        uint32 existing = _productByCode[key];
        if (existing != 0) revert ProductAlreadyRegistered(productCode, existing);
        productId = ++_productCount;
        _productByCode[key] = productId;
        _products[productId] = Product({manufacturerId: manufacturerId, packQuantity: packQuantity});
        emit ProductRegistered(productId, manufacturerId, productCode, name, approvalNumber, packageSpec, packQuantity);
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
    function productIdByCode(string calldata productCode) external view returns (uint32) {
        return _productByCode[keccak256(bytes(productCode))];
    }

    /// @dev The product, if the caller (participant `manufacturerId`) made it.
    function _ownProduct(uint32 productId, uint32 manufacturerId) internal view returns (Product memory product) {
        product = _products[productId];
        if (product.manufacturerId == 0) revert UnknownProduct(productId);
        if (product.manufacturerId != manufacturerId) revert NotProductManufacturer(productId, msg.sender);
    }

    function _isValidProductCode(bytes calldata code) private pure returns (bool) {
        if (code.length != 7 && code.length != 14) return false;
        uint256 sum;
        for (uint256 i; i < code.length; ++i) {
            uint8 c = uint8(code[i]);
            if (c < 0x30 || c > 0x39) return false;
            // GS1 mod-10: weights 3,1,3,... from the rightmost data digit (the check digit itself has weight 1)
            if (code.length == 14) sum += uint256(c - 0x30) * ((13 - i) % 2 == 1 ? 3 : 1);
        }
        return code.length == 7 || sum % 10 == 0;
    }
}
