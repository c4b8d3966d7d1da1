"""Summaries streamed while a run goes: the mean spectrum with its 5-95 % band, local dimensions.

The mean of each singular value is exact (float64 sums). The 5th and 95th percentiles, taken
per singular-value index across latents, come from a histogram of ``log10(sigma)`` with fixed
bins (:data:`LOG_RANGE`, :data:`BINS`: 0.01 decade wide) merged over chunks and read with
linear interpolation inside the bin where the cumulative count reaches q %: that bin holds the
inverted-CDF percentile of the latents seen (numpy's ``method="inverted_cdf"``), so the band is
within one bin width (2.3 %) of it. Values below ``10**LOG_RANGE[0]`` count in the first bin.
The local dimension histogram (integer counts) is exact.
"""

from __future__ import annotations

import numpy as np

LOG_RANGE = (-12.0, 8.0)
BINS = 2000
BAND = (5.0, 95.0)


class Summary:
    """Accumulates per-chunk spectra ``(n, m)`` and local dimensions ``(n,)`` (either may be absent)."""

    def __init__(self):
        self.count = 0
        self.count_spectra = 0
        self.spectrum_sum = None
        self.log_hist = None
        self.dimension_counts = np.zeros(0, np.int64)

    def add(self, spectrum: np.ndarray | None = None, dimension: np.ndarray | None = None) -> None:
        if spectrum is not None:
            s = np.asarray(spectrum, np.float64).reshape(len(spectrum), -1)
            m = s.shape[1]
            if self.spectrum_sum is None:
                self.spectrum_sum = np.zeros(m, np.float64)
                self.log_hist = np.zeros((m, BINS), np.int64)
            self.spectrum_sum += s.sum(axis=0)
            lo, hi = LOG_RANGE
            logs = np.log10(np.maximum(s, 10.0 ** lo))
            b = np.clip(((logs - lo) / (hi - lo) * BINS).astype(np.int64), 0, BINS - 1)
            flat = (np.arange(m)[None, :] * BINS + b).ravel()
            self.log_hist += np.bincount(flat, minlength=m * BINS).reshape(m, BINS)
            self.count_spectra += len(s)
        if dimension is not None:
            d = np.asarray(dimension, np.int64).ravel()
            counts = np.bincount(np.maximum(d, 0))
            if len(counts) > len(self.dimension_counts):
                counts, self.dimension_counts = self.dimension_counts, counts.copy()
            self.dimension_counts[:len(counts)] += counts
        n = len(spectrum) if spectrum is not None else len(dimension) if dimension is not None else 0
        self.count += n

    def percentile(self, q: float) -> np.ndarray:
        """Per-index q-th percentile (0-100) of the spectra seen, from the log histogram."""
        cdf = np.cumsum(self.log_hist, axis=1)
        total = cdf[:, -1:]
        target = q / 100.0 * total
        idx = np.minimum((cdf < target).sum(axis=1), BINS - 1)
        below = np.where(idx > 0, np.take_along_axis(cdf, np.maximum(idx - 1, 0)[:, None], 1)[:, 0], 0)
        inside = np.take_along_axis(self.log_hist, idx[:, None], 1)[:, 0]
        frac = np.clip((target[:, 0] - below) / np.maximum(inside, 1), 0.0, 1.0)
        lo, hi = LOG_RANGE
        width = (hi - lo) / BINS
        return 10.0 ** (lo + (idx + frac) * width)

    def to_json(self) -> dict:
        """The summary as plain JSON: counts, mean spectrum, band, dimension histogram."""
        out = {"latents": int(self.count)}
        if self.spectrum_sum is not None:
            n = self.count_spectra
            out["spectrum"] = {
                "mean": (self.spectrum_sum / n).tolist(),
                f"p{BAND[0]:g}": self.percentile(BAND[0]).tolist(),
                f"p{BAND[1]:g}": self.percentile(BAND[1]).tolist(),
                "band_note": f"per-index percentiles from log10 histograms, {BINS} bins over "
                             f"1e{LOG_RANGE[0]:g}..1e{LOG_RANGE[1]:g} (within 2.3 % of the inverted-CDF percentile)",
            }
        if self.dimension_counts.sum() > 0:
            counts = self.dimension_counts
            values = np.arange(len(counts))
            total = counts.sum()
            out["local_dimension"] = {
                "histogram": {str(int(v)): int(c) for v, c in zip(values, counts) if c},
                "mean": float((values * counts).sum() / total),
                "min": int(values[counts > 0].min()), "max": int(values[counts > 0].max()),
            }
        return out
