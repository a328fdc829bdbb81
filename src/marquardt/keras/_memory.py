"""Memory of a dense LM iteration, estimated before anything is allocated.

With P weights and normal equations in ``precision`` (b bytes per number), an iteration holds

* A = JᵀJ, its scaled copy, A + λD and the Cholesky factor: 4 · P² · b
  (the eigen fallback adds one more P² block);
* one chunk of Jacobian rows, c·k × P in the model's dtype, plus its per-weight pieces before
  they are concatenated and the cast copy used for Jᵀr: about 3 · c·k · P · 4;
* the forward pass of the batch, which is small against these for dense networks.

The chunk size c is chosen for speed — about ``CHUNK_TARGET`` bytes of Jacobian rows, never
fewer than ``CHUNK_MIN_ROWS`` samples — and then shrunk when the Jacobian part does not fit in
what A leaves of the budget.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["MemoryPlan", "plan_memory", "format_bytes"]

#: Bytes of Jacobian rows per chunk. Small chunks keep the blocked JᵀJ products in cache:
#: measured on a 2-core machine (20,000 × 481, float32), chunks of 1,000-2,000 rows (2-4 MiB)
#: formed JᵀJ 2-3× faster than one chunk of 20,000 rows (see ``keras_jacobian``).
CHUNK_TARGET = 4 << 20
#: ...but at least this many samples per chunk (each chunk costs a vectorised backward pass).
CHUNK_MIN_ROWS = 512


class MemoryPlan(NamedTuple):
    normal_bytes: int  # A, its copies and the factor
    chunk_rows: int  # samples per Jacobian chunk
    chunk_bytes: int  # one chunk of J and its temporaries
    total_bytes: int


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024.0
    return f"{n:.1f} TiB"


def plan_memory(p: int, k: int, limit: int, *, precision_bytes: int = 8,
                model_bytes: int = 4) -> MemoryPlan:
    """Chunk size and total memory of a dense LM iteration, or an error when A cannot fit.

    Args:
        p: number of trainable weights.
        k: residuals per sample.
        limit: the ``memory_limit`` option, in bytes.
        precision_bytes: bytes per number of the normal equations (8 for float64).
        model_bytes: bytes per number of the model (4 for float32).

    Raises:
        ValueError: the normal equations alone exceed ``limit``; the message says how much they
            need and what to do instead.
    """
    normal = 5 * p * p * precision_bytes
    row_bytes = 3 * k * p * model_bytes
    if normal + row_bytes > limit:
        raise ValueError(
            f"A model with {p:,} trainable weights is too large for dense Levenberg-Marquardt "
            f"within `memory_limit`={format_bytes(limit)}: its normal equations JᵀJ (P×P, "
            f"with the factorisation) need {format_bytes(normal)}. Raise `memory_limit` if "
            "the machine has the memory, use precision='float32' (halves it), freeze layers "
            "(`layer.trainable = False`) to train fewer weights with LM, or train this model "
            f"with a first-order optimizer such as keras.optimizers.Adam. Received: "
            f"memory_limit={limit}"
        )
    fast = max(CHUNK_MIN_ROWS, CHUNK_TARGET // (k * p * model_bytes))
    rows = max(1, min(fast, (limit - normal) // row_bytes))
    return MemoryPlan(normal_bytes=normal, chunk_rows=int(rows), chunk_bytes=int(rows * row_bytes),
                      total_bytes=int(normal + rows * row_bytes))
