"""Pure numpy trend math: sliding-window counts over hourly buckets, a shop-wide
hour-of-day profile and the profile-weighted hours it gives a span, velocity against an
item's own baseline, and Holt's linear forecast of a daily series.

No I/O: counts come in as arrays, scores go out as arrays.
"""

from __future__ import annotations

import numpy as np


def window_counts(hourly: np.ndarray, elapsed_fraction: float) -> np.ndarray:
    """Counts of a sliding window of w hours ending now, from hourly buckets.

    The window holds the current (partial) hour, the w - 1 whole hours before it, and the
    part of the hour before those that is still less than w hours old: the oldest bucket
    times (1 - ``elapsed_fraction``), as if its events were spread evenly over the hour.

    Args:
        hourly: shape (n, w + 1), per row the counts of hours H - w .. H, oldest first,
            where H is the current hour (its last column may include events stamped later).
        elapsed_fraction: how much of the current hour has passed, in [0, 1].

    Returns:
        shape (n,), the windowed counts.
    """
    if not 0.0 <= elapsed_fraction <= 1.0:
        raise ValueError(f"elapsed_fraction={elapsed_fraction}; expected 0..1")
    hourly = np.asarray(hourly, dtype=np.float64)
    if hourly.ndim != 2 or hourly.shape[1] < 2:
        raise ValueError("hourly must have shape (n, w + 1) with w >= 1")
    return hourly[:, 1:].sum(axis=1) + hourly[:, 0] * (1.0 - elapsed_fraction)


def hour_of_day_profile(totals: np.ndarray, hours_observed: np.ndarray, pseudo: float) -> np.ndarray:
    """The shop's usual count at each hour of the day relative to its mean hour, shrunk
    toward 1 when its counts are thin.

    profile[h] = (S[h] + pseudo) / (n[h] * m + pseudo), where S[h] is the count in the
    observed hours of hour of day h, n[h] how many such hours there were and m = sum(S) /
    sum(n) the mean count per observed hour: the Gamma-Poisson posterior mean of the ratio
    with ``pseudo`` pseudo-events at the mean rate per hour of day. A shop with counts far
    above ``pseudo`` per hour of day gets its own shape (with equal n[h] the profile's mean
    is exactly 1); a thin one gets ~1 everywhere; an hour of day never observed gets 1.

    Args:
        totals: shape (24,), S, counts by hour of day (>= 0).
        hours_observed: shape (24,), n, observed hours by hour of day (>= 0).
        pseudo: pseudo-count (> 0).

    Returns:
        shape (24,), the profile (> 0).
    """
    if pseudo <= 0:
        raise ValueError("pseudo must be > 0")
    totals = np.asarray(totals, dtype=np.float64)
    observed = np.asarray(hours_observed, dtype=np.float64)
    if totals.shape != (24,) or observed.shape != (24,):
        raise ValueError("totals and hours_observed must have shape (24,)")
    hours = observed.sum()
    mean = totals.sum() / hours if hours > 0 else 0.0
    return (totals + pseudo) / (observed * mean + pseudo)


