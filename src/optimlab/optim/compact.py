"""Optimizer state in less memory: moment buffers kept in bfloat16 or 8 bits between steps.

An optimizer built with ``state_precision="bfloat16"`` or ``"int8"`` keeps the buffers its
:class:`~optimlab.optim.capabilities.Capabilities` record lists as moments (``moments``,
``second_moments``) in compact form between steps. The engine decodes them to the
parameter's dtype before the rule runs and encodes the new values after it, so every rule
gets the option without a line of its own (:meth:`optimlab.optim.engine.Engine.step_group`,
:meth:`~optimlab.optim.engine.Engine.step_members`). Only the moments are compacted: an
iterate (schedule-free's ``z``, ASGD's average) or a step size needs its full precision.

* ``"bfloat16"``: 2 bytes per element, rounded **stochastically**: a float32 value is rounded
  up with probability equal to its distance from the bfloat16 value below, in units of the
  gap, so the rounding is unbiased and a moment whose increments are below half a bfloat16
  ulp (``(1 - beta2) * g**2`` against ``v``) still moves on average. The dither is a hash of
  the value's bits, the element's index and the buffer's name: deterministic and resumable,
  with no generator state to checkpoint.
* ``"int8"``: 1 byte per element plus one float32 scale per block of :data:`BLOCK` elements
  (1.016 bytes per element), quantised blockwise (Dettmers et al. 2022, "8-bit Optimizers via
  Block-wise Quantization", arXiv 2110.02861): each block is divided by its largest
  magnitude and each value rounded to the nearest of 256 levels of a dynamic code, dense
  near zero (one decade per exponent, more levels in the upper decades), signed for first
  moments and unsigned (twice the resolution) for second moments. Blocks never cross the
  leading member axis of a population, so a member's state does not depend on another's.

Bytes of state per parameter, and the effect on the training lab's tasks, are measured by
``benchmarks/compact_state.py``.
"""

from __future__ import annotations

import zlib
from functools import cache

import torch
from torch import Tensor

__all__ = ["PRECISIONS", "BLOCK", "dynamic_code", "encode", "decode", "pack", "unpack",
           "check_precision", "state_bytes", "saved_codes", "kept_codes"]

#: the compact forms a moment buffer can take (None keeps it in the parameter's dtype)
PRECISIONS = ("bfloat16", "int8")
#: elements per quantisation block of the 8-bit form (bitsandbytes' and torchao's choice)
BLOCK = 256
#: the suffix of the state entry holding an 8-bit buffer's block scales
SCALE = "_absmax"
#: the suffix under which a state_dict saves an 8-bit buffer's codes (kept under the
#: moment's own name between steps): ``torch.optim``'s classes read the moment's name and
#: would cast the codes to floats on load, so a checkpoint of codes under ``exp_avg`` loaded
#: into ``torch.optim.AdamW`` and stepped on the codes as if they were moments
CODES = "_codes"


def check_precision(value) -> None:
    """Raise ``ValueError`` unless ``value`` is None or one of :data:`PRECISIONS`."""
    if value is not None and value not in PRECISIONS:
        raise ValueError(f"state_precision must be None or one of {PRECISIONS}, got {value!r}")


@cache
def dynamic_code(signed: bool) -> Tensor:
    """The 8-bit code's levels, sorted, in [-1, 1] (``signed``) or [0, 1] (float32).

    Zero, one, and for each decade ``[10^-(j+1), 10^-j)`` below one a linear grid whose size
    doubles towards the top decade: 2, 4, ..., 128 levels over seven decades unsigned (254 in
    all), half as many on each side signed, so that levels are dense in relative terms
    wherever a block's values are small against its largest.
    """
    levels = [0.0, 1.0]
    decades = 7 if not signed else 6
    for j in range(decades):
        count = 2 ** (decades - j)
        low = 10.0 ** -(j + 1)
        grid = torch.linspace(low, 10 * low, count + 1, dtype=torch.float64)
        levels += ((grid[:-1] + grid[1:]) / 2).tolist()
    if signed:
        levels += [-v for v in levels if v > 0]
    code = torch.tensor(sorted(set(levels)), dtype=torch.float32)
    assert len(code) <= 256
    return code


@cache
def _midpoints(signed: bool) -> Tensor:
    code = dynamic_code(signed)
    return (code[:-1] + code[1:]) / 2


def _rows(x: Tensor, rows: int) -> tuple[Tensor, int]:
    """``x`` as ``[rows, blocks, BLOCK]`` (zero-padded) and the row length before padding."""
    flat = x.reshape(rows, -1)
    n = flat.shape[1]
    pad = -n % BLOCK
    if pad:
        flat = torch.nn.functional.pad(flat, (0, pad))
    return flat.reshape(rows, -1, BLOCK), n


def _hash32(x: Tensor) -> Tensor:
    """A 32-bit integer mix (in int64) of ``x``'s low 32 bits (an avalanche hash)."""
    mask = 0xFFFFFFFF
    x = x & mask
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & mask
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & mask
    return x ^ (x >> 16)


