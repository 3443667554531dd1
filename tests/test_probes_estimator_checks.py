"""`BatchedLogisticRegression` is a scikit-learn estimator by scikit-learn's own checks (all of them:
none is marked as an expected failure)."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from stage1_5.probes.engine import BatchedLogisticRegression

EXPECTED_FAILED_CHECKS: dict[str, str] = {}
"""check name -> why it cannot apply; empty: every check applies and passes."""


@parametrize_with_checks([BatchedLogisticRegression()], expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_the_estimator_passes_scikit_learns_checks(estimator, check):
    check(estimator)


def test_a_dict_class_weight_gives_scikit_learns_coefficients():
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5))
    y = np.array(["north", "south", "west"])[rng.integers(0, 3, 60)]
    weights = {"north": 3.0, "south": 0.5}  # west: 1, as in scikit-learn
    ours = BatchedLogisticRegression(C=0.5, class_weight=weights, tol=1e-10, max_iter=2000).fit(X, y)
    ref = LogisticRegression(C=0.5, class_weight=weights, tol=1e-12, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-4)
