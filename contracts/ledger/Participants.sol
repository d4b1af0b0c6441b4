// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {AccessControlDefaultAdminRules} from "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

/**
 * @dev The consortium's register of organisations. The consortium admin holds `DEFAULT_ADMIN_ROLE`, handed over
 * in two steps with a delay (OpenZeppelin's {AccessControlDefaultAdminRules}); it grants `REGULATOR_ROLE`.
 * Regulators onboard organisations, each with exactly one business role, and suspend or reinstate them. One account
 * holds one role: an organisation's account can neither govern (admin, regulator) nor be given a second business role,
 * so no regulator can settle or dispense through its own account.
 *
 * Regulators can also pause every business write at once (an emergency stop, OpenZeppelin {Pausable}); governance
 * (onboarding, suspension, recalls, prefixes) keeps working while paused, so the regulator can act on the emergency.
 *
 * Insurers get a small index (1 to 8,191) beside their participant id: a settled unit's 13-bit status field names
 * its insurer by that index (see {Settlement}).
 *
 * An organisation's role lives in its participant record rather than in AccessControl's role table, so that the
 * hot paths (ship, dispense, settle) learn role, suspension and compact id from a single storage slot. {hasRole}
 * reports business roles from that record, so OpenZeppelin-style role checks keep working for clients.
 */
