"""Regression: the finite-width gain refinement must not leap off a noisy, stepwise rate map.

Before the fix, ``finite_width_gain`` ran a free secant on the finite-width mean-field rate. At
threshold 1, beta 0.25, T = 20, width 1000 that rate is piecewise constant in the gain (jumps of
about 1%), the secant read a near-zero slope between two close gains and leapt to 1.31 times the
gain: ``temporal`` then over-drove a 100-layer network to 1.66 times its first layer's rate.
"""

from __future__ import annotations

import math
import types
import warnings

import numpy as np
import pytest

import spikeinit.theory.temporal_gain as temporal_gain
from spikeinit.experiments.propagation import PropagationConfig, run_propagation
from spikeinit.neurons import LIFParameters
from spikeinit.theory.temporal import InputCurrentProcess, temporal_mean_field
from spikeinit.theory.temporal_gain import TemporalGain, finite_width_gain, solve_temporal_gain

GAIN, TARGET = 8.0, 0.125


def _solution() -> TemporalGain:
    return TemporalGain(gain=GAIN, target_rate=TARGET, fixed_point_rate=TARGET,
                        input_rate=TARGET, rate_profile=(), input_rate_profile=())


def _staircase(step: float, offset: float):
    """A fake finite-width map: rate rises ~4x faster than the gain, in flat-ish stairs."""
    calls: list[float] = []

    def fake(depth, gain, *args, **kwargs):
        x = math.log(gain / GAIN)
        calls.append(x)
        stair = step * math.floor(x / step)
        rate = TARGET * math.exp(4.0 * (stair - offset) + 0.01 * x)
        return types.SimpleNamespace(time_averaged_rate=np.array([rate]))

    return fake, calls


@pytest.mark.parametrize("step, offset", [(0.02, 0.03), (0.01, 0.013), (0.03, -0.05)])
def test_refinement_stays_in_its_bracket_on_a_stepwise_map(monkeypatch, step, offset):
    fake, calls = _staircase(step, offset)
    monkeypatch.setattr(temporal_gain, "temporal_mean_field", fake)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        gain = finite_width_gain(_solution(), LIFParameters(), 20, InputCurrentProcess(), 10, 100)
    x = math.log(gain / GAIN)
    # The true crossing lies on a stair edge within one stair of `offset`; a free secant on
    # these stairs leaves by up to the full clamp (a factor e). The result is the best
    # evaluated gain, one stair (4 x step in log rate) from the target at most.
    assert abs(x - offset) <= 2 * step
    rate = fake(0, gain).time_averaged_rate[-1]
    assert abs(math.log(rate / TARGET)) <= 4 * step + 0.01
    assert len(calls) <= 13


def test_refinement_names_the_rates_it_jumps_between(monkeypatch):
    fake, _ = _staircase(0.05, 0.025)  # stairs at log-rate -0.1 and +0.1 around the target
    monkeypatch.setattr(temporal_gain, "temporal_mean_field", fake)
    with pytest.warns(RuntimeWarning, match=r"jumps over the target 0.125 .*Nearest feasible"):
        finite_width_gain(_solution(), LIFParameters(), 20, InputCurrentProcess(), 10, 100)


def test_refinement_on_a_smooth_map_converges_to_the_target(monkeypatch):
    calls: list[float] = []

    def smooth(depth, gain, *args, **kwargs):
        calls.append(gain)
        return types.SimpleNamespace(
            time_averaged_rate=np.array([TARGET * (gain / (1.07 * GAIN)) ** 4.5]))

    monkeypatch.setattr(temporal_gain, "temporal_mean_field", smooth)
    gain = finite_width_gain(_solution(), LIFParameters(), 20, InputCurrentProcess(), 10, 100)
    assert gain == pytest.approx(1.07 * GAIN, rel=2e-3)
    assert len(calls) <= 8


def test_refinement_warns_when_the_target_cannot_be_bracketed(monkeypatch):
    flat = types.SimpleNamespace(time_averaged_rate=np.array([TARGET / 2]))
    monkeypatch.setattr(temporal_gain, "temporal_mean_field", lambda *a, **k: flat)
    with pytest.warns(RuntimeWarning, match="could not bracket"):
        gain = finite_width_gain(_solution(), LIFParameters(), 20, InputCurrentProcess(), 10, 100)
    assert GAIN / math.e <= gain <= GAIN * math.e


def test_beta_quarter_gain_is_near_the_infinite_width_gain():
    # The reported case at reduced depth (30 layers, width 500): the refined gain must stay
    # close to the infinite-width one, and the finite-width rate at it close to the target.
    params = LIFParameters(beta=0.25, threshold=1.0)
    infinite = solve_temporal_gain(params, 20, settle_layers=29)
    finite = solve_temporal_gain(params, 20, settle_layers=29, width=500)
    assert abs(math.log(finite.gain / infinite.gain)) < 0.1
    mf = temporal_mean_field(30, finite.gain, params, 20, samples=64, width=500)
    assert abs(mf.time_averaged_rate[-1] / finite.target_rate - 1) < 0.03


@pytest.mark.slow
@pytest.mark.ci
def test_full_size_temporal_keeps_the_rate_at_beta_quarter():
    # robustness.md's T = 20 cell theta = 1, beta = 0.25 (was 1.66 with the free secant).
    config = PropagationConfig(inits=("temporal",), depth=100, width=1000, steps=20,
                               threshold=1.0, beta=0.25)
    rate = np.array(run_propagation(config)["results"]["temporal"]["rate"])
    assert abs(rate[-1] / rate[0] - 1) < 0.10
