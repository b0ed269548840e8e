"""Human-readable output of a run: terminal summary, ``report.md``, ``report.html``.

| module | what |
|---|---|
| ``markdown`` | number formatting, terminal summary tables, ``report.md`` |
| ``html`` | the self-contained HTML report (``templates/report.html.j2``) |
"""

from audit.report.html import write_html_report
from audit.report.markdown import print_summary, write_report

__all__ = ["print_summary", "write_html_report", "write_report"]
