"""Golden values of the training losses and of the --loss parser."""

from __future__ import annotations

import math

import pytest
import torch

from fxnet.errors import UsageError
from fxnet.train.losses import (LOSSES, DCLoss, ESRLoss, LogCoshLoss, MultiResolutionSTFTLoss, RowESRLoss, SDRLoss, SISDRLoss, esr,
                                parse_loss)


def t(values):
    return torch.tensor(values, dtype=torch.float64).reshape(1, 1, -1)


def test_sisdr_golden_value():
    # s = [3, -0.5, 2, 7], s_hat = [2.5, 0, 2, 8]: alpha = 67.5 / 62.25, SI-SDR = 18.4030 dB
    loss = SISDRLoss(eps=0.0)(t([2.5, 0, 2, 8]), t([3, -0.5, 2, 7]))
    assert loss.item() == pytest.approx(-18.4030, abs=5e-5)


def test_sisdr_ignores_scale_and_averages_rows():
    s = torch.randn(3, 2, 1000, dtype=torch.float64)
    noisy = s + 0.1 * torch.randn_like(s)
    assert SISDRLoss()(3.0 * noisy, s).item() == pytest.approx(SISDRLoss()(noisy, s).item(), abs=1e-6)
    per_row = torch.stack([SISDRLoss()(noisy[i : i + 1], s[i : i + 1]) for i in range(3)])
    assert SISDRLoss()(noisy, s).item() == pytest.approx(per_row.mean().item(), abs=1e-9)


def test_sdr_hand_computed_and_per_row():
    # s = [3, -0.5, 2, 7] (62.25), error [0.5, -0.5, 0, -1] (1.5): SDR = 10 log10(41.5) = 16.1805 dB
    assert SDRLoss(eps=0.0)(t([2.5, 0, 2, 8]), t([3, -0.5, 2, 7])).item() == pytest.approx(-16.1805, abs=5e-5)
    # per example, then averaged: a quiet row counts as much as a loud one (unlike pooled ESR)
    s = torch.randn(2, 1, 1000, dtype=torch.float64)
    s[1] *= 0.01
    noisy = s + 0.1 * s.abs().max(dim=-1, keepdim=True).values * torch.randn_like(s)
    rows = [SDRLoss()(noisy[i : i + 1], s[i : i + 1]).item() for i in range(2)]
    assert SDRLoss()(noisy, s).item() == pytest.approx(sum(rows) / 2, abs=1e-9)
    assert "sdr" in LOSSES and parse_loss("sdr").spec == "sdr"
    assert SDRLoss()(3.0 * noisy, s).item() != pytest.approx(SDRLoss()(noisy, s).item())  # not scale-invariant


def test_esr_hand_computed():
    # target [1, 2, 3], pred [1, 1, 1]: errors 0, 1, 2 -> 5 / 14
    assert ESRLoss(eps=0.0)(t([1, 1, 1]), t([1, 2, 3])).item() == pytest.approx(5 / 14)
    # pooled over the batch: (1 + 0) / (4 + 1), not the mean of 1/4 and 0/1
    pred = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    target = torch.tensor([[[2.0, 0.0]], [[0.0, 1.0]]])
    assert esr(pred, target, 0.0).item() == pytest.approx(1 / 5)
    assert ESRLoss()(t([0, 0]), t([0, 0])).item() == 0.0  # silent target: finite


