"""What every report section receives: one protocol for the built-in sections and any further one.

A section is a module of :mod:`jaxlatent.report.sections` (or any module) with ::

    def add_section(page: ReportPage, model, ctx: SectionContext) -> None

that writes its headings, figures and tables to ``page``, its numbers to ``page.results`` and its
raw arrays to ``ctx.arrays["<name>/..."]``. ``<name>`` is the module's last name; the report
records the section's run time under ``results["timings_s"]["<name>"]``.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

import jax

__all__ = ["SectionContext"]


class SectionContext(NamedTuple):
    """The report's state a section reads.

    options: the :class:`jaxlatent.report.build.ReportOptions` (``quick``, ``truncation_psi``,
      ``class_idx``, ``chunk_size``, sizes of each analysis).
    key: the section's own PRNG key, ``fold_in(PRNGKey(options.seed), i)`` for the i-th section.
    classifier: a :class:`jaxlatent.models.digits.Classifier` when the report has one, else None.
    arrays: raw arrays written to ``arrays.npz``; keys start with ``"<name>/"``.
    progress: whether progress bars are wanted.
    quality: the model's own measurements (the shipped model's ``quality.json``) or None.
    taps: the taps analysed; traversal_taps: the taps traversed (both checked against the model).
    population: ``(options.n_latents, z_dim)`` latents from ``options.population_seed`` on.
    fns: tap -> the batched callable of every tap above (:func:`jaxlatent.workflows.spaces.tap_fn`).
    frames: tap -> the traversal section's frames (:func:`jaxlatent.report.sections.traversal.traversal_section`),
      filled as the sections run; the explorer reads them.
    """

    options: Any
    key: jax.Array
    classifier: Any
    arrays: dict
    progress: bool
    quality: dict | None
    taps: tuple[str, ...]
    traversal_taps: tuple[str, ...]
    population: jax.Array
    fns: Mapping[str, Callable]
    frames: dict
