"""The sparse TopK kernels match the dense TopK path in values and gradients (incl. AuxK)."""
from __future__ import annotations

import torch

from interpretability_workbench.sae.sparse import geometric_median, sparse_decode, topk_encode


def test_sparse_topk_matches_dense_values_and_grads():
    B, d, m, k, k_aux = 64, 16, 48, 4, 6
    x = torch.randn(B, d)
    params = [torch.randn(d, m, requires_grad=True), torch.randn(m, requires_grad=True),
              torch.randn(m, d, requires_grad=True), torch.randn(d, requires_grad=True)]
    dead = torch.zeros(m, dtype=torch.bool)
    dead[::3] = True

    def sparse(We, be, Wd, bd):
        c = topk_encode(x - bd, We, be, k, dead, k_aux)
        xh = sparse_decode(c.idx, c.acts, Wd) + bd
        return (xh - x).pow(2).sum() + (sparse_decode(c.aux_idx, c.aux_acts, Wd) - (x - xh).detach()).pow(2).sum()

    def dense(We, be, Wd, bd):
        pre = (x - bd) @ We + be
        v, i = pre.topk(k)
        xh = torch.zeros_like(pre).scatter(-1, i, v.relu()) @ Wd + bd
        av, ai = pre.masked_fill(~dead, float("-inf")).topk(k_aux)
        aux = torch.zeros_like(pre).scatter(-1, ai, av.relu()) @ Wd
        return (xh - x).pow(2).sum() + (aux - (x - xh).detach()).pow(2).sum()

    results = []
    for f in (sparse, dense):
        for p in params:
            p.grad = None
        loss = f(*params)
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in params]))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-5, atol=1e-4)
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-3)


def test_geometric_median_resists_outliers():
    pts = torch.cat([torch.randn(200, 3) * 0.1, torch.full((20, 3), 100.0)])
    assert geometric_median(pts).norm() < 1.0 < pts.mean(0).norm()
