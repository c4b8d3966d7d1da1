"""Further sections of the analysis report, one module per analysis.

:func:`jaxlatent.report.build.build_report` runs the modules listed in ``jaxlatent.report.build.SECTIONS``,
in order, after its built-in sections. Each module defines::

    def add_section(page, model, *, quick: bool, key, classifier, arrays: dict,
                    truncation_psi: float, progress: bool) -> None

Args:
  page: the :class:`jaxlatent.report.page.ReportPage` being written: ``page.section(heading,
    text)``, ``page.text``, ``page.figure(filename, caption)`` (a PNG written first at
    ``page.path(filename)``), ``page.table(header, rows)``; numbers go to
    ``page.results["<name>"]`` (written to ``results.json``).
  model: the loaded generator (StyleGAN2 or FastGAN; ``model.config.family`` says which).
  quick: run the small variant (``jaxlatent demo --quick``; seconds on the shipped digits model).
  key: a PRNG key of the section's own (``fold_in`` of the report's ``--seed``).
  classifier: a :class:`jaxlatent.models.digits.Classifier` when the report has one (the demo), else None.
  arrays: raw arrays written to ``arrays.npz``; keys start with ``"<name>/"``.
  truncation_psi: the report's truncation (StyleGAN2), to apply to the section's latents.
  progress: whether progress bars are wanted.

``<name>`` is the module's last name (``jaxlatent.report.sections.ganspace`` -> ``ganspace``); the
section's run time goes into ``results["timings_s"]["<name>"]``.
"""
