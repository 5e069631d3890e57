"""The reports: the mixture report (report.json, report.html), its drop tables and every plot, the classifier and
calibration figures and the study report, with one PNG helper (`report.png`). Imports nothing: `import report` is
cheap."""