def profile_hours(profile: np.ndarray, hours: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Profile-weighted length of a set of absolute hours: sum of weights * profile[hour %
    24] (hour 0 is 00:00 UTC of the epoch's first day, so hour % 24 is the hour of day).

    Args:
        profile: shape (24,), by hour of day.
        hours: shape (n,), absolute hours (epoch seconds // 3600).
        weights: shape (n,), the part of each hour counted (default all 1).

    Returns:
        the weighted length (equals sum(weights) for a profile of ones).
    """
    profile = np.asarray(profile, dtype=np.float64)
    if profile.shape != (24,):
        raise ValueError("profile must have shape (24,)")
    hours = np.asarray(hours, dtype=np.int64)
    values = profile[hours % 24]
    if weights is not None:
        values = values * np.asarray(weights, dtype=np.float64)
    return float(values.sum())


def window_exposure(profile: np.ndarray, current_hour: int, window: int, elapsed_fraction: float) -> float:
    """Profile-weighted length of the sliding window of ``window`` hours ending now, the
    time counterpart of :func:`window_counts`: the elapsed part of the current hour, the
    ``window`` - 1 whole hours before it and the still-inside part (1 - elapsed) of the hour
    before those. With a profile of ones it is ``window``.

    Args:
        profile: shape (24,), by hour of day.
        current_hour: the current absolute hour H.
        window: w >= 1.
        elapsed_fraction: how much of H has passed, in [0, 1].
    """
    if window < 1 or not 0.0 <= elapsed_fraction <= 1.0:
        raise ValueError("window must be >= 1 and elapsed_fraction in [0, 1]")
    hours = np.arange(current_hour - window, current_hour + 1)
    weights = np.ones(window + 1)
    weights[0], weights[-1] = 1.0 - elapsed_fraction, elapsed_fraction
    return profile_hours(profile, hours, weights)


def velocity_scores(
    counts: np.ndarray, baseline_rates: np.ndarray, window_hours: float, prior: float
) -> tuple[np.ndarray, np.ndarray]:
    """Velocity of each item against its own baseline, smoothed by a prior.

    velocity = (c + prior) / (e + prior), e = r * window_hours, where c is the count in the
    window and r the item's usual hourly rate (de-seasonalised: per profile-weighted hour,
    and ``window_hours`` then the window's profile-weighted length, :func:`window_exposure`).
    The prior acts as ``prior`` pseudo-events seen at exactly the usual rate: small counts
    stay near 1 (a 1 -> 3 blip, prior 5: 8 / 6 = 1.33) while large ones keep their ratio
    (100 -> 300: 305 / 105 = 2.90).

    Args:
        counts: shape (n,), count in the window c.
        baseline_rates: shape (n,), usual count per hour r (>= 0).
        window_hours: the window's length in hours, or its profile-weighted length (> 0).
        prior: pseudo-count (> 0).

    Returns:
        (velocity, expected), each shape (n,).
    """
    if prior <= 0 or window_hours <= 0:
        raise ValueError("prior and window_hours must be > 0")
    counts = np.asarray(counts, dtype=np.float64)
    expected = np.asarray(baseline_rates, dtype=np.float64) * window_hours
    return (counts + prior) / (expected + prior), expected


def mean_forecast(series: np.ndarray, horizon: int) -> tuple[float, float, np.ndarray]:
    """The series' mean per step, forecast flat.

    On a shop's daily units per item (mostly intermittent: many quiet days, a few large
    orders) the mean of the last weeks forecasts the next week better than a smoothed trend,
    which extrapolates the noise (``streamrec eval demand``).

    Args:
        series: shape (d,), oldest first, >= 0 (d may be 0: all zeros).
        horizon: steps to forecast (>= 0).

    Returns:
        (level = the mean, trend = 0.0, forecast of shape (horizon,), each step the mean).
    """
    if horizon < 0:
        raise ValueError("horizon must be >= 0")
    values = np.asarray(series, dtype=np.float64)
    level = float(values.mean()) if values.size else 0.0
    return level, 0.0, np.full(horizon, level)


def holt_forecast(
    series: np.ndarray, alpha: float, beta: float, horizon: int
) -> tuple[float, float, np.ndarray]:
    """Holt's linear exponential smoothing of a series, and its forecast.

    Level l_0 = y_0, trend b_0 = 0; then for t >= 1:
    l_t = alpha * y_t + (1 - alpha) * (l_{t-1} + b_{t-1}),
    b_t = beta * (l_t - l_{t-1}) + (1 - beta) * b_{t-1};
    forecast h steps ahead = max(0, l + h * b) (counts are never negative).

    Demand is never negative, so neither is the level: each l_t is clamped at 0 before
    b_t is computed from it, and each b_t at -l_t, so that the next step's l + b is >= 0
    (a one-off sale followed by quiet days would otherwise smooth to a negative level).

    Args:
        series: shape (d,), oldest first, >= 0 (d may be 0: all zeros).
        alpha, beta: smoothing of level and trend, in (0, 1].
        horizon: steps to forecast (>= 0).

    Returns:
        (level, trend, forecast of shape (horizon,)).
    """
    if not (0.0 < alpha <= 1.0 and 0.0 < beta <= 1.0) or horizon < 0:
        raise ValueError("alpha and beta must be in (0, 1], horizon >= 0")
    values = np.asarray(series, dtype=np.float64)
    if values.size == 0:
        return 0.0, 0.0, np.zeros(horizon)
    level, trend = float(values[0]), 0.0
    for value in values[1:]:
        previous = level
        level = max(0.0, alpha * float(value) + (1.0 - alpha) * (level + trend))
        # (0.0 - level, not -level: a clamped trend is then 0.0, never -0.0)
        trend = max(0.0 - level, beta * (level - previous) + (1.0 - beta) * trend)
    steps = np.arange(1, horizon + 1, dtype=np.float64)
    return level, trend, np.maximum(0.0, level + steps * trend)
