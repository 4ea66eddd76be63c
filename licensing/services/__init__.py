"""Use cases, one module each: onboard, verify, offboard, sweep, the HR webhook, Graph notifications, seats, poison.

A use case loads facts through the adapters it is handed (``Services``), asks the core what to do, applies it,
and hands the outcome to the one recorder (recording). It never builds a Graph or Storage client itself.
"""
