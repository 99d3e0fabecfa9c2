"""The backward pass derived from the forward, op by op, each case worked by hand."""

from __future__ import annotations

import pytest

import perfest
from perfest.ops import Axis, CollectiveKind, Fn
from perfest.training.backward import Grads, backward, core_span
from perfest.training.step import EMB, HEAD, LAYER, Shape, build_parts, training_ctx

P = {"b": 2, "s": 3, "t": 3, "s_logits": 3}  # b·s = 6 rows

#: the models a training step is modelled for: decoders and encoders (not encoder-decoders)
TRAINABLE = [
    n for n in perfest.list_models() if perfest.load_model(n).architecture != "encoder-decoder"
]


def parts(model, tp=1, cp=1, sp=False, flash=True):
    return build_parts(Shape(model, "bf16", "fp32", flash, tp, cp, sp))


def op(ops, name):
    return next(o for o in ops if o.name == name)


def cost(o):
    return o.flops.value(P), o.bytes_read.value(P), o.bytes_written.value(P)


def test_linear_backward_accumulates_fp32_weight_gradients(gated):
    # qkv_proj: [6, 64] @ [64, (8 + 2·2)·8 = 96], 2·6·64·96 = 73,728 FLOPs forward
    bwd = parts(gated)[LAYER].backward.ops
    # dX = dY·Wᵀ: reads dY 6·96·2 = 1,152 B and W 64·96·2 = 12,288 B, writes dX 6·64·2 = 768 B
    assert cost(op(bwd, "qkv_proj.dgrad")) == (73_728, 1_152 + 12_288, 768)
    # dW += Xᵀ·dY: reads X 768 B, dY 1,152 B and the fp32 gradient 64·96·4 = 24,576 B
    assert cost(op(bwd, "qkv_proj.wgrad")) == (73_728, 768 + 1_152 + 24_576, 24_576)


def test_flash_backward_is_five_products_in_one_kernel(gated):
    # per product 2·s·d·t·(b·n_h) = 2·3·8·3·16 = 2,304 FLOPs; forward 2, backward 5 (2.5×)
    layer = parts(gated)[LAYER]
    fwd = sum(o.gemm.flops.value(P) for o in layer.core if o.gemm is not None)
    core = [o for o in layer.backward.ops if o.activation_product]
    assert (fwd, sum(o.gemm.flops.value(P) for o in core)) == (2 * 2_304, 5 * 2_304)
    assert sum(o.kernels for o in core) == 1
    # one pass reads Q 3·8·16·2 = 768, K and V 8·3·4·2 = 192 each, dO 768, lse and D 16·3·4 =
    # 192 each, and writes dQ 768, dK 192, dV 192
    assert sum(o.bytes_read.value(P) for o in core) == 768 + 2 * 192 + 768 + 2 * 192
    assert sum(o.bytes_written.value(P) for o in core) == 768 + 192 + 192
    # first D = rowsum(dO∘O): 2 FLOPs per output element (384), reads dO and O, writes D
    assert cost(op(layer.backward.ops, "attn_bwd.prep")) == (768, 768 + 768, 192)


def test_eager_backward_is_four_products_and_the_softmax(gated):
    layer = parts(gated, flash=False)[LAYER]
    core = [o for o in layer.backward.ops if o.activation_product]
    assert sum(o.gemm.flops.value(P) for o in core) == 4 * 2_304
    # dS = P∘(dP − rowsum(dP∘P)): 4 FLOPs per score (b·n_h·s·t = 144), reads P and dP, writes dS
    assert cost(op(layer.backward.ops, "attn_softmax.bwd")) == (4 * 144, 2 * 144 * 2, 144 * 2)


def test_rmsnorm_backward(gated):
    # 9 FLOPs per element of [6, 64] = 3,456; reads dy 768, x 768, γ 128, 1/rms 6·4 = 24 and
    # the fp32 dγ 256 it adds into; writes dx 768 and dγ 256
    bwd = parts(gated)[LAYER].backward.ops
    assert cost(op(bwd, "attn_norm.bwd")) == (3_456, 768 + 768 + 128 + 24 + 256, 768 + 256)


def test_gated_activation_backward(gated):
    # SiLU 9 + gating 3 = 12 FLOPs per element of [6, 160] (960); reads dy, gate, up
    # (1,920 B each), writes d gate and d up
    bwd = parts(gated)[LAYER].backward.ops
    assert cost(op(bwd, "mlp_act.bwd")) == (12 * 960, 3 * 1_920, 2 * 1_920)


def test_values_read_by_two_ops_sum_their_gradients(gated):
    # the layer's input (norm and residual), x.mid (likewise), the MLP input (gate and up):
    # one add per element of [6, 64] each, reading two gradients and writing one
    sums = [o for o in parts(gated)[LAYER].backward.ops if o.name.endswith("grad_sum")]
    assert sorted(o.name for o in sums) == ["mlp.in.grad_sum", "x.grad_sum", "x.mid.grad_sum"]
    assert {cost(o) for o in sums} == {(384, 2 * 768, 768)}


def test_tensor_parallel_entry_all_reduces_the_input_gradient_beside_dw(gated):
    layer = parts(gated, tp=2)[LAYER]
    assert not [o for o in layer.backward.ops if o.collective and o.name.startswith("attn_all")]
    (attn,) = [o for o in layer.backward.overlaps if o.comm[0].name == "attn_to_tp.grad_allreduce"]
    assert attn.comm[0].collective.kind is CollectiveKind.ALL_REDUCE
    assert [o.name for o in attn.window] == ["qkv_proj.wgrad"]
    # 2·(2 − 1)/2 of the [6, 64] bf16 gradient: 768 B on the wire
    assert attn.comm[0].collective.wire_bytes.value(P) == 768


