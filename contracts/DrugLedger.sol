// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

import {Participants} from "./ledger/Participants.sol";
import {Settlement} from "./ledger/Settlement.sol";

/**
 * @title DrugLedger
 * @notice The consortium's shared record of drug packs: participants, products, batches, commissioning runs,
 * custody, dispensing and once-only insurance settlement. Each concern lives in its own contract under
 * `ledger/`; this contract only puts them together, so that the hot paths pay for no external calls.
 */
contract DrugLedger is Settlement {
    /**
     * @param adminTransferDelay Delay (seconds) before a new consortium admin can accept the role.
     * @param admin The consortium admin, also the first regulator.
     */
    constructor(uint48 adminTransferDelay, address admin) Participants(adminTransferDelay, admin) {}
}
