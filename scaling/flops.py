"""Analytic FLOP counts for training and running a model of a given shape.

Training FLOPs per token follow PaLM (Chowdhery et al. 2022, appendix B)::

    6 · N_matmul + 12 · n_layers · context · d_model

- ``6 · N_matmul``: every weight of a matmul costs 2 FLOPs per token in the
  forward pass (a multiply and an add) and 4 in the backward pass (gradients
  with respect to its input and to itself). ``N_matmul`` is the non-embedding
  parameter count plus the LM head (see :mod:`scaling.families`); the embedding
  lookups are not matmuls.
- ``12 · n_layers · context · d_model``: attention's two matmuls without weights,
  ``Q K^T`` and ``softmax(.) V``. Per layer and per token each costs
  ``2 · context · d_model`` forward, so ``4 · T · d`` forward and ``12 · T · d``
  forward + backward. It is counted over the full context ``T`` (every query
  against every key) with no halving for the causal mask, which is what dense
  attention kernels actually compute.

Left out: norms, softmax, activations, residual adds, bias adds, the loss, embedding
lookups and the optimiser step, all O(N) or O(T·d) elementwise work that is small
next to the matmuls. ``N_matmul`` does include the norms' and biases' parameters,
which over-counts by a fraction of a percent at realistic widths.

Kaplan et al.'s ``6 · N · D`` (N non-embedding, no attention, no LM head) is given
too, because many published fits use it.
"""

from __future__ import annotations

from scaling.families import ModelShape, param_counts


def _check_tokens(tokens: int | float) -> float:
    tokens = float(tokens)
    if not tokens >= 0:  # also rejects NaN
        raise ValueError(f"tokens must be a non-negative number, got {tokens}")
    return tokens


def flops_per_token(shape: ModelShape) -> float:
    """Training FLOPs (forward + backward) per token, attention included.

    Parameters
    ----------
    shape : ModelShape

    Returns
    -------
    float
        ``6 · N_matmul + 12 · n_layers · context · d_model``.
    """
    n_matmul = param_counts(shape)["matmul"]
    attention = 12 * shape.n_layers * shape.context * shape.d_model
    return float(6 * n_matmul + attention)


def forward_flops_per_token(shape: ModelShape) -> float:
    """Forward-pass FLOPs per token (inference, or the forward third of training).

    Parameters
    ----------
    shape : ModelShape

    Returns
    -------
    float
        ``flops_per_token(shape) / 3``: the backward pass costs twice the forward.
    """
    return flops_per_token(shape) / 3


def training_flops(shape: ModelShape, tokens: int | float) -> float:
    """Training FLOPs to process ``tokens`` tokens: ``tokens · flops_per_token``.

    Parameters
    ----------
    shape : ModelShape
    tokens : int or float
        Tokens trained on (non-negative).

    Returns
    -------
    float
    """
    return _check_tokens(tokens) * flops_per_token(shape)


def flops_6nd(shape: ModelShape, tokens: int | float) -> float:
    """Kaplan et al.'s approximation ``6 · N · D``, N the non-embedding parameters.

    Parameters
    ----------
    shape : ModelShape
    tokens : int or float
        Tokens trained on, D (non-negative).

    Returns
    -------
    float
    """
    return 6.0 * param_counts(shape)["nonembed"] * _check_tokens(tokens)