def _to_bfloat16(x: Tensor, salt: int, rows: int) -> Tensor:
    """``x`` rounded stochastically to bfloat16 (via float32)."""
    bits = x.to(torch.float32).reshape(rows, -1).view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    index = torch.arange(bits.shape[1], dtype=torch.int64, device=x.device)
    noise = _hash32(bits ^ _hash32(index * 0x9E3779B1 + salt)) & 0xFFFF
    rounded = (bits + noise) & 0xFFFF0000
    finite = (bits & 0x7F800000) != 0x7F800000  # inf and nan keep their bits
    rounded = torch.where(finite & (rounded & 0x7F800000 != 0x7F800000), rounded,
                          bits & 0xFFFF0000)
    rounded = rounded - ((rounded >> 31) << 32)  # back into int32's range
    return rounded.to(torch.int32).view(torch.float32).to(torch.bfloat16).reshape(x.shape)


def encode(x: Tensor, precision: str, *, signed: bool, name: str = "",
           rows: int = 1) -> tuple[Tensor, Tensor | None]:
    """``x`` in compact form: ``(values, None)`` for bfloat16, ``(codes, scales)`` for int8.

    ``rows``: how many independent rows lead ``x`` (a population's members): blocks and the
    dither restart at each row, so row ``k`` encodes as it would alone.
    """
    salt = zlib.crc32(name.encode())
    if precision == "bfloat16":
        return _to_bfloat16(x, salt, rows), None
    if precision != "int8":
        raise ValueError(f"state_precision must be one of {PRECISIONS}, got {precision!r}")
    blocks, n = _rows(x.to(torch.float32), rows)
    scale = blocks.abs().amax(dim=-1)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    normal = (blocks / safe[..., None]).clamp(-1.0 if signed else 0.0, 1.0)
    codes = torch.searchsorted(_midpoints(signed).to(x.device), normal.contiguous())
    if not signed:
        # a second moment far below its block's largest (under the smallest level's
        # midpoint, 1.6e-7 of it) would read 0 beside a first moment that does not, and
        # the step m / (sqrt(v) + eps) grow by up to 1 / sqrt(1 - beta2) (the zero-point
        # problem of low-bit optimizer states, Li et al. 2023): a positive value keeps the
        # smallest positive level instead (its step then a little shorter, never longer)
        codes = torch.where((codes == 0) & (normal > 0), torch.ones_like(codes), codes)
    codes = codes.reshape(rows, -1)[:, :n].to(torch.uint8).reshape(x.shape)
    return codes, scale


def decode(values: Tensor, scale: Tensor | None, precision: str, *, signed: bool,
           dtype: torch.dtype, rows: int = 1) -> Tensor:
    """The buffer :func:`encode` compacted, in ``dtype``."""
    if precision == "bfloat16":
        return values.to(dtype)
    code = dynamic_code(signed).to(values.device)
    levels = code[values.to(torch.int64)]
    blocks, n = _rows(levels, rows)
    full = (blocks * scale.to(torch.float32).reshape(rows, -1)[..., None]).reshape(rows, -1)
    return full[:, :n].reshape(values.shape).to(dtype)


def _compacted(state: dict, moments: dict[str, bool]) -> list[str]:
    return [k for k in moments if isinstance(state.get(k), Tensor) and state[k].dim() > 0]


def unpack(state: dict, moments: dict[str, bool], dtype: torch.dtype, rows: int = 1) -> dict:
    """A copy of ``state`` with its compact moments decoded to ``dtype`` (for the rule).

    ``moments`` maps each moment's name to whether it is signed. An entry with block scales
    beside it is 8-bit; any other is cast to ``dtype`` (bfloat16 values exactly; entries in
    full precision, just made by ``init`` or loaded from a float checkpoint, pass through).
    """
    full = {k: v for k, v in state.items() if not k.endswith(SCALE)}
    for name in _compacted(state, moments):
        value = state[name]
        if name + SCALE in state:
            full[name] = decode(value, state[name + SCALE], "int8", signed=moments[name],
                                dtype=dtype, rows=rows)
        elif value.dtype != dtype:
            full[name] = value.to(dtype)
    return full


def pack(state: dict, full: dict, moments: dict[str, bool], precision: str,
         rows: int = 1) -> None:
    """Write ``full`` (the rule's new state) into ``state``, its moments encoded."""
    for key, value in full.items():
        state[key] = value
    for name in _compacted(full, moments):
        values, scale = encode(full[name], precision, signed=moments[name], name=name,
                               rows=rows)
        state[name] = values
        if scale is not None:
            state[name + SCALE] = scale
        else:  # bfloat16 now: a scale left from int8 steps would make unpack read codes
            state.pop(name + SCALE, None)


def saved_codes(entries: dict, moments) -> dict:
    """One parameter's state as a state_dict saves it: each 8-bit moment's codes under the
    moment's name plus :data:`CODES` (``exp_avg_codes``), its scales as kept; ``entries``
    itself where no moment is 8-bit."""
    coded = [name for name in moments if name in entries and name + SCALE in entries]
    if not coded:
        return entries
    return {(key + CODES if key in coded else key): value for key, value in entries.items()}


def kept_codes(entries: dict, moments) -> dict:
    """The inverse of :func:`saved_codes`: codes saved under ``name`` plus :data:`CODES` back
    under ``name``, as the engine keeps them (a checkpoint that saved them under ``name``
    itself, as optimlab did before, passes through); ``entries`` itself if none is."""
    coded = [name for name in moments if name + CODES in entries and name + SCALE in entries]
    if not coded:
        return entries
    suffix = len(CODES)
    return {(key[:-suffix] if key.endswith(CODES) and key[:-suffix] in coded else key): value
            for key, value in entries.items()}


def state_bytes(state: dict) -> int:
    """Bytes held by the tensors of one parameter's state."""
    return sum(v.numel() * v.element_size() for v in state.values() if isinstance(v, Tensor))
