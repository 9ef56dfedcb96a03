"""reelvec.vectors.unit, the one L2 normalization."""

import numpy as np

from reelvec.vectors import unit


def test_rows_become_unit_length_and_a_zero_row_stays_zero():
    rows = np.array([[3.0, 4.0], [0.0, 0.0], [-1e-20, 1e-20]])
    out = unit(rows)
    np.testing.assert_allclose(out[0], [0.6, 0.8])
    assert not out[1].any() and np.isfinite(out).all()
    np.testing.assert_allclose(np.linalg.norm(out[[0, 2]], axis=1), 1.0)


def test_one_vector_in_the_dtype_asked_for():
    out = unit([0.0, 2.0, 0.0], np.float32)
    assert out.dtype == np.float32 and out.tolist() == [0.0, 1.0, 0.0]
