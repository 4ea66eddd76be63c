"""The pure core: decisions and plain data. No I/O, no Azure or Graph SDK, no adapter (tests/unit/test_layers.py).

policy + user facts + tenant catalog -> a plan (planning), expected + observed plans -> a verdict (verification),
a user against the policy -> drift (drift); the queue messages and HR payloads we accept (messages, hr_events);
what an outcome is (outcomes) and how it is stored (records); webhook signatures; NCRONTAB; our errors.
"""
