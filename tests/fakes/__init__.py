"""Fake chat API servers (Telegram Bot API, Slack Web API) that tests and benchmarks start on
127.0.0.1 with a random port, so the real python-telegram-bot and slack-bolt stacks run without
the network. Fault injection (429, 500, slow, dropped connections) lives in faults.py."""
