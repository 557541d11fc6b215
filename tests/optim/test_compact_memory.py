"""Compact moments encode and decode a chunk at a time (``optimlab.optim.compact.CHUNK``).

The chunked codec must give the very bits of the whole-tensor one (a checkpoint resumes to
the same bits, and the bfloat16 dither hashes each element's index in its row), and nothing
it makes on the way may be of the buffer's size: the bound is counted in elements, with a
small chunk, so it holds on any machine.
"""

from __future__ import annotations

import zlib

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from optimlab.optim import compact

BLOCK = compact.BLOCK


# -- the whole-tensor codec, as it was before the chunks: the reference for the bits --------

def _hash32(x):
    mask = 0xFFFFFFFF
    x = x & mask
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & mask
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & mask
    return x ^ (x >> 16)


def _rows(x, rows):
    flat = x.reshape(rows, -1)
    n = flat.shape[1]
    flat = torch.nn.functional.pad(flat, (0, -n % BLOCK))
    return flat.reshape(rows, -1, BLOCK), n


def reference_encode(x, precision, *, signed, name="", rows=1, step=None):
    salt = zlib.crc32(name.encode())
    if precision == "bfloat16":
        bits = x.to(torch.float32).reshape(rows, -1).view(torch.int32).to(torch.int64) & 0xFFFFFFFF
        index = torch.arange(bits.shape[1], dtype=torch.int64)
        mix = index * 0x9E3779B1 + salt
        if step is not None:  # the step counter, mixed into the dither
            mix = mix + (step.reshape(-1, 1).to(torch.int64) & 0xFFFFFFFF) * 0x85EBCA6B
        noise = _hash32(bits ^ _hash32(mix)) & 0xFFFF
        rounded = (bits + noise) & 0xFFFF0000
        finite = (bits & 0x7F800000) != 0x7F800000
        rounded = torch.where(finite & ((rounded & 0x7F800000) != 0x7F800000), rounded,
                              bits & 0xFFFF0000)
        rounded = rounded - ((rounded >> 31) << 32)
        return rounded.to(torch.int32).view(torch.float32).to(torch.bfloat16).reshape(x.shape), None
    blocks, n = _rows(x.to(torch.float32), rows)
    scale = blocks.abs().amax(dim=-1)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    normal = (blocks / safe[..., None]).clamp(-1.0 if signed else 0.0, 1.0)
    mid = compact.dynamic_code(signed)
    codes = torch.searchsorted((mid[:-1] + mid[1:]) / 2, normal.contiguous())
    if not signed:
        codes = torch.where((codes == 0) & (normal > 0), torch.ones_like(codes), codes)
    return codes.reshape(rows, -1)[:, :n].to(torch.uint8).reshape(x.shape), scale


def reference_decode(values, scale, *, signed, dtype, rows=1):
    levels = compact.dynamic_code(signed)[values.to(torch.int64)]
    blocks, n = _rows(levels, rows)
    full = (blocks * scale.to(torch.float32).reshape(rows, -1)[..., None]).reshape(rows, -1)
    return full[:, :n].reshape(values.shape).to(dtype)


# ------------------------------------------------------------------------------------------

def _moment(rows, n, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, n, generator=g) * torch.logspace(-4, 3, n)
    flat = x.view(-1)
    # the edges the rounding treats apart: inf, nan, a value rounding up into inf, zeros
    if flat.numel() > 29:
        flat[3], flat[11], flat[17], flat[29] = float("inf"), float("nan"), 3.3895e38, 0.0
    if n >= 2 * BLOCK:
        x[:, BLOCK:2 * BLOCK] = 0.0  # a block of zeros (scale 0) in every row
    return x.to(dtype)


def _same(a, b):
    if a is None or b is None:
        return a is None and b is None
    if a.dtype == torch.bfloat16:
        a, b = a.view(torch.int16), b.view(torch.int16)
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.nan_to_num(), b.nan_to_num()) \
        and torch.equal(a.isnan(), b.isnan())


SHAPES = [(1, 5_000), (3, 2_777), (7, 300), (2, 1_000), (1, 1), (5, BLOCK + 1)]


@pytest.mark.parametrize("chunk", [512, 1000, 1 << 40])
@pytest.mark.parametrize("rows,n", SHAPES)
@pytest.mark.parametrize("precision", compact.PRECISIONS)
def test_chunked_codec_gives_the_whole_tensor_bits(monkeypatch, chunk, rows, n, precision):
    monkeypatch.setattr(compact, "CHUNK", chunk, raising=False)
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        x = _moment(rows, n, dtype)
        for signed in (True, False):
            moment = x if signed else x * x
            want = reference_encode(moment, precision, signed=signed, name="exp_avg", rows=rows)
            got = compact.encode(moment, precision, signed=signed, name="exp_avg", rows=rows)
            assert _same(got[0], want[0]) and _same(got[1], want[1])
            # written over last step's tensors: the same bits, in the same objects
            old = (torch.zeros_like(got[0]), None if got[1] is None else torch.full_like(got[1], 7.0))
            again = compact.encode(moment, precision, signed=signed, name="exp_avg", rows=rows,
                                   out=old)
            assert again[0] is old[0] and again[1] is old[1]
            assert _same(again[0], want[0]) and _same(again[1], want[1])
            if precision == "int8":
                for out_dtype in (torch.float32, torch.bfloat16, torch.float64):
                    back = compact.decode(*got, "int8", signed=signed, dtype=out_dtype, rows=rows)
                    assert _same(back, reference_decode(*want, signed=signed, dtype=out_dtype,
                                                        rows=rows))


