"""The gufunc that ``np.linalg.svd(a, full_matrices=False)`` calls, for the callers that skip
the wrapper on float64 matrices (``_covariance``, the host's one-problem namespace ``single``):
the same kernel, so the same bits, without the wrapper's checks and conversions.

NumPy >= 2 names it ``svd_s``; NumPy 1.x (which ``numpy>=1.24`` allows) names its kernels
``svd_n_s``/``svd_m_s``, and then ``THIN_SVD_KERNEL`` is None and the callers call
``np.linalg.svd`` itself.
"""

from __future__ import annotations

import numpy as np

__all__ = ["THIN_SVD_KERNEL"]

THIN_SVD_KERNEL = getattr(getattr(np.linalg, "_umath_linalg", None), "svd_s", None)