abstract contract Participants is AccessControlDefaultAdminRules, Pausable {
    bytes32 public constant REGULATOR_ROLE = keccak256("REGULATOR_ROLE");
    bytes32 public constant MANUFACTURER_ROLE = keccak256("MANUFACTURER_ROLE");
    bytes32 public constant DISTRIBUTOR_ROLE = keccak256("DISTRIBUTOR_ROLE");
    bytes32 public constant PHARMACY_ROLE = keccak256("PHARMACY_ROLE");
    bytes32 public constant INSURER_ROLE = keccak256("INSURER_ROLE");

    enum Role {
        None,
        Manufacturer,
        Distributor,
        Pharmacy,
        Insurer
    }

    struct Participant {
        uint32 id;
        Role role;
        bool suspended;
        /// @dev Insurers only: 1 to `MAX_INSURERS`, the name a settled unit's status lane gives its insurer.
        uint16 insurerIndex;
    }

    /// @dev The 13-bit field of a status lane holds an insurer index.
    uint16 internal constant MAX_INSURERS = 8191;

    /// @dev Network settings that business writes read, declared first so that they share {Pausable}'s storage slot
    /// with the pause flag: a write pays one cold read for the flag and its settings together. Set by
    /// {Dispensing-setReturnWindow} and {Commissioning-setMaxRunCodes}.
    uint16 internal _returnWindowDays = 10;
    uint32 internal _maxRunCodes = 28_000;

    mapping(address account => Participant) private _participants;
    mapping(uint32 id => address) private _accounts;
    mapping(uint16 insurerIndex => uint32 participantId) private _insurerByIndex;
    uint32 private _participantCount;
    uint16 private _insurerCount;

    event ParticipantOnboarded(
        address indexed account,
        uint32 indexed participantId,
        Role role,
        string name,
        string licence,
        string region
    );
    event ParticipantSuspended(address indexed account, uint32 indexed participantId, string reason);
    event ParticipantReinstated(address indexed account, uint32 indexed participantId);

    error AlreadyOnboarded(address account);
    error NotOnboarded(address account);
    error InvalidRole();
    error InvalidAccount();
    error Suspended(address account);
    error AlreadySuspended(address account);
    error NotSuspended(address account);
    /// @dev One account, one role: a governing account (admin, regulator) cannot be onboarded, and an onboarded
    /// organisation's account cannot be made admin or regulator.
    error OneRolePerAccount(address account);
    error TooManyInsurers();
    /// @dev Business roles come with a participant record: use {onboard} and {suspend}, not {grantRole},
    /// {revokeRole} or {renounceRole}.
    error BusinessRoleNeedsOnboarding(bytes32 role);
    /// @dev `account` is onboarded but its role cannot hold or receive goods.
    error CannotHoldGoods(address account);

    constructor(uint48 adminTransferDelay, address admin) AccessControlDefaultAdminRules(adminTransferDelay, admin) {
        _grantRole(REGULATOR_ROLE, admin);
    }

    /**
     * @notice Onboards an organisation with one business role.
     * @param account The organisation's signing account.
     * @param role Manufacturer, Distributor (carrier), Pharmacy or Insurer.
     * @param name Registered name, as on the licence.
     * @param licence Licence or registration number issued by the authority.
     * @param region Administrative region code (e.g. a 6-digit Chinese division code).
     * @return participantId The compact id the ledger uses for this organisation in events and custody records.
     */
    function onboard(
        address account,
        Role role,
        string calldata name,
        string calldata licence,
        string calldata region
    ) external onlyRole(REGULATOR_ROLE) returns (uint32 participantId) {
        if (account == address(0)) revert InvalidAccount();
        if (role == Role.None) revert InvalidRole();
        if (_participants[account].id != 0) revert AlreadyOnboarded(account);
        if (_governs(account)) revert OneRolePerAccount(account);
        participantId = ++_participantCount;
        uint16 insurerIndex;
        if (role == Role.Insurer) {
            if (_insurerCount == MAX_INSURERS) revert TooManyInsurers();
            insurerIndex = ++_insurerCount;
            _insurerByIndex[insurerIndex] = participantId;
        }
        _participants[account] = Participant({
            id: participantId,
            role: role,
            suspended: false,
            insurerIndex: insurerIndex
        });
        _accounts[participantId] = account;
        emit ParticipantOnboarded(account, participantId, role, name, licence, region);
        emit RoleGranted(roleHash(role), account, _msgSender());
    }

    /**
     * @notice Suspends an organisation: until reinstated it can write nothing and receive nothing.
     * @param account The organisation's account.
     * @param reason Why, for the audit trail.
     */
    function suspend(address account, string calldata reason) external onlyRole(REGULATOR_ROLE) {
        Participant storage p = _requireOnboarded(account);
        if (p.suspended) revert AlreadySuspended(account);
        p.suspended = true;
        emit ParticipantSuspended(account, p.id, reason);
    }

    /**
     * @notice Lifts a suspension.
     * @param account The organisation's account.
     */
    function reinstate(address account) external onlyRole(REGULATOR_ROLE) {
        Participant storage p = _requireOnboarded(account);
        if (!p.suspended) revert NotSuspended(account);
        p.suspended = false;
        emit ParticipantReinstated(account, p.id);
    }

    /**
     * @notice Stops every business write (commissioning, custody, dispensing, settlement, registrations) until
     * {unpause}. Regulators only; governance keeps working while paused.
     */
    function pause() external onlyRole(REGULATOR_ROLE) {
        _pause();
    }

    /**
     * @notice Lifts {pause}. Regulators only.
     */
    function unpause() external onlyRole(REGULATOR_ROLE) {
        _unpause();
    }

    /**
     * @notice The participant record of `account` (id 0 when it is not onboarded).
     */
    function participantOf(address account) external view returns (Participant memory) {
        return _participants[account];
    }

    /**
     * @notice The account of participant `participantId` (zero address when unknown).
     */
    function accountOf(uint32 participantId) public view returns (address) {
        return _accounts[participantId];
    }

    /**
     * @notice Whether `account` has `role`. Business roles count only while the organisation is not suspended.
     */
    function hasRole(
        bytes32 role,
        address account
    ) public view virtual override(AccessControl, IAccessControl) returns (bool) {
        Role business = _businessRole(role);
        if (business == Role.None) return super.hasRole(role, account);
        Participant storage p = _participants[account];
        return p.role == business && !p.suspended;
    }

    /// @notice The AccessControl role id of a business role.
    function roleHash(Role role) public pure returns (bytes32) {
        if (role == Role.Manufacturer) return MANUFACTURER_ROLE;
        if (role == Role.Distributor) return DISTRIBUTOR_ROLE;
        if (role == Role.Pharmacy) return PHARMACY_ROLE;
        if (role == Role.Insurer) return INSURER_ROLE;
        return bytes32(0);
    }

    function _grantRole(bytes32 role, address account) internal virtual override returns (bool) {
        if (_businessRole(role) != Role.None) revert BusinessRoleNeedsOnboarding(role);
        if (_participants[account].id != 0) revert OneRolePerAccount(account);
        return super._grantRole(role, account);
    }

    /// @dev Business roles are not in AccessControl's table: revoking or renouncing one would emit RoleRevoked and
    /// change nothing. Suspension is how an organisation loses its powers.
    function _revokeRole(bytes32 role, address account) internal virtual override returns (bool) {
        if (_businessRole(role) != Role.None) revert BusinessRoleNeedsOnboarding(role);
        return super._revokeRole(role, account);
    }

    /// @dev The caller's participant id, if it is active and has `role`, for a business write (refused while paused).
    function _activeCaller(Role role) internal view returns (uint32) {
        _requireNotPaused();
        return _activeParticipant(msg.sender, role);
    }

    /// @dev The calling insurer's participant id and insurer index, for a business write.
    function _activeInsurer() internal view returns (uint32 id, uint256 insurerIndex) {
        id = _activeCaller(Role.Insurer);
        insurerIndex = _participants[msg.sender].insurerIndex;
    }

    /// @dev The participant id of the insurer with index `insurerIndex`.
    function _insurerId(uint256 insurerIndex) internal view returns (uint32) {
        return _insurerByIndex[uint16(insurerIndex)];
    }

    /// @dev The caller's participant id, if it is active and may hold goods (manufacturer, distributor, pharmacy),
    /// for a business write.
    function _activeHolder() internal view returns (uint32) {
        _requireNotPaused();
        return _activeHolderRecord(msg.sender).id;
    }

    /// @dev `account`'s participant id, if it is onboarded, active, and may hold goods.
    function _activeHolder(address account) internal view returns (uint32) {
        return _activeHolderRecord(account).id;
    }

    /// @dev `account`'s participant id, if it is an active participant with `role`.
    function _activeParticipant(address account, Role role) internal view returns (uint32 id) {
        id = _participantWithRole(account, role);
        if (_participants[account].suspended) revert Suspended(account);
    }

    /// @dev `account`'s participant id, if it is onboarded with `role` (suspended or not): for governance.
    function _participantWithRole(address account, Role role) internal view returns (uint32) {
        Participant memory p = _participants[account];
        if (p.role != role) revert AccessControlUnauthorizedAccount(account, roleHash(role));
        return p.id;
    }

    function _activeHolderRecord(address account) private view returns (Participant memory p) {
        p = _participants[account];
        if (p.id == 0) revert NotOnboarded(account);
        if (p.role == Role.Insurer) revert CannotHoldGoods(account);
        if (p.suspended) revert Suspended(account);
    }

    function _requireOnboarded(address account) private view returns (Participant storage p) {
        p = _participants[account];
        if (p.id == 0) revert NotOnboarded(account);
    }

    function _governs(address account) private view returns (bool) {
        return super.hasRole(REGULATOR_ROLE, account) || super.hasRole(DEFAULT_ADMIN_ROLE, account);
    }

    function _businessRole(bytes32 role) private pure returns (Role) {
        if (role == MANUFACTURER_ROLE) return Role.Manufacturer;
        if (role == DISTRIBUTOR_ROLE) return Role.Distributor;
        if (role == PHARMACY_ROLE) return Role.Pharmacy;
        if (role == INSURER_ROLE) return Role.Insurer;
        return Role.None;
    }
}