def test_sequence_parallel_backward_gathers_again_and_reduce_scatters(gated):
    layer = parts(gated, tp=2, sp=True)[LAYER]
    names = {o.comm[0].name: [w.name for w in o.window] for o in layer.backward.overlaps}
    assert names["attn_allgather.regather"] == ["qkv_proj.dgrad"]
    assert names["attn_allgather.grad_reducescatter"] == ["qkv_proj.wgrad"]
    assert names["mlp_allgather.grad_reducescatter"] == ["mlp_gate.wgrad", "mlp_up.wgrad"]
    # the exit's reduce-scatter comes back as an all-gather of the gradient, exposed
    ag = op(layer.backward.ops, "attn_reducescatter.grad_allgather")
    assert ag.collective.kind is CollectiveKind.ALL_GATHER
    assert ag.name not in names


def test_context_ring_runs_beside_the_attention_core(gated):
    layer = parts(gated, cp=2)[LAYER]
    (fwd,) = layer.forward_overlaps
    assert fwd.comm[0].collective.axis is Axis.CP and fwd.window == layer.core
    (ring,) = [o for o in layer.backward.overlaps if o.comm[0].collective.axis is Axis.CP]
    assert [o.name for o in ring.comm] == [
        "kv_allgather.regather",
        "kv_allgather.grad_reducescatter",
    ]
    assert all(o.activation_product or o.fn is None for o in ring.window)


def test_embedding_backward_is_torchs_dense_gradient(classic):
    # token table [1000, 64], positions [128, 64], bf16 activations, fp32 weight gradients
    emb = parts(classic)[EMB]
    zero, tokens, tokens_acc, zero_p, positions, positions_acc = emb.backward.ops
    # zero a bf16 [1000, 64] gradient (128,000 B) and add the 6 rows of dx into it: 1 add per
    # element of [6, 64]; reads dx 768 B, ids 6·8 = 48 B, the rows 768 B; writes them again
    assert cost(zero) == (0, 0, 128_000)
    assert cost(tokens) == (384, 768 + 48 + 768, 768)
    # then into the fp32 weight gradient: 64,000 adds; reads 128,000 + 256,000 B, writes 256,000
    assert cost(tokens_acc) == (64_000, 128_000 + 256_000, 256_000)
    # learned positions: the dense [128, 64] gradient (16,384 B), the s = 3 rows (384 B) summed
    # over the batch
    assert cost(zero_p) == (0, 0, 16_384)
    assert cost(positions) == (384, 768 + 48 + 384, 384)
    assert cost(positions_acc) == (8_192, 16_384 + 32_768, 32_768)


def test_loss_backward(classic):
    # (softmax − one-hot)/N: 2 FLOPs per logit of [6, 1000]; reads the fp32 probabilities
    # 24,000 B and the targets 48 B, writes dlogits 12,000 B
    head = parts(classic)[HEAD]
    assert cost(op(head.backward.ops, "loss.bwd")) == (12_000, 24_000 + 48, 12_000)


@pytest.mark.parametrize("name", TRAINABLE)
@pytest.mark.parametrize("tp, cp, sp, flash", [(1, 1, False, True), (2, 2, True, True),
                                               (2, 1, False, False)])  # fmt: skip
def test_every_op_of_every_model_has_a_backward(name, tp, cp, sp, flash):
    m = perfest.load_model(name)
    if m.n_h % tp:
        pytest.skip("tp does not divide the heads")
    if m.moe and tp > 1 and not sp:
        pytest.skip("a mixture of experts under tp runs sequence-parallel")
    ep = 2 if m.moe else 1  # and with tp = 2: the experts' tensor parallelism etp = 2
    shape = Shape(m, "bf16", "fp32", flash, tp, cp, sp, ep=ep, etp=tp)
    for part in build_parts(shape).values():
        fwd = [o.gemm.flops.value(P) for o in part.forward if o.gemm and not o.activation_product]
        bwd = [o.gemm.flops.value(P) for o in part.backward.ops
               if o.gemm and not o.activation_product]  # fmt: skip
        # every linear layer's backward is 2× its forward (the first layer's dX included)
        assert sum(bwd) == pytest.approx(2 * sum(fwd), rel=1e-12)
        rules = {o.fn for o in part.forward} - {None, Fn.TO_TP}
        assert rules <= {Fn.NORM, Fn.ACTIVATION, Fn.ROPE, Fn.SOFTMAX, Fn.RESIDUAL, Fn.GATHER,
                         Fn.LOSS, Fn.ROUTER, Fn.PERMUTE, Fn.COMBINE}  # fmt: skip
        # every element-wise op computes something its backward is derived from
        assert all(o.fn is not None for o in part.forward
                   if o.gemm is None and o.collective is None)  # fmt: skip


def test_a_backward_of_hand_built_ops(gated):
    # the rules apply to any op list: the MLP alone, eager
    ctx = training_ctx(Shape(gated, "bf16", "fp32", False, 1, 1, False))
    forward = parts(gated)[LAYER].forward
    mlp = [o for o in forward if o.group.value == "mlp"]
    out = backward(mlp, ctx, Grads(("fp32", 4.0)))
    assert [o.name for o in out.ops][:3] == ["mlp_down.dgrad", "mlp_down.wgrad", "mlp_act.bwd"]
    assert not core_span(mlp)
