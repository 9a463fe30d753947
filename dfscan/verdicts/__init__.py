"""From face scores to a verdict a person can act on: faces linked into people (`link`, `people`), the
`--aggregate` rule (`aggregate`) and the uncertain band (`band`). Pure logic over the data model: no
files, no model. `people_html` renders the people section of the HTML report."""
