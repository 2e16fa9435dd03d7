"""fvcore handles for the attention operators fvcore does not count, shared by ``get-flops`` and conversion.

Convention: one fused multiply-add counts as one FLOP (fvcore's and the model zoos').
"""

from __future__ import annotations

import math
from typing import Any


def sdpa_flop_handle(inputs: list[Any], outputs: list[Any]) -> int:
    """fvcore handle for ``aten::scaled_dot_product_attention``: the two matrix products it does.

    ``Q K^T`` costs ``L * S * E`` multiply-adds per batch-and-head and ``softmax(.) V`` costs ``L * S * Ev``;
    the softmax and scaling are element-wise and left out, as for every other operator.
    """
    from fvcore.nn.jit_handles import get_shape

    query, key, value = (get_shape(x) for x in inputs[:3])
    batch = math.prod(query[:-2])
    length, embed = query[-2], query[-1]
    return int(batch * length * key[-2] * (embed + value[-1]))


def native_mha_flop_handle(inputs: list[Any], outputs: list[Any]) -> int:
    """fvcore handle for ``aten::_native_multi_head_attention``, the fused path ``nn.MultiheadAttention`` takes
    when no gradient is needed: input projections, the two attention products and the output projection."""
    from fvcore.nn.jit_handles import get_shape

    query, key, value = (get_shape(x) for x in inputs[:3])
    batch = math.prod(query[:-2])
    length, embed, source = query[-2], query[-1], key[-2]
    projections = length * embed * embed + 2 * source * embed * embed + length * embed * embed
    attention = 2 * length * source * embed  # summed over heads: each head works on embed / heads channels
    return int(batch * (projections + attention))


ATTENTION_HANDLES = {
    "aten::scaled_dot_product_attention": sdpa_flop_handle,
    "aten::_native_multi_head_attention": native_mha_flop_handle,
}
"""Operator name -> handle, for ``FlopCountAnalysis.set_op_handle(**ATTENTION_HANDLES)``."""
