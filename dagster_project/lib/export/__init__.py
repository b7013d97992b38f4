"""What a run hands to people and tools: tier lists, charts, the run report and the publish step.

`tiers` writes the tier lists for CRM and ad tools (with spreadsheet-formula neutralising),
`charts` draws the matplotlib charts from the marts, `report` renders report.html, and `publish`
commits a run's staging folder and swaps it into place (journalled, so a crash leaves either the
old or the new export).
"""
