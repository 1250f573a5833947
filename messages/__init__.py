"""Insight -> words. Everything between a detector's Insight and the bytes a channel sends.

i18n (plural forms, numbers, money, dates, language choice), templates/ (per-detector ru/en
wording), render (the neutral RenderedInsight), digest (per-recipient digest), telegram /
slack / terminal (the three formats), charts (PNG). Pure: no network, no clock, no disk.
"""
