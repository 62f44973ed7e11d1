// A dealer's approval rule, written in JavaScript against dealer:platform/approval-hook@0.1.0.
//
//   discount above 5% of the base  -> sales-manager
//   discount above 10% of the base -> sales-manager, then general-manager
//   finance plan                   -> finance-desk
//   anything else                  -> approved automatically
//
// How jco maps the WIT types: records arrive with camelCase fields (`baseAmount`,
// `requestedBy`), enums as their kebab-case names (`"finance-plan"`), s64 as BigInt, a
// variant is returned as `{ tag, val }`, and `result<decision, string>` is the returned value
// for `ok` and a thrown string for `err`.
import { log } from "dealer:platform/log@0.1.0";

function step(role, reason) {
  return { role, reason };
}

/** `amount` as a share of `base` in basis points, rounded down, and whether it was exact. */
function shareInBasisPoints(amount, base) {
  return { bp: (amount * 10000n) / base, exact: (amount * 10000n) % base === 0n };
}

/** `12.50%` from basis points. */
const percent = (bp) => `${bp / 100n}.${String(bp % 100n).padStart(2, "0")}%`;

function decide(request) {
  switch (request.kind) {
    case "discount": {
      if (request.amount < 0n || request.baseAmount <= 0n) {
        throw `a discount of ${request.amount} fen on a base of ${request.baseAmount} fen makes no sense`;
      }
      // In basis points, with integer arithmetic only: money is never a float.
      const { bp, exact } = shareInBasisPoints(request.amount, request.baseAmount);
      const share = percent(bp);
      const above = (limit) => bp > limit || (bp === limit && !exact);
      log("info", `js-approval: discount of ${share} requested by ${request.requestedBy.role}`);
      if (above(1000n)) {
        return {
          tag: "steps",
          val: [
            step("sales-manager", `a discount of ${share} is above 5%`),
            step("general-manager", `a discount of ${share} is above 10%`),
          ],
        };
      }
      if (above(500n)) {
        return {
          tag: "steps",
          val: [step("sales-manager", `a discount of ${share} is above 5%`)],
        };
      }
      return { tag: "auto-approve", val: `a discount of ${share} is within 5%` };
    }
    case "finance-plan":
      return {
        tag: "steps",
        val: [step("finance-desk", "every finance plan is checked by the finance desk")],
      };
    default:
      return { tag: "auto-approve", val: `${request.kind}: approved automatically` };
  }
}

export const approvalHook = { decide };
