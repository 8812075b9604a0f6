import numpy as np
import pytest

from sim import as_seed_sequence


def test_int_and_sequence():
    assert as_seed_sequence(5).entropy == 5
    ss = np.random.SeedSequence(3)
    assert as_seed_sequence(ss) is ss
    assert as_seed_sequence(None).entropy is not None


@pytest.mark.parametrize(
    "bad, exc, match",
    [
        (-1, ValueError, "non-negative"),
        (1.5, TypeError, "got float"),
        (np.random.default_rng(0), TypeError, "got Generator"),
        (True, TypeError, "got bool"),
    ],
)
def test_bad_rng(bad, exc, match):
    with pytest.raises(exc, match=match):
        as_seed_sequence(bad)
