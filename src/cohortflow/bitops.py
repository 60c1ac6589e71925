"""Bit operations for numba kernels on packed genotypes (LLVM intrinsics and small inlined helpers)."""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def popcount_u64(typingctx, x):
    """Number of set bits of a uint64, as uint64 (LLVM ctpop: POPCNT on x86-64)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen


@intrinsic
def trailing_zeros_u64(typingctx, x):
    """Index of the lowest set bit of a uint64, as uint64 (64 for zero; LLVM cttz)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 0))

    return sig, codegen


@intrinsic
def load_u64(typingctx, array, index):
    """The 8 bytes of a uint8 array from ``index`` on as one little-endian uint64 (an unaligned
    load; the caller makes sure index + 8 <= len(array))."""
    if not (isinstance(array, types.Array) and array.dtype == types.uint8 and array.ndim == 1):
        return None
    sig = types.uint64(array, index)

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        offset = context.cast(builder, args[1], signature.args[1], types.intp)
        pointer = builder.bitcast(builder.gep(data, [offset]), ir.IntType(64).as_pointer())
        return builder.load(pointer, align=1)

    return sig, codegen


@intrinsic
def copy_bytes(typingctx, destination, offset, source):
    """Copy the uint8 array ``source`` into ``destination`` from ``offset`` on, by memcpy
    (numba's own slice assignment copies byte by byte); the caller makes sure it fits and that
    the two do not overlap."""
    if not all(isinstance(a, types.Array) and a.dtype == types.uint8 and a.ndim == 1
               for a in (destination, source)):
        return None
    sig = types.void(destination, offset, source)

    def codegen(context, builder, signature, args):
        dst = context.make_array(signature.args[0])(context, builder, args[0])
        src = context.make_array(signature.args[2])(context, builder, args[2])
        start = context.cast(builder, args[1], signature.args[1], types.intp)
        cgutils.raw_memcpy(builder, builder.gep(dst.data, [start]), src.data, src.nitems, 1)
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(cache=True, nogil=True, inline="always")
def even_bits(x):
    """The 32 even bits of a uint64, packed into its low half."""
    x = (x | (x >> np.uint64(1))) & np.uint64(0x3333333333333333)
    x = (x | (x >> np.uint64(2))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    x = (x | (x >> np.uint64(4))) & np.uint64(0x00FF00FF00FF00FF)
    x = (x | (x >> np.uint64(8))) & np.uint64(0x0000FFFF0000FFFF)
    return (x | (x >> np.uint64(16))) & np.uint64(0x00000000FFFFFFFF)
