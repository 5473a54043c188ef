"""toolchain.init: what train.py gets, and a clear refusal of training data it cannot learn from."""

from __future__ import annotations

from pathlib import Path

import pytest

from legion_ci import toolchain
from legion_ci.core.settings import Settings


def test_a_label_of_another_kind_is_named_not_a_type_error_deep_in_scikit_learn(
    iris_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: one "class_7" row in the extra data made init() fail with a TypeError inside the split."""
    extra = tmp_path / "feedback.csv"
    names = "sepal length (cm),sepal width (cm),petal length (cm),petal width (cm),target"
    extra.write_text(f"{names}\n5.1,3.5,1.4,0.2,0\n5.1,3.5,1.4,0.2,class_7\n")
    settings = Settings(home=tmp_path / "home", model_dir=iris_dir, extra_data=str(extra), train_output=tmp_path / "o")
    monkeypatch.setattr(toolchain, "load_settings", lambda: settings)
    with pytest.raises(
        toolchain.ToolchainError, match=r"row\(s\) are not numbers, e\.g\. 'class_7', '0' \(extra data: "
    ):
        toolchain.init()
    extra.write_text(f"{names}\n5.1,3.5,1.4,0.2,0\n")
    ctx = toolchain.init()
    assert len(ctx.y_train) + len(ctx.y_test) == 151