def test_the_dither_index_runs_on_across_chunks(monkeypatch):
    """A chunk's dither uses the element's index in its row, not in the chunk: the rows of
    a population encode as alone, and a row cut in chunks as whole."""
    monkeypatch.setattr(compact, "CHUNK", BLOCK, raising=False)
    x = torch.full((2, 3 * BLOCK + 5), 1.0 + 0.5 * 2.0**-7)  # all halfway: only the dither decides
    got = compact.encode(x, "bfloat16", signed=True, name="exp_avg_sq", rows=2)[0]
    assert _same(got, reference_encode(x, "bfloat16", signed=True, name="exp_avg_sq", rows=2)[0])
    assert torch.equal(got[0], got[1]) and not torch.equal(got[0, :BLOCK], got[0, BLOCK:2 * BLOCK])


def test_an_unfit_out_tensor_is_left_alone():
    x = _moment(1, 1000, torch.float32)
    with torch.inference_mode():  # cannot be written outside inference mode
        inference = torch.zeros(1, 1000, dtype=torch.bfloat16)
    for precision, old in (("int8", (torch.zeros(1000), None)),  # float: not codes
                           ("int8", (torch.zeros(1000, dtype=torch.uint8)[::1], torch.zeros(2, 4))),
                           ("bfloat16", (torch.zeros(2000, dtype=torch.bfloat16)[:1000], None)),
                           ("bfloat16", (inference, None))):
        before = [t.clone() if t is not None else None for t in old]
        values, scale = compact.encode(x, precision, signed=True, out=old)
        assert values is not old[0]
        assert all(_same(b, t) for b, t in zip(before, old))  # not written
        assert _same(values, reference_encode(x, precision, signed=True)[0])


class _LargestNew(TorchDispatchMode):
    """The largest storage (in elements of its dtype) that an op made, outside ``known``."""

    def __init__(self, known):
        super().__init__()
        self.known = {t.untyped_storage().data_ptr() for t in known}
        self.made = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                self.made.append((storage.data_ptr(), storage.nbytes() // t.element_size(),
                                  str(func)))
        return out

    def largest(self, exclude=()):
        skip = self.known | {t.untyped_storage().data_ptr() for t in exclude if t is not None}
        return max(((n, name) for ptr, n, name in self.made if ptr not in skip), default=(0, ""))


@pytest.mark.parametrize("rows,n", [(1, 20_000), (4, 4_999)])
@pytest.mark.parametrize("precision", compact.PRECISIONS)
def test_no_temporary_exceeds_a_chunk(monkeypatch, rows, n, precision):
    chunk = 1024
    monkeypatch.setattr(compact, "CHUNK", chunk, raising=False)
    x = _moment(rows, n, torch.float32)
    for signed in (True, False):
        with _LargestNew([x]) as spy:
            values, scale = compact.encode(x, precision, signed=signed, name="exp_avg", rows=rows)
        size, op = spy.largest(exclude=(values, scale))
        assert size <= chunk, f"encode made {size} elements in {op} (chunk {chunk})"
        if precision == "int8":
            with _LargestNew([values, scale]) as spy:
                full = compact.decode(values, scale, "int8", signed=signed, dtype=torch.float32,
                                      rows=rows)
            size, op = spy.largest(exclude=(full,))
            assert size <= chunk, f"decode made {size} elements in {op} (chunk {chunk})"


@pytest.mark.parametrize("precision", compact.PRECISIONS)
def test_a_step_writes_over_the_compact_state_it_holds(monkeypatch, precision):
    """``pack`` encodes into the codes (and scales) the state holds from the last step: no
    tensor of the buffer's size is made, and the bits are those of a fresh encode."""
    chunk = 1024
    monkeypatch.setattr(compact, "CHUNK", chunk, raising=False)
    moments = {"exp_avg": True, "exp_avg_sq": False}
    m, v = _moment(3, 5_000, torch.float32, seed=1), _moment(3, 5_000, torch.float32, seed=2) ** 2
    state = {"step": torch.tensor(1.0)}
    compact.pack(state, {"step": state["step"], "exp_avg": m, "exp_avg_sq": v}, moments,
                 precision, rows=3)
    kept = dict(state)
    m2, v2 = m * 0.9 + 0.01, v * 0.999 + 1e-4
    full = {"step": state["step"], "exp_avg": m2, "exp_avg_sq": v2}
    with _LargestNew([m2, v2, *kept.values()]) as spy:
        compact.pack(state, full, moments, precision, rows=3)
    assert spy.largest()[0] <= chunk
    for name, value in (("exp_avg", m2), ("exp_avg_sq", v2)):
        assert state[name] is kept[name]
        want = reference_encode(value, precision, signed=moments[name], name=name, rows=3,
                                step=state["step"])
        assert _same(state[name], want[0])
        if precision == "int8":
            assert state[name + compact.SCALE] is kept[name + compact.SCALE]
            assert _same(state[name + compact.SCALE], want[1])
