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
  the value's bits, the element's index, the buffer's name and the step counter where the
  state keeps one: deterministic and resumable, with no generator state to checkpoint. (Without
  the step, a gradient repeated exactly gave the same value and so the same rounding every
  step: Adam's ``v`` froze at a sixth of ``g**2``, and a run of 20,000 steps moved its
  parameters 2.4x as far as with float32 state.) A rule that keeps no step counter (Lion,
  SGD's momentum) dithers without it, and a moment that stops changing may then stop a
  fraction of a bfloat16 ulp from where it would be.
* ``"int8"``: 1 byte per element plus one float32 scale per block of :data:`BLOCK` elements
  (1.016 bytes per element), quantised blockwise (Dettmers et al. 2022, "8-bit Optimizers via
  Block-wise Quantization", arXiv 2110.02861): each block is divided by its largest
  magnitude and each value rounded to the nearest of 256 levels of a dynamic code, dense
  near zero (one decade per exponent, more levels in the upper decades), signed for first
  moments and unsigned (twice the resolution) for second moments. Blocks never cross the
  leading member axis of a population, so a member's state does not depend on another's.

Both forms are encoded and decoded :data:`CHUNK` elements at a time (whole blocks, the dither
hashing each element's index in its row), into the compact tensors the state already holds
where they fit: a step needs the moments in full precision for the rule, and little more.

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


#: the code's levels and midpoints copied to each device that encodes or decodes, by
#: ``(table, signed, device)``: a copy per call was 4 host-to-device copies per parameter
#: and step on an accelerator (encode and decode of each moment)
_TABLES: dict[tuple[str, bool, torch.device], Tensor] = {}


def _table(name: str, signed: bool, device: torch.device) -> Tensor:
    """:func:`dynamic_code` (``name="code"``) or its midpoints (``"midpoints"``) on
    ``device``: computed on the CPU, as the CPU uses them (the same bits everywhere), and
    copied to ``device`` once."""
    key = (name, signed, device)
    table = _TABLES.get(key)
    if table is None:
        table = (dynamic_code(signed) if name == "code" else _midpoints(signed)).to(device)
        if type(table) is Tensor:  # not a FakeTensor or other subclass made under a mode
            _TABLES[key] = table
    return table


#: elements :func:`encode` and :func:`decode` work on at a time (a multiple of :data:`BLOCK`,
#: so a block never straddles two chunks): their temporaries (int64 bit patterns and hashes,
#: search codes) are a few times this, 2 MiB each, not a few times the buffer, and stay in
#: cache (a 25M-element buffer encodes faster so than whole)
CHUNK = 1 << 18


def _chunks(rows: int, n: int) -> list[tuple[int, int, int, int]]:
    """``(row_start, row_stop, column_start, column_stop)`` pieces covering a ``[rows, n]``
    buffer, each at most :data:`CHUNK` elements once its rows are padded to whole blocks: whole
    rows together where a row is that short, else a row's columns in runs of whole blocks."""
    chunk = max(BLOCK, CHUNK // BLOCK * BLOCK)
    padded = n + -n % BLOCK
    if not padded:
        return []
    if padded <= chunk:
        per = chunk // padded
        return [(r, min(rows, r + per), 0, n) for r in range(0, rows, per)]
    return [(r, r + 1, c, min(n, c + chunk)) for r in range(rows) for c in range(0, n, chunk)]


def _blocks(x: Tensor) -> Tensor:
    """``x`` (``[rows, columns]``) as ``[rows, blocks, BLOCK]``, the last block zero-padded."""
    pad = -x.shape[1] % BLOCK
    if pad:
        x = torch.nn.functional.pad(x, (0, pad))
    return x.reshape(x.shape[0], -1, BLOCK)


def _hash32_(x: Tensor) -> Tensor:
    """A 32-bit integer mix (in int64, in place) of ``x``'s low 32 bits (an avalanche hash)."""
    mask = 0xFFFFFFFF
    x.bitwise_and_(mask)
    x.bitwise_xor_(x >> 16)
    x.mul_(0x7FEB352D).bitwise_and_(mask)
    x.bitwise_xor_(x >> 15)
    x.mul_(0x846CA68B).bitwise_and_(mask)
    return x.bitwise_xor_(x >> 16)


def _bfloat16_chunk(x: Tensor, salt: int, start: int, step: Tensor | None = None) -> Tensor:
    """``x`` (``[rows, columns]``, its columns from ``start`` on in each row) rounded
    stochastically to bfloat16, returned as float32 (the bfloat16 value, exactly); ``step``
    (int64, ``[rows, 1]``, on ``x``'s device, or None) each row's step counter, mixed into
    the dither."""
    bits = x.to(torch.float32).view(torch.int32).to(torch.int64).bitwise_and_(0xFFFFFFFF)
    index = torch.arange(start, start + x.shape[1], dtype=torch.int64, device=x.device)
    mix = index.mul_(0x9E3779B1).add_(salt)
    if step is not None:
        mix = mix + (step & 0xFFFFFFFF) * 0x85EBCA6B
    rounded = _hash32_(bits ^ _hash32_(mix))
    rounded.bitwise_and_(0xFFFF).add_(bits).bitwise_and_(0xFFFF0000)
    # inf and nan keep their bits, and so does a value that would round up to one
    keep = (bits & 0x7F800000) == 0x7F800000
    keep |= (rounded & 0x7F800000) == 0x7F800000
    bits.bitwise_and_(0xFFFF0000)
    rounded = torch.where(keep, bits, rounded)
    rounded -= (rounded >> 31) << 32  # back into int32's range
    return rounded.to(torch.int32).view(torch.float32)


def _int8_chunk(x: Tensor, signed: bool) -> tuple[Tensor, Tensor]:
    """``x`` (``[rows, columns]``, starting on a block) as int32 codes (``[rows, columns]``)
    and float32 block scales (``[rows, blocks]``)."""
    blocks = _blocks(x.to(torch.float32))
    scale = blocks.abs().amax(dim=-1)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    normal = torch.div(blocks, safe[..., None]).clamp_(-1.0 if signed else 0.0, 1.0)
    codes = torch.searchsorted(_table("midpoints", signed, x.device), normal, out_int32=True)
    if not signed:
        # a second moment far below its block's largest (under the smallest level's
        # midpoint, 1.6e-7 of it) would read 0 beside a first moment that does not, and
        # the step m / (sqrt(v) + eps) grow by up to 1 / sqrt(1 - beta2) (the zero-point
        # problem of low-bit optimizer states, Li et al. 2023): a positive value keeps the
        # smallest positive level instead (its step then a little shorter, never longer)
        codes.masked_fill_((codes == 0) & (normal > 0), 1)
    return codes.reshape(x.shape[0], -1)[:, :x.shape[1]], scale


def _reusable(out: Tensor | None, like: Tensor, dtype: torch.dtype, shape) -> bool:
    """Whether ``out`` (the buffer's compact form from the last step) can take the new one:
    a whole, contiguous tensor of that dtype, shape and device, not sharing ``like``'s memory
    (nor one made under ``torch.inference_mode`` when the step runs outside it)."""
    return (isinstance(out, Tensor) and out.dtype == dtype and out.shape == shape
            and out.device == like.device and out.is_contiguous() and not out.requires_grad
            and (not out.is_inference() or torch.is_inference_mode_enabled())
            and out.untyped_storage().nbytes() == out.numel() * out.element_size()
            and out.untyped_storage().data_ptr() != like.untyped_storage().data_ptr())


def encode(x: Tensor, precision: str, *, signed: bool, name: str = "", rows: int = 1,
           out: tuple[Tensor | None, Tensor | None] | None = None,
           step: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
    """``x`` in compact form: ``(values, None)`` for bfloat16, ``(codes, scales)`` for int8.

    ``rows``: how many independent rows lead ``x`` (a population's members): blocks and the
    dither restart at each row, so row ``k`` encodes as it would alone. ``step``: the step
    counter (one value, or one per row), mixed into the bfloat16 dither. ``out``: the
    ``(values, scales)`` of the last encode of this buffer, written over where they fit (a
    tensor that does not is left alone and a new one made). The work goes :data:`CHUNK`
    elements at a time, so nothing of the buffer's size is made but the result.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"state_precision must be one of {PRECISIONS}, got {precision!r}")
    salt = zlib.crc32(name.encode())
    kept, kept_scale = out if out is not None else (None, None)
    n = x.numel() // rows if rows else 0
    flat = x.reshape(rows, n)
    pieces = _chunks(rows, n)
    if precision == "bfloat16":
        values = kept if _reusable(kept, x, torch.bfloat16, x.shape) \
            else torch.empty(x.shape, dtype=torch.bfloat16, device=x.device)
        target = values.view(rows, n)
        steps = _steps(step, rows, x.device)
        for r0, r1, c0, c1 in pieces:
            target[r0:r1, c0:c1].copy_(_bfloat16_chunk(
                flat[r0:r1, c0:c1], salt, c0, None if steps is None else steps[r0:r1]))
        return values, None
    blocks = -(-n // BLOCK)
    codes = kept if _reusable(kept, x, torch.uint8, x.shape) \
        else torch.empty(x.shape, dtype=torch.uint8, device=x.device)
    scale = kept_scale if _reusable(kept_scale, x, torch.float32, (rows, blocks)) \
        else torch.empty((rows, blocks), dtype=torch.float32, device=x.device)
    target = codes.view(rows, n)
    for r0, r1, c0, c1 in pieces:
        piece, piece_scale = _int8_chunk(flat[r0:r1, c0:c1], signed)
        target[r0:r1, c0:c1].copy_(piece)
        scale[r0:r1, c0 // BLOCK:c0 // BLOCK + piece_scale.shape[1]].copy_(piece_scale)
    return codes, scale


def _steps(step: Tensor | None, rows: int, device: torch.device) -> Tensor | None:
    """The step counter ``step`` (one value, or one per row; None: none) as int64
    ``[rows, 1]`` on ``device``, for the dither; None where it is neither (no sync with the
    device: the counter stays a tensor)."""
    if not isinstance(step, Tensor) or step.numel() not in (1, rows):
        return None
    return step.detach().reshape(-1, 1).to(device=device, dtype=torch.int64).expand(rows, 1)


def decode(values: Tensor, scale: Tensor | None, precision: str, *, signed: bool,
           dtype: torch.dtype, rows: int = 1) -> Tensor:
    """The buffer :func:`encode` compacted, in ``dtype`` (8-bit codes :data:`CHUNK` at a time)."""
    if precision == "bfloat16":
        return values.to(dtype)
    code = _table("code", signed, values.device)
    n = values.numel() // rows if rows else 0
    codes = values.reshape(rows, n)
    scale = scale.to(torch.float32).reshape(rows, -1)
    full = torch.empty(values.shape, dtype=dtype, device=values.device)
    target = full.view(rows, n)
    for r0, r1, c0, c1 in _chunks(rows, n):
        piece = codes[r0:r1, c0:c1]
        levels = code.index_select(0, piece.reshape(-1).to(torch.int32)).reshape(piece.shape)
        blocks = _blocks(levels)
        blocks *= scale[r0:r1, c0 // BLOCK:c0 // BLOCK + blocks.shape[1], None]
        target[r0:r1, c0:c1].copy_(blocks.reshape(r1 - r0, -1)[:, :c1 - c0])
    return full


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
    """Write ``full`` (the rule's new state) into ``state``, its moments encoded (over the
    compact tensors ``state`` holds from the last step, where they fit).

    A moment a sparse gradient left sparse (SGD's momentum buffer, a clone of the first
    gradient) is encoded as the dense tensor it stands for: the compact forms are laid over
    every element, and the next step adds its gradient to the decoded, dense buffer. It is
    made dense before anything is written, so ``state`` never holds it sparse."""
    full = {key: value.to_dense() if key in moments and isinstance(value, Tensor)
            and value.layout is not torch.strided else value for key, value in full.items()}
    kept = {name: (state.get(name), state.get(name + SCALE)) for name in moments}
    for key, value in full.items():
        state[key] = value
    for name in _compacted(full, moments):
        values, scale = encode(full[name], precision, signed=moments[name], name=name,
                               rows=rows, out=kept.get(name), step=full.get("step"))
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
