"""Train the diabetes regressor."""

from sklearn.linear_model import Ridge

from legion_ci import toolchain

ctx = toolchain.init()
model = Ridge(alpha=ctx.params["alpha"], random_state=ctx.seed)
model.fit(ctx.x_train, ctx.y_train)
toolchain.log_metric("train_r2", model.score(ctx.x_train, ctx.y_train))
toolchain.export(model)
