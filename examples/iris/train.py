"""Train the iris classifier. legion-ci runs this file; it also runs by hand: `python train.py`."""

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from legion_ci import toolchain

ctx = toolchain.init()
model = make_pipeline(
    StandardScaler(),
    LogisticRegression(C=ctx.params["C"], max_iter=ctx.params["max_iter"], random_state=ctx.seed),
)
model.fit(ctx.x_train, ctx.y_train)
toolchain.log_metric("train_accuracy", model.score(ctx.x_train, ctx.y_train))
toolchain.export(model)
