"""Ground truth a model can learn from: a class of a classifier, a finite number for a regressor.

One check, used twice: the feedback endpoint refuses a label the model could not produce (422 naming the
value and the allowed ones), and the export leaves out (and counts) any label still invalid, e.g. one
stored before the endpoint checked, so one bad post never breaks a retrain. A regression label is bounded
(LABEL_BOUND) so that its squared error, and a mean of them, stays a finite float.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

SHOWN_CLASSES = 20  # classes named in a message; more are summarized
# The largest magnitude of a regression label: its square error (and a mean of them) stays a finite float
LABEL_BOUND = 1e150


class LabelError(ValueError):
    """A label the target cannot take; the message names the value and the allowed ones."""


def label_family(value: Any) -> str:
    """bool, number or string: labels of different families never compare equal as a class would."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class Target:
    """What a model's target takes: `task` classification (with its `classes` when known) or regression."""

    task: str | None = None
    classes: tuple[Any, ...] | None = None
    name: str = "target"
    model: str = "the model"

    @classmethod
    def of(cls, task: Any, classes: Any, name: Any = "target", model: str = "the model") -> Target:
        kinds = ("classification", "regression")
        return cls(
            task=task if task in kinds else None,
            classes=tuple(classes) if isinstance(classes, list) and classes else None,
            name=str(name or "target"),
            model=model,
        )

    @property
    def known(self) -> bool:
        return self.task is not None

    def allowed(self) -> str:
        if self.task == "regression":
            return f"a finite number between {-LABEL_BOUND:g} and {LABEL_BOUND:g}"
        if self.classes is None:
            return "a class label (a string, integer or boolean)"
        shown = ", ".join(_show(c) for c in self.classes[:SHOWN_CLASSES])
        more = f", ... ({len(self.classes)} classes)" if len(self.classes) > SHOWN_CLASSES else ""
        return f"one of its classes: {shown}{more}"

    def check(self, value: Any) -> Any:
        """The label as stored (a class in the classifier's own type), or LabelError naming what is allowed."""
        if self.task == "regression":
            # abs(NaN or inf) <= bound is False; an int of any size compares exactly (no float conversion)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) <= LABEL_BOUND:
                return value
        elif self.task == "classification" and self.classes is not None:
            family = label_family(value)
            for cls in self.classes:
                if cls == value and label_family(cls) == family:
                    return cls
        elif isinstance(value, (str, int, bool)) or (isinstance(value, float) and math.isfinite(value)):
            return value
        kind = " (a regressor)" if self.task == "regression" else ""
        raise LabelError(
            f"{_show(value)} is not a label of {self.model}'s target {self.name!r}{kind}: expected {self.allowed()}"
        )

    def json_schema(self) -> dict[str, Any]:
        """The OpenAPI schema of `ground_truth` that `check_all` accepts: one label, or a list of them."""
        one: dict[str, Any]
        if self.task == "regression":
            one = {"type": "number", "minimum": -LABEL_BOUND, "maximum": LABEL_BOUND}
        elif self.task == "classification" and self.classes is not None:
            one = {"enum": list(self.classes)}
        else:
            one = {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}
        return {"anyOf": [one, {"type": "array", "items": one}]}

    def check_all(self, truth: Any, rows: int | None) -> list[Any]:
        """One label per row of a request of `rows` rows (None: not known): a list, or one value for one row.
        Raises LabelError naming the position, the value and what is allowed, or the counts that differ."""
        values = truth if isinstance(truth, list) else [truth]
        if rows is not None and len(values) != rows:
            raise LabelError(
                f"{len(values)} label(s) for a request of {rows} row(s); send one label per row "
                f"({'a single value' if rows == 1 else f'a list of {rows}'})"
            )
        out = []
        for i, value in enumerate(values):
            try:
                out.append(self.check(value))
            except LabelError as exc:
                raise LabelError(f"[{i}]: {exc}" if isinstance(truth, list) else str(exc)) from None
        return out
