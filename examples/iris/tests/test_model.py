"""The model's own tests, run by the quality gate with fixtures from legion-ci's pytest plugin."""

import numpy as np


def test_predicts_a_known_species(model):
    setosa = [[5.1, 3.5, 1.4, 0.2]]
    assert model.predict(setosa)[0] == 0


def test_probabilities_sum_to_one(model, test_data):
    x, _ = test_data
    proba = model.predict_proba(x)
    assert np.allclose(proba.sum(axis=1), 1.0)


def test_longer_petals_are_not_setosa(model):
    assert model.predict([[6.5, 3.0, 5.5, 2.0]])[0] != 0
