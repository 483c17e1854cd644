"""Screening: an accepted Walk in, a published Result out.

`classify` samples the walk and calls the runner; `streaming` encodes frames while the child
walks and runs only the head at walk end; `threshold` is the referral threshold in force;
`result` turns P(not negative) into the screening outcome and the published Result.
"""
