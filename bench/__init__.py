"""The benchmark at a million bookings: a synthetic history (`bench.generate`) and its measurements (`bench.run`).

Not part of `make test`; `make bench` and `make bench-quick` run it, and a smoke test runs its code path on a
tiny size so it cannot rot.
"""
