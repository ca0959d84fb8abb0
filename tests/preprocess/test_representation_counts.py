"""Count normalisation without scanpy's numba kernel."""

import anndata as ad
import numpy as np
import pytest
import scanpy as sc
import scipy.sparse as sp

from gwalign.preprocess.representation import log_normalised


@pytest.mark.parametrize("sparse", [False, True])
def test_log_normalised_matches_scanpy_normalize_total_then_log1p(sparse):
    rng = np.random.default_rng(3)
    counts = rng.poisson(0.4, size=(120, 300)).astype(np.float32)
    counts[7] = 0.0                     # a cell without counts stays zero
    x = sp.csr_matrix(counts) if sparse else counts
    reference = ad.AnnData(x.copy())
    with pytest.warns(UserWarning, match="zero counts"):
        sc.pp.normalize_total(reference, target_sum=1e4)
    sc.pp.log1p(reference)
    mine = log_normalised(x)
    assert sp.issparse(mine) == sparse and mine.dtype == np.float32
    dense = lambda m: m.toarray() if sp.issparse(m) else m  # noqa: E731
    np.testing.assert_allclose(dense(mine), dense(reference.X), rtol=1e-6, atol=1e-6)
    assert not dense(mine)[7].any()
    np.testing.assert_array_equal(dense(x), counts)      # the input is left as it was
