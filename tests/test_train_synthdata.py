"""On-the-fly synthetic pairs: consistency with the effect, determinism, pool refresh, validation grid."""

from __future__ import annotations

import numpy as np
import pytest

from fxnet.effects import get_effect
from fxnet.train.data import CropLayout
from fxnet.train.synthdata import SynthData, knob_grid

LAYOUT = CropLayout(left=31, right=5, latency=3, n=256)


def small(effect="comp4c", **kw):
    kw = {"pool_clips": 8, "refresh_every": 3, "val_clips": 1, **kw}
    return SynthData(effect, layout=LAYOUT, **kw)


def test_targets_are_the_effect_of_the_whole_input_crop():
    data = small("comp4c")
    x, y, k = data.sample(6, np.random.default_rng(0), 0)
    assert x.shape == (6, 1, LAYOUT.input_length) and y.shape == (6, 1, 256) and k.shape == (6, 4)
    fx = get_effect("comp4c")
    for i in range(6):  # the effect starts from rest at the crop's first sample
        wet = fx(x[i, 0].numpy(), 44100, k[i].numpy().astype(np.float64))
        off = LAYOUT.target_offset
        np.testing.assert_allclose(y[i, 0].numpy(), wet[off : off + 256], atol=1e-6)


def test_onsets_silence_a_prefix_and_keep_targets_exact():
    plain = small("la2a").sample(64, np.random.default_rng(3), 0)[0]
    x, y, k = small("la2a", onset_share=0.5).sample(64, np.random.default_rng(3), 0)
    xs, ps = x[:, 0].numpy(), plain[:, 0].numpy()
    changed = [i for i in range(64) if not np.array_equal(xs[i], ps[i])]
    assert 16 <= len(changed) <= 48  # about half
    off = LAYOUT.target_offset
    for i in changed:  # silent up to a cut inside the context or the first half of the output
        cut = int(np.argmax(xs[i] != 0))
        assert 0 < cut <= off + 128 and not xs[i, :cut].any()
        np.testing.assert_array_equal(xs[i, cut:], ps[i, cut:])
    fx = get_effect("la2a")
    for i in changed[:4]:
        wet = fx(xs[i], 44100, k[i].numpy().astype(np.float64))
        np.testing.assert_allclose(y[i, 0].numpy(), wet[off : off + 256], atol=1e-6)
    with pytest.raises(Exception, match="--synth-onsets"):
        small(onset_share=1.5)


def test_remove_direction_swaps_input_and_target():
    rng_a, rng_b = np.random.default_rng(4), np.random.default_rng(4)
    xa, ya, ka = small("hardclip").sample(4, rng_a, 0)
    xb, yb, kb = small("hardclip", direction="remove").sample(4, rng_b, 0)
    np.testing.assert_array_equal(ka, kb)
    off = LAYOUT.target_offset
    np.testing.assert_array_equal(yb[..., :], xa[..., off : off + 256])  # clean target
    np.testing.assert_array_equal(ya[..., :], xb[..., off : off + 256])  # clipped input


def test_pool_is_rebuilt_exactly_at_any_step():
    live = small(pool_clips=8, refresh_every=3)
    for step in range(40):
        live.sample(2, np.random.default_rng(step), step)
    rebuilt = small(pool_clips=8, refresh_every=3, start_step=39)
    np.testing.assert_array_equal(live.pool, rebuilt.pool)
    assert not np.array_equal(live.pool, small(pool_clips=8, refresh_every=3).pool)  # it was refreshed


def test_ranks_draw_different_pools_but_share_validation():
    a, b = small(seed=1, data_seed=11), small(seed=1, data_seed=12)
    assert not np.array_equal(a.pool, b.pool)
    np.testing.assert_array_equal(a.validation.inputs, b.validation.inputs)


def test_validation_grid():
    assert knob_grid(0) == [()]
    assert knob_grid(1) == [(0.0,), (0.25,), (0.5,), (0.75,), (1.0,)]
    assert len(knob_grid(2)) == 16 and len(knob_grid(4)) == 16 and len(knob_grid(7)) == 16
    val = small("overdrive", val_clips=3).validation
    assert len(val.settings) == 16 and val.inputs.shape[0] == 48
    rows = val.knobs[val.setting == 5].unique(dim=0).tolist()
    assert len(rows) == 1 and rows[0] == pytest.approx(val.settings[5])


def test_unknown_effect_lists_the_effects():
    from fxnet.errors import UsageError

    with pytest.raises(UsageError, match="unknown effect 'nope'; available effects: clip_sdr, comp4c"):
        small("nope")
