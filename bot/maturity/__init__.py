"""The five-question automation-maturity check: questionnaire, scoring, data hints, chat flow."""
