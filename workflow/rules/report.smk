# The HTML report: `snakemake --report results/report.html` (or report.zip) collects every
# figure and table marked with report() in the rules, with the captions in workflow/report/.


report: "../report/workflow.rst"
