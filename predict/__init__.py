"""Level 3: which open deals will be won, learned from the company's own closed deals.

features (as of a snapshot date, nothing from after it) -> model (calibrated, compared with
the stage-only baseline on a time-based backtest, honest about too little history) ->
report (the backtest and the forecast in numbers). Insights built on it live in detectors/.
"""
