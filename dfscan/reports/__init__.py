"""Reports, read from the results and never changing them: the files (`writers`: CSV, JSON, JSON lines,
DFDC; written only where asked with `targets` and `lock`), `html`, the terminal's rich objects
(`terminal`) and the wording they share (`text`). The sections of other families are rendered beside
them: dfscan.sources.report, dfscan.verdicts.people_html, dfscan.queue.cells."""
