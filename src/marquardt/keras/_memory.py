"""Memory of a dense LM iteration, estimated before anything is allocated.

With P weights and normal equations in ``precision`` (b bytes per number), an iteration holds

* A = JᵀJ, its scaled copy, A + λD and the Cholesky factor: 4 · P² · b
  (the eigen fallback adds one more P² block);
* one chunk of Jacobian rows, c·k × P in the model's dtype, plus its per-weight pieces before
  they are concatenated and the cast copy used for Jᵀr: about 3 · c·k · P · 4;
* the forward pass of the batch, which is small against these for dense networks.

The chunk size c is chosen so that the Jacobian part fits in what A leaves of the budget,
capped at 256 MiB (larger chunks do not make the matmul faster).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["MemoryPlan", "plan_memory", "format_bytes"]

#: Above this, bigger Jacobian chunks do not speed up the JᵀJ matmul (measured: chunk
#: products of 64-256 MiB run at the same GFLOP/s on a 2-core machine).
CHUNK_CAP = 256 << 20


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
    budget = min(CHUNK_CAP, limit - normal)
    rows = max(1, budget // row_bytes)
    return MemoryPlan(normal_bytes=normal, chunk_rows=int(rows), chunk_bytes=int(rows * row_bytes),
                      total_bytes=int(normal + rows * row_bytes))
