"""The report's sections, one module each, in page order as :data:`jaxlatent.report.build.SECTIONS`
lists them. Every module defines ``add_section(page, model, ctx)``; the protocol and the fields of
``ctx`` are in :mod:`jaxlatent.report.context`.
"""
