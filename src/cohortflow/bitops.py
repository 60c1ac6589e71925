"""Bit operations for numba kernels on packed genotypes (one LLVM instruction each)."""

from __future__ import annotations

from llvmlite import ir
from numba import types
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
