import numpy as np
import pytest

import nqs_core


def test_check_int_accepts_integers_and_names_the_argument():
    assert nqs_core.check_int("n", 3) == 3
    assert nqs_core.check_int("n", np.int64(4), 4) == 4
    assert type(nqs_core.check_int("n", np.int32(5))) is int
    with pytest.raises(ValueError, match=r"n_sites must be an integer >= 2, got 1"):
        nqs_core.check_int("n_sites", 1, 2)
    for bad in (True, 2.0, "3", None):
        with pytest.raises(TypeError, match="n_chains must be an integer"):
            nqs_core.check_int("n_chains", bad)
