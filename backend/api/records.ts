/**
 * Schemas of the index's records as every resource answers them (one definition, so that the scan and the
 * registry describe a product alike in the OpenAPI document).
 */
import { z } from "zod";
import "./openapi";

export const productSchema = z
  .object({
    id: z.number().int(),
    productCode: z.string(),
    name: z.string(),
    approvalNumber: z.string(),
    packageSpec: z.string(),
    packQuantity: z.number().int(),
  })
  .openapi("Product");
