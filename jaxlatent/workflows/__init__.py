"""A model and its options -> the callables and latents the analyses take, built once here for the
command line (:mod:`jaxlatent.cli`), the report (:mod:`jaxlatent.report`) and long runs
(:mod:`jaxlatent.runs`): taps and images (:mod:`~jaxlatent.workflows.spaces`), the default taps
(:mod:`~jaxlatent.workflows.taps`), and the per-paper glue that the report and a command share
(:mod:`~jaxlatent.workflows.geometry`, :mod:`~jaxlatent.workflows.ganspace`,
:mod:`~jaxlatent.workflows.correlation`).
"""