def test_row_esr_hand_computed_and_floored():
    pred = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    target = torch.tensor([[[2.0, 0.0]], [[0.0, 2.0]]])
    # per row: 1/4 and 1/4 -> mean 1/4 (pooled ESR would weigh rows by their energy)
    assert RowESRLoss(eps=0.0)(pred, target).item() == pytest.approx(0.25)
    quiet = torch.tensor([[[2.0, 0.0]], [[0.0, 0.2]]])
    # row 2: error 0.64, energy 0.04 -> 16; pooled ESR gives (1 + 0.64) / 4.04
    assert RowESRLoss(floor=0.0, eps=0.0)(pred, quiet).item() == pytest.approx((0.25 + 16) / 2)
    assert esr(pred, quiet, 0.0).item() == pytest.approx(1.64 / 4.04)
    # a near-silent row's energy is floored at 1 % of the mean row energy: 0.01 -> 0.02005
    silent = torch.tensor([[[2.0, 0.0]], [[0.0, 0.1]]])
    assert RowESRLoss(eps=0.0)(pred, silent).item() == pytest.approx((0.25 + 0.81 / 0.02005) / 2, rel=1e-5)
    assert RowESRLoss()(t([0, 0]), t([0, 0])).item() == 0.0
    assert parse_loss("esr_rows").spec == "esr_rows"


def test_esr_pre_emphasis_hand_computed():
    # y = [1, 2, 4] -> 1 - 0.5 z^-1 -> [1.5, 3]; y_hat = [1, 1, 1] -> [0.5, 0.5]; ESR = (1 + 6.25) / (2.25 + 9)
    got = ESRLoss(pre_emphasis=0.5, eps=0.0)(t([1, 1, 1]), t([1, 2, 4])).item()
    assert got == pytest.approx(7.25 / 11.25)


def test_dc_loss_hand_computed():
    # error mean 1 (pred = target - 1); mean target^2 = (1 + 4 + 9) / 3
    assert DCLoss(eps=0.0)(t([0, 1, 2]), t([1, 2, 3])).item() == pytest.approx(1 / (14 / 3))
    # a zero-mean error has no DC term
    assert DCLoss()(t([2, 1, 3]), t([1, 2, 3])).item() == pytest.approx(0.0, abs=1e-12)


def test_logcosh_small_and_large_values():
    d = torch.tensor([1e-4, -3e-3, 2e-2], dtype=torch.float64)
    got = LogCoshLoss()(d.reshape(1, 1, -1), torch.zeros(1, 1, 3, dtype=torch.float64)).item()
    assert got == pytest.approx((d * d / 2).mean().item(), rel=1e-4)  # ~ d^2 / 2 near zero
    big = LogCoshLoss()(t([100.0]), t([0.0])).item()
    assert big == pytest.approx(100 - math.log(2), rel=1e-12)  # no overflow: |d| - log 2
    assert LogCoshLoss()(t([0.7]), t([0.2])).item() == pytest.approx(math.log(math.cosh(0.5)), rel=1e-12)


def test_mrstft_zero_for_identical_and_scale_sensitive():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 4096)
    loss = MultiResolutionSTFTLoss()
    assert loss(x, x).item() == pytest.approx(0.0, abs=1e-5)
    assert loss(0.5 * x, x).item() > loss(0.9 * x, x).item() > 0.0
    # spectral convergence of 0.5 x against x is exactly 0.5, log-magnitude |log 0.5| = 0.693
    assert loss(0.5 * x, x).item() == pytest.approx(0.5 + math.log(2), rel=1e-3)
    assert loss(x[..., :300], x[..., :300]).item() == pytest.approx(0.0, abs=1e-5)  # shorter than every FFT


def test_parse_loss_combines_and_reports_bad_terms():
    torch.manual_seed(0)
    y = torch.randn(2, 1, 4096)
    pred = y + 0.1 * torch.randn_like(y)
    combo = parse_loss("esr+0.5*mrstft")
    assert combo.spec == "esr+0.5*mrstft"
    expected = ESRLoss()(pred, y) + 0.5 * MultiResolutionSTFTLoss()(pred, y)
    assert combo(pred, y).item() == pytest.approx(expected.item(), rel=1e-6)
    assert parse_loss(" 2e-1 * sisdr + 0*mrstft ").names == ["sisdr"]  # zero weight: not computed
    with pytest.raises(UsageError, match="cannot read term 'nope'"):
        parse_loss("esr+nope")
    with pytest.raises(UsageError, match="no term"):
        parse_loss("0*esr")
