"""alpseg.evaluation.oid: one module per concept, and the old flat module paths still resolve."""
import importlib

import pytest

MOVED = ("challenge", "convert", "evaluator", "hierarchy", "io", "masks")


@pytest.mark.parametrize("name", MOVED)
def test_old_flat_paths_resolve_to_the_package_modules(name):
    old = importlib.import_module(f"alpseg.evaluation.oid_{name}")
    new = importlib.import_module(f"alpseg.evaluation.oid.{name}")
    assert old.__all__ == new.__all__ and new.__all__
    for attr in new.__all__:
        assert getattr(old, attr) is getattr(new, attr), attr
    with pytest.raises(AttributeError):
        old.not_a_name_of_the_module


def test_private_names_used_before_the_move_still_resolve():
    from alpseg.evaluation.oid import challenge, io
    from alpseg.evaluation.oid_challenge import _greedy_free_match
    from alpseg.evaluation.oid_io import _read_rows

    assert _greedy_free_match is challenge._greedy_free_match and _read_rows is io._read_rows


def test_package_and_evaluation_exports():
    import alpseg.evaluation as ev
    from alpseg.evaluation import oid
    from alpseg.evaluation.oid.challenge import evaluate_oid_challenge
    from alpseg.evaluation.oid.evaluator import OIDChallengeEvaluator

    assert oid.evaluate_oid_challenge is ev.evaluate_oid_challenge is evaluate_oid_challenge
    assert oid.OIDChallengeEvaluator is ev.OIDChallengeEvaluator is OIDChallengeEvaluator
    assert "atomic_write" not in oid.io.__all__  # one atomic writer: alpseg.utils.io
