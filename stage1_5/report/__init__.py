"""Report stage: Markdown report, figures and the results zip.

Figures live in `stage1_5.report.figures` (imported on demand: it pulls in matplotlib).
"""

from stage1_5.report.bundle import BUNDLE_NAME, write_bundle
from stage1_5.report.layout import FIGURES, ordered
from stage1_5.report.markdown import TABLE_HEADER, DatasetFacts, package_versions, render_report

__all__ = [
    "BUNDLE_NAME",
    "FIGURES",
    "TABLE_HEADER",
    "DatasetFacts",
    "ordered",
    "package_versions",
    "render_report",
    "write_bundle",
]
