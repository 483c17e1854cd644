"""The durable outbox: each Result is on disk (SQLite) before it is published, until acknowledged.

`store` is the Outbox; `storage` names what can go wrong with its file; `checksum` guards each
row's bytes; `clock` ages rows when the wall clock may be wrong; `memory` holds results the
file could not take; `cli` is `python -m edge outbox list | requeue | export`.
"""
