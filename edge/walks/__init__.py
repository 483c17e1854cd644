"""Walks: person Masks in, one accepted Walk (normalised silhouettes + quality) out per child.

`assembler` cuts the mask stream into walks and normalises each kept silhouette; `tracker`
says which person-sized component is which child; `gate` decides whether a walk may be
classified; `record` writes walks to disk only when privacy.record_walks asks for it.
"""
