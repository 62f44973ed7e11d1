"""A dealer's approval rule, written in Python against dealer:platform/approval-hook@0.1.0.

  discount above 5% of the base  -> sales-manager
  discount above 10% of the base -> sales-manager, then general-manager
  finance plan                   -> finance-desk
  anything else                  -> approved automatically

How componentize-py maps the WIT types: records are dataclasses with snake_case fields
(`request.base_amount`), enums are Python enums (`RequestKind.FINANCE_PLAN`), s64 is an int,
a variant case is its own dataclass (`Decision_Steps([...])`), and the `err` of
`result<decision, string>` is raised as `componentize_py_types.Err(message)`.
"""

from componentize_py_types import Err

from wit_world import exports
from wit_world.exports.approval_hook import (
    Decision,
    Decision_AutoApprove,
    Decision_Steps,
    Request,
    RequestKind,
    Step,
)
from wit_world.imports import log, types


def percent(basis_points: int) -> str:
    return f"{basis_points // 100}.{basis_points % 100:02d}%"


def decide_discount(request: Request) -> Decision:
    if request.amount < 0 or request.base_amount <= 0:
        raise Err(
            f"a discount of {request.amount} fen on a base of "
            f"{request.base_amount} fen makes no sense"
        )
    # In basis points, with integer arithmetic only: money is never a float.
    bp, remainder = divmod(request.amount * 10000, request.base_amount)
    share = percent(bp)

    def above(limit: int) -> bool:
        return bp > limit or (bp == limit and remainder != 0)

    log.log(
        types.Level.INFO,
        f"py-approval: discount of {share} requested by {request.requested_by.role}",
    )
    if above(1000):
        return Decision_Steps(
            [
                Step("sales-manager", f"a discount of {share} is above 5%"),
                Step("general-manager", f"a discount of {share} is above 10%"),
            ]
        )
    if above(500):
        return Decision_Steps([Step("sales-manager", f"a discount of {share} is above 5%")])
    return Decision_AutoApprove(f"a discount of {share} is within 5%")


class ApprovalHook(exports.ApprovalHook):
    def decide(self, request: Request) -> Decision:
        if request.kind == RequestKind.DISCOUNT:
            return decide_discount(request)
        if request.kind == RequestKind.FINANCE_PLAN:
            return Decision_Steps(
                [Step("finance-desk", "every finance plan is checked by the finance desk")]
            )
        kind = request.kind.name.lower().replace("_", "-")
        return Decision_AutoApprove(f"{kind}: approved automatically")
